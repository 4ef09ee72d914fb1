"""What configures the agent comes from the default branch, never from the branch it works on.

A revise job (and a code job that updates its own PR) works in a worktree of the bot's PR
branch: files the agent itself wrote in an earlier job. Its agent definition (the system
prompt and the model) is therefore read from the default branch, which people merged, not
from the worktree. `.github/pact.yml` is read from the default branch too (`JobContext.config`).
The blob is read from the mirror's `refs/remotes/origin/<default>` by the hardened git
runner: no checkout, no API call, and a symlink is refused, never followed.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pact_bot.agent.definition import (
    AGENT_NAME,
    AgentDefinition,
    DefinitionError,
    packaged_definition_text,
    parse_definition,
)
from pact_bot.workspace.git import default_runner

_SYMLINK = "120000"


class NotOnBranch(Exception):
    """No such file on the branch."""


async def branch_text(worktree: Path, branch: str, path: str) -> str:
    """`path` as committed on `branch` of the worktree's remote (NotOnBranch when absent,
    DefinitionError when it is not a regular file or the path leaves the repository)."""
    rel = PurePosixPath(path.removeprefix("./"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DefinitionError(f"{path}: not a path inside the repository")
    runner = default_runner()
    ref = f"refs/remotes/origin/{branch}"
    code, out, _ = await runner.run(["ls-tree", "-z", ref, "--", str(rel)], worktree, check=False)
    entry = out.split("\0")[0]
    if code != 0 or not entry:
        raise NotOnBranch(path)
    meta, _, _ = entry.partition("\t")
    mode, kind, sha = meta.split(" ")
    if mode == _SYMLINK or kind != "blob":
        raise DefinitionError(f"{path}: not a regular file on {branch} (a symlink is not followed)")
    _, text, _ = await runner.run(["cat-file", "blob", sha], worktree)
    return text


async def agent_definition(
    worktree: Path, default_branch: str, override: str | None, name: str = AGENT_NAME
) -> AgentDefinition:
    """`override` > `.claude/agents/<name>.md` > the packaged agent, as `load_definition`
    picks them, but each read from `default_branch`."""
    candidates = [*([override] if override else []), f".claude/agents/{name}.md"]
    for rel in candidates:
        try:
            text = await branch_text(worktree, default_branch, rel)
        except NotOnBranch:
            if rel == override:
                raise DefinitionError(
                    f"{rel}: agent definition not found on {default_branch}"
                ) from None
            continue
        return parse_definition(text, source=f"{rel} ({default_branch})")
    return parse_definition(packaged_definition_text(name), source="package")
