"""Read-only git in the job's worktree (no network, no token): the base, the new commit.

The hardened runner (`workspace/git.py`) runs them; a failure reads as "nothing there".
"""

from __future__ import annotations

from pathlib import Path

from pact_bot.pipeline.code_specs import _Target
from pact_bot.workspace import default_runner

# --- read-only git in the job's worktree (no network, no token) ------------------------


async def _base_sha(worktree: Path, target: _Target) -> str | None:
    return await _git_out(worktree, "rev-parse", f"refs/remotes/origin/{target.base_ref}")


async def _git_out(worktree: Path, *args: str) -> str | None:
    """Read-only git in the job's worktree (no network, no token), hardened."""
    code, out, _ = await default_runner().run(args, worktree, check=False)
    return out.strip() if code == 0 else None


async def _head_message(worktree: Path) -> str:
    return await _git_out(worktree, "log", "-1", "--format=%B") or ""


async def _head_diff(worktree: Path) -> str:
    args = ("show", "--format=", "--no-color", "--no-renames", "--no-ext-diff", "--no-textconv")
    return await _git_out(worktree, *args, "HEAD") or ""
