"""The agent's first message for a code job: specs, the request, the repository's map and
its own agent instructions. Pure; shared with local mode."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

AGENT_DOCS = ("CLAUDE.md", "AGENTS.md", ".github/copilot-instructions.md")
MAP_LIMIT = 400  # lines of the repository map
DOC_LIMIT = 20_000  # characters of each repository instructions file
SPEC_LIMIT = 100_000  # characters of each spec
REQUEST_LIMIT = 20_000  # characters of the or PR's body
CLIPPED = "\n… (clipped)"


def clip(text: str, limit: int) -> str:
    """`text`, cut at `limit` characters with a visible note."""
    return text if len(text) <= limit else text[:limit] + CLIPPED


def repo_map(files: Sequence[str], limit: int = MAP_LIMIT) -> str:
    """Tracked files, one per line; a large repository collapses into directories.

    Directories are expanded breadth-first while the listing stays under `limit`
    lines; the rest show as `dir/ (N files)`.
    """
    if len(files) <= limit:
        return "\n".join(files)
    depth = 1
    best = _collapse(files, 1)
    while depth < 8:
        nxt = _collapse(files, depth + 1)
        if len(nxt) > limit:
            break
        best, depth = nxt, depth + 1
    if len(best) > limit:
        extra = len(best) - limit
        best = [*best[:limit], f"… and {extra} more entries"]
    return "\n".join(best) + f"\n({len(files)} tracked files in total)"


def _collapse(files: Sequence[str], depth: int) -> list[str]:
    counts: Counter[str] = Counter()
    order: list[str] = []
    for f in files:
        parts = f.split("/")
        key = f if len(parts) <= depth else "/".join(parts[:depth]) + "/"
        if key not in counts:
            order.append(key)
        counts[key] += 1
    return [k if not k.endswith("/") else f"{k} ({counts[k]} files)" for k in order]


def repository_parts(files: Sequence[str], agent_docs: Sequence[tuple[str, str]]) -> list[str]:
    """The repository as every first message shows it: its map and its own instructions."""
    docs = [
        f'<repository_instructions path="{path}">\n{clip(text, DOC_LIMIT)}\n'
        "</repository_instructions>"
        for path, text in agent_docs
    ]
    return [f"<repository_map>\n{repo_map(files)}\n</repository_map>", *docs]


def first_message(
    *,
    specs: Sequence[tuple[str, str]],
    context: str,
    instructions: str,
    files: Sequence[str],
    agent_docs: Sequence[tuple[str, str]],
    summary_file: str,
    sections: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The task: specs (full text), where the request came from, the repository's map
    and its own agent instructions."""
    parts = ["Implement the following specification" + ("s" if len(specs) != 1 else "") + "."]
    for path, text in specs:
        changed = (sections or {}).get(path)
        note = f' changed_sections="{"; ".join(changed)}"' if changed else ""
        parts.append(f'<spec path="/workspace/{path}"{note}>\n{clip(text, SPEC_LIMIT)}\n</spec>')
    if context.strip():
        parts.append(f"<request>\n{context.strip()}\n</request>")
    if instructions.strip():
        parts.append(f"<instructions>\n{instructions.strip()}\n</instructions>")
    parts += repository_parts(files, agent_docs)
    # What the summary holds is the system prompt's rule (definition.operating_section);
    # saying it again here would be paid for on every turn.
    parts.append(f"When done, write the implementation summary to `/workspace/{summary_file}`.")
    return "\n\n".join(parts)


SUMMARY_REMINDER = (
    "The implementation summary is missing. Write it now to `/workspace/{path}` as your "
    "instructions describe (with `## Assumptions` and `## For the Test Engineer`). Do not "
    "change anything else."
)
