"""Confine every path the model names to the job's worktree.

The model sees the repository at `/workspace`; on disk it is the worktree. `resolve` maps
`/workspace/...` and relative paths onto the worktree and refuses, with a `PathError` the
tools turn into an error result, anything that would leave it: `..` escapes, absolute paths
elsewhere, symlinks pointing outside (checked on the fully resolved path, so a link is never
followed out), and anything under `.git/` in any case (hooks or config there would run outside
the sandbox; the rule is the host reader's, `pact_bot.confined`, so both refuse the same).
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from pact_bot.confined import is_git_name

WORKSPACE = "/workspace"


class PathError(Exception):
    """A path the agent may not use; the message is shown to the model."""


def resolve(worktree: Path, path: str) -> Path:
    """The on-disk path for a model-supplied path, or PathError if it leaves the worktree."""
    if not isinstance(path, str) or not path.strip():
        raise PathError("Parameter `path` is required and must be a non-empty string.")
    if "\x00" in path:
        raise PathError(f"The path {path!r} contains a NUL byte.")
    joined = path if path.startswith("/") else posixpath.join(WORKSPACE, path)
    norm = posixpath.normpath(joined)
    if norm != WORKSPACE and not norm.startswith(WORKSPACE + "/"):
        raise PathError(
            f"The path {path} is outside the repository. Only paths under {WORKSPACE} can be used."
        )
    rel = norm[len(WORKSPACE) :].lstrip("/")
    root = worktree.resolve()
    if _in_git_dir(rel):
        raise PathError(f"The path {path} is inside .git/, which the agent may not touch.")
    candidate = root / rel if rel else root
    try:
        real = candidate.resolve(strict=False)
    except (OSError, RuntimeError):
        raise PathError(f"The path {path} cannot be resolved (a symlink loop?).") from None
    try:
        real_rel = real.relative_to(root)
    except ValueError:
        raise PathError(
            f"The path {path} resolves (through a symlink) outside the repository; "
            "it cannot be used."
        ) from None
    if _in_git_dir(real_rel.as_posix()):
        raise PathError(f"The path {path} resolves into .git/, which the agent may not touch.")
    return candidate


def display(worktree: Path, real: Path) -> str:
    """The `/workspace/...` form of an on-disk path inside the worktree."""
    rel = real.relative_to(worktree.resolve()).as_posix()
    return WORKSPACE if rel in ("", ".") else f"{WORKSPACE}/{rel}"


def relative(worktree: Path, real: Path) -> str:
    """Repository-relative posix path (what git and the check run show)."""
    return real.relative_to(worktree.resolve()).as_posix()


def _in_git_dir(rel: str) -> bool:
    return any(is_git_name(part) for part in rel.split("/"))
