"""The repository's spare checkout: a finished job's worktree, kept for the next job.

A finished job's worktree is not deleted but cleaned (`checkout -f --detach`, `clean
-ffdx`) and parked as `mirrors/<owner>/<name>.spare`; the next job moves it into place and
checks out its branch, so only the files that differ are written. Creating every file of a
large repository is the slowest part of a warm job (~1 ms a file on a busy disk). A spare
that is not exactly as expected (its `.git` file, a rebase in progress, a failing git) is
deleted instead, and the job gets a fresh `git worktree add`.

A repository with no spare (its first job) gets one from the mirror update that runs ahead
of the job's `prepare`: the remote's default branch is checked out while the job is still
making its API calls, and the job then takes it. Every function here runs under the
mirror's lock.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from pact_bot.workspace.errors import WorkspaceError
from pact_bot.workspace.git import Remote, RunGit
from pact_bot.workspace.mirror import admin_dir, check_name
from pact_bot.workspace.tree import remove_nested_repos

log = logging.getLogger(__name__)

_BUSY = ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD", "locked")
# Write a fresh worktree's files with one checkout worker per core (git ≥ 2.32; older
# gits ignore the setting): a fresh checkout of a large repository is mostly file writes.
PARALLEL_CHECKOUT = ("-c", "checkout.workers=0")


async def drop(git: RunGit, mirror: Path | None, path: Path) -> None:
    """Remove a worktree whatever its state (uncommitted changes, mid-rebase)."""
    if mirror is not None and mirror.exists():
        await git(["worktree", "remove", "--force", "--force", str(path)], mirror, check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    if mirror is not None and mirror.exists():
        await git(["worktree", "prune"], mirror, check=False)


async def park(git: RunGit, mirror: Path, worktree: Path, spare: Path) -> bool:
    """Clean a finished job's worktree and keep it as the spare."""
    if spare.exists() or not worktree.is_dir():
        return False
    admin = admin_dir(mirror, worktree)
    if admin is None or any((admin / name).exists() for name in _BUSY):
        return False
    try:
        remove_nested_repos(worktree)
        await git(["checkout", "--quiet", "--force", "--detach"], worktree)
        await git(["clean", "-ffdxq"], worktree)
        await git(["worktree", "move", str(worktree), str(spare)], mirror)
    except (WorkspaceError, OSError):
        log.warning("worktree not kept as spare", exc_info=True)
        return False
    return True


async def take(git: RunGit, mirror: Path, spare: Path, path: Path, branch: str, start: str) -> bool:
    """Move the spare to `path` on `branch` at `start`; False (spare gone) if unusable."""
    if not spare.is_dir():
        return False
    try:
        if admin_dir(mirror, spare) is None:
            raise WorkspaceError("spare worktree is not one of the mirror's")
        await git(["worktree", "move", str(spare), str(path)], mirror)
        await git(["checkout", "--quiet", "--force", "--no-track", "-B", branch, start], path)
        await git(["clean", "-ffdxq"], path)
    except (WorkspaceError, OSError):
        log.warning("spare worktree dropped", exc_info=True)
        for p in (spare, path):
            await drop(git, mirror, p)
        return False
    return True


async def stock(git: RunGit, mirror: Path, spare: Path, remote: Remote) -> None:
    """Check out the remote's default branch as the spare, unless there is one. A failure
    leaves no spare (logged: the job checks out as it would have); a cancel none either."""
    if spare.exists():
        return
    started = time.monotonic()
    try:
        _, out, _ = await git(["ls-remote", "--symref", "origin", "HEAD"], mirror, remote=remote)
        lines = out.splitlines()
        ref = next((ln[5:].partition("\t")[0] for ln in lines if ln.startswith("ref: ")), "")
        if (name := default_branch(ref)) is None:
            if ref:
                log.warning("default branch not used for a spare", extra={"ref": ref[:200]})
            return
        tip = "refs/remotes/origin/" + name
        add = ["worktree", "add", "--quiet", "--detach", str(spare), f"{tip}^{{commit}}"]
        await git([*PARALLEL_CHECKOUT, *add], mirror)
    except (WorkspaceError, OSError):
        log.warning("spare worktree not checked out", exc_info=True)
        await drop(git, mirror, spare)
        return
    except BaseException:
        await drop(git, mirror, spare)
        raise
    log.info("spare checked out", extra={"seconds": round(time.monotonic() - started, 3)})


def default_branch(ref: str) -> str | None:
    """The branch name in `ls-remote --symref`'s `ref: refs/heads/<name>`, if every part is
    a plain name: the remote chose it, and it goes into git's argv (no option, `..`,
    `@{…}` or `^{…}` a hostile server could slip in)."""
    if not ref.startswith("refs/heads/"):
        return None
    name = ref.removeprefix("refs/heads/")
    try:
        for part in name.split("/"):
            check_name(part, "branch name part")
    except ValueError:
        return None
    return name
