"""The agent definition: a Claude Code subagent file (YAML frontmatter + prompt body).

    definition = load_definition(worktree)            # repo override, else the packaged seed
    model = settings.resolve_model(definition.model)  # PACT_MODEL > alias > full id
    system = system_prompt(definition, component="auth-service", bash_available=True)

A repository's `.claude/agents/pact-backend-coder.md` overrides the packaged default
(`pact_bot/agent/agents/pact-backend-coder.md`, read with importlib.resources so it works from
a wheel). The seed's `description` holds literal `\\n` sequences and `<example>` text in a plain
scalar that strict YAML may reject; when it does, a line-based `key: value` reader takes over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from pact_bot.confined import NotFound, Refused, read_text

AGENT_NAME = "pact-backend-coder"
TEST_AGENT_NAME = "pact-test-engineer"
PACKAGED = (AGENT_NAME, TEST_AGENT_NAME)
REPO_OVERRIDE = f".claude/agents/{AGENT_NAME}.md"
_FRONTMATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.DOTALL)
_KEY = re.compile(r"^([A-Za-z_][\w-]*):(?:\s(.*)|)$")


class DefinitionError(Exception):
    """The agent file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    description: str
    body: str
    model: str | None = None
    color: str | None = None
    tools: list[str] | None = None
    source: str = "package"
    extra: dict[str, object] = field(default_factory=dict)


def parse_definition(text: str, source: str = "<string>") -> AgentDefinition:
    m = _FRONTMATTER.match(text.lstrip("\ufeff"))
    if not m:
        raise DefinitionError(f"{source}: no YAML frontmatter between `---` lines")
    front, body = m.group(1), m.group(2).strip("\n")
    meta = _parse_frontmatter(front)
    name = str(meta.pop("name", "") or "").strip()
    if not name:
        raise DefinitionError(f"{source}: frontmatter has no `name`")
    if not body.strip():
        raise DefinitionError(f"{source}: the prompt body after the frontmatter is empty")
    tools = meta.pop("tools", None)
    if isinstance(tools, str):
        tools = [t.strip() for t in tools.split(",") if t.strip()]
    model = meta.pop("model", None)
    color = meta.pop("color", None)
    return AgentDefinition(
        name=name,
        description=str(meta.pop("description", "") or ""),
        body=body,
        model=str(model).strip() if model not in (None, "", "inherit") else None,
        color=str(color) if color is not None else None,
        tools=[str(t) for t in tools] if isinstance(tools, list) else None,
        source=source,
        extra=meta,
    )


def _parse_frontmatter(front: str) -> dict[str, object]:
    try:
        data = yaml.safe_load(front)
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items()}
    except yaml.YAMLError:
        pass
    out: dict[str, object] = {}
    key = None
    for line in front.splitlines():
        m = _KEY.match(line)
        if m:
            key = m.group(1)
            out[key] = (m.group(2) or "").strip()
        elif key is not None and line.strip():
            out[key] = f"{out[key]}\n{line.strip()}".strip()
    for k, v in out.items():
        if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            out[k] = v[1:-1]
    return out


def packaged_definition_text(name: str = AGENT_NAME) -> str:
    if name not in PACKAGED:
        raise DefinitionError(f"{name}: no such packaged agent")
    return (
        resources.files("pact_bot.agent")
        .joinpath("agents", f"{name}.md")
        .read_text(encoding="utf-8")
    )


def load_definition(
    worktree: Path | None, override_path: str | None = None, name: str = AGENT_NAME
) -> AgentDefinition:
    """`override_path` (relative to the worktree) > the repo's override > the packaged one
    (`name` picks the agent: the coder, or the test engineer for `/pact test`)."""
    if name not in PACKAGED:
        raise DefinitionError(f"{name}: no such packaged agent")
    candidates = []
    if worktree is not None:
        if override_path:
            candidates.append(override_path)
        candidates.append(f".claude/agents/{name}.md")
    for rel in candidates:
        assert worktree is not None
        try:
            text = read_text(worktree, rel.removeprefix("./"))
        except NotFound:
            if rel == override_path:
                raise DefinitionError(
                    f"{rel}: agent definition not found in the repository"
                ) from None
            continue
        except Refused as e:
            raise DefinitionError(f"{rel}: {e.reason}") from None
        return parse_definition(text, source=rel)
    return parse_definition(packaged_definition_text(name), source="package")


def operating_section(component: str, bash_available: bool) -> str:
    """pact-bot's own rules after the user's definition. Short on purpose: it is written to
    the prompt cache on every job's first call and read on every turn (bench/tokens.py)."""
    lines = [
        "## Operating notes (pact-bot)",
        "",
        "- This is a non-interactive run: nobody answers questions. Do not ask for "
        'clarification; decide, and record each assumption under "## Assumptions" in the '
        "implementation summary.",
        "- The repository is at /workspace; give the tools /workspace paths.",
        f"- Write the implementation summary to docs/implementation-summary-{component}.md, "
        'with its "## For the Test Engineer" section; the run is not complete without it.',
        "- pact-bot commits and pushes your changes: run no git command that changes history "
        "or refs (commit, push, reset, rebase, checkout, branch, stash, tag).",
        "- Edits under .git/, .github/ and .claude/ are refused.",
    ]
    if bash_available:
        lines.append(
            "- bash runs each command in a fresh shell, sandboxed at /workspace without "
            "network: `cd` and exports do not persist (chain with `&&`); nothing can be "
            "downloaded."
        )
    else:
        lines.append("- There is no shell in this run: use the editor, grep and glob.")
    lines.append("- End with a short final message saying what you implemented.")
    return "\n".join(lines)


def system_prompt(
    definition: AgentDefinition,
    operating_notes: str = "",
    *,
    component: str = "<component>",
    bash_available: bool = True,
) -> str:
    """The definition's body, then our operating section, then any caller-specific notes."""
    parts = [definition.body.strip(), operating_section(component, bash_available)]
    if operating_notes.strip():
        parts.append(operating_notes.strip())
    return "\n\n".join(parts) + "\n"
