"""Turning a job's worktree into a commit on the remote: stage, commit, push, rebase."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pact_bot.workspace.errors import GitError, PushRejected, RebaseConflict, WorkspaceError
from pact_bot.workspace.git import Remote, RunGit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangedFile:
    path: str
    status: str  # A, M, D, T (no renames: a rename is a D plus an A)


@dataclass(frozen=True)
class Changes:
    """Staged changes against HEAD: the files and the unified diff (for unidiff)."""

    files: list[ChangedFile] = field(default_factory=list)
    diff: str = ""

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def empty(self) -> bool:
        return not self.files


async def head(git: RunGit, worktree: Path) -> str:
    _, out, _ = await git(["rev-parse", "HEAD"], worktree)
    return out.strip()


async def changes(git: RunGit, wt: Path) -> Changes:
    """Stage everything (`git add -A`) and report what changed against HEAD."""
    await git(["add", "-A"], wt)
    _, out, _ = await git(
        ["diff", "--cached", "--no-renames", "--no-textconv", "--name-status", "-z", "HEAD"], wt
    )
    parts = out.split("\0")
    files = [
        ChangedFile(path=parts[i + 1], status=parts[i][:1])
        for i in range(0, len(parts) - 1, 2)
        if parts[i]
    ]
    _, diff, _ = await git(
        [
            "-c",
            "core.quotepath=off",
            "diff",
            "--cached",
            "--no-renames",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "HEAD",
        ],
        wt,
    )
    return Changes(files=files, diff=diff)


async def commit(
    git: RunGit,
    wt: Path,
    message: str,
    author: tuple[str, str] | None = None,
    co_authors: Sequence[tuple[str, str] | str] = (),
) -> str:
    """Commit everything with the bot as author (unless given); return the new sha."""
    await git(["add", "-A"], wt)
    trailers = []
    for co in co_authors:
        line = co if isinstance(co, str) else f"{co[0]} <{co[1]}>"
        if line:
            trailers.append(f"Co-authored-by: {line}")
    text = message.rstrip() + "\n"
    if trailers:
        text += "\n" + "\n".join(dict.fromkeys(trailers)) + "\n"
    args = ["commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-F", "-"]
    if author is not None:
        args.append(f"--author={author[0]} <{author[1]}>")
    code, out, err = await git(args, wt, stdin=text, check=False)
    if code != 0:
        if "nothing to commit" in out + err:
            raise WorkspaceError("nothing to commit: the worktree has no changes")
        raise GitError(["git", *args], err or out, code)
    return await head(git, wt)


async def push(git: RunGit, wt: Path, remote: Remote, branch: str) -> str:
    """Push HEAD to `branch`, never forcing; returns the pushed sha."""
    sha = await head(git, wt)
    code, _, err = await git(
        ["push", "--quiet", "--no-verify", remote.url, f"HEAD:refs/heads/{branch}"],
        wt,
        remote=remote,
        check=False,
    )
    if code != 0:
        if "[rejected]" in err or "[remote rejected]" in err:
            nff = any(s in err for s in ("non-fast-forward", "fetch first", "stale info"))
            raise PushRejected(_rejection(err), non_fast_forward=nff)
        raise GitError(["git", "push", "<clone_url>", f"HEAD:refs/heads/{branch}"], err, code)
    return sha


async def rebase(git: RunGit, wt: Path, remote_ref: str) -> str:
    """Replay our commits onto `remote_ref`; on conflict abort and raise RebaseConflict."""
    code, out, err = await git(["rebase", "--quiet", remote_ref], wt, check=False)
    if code != 0:
        _, conflicted, _ = await git(
            ["diff", "--name-only", "--diff-filter=U", "-z"], wt, check=False
        )
        files = [f for f in conflicted.split("\0") if f]
        await git(["rebase", "--abort"], wt, check=False)
        if files:
            raise RebaseConflict(files)
        raise GitError(["git", "rebase", remote_ref], err or out, code)
    return await head(git, wt)


async def merge(git: RunGit, wt: Path, remote_ref: str) -> list[str] | None:
    """Merge `remote_ref` into HEAD without committing (a merge commit follows: published
    history is never rewritten). None when HEAD has it already; else the conflicted files
    (empty: a clean merge), whose conflict markers are left in the worktree."""
    code, _, _ = await git(["merge-base", "--is-ancestor", remote_ref, "HEAD"], wt, check=False)
    if code == 0:
        return None
    code, out, err = await git(
        ["merge", "--no-ff", "--no-commit", "--no-verify", "--quiet", remote_ref], wt, check=False
    )
    _, conflicted, _ = await git(["diff", "--name-only", "--diff-filter=U", "-z"], wt, check=False)
    files = [f for f in conflicted.split("\0") if f]
    if code != 0 and not files:
        await git(["merge", "--abort"], wt, check=False)
        raise GitError(["git", "merge", remote_ref], err or out, code)
    return files


def _rejection(stderr: str) -> str:
    """The remote's reason, from git's rejection lines and `remote:` messages."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    keep = [
        ln
        for ln in lines
        if "rejected]" in ln
        or (ln.startswith("remote:") and ln != "remote:")
        or ln.startswith("error:")
    ]
    return "\n".join(keep or lines)[:2000]
