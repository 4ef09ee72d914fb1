"""Per-job worktrees of the mirrors, and the `Workspace` callers use.

Layout under `data_dir`::

    mirrors/<owner>/<name>.git    bare mirror; remote branches as refs/remotes/origin/*
    mirrors/<owner>/<name>.lock   fcntl lock serialising mirror updates across processes
                                  (and held by the gits run under it, see `mirror`)
    mirrors/<owner>/<name>.spare  the last finished job's checkout, cleaned, detached
    worktrees/<job_id>/           the job's checkout
    worktrees/<job_id>.lock       held while the job runs; a free lock means a dead job

A finished job's worktree is parked as the repository's spare for the next job (see
`spares`); a mirror's first job completes its shallow history when it ends (see `mirror`).
Nested repositories the agent planted are removed before git looks at a job's tree (see
`tree`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.workspace import commits, spares
from pact_bot.workspace.commits import Changes
from pact_bot.workspace.errors import WorkspaceBusy, WorkspaceError
from pact_bot.workspace.git import DEFAULT_IDENTITY, GitRunner, Remote, RunGit
from pact_bot.workspace.joblocks import JobLocks
from pact_bot.workspace.mirror import MirrorLock, Mirrors, check_name, clear_stale_locks
from pact_bot.workspace.tree import remove_nested_repos

log = logging.getLogger(__name__)


@dataclass
class _Checkout:
    repo: str
    mirror: Path
    branch: str
    job_id: str
    clone_url: str
    token: str


class Workspace:
    """Mirror cache and per-job worktrees under one data directory (per worker machine)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        identity: tuple[str, str] = DEFAULT_IDENTITY,
        git_timeout: float = 900.0,
        mirror_lock_wait: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`mirror_lock_wait`: how long an operation waits for another process's hold on a
        mirror before it fails (default: as long as two gits may run, since one hold spans
        several, e.g. a first fetch and the checkout after it)."""
        self.data_dir = Path(data_dir).resolve()
        self.mirrors_dir = self.data_dir / "mirrors"
        self.worktrees_dir = self.data_dir / "worktrees"
        self.identity = identity
        self.runner = GitRunner(identity=identity, timeout=git_timeout)
        # Every git run of the workspace goes through `_git` (only the one process that
        # talks to the remote gets a `Remote` with the token); tests wrap it.
        self._git: RunGit = self.runner.run
        lock_wait = 2 * git_timeout if mirror_lock_wait is None else mirror_lock_wait
        self.mirrors = Mirrors(self.mirrors_dir, self._run, lock_wait=lock_wait, clock=clock)
        self.jobs = JobLocks(self.worktrees_dir)
        self._checkouts: dict[Path, _Checkout] = {}

    async def _run(self, args: Sequence[str], cwd: Path, **kw: Any) -> tuple[int, str, str]:
        """`_git` looked up at each call, so a test wrapping `_git` sees every git run."""
        return await self._git(args, cwd, **kw)

    # --- paths and job locks ----------------------------------------------------------

    def mirror_path(self, repo: str) -> Path:
        return self.mirrors.path(repo)

    def worktree_path(self, job_id: str) -> Path:
        return self.worktrees_dir / check_name(job_id, "job id")

    def spare_path(self, repo: str) -> Path:
        return self.mirror_path(repo).with_suffix(".spare")

    # --- worktree lifecycle -----------------------------------------------------------

    async def update_mirror(self, repo: str, clone_url: str, token: str | None) -> Path:
        """Clone or fetch the repository's mirror, and check out a spare when it has none
        (for the coming `prepare`); no job's worktree is touched.

        Safe to run ahead of `prepare` (e.g. while a job is still reading its config) and
        to cancel: a cancelled first clone leaves no mirror, a cancelled fetch leaves the
        mirror as it was or with some refs updated, as an interrupted fetch always may.
        """
        async with self.mirrors.lock(repo) as lock:
            mirror = await self.mirrors.sync(lock, clone_url, token)
            await spares.stock(lock.git, mirror, self.spare_path(repo), Remote(clone_url, token))
            return mirror

    async def prepare(
        self,
        repo: str,
        clone_url: str,
        token: str | None,
        base_ref: str,
        branch: str,
        job_id: str,
        reuse_branch: bool = False,
        *,
        fetch: bool = True,
    ) -> Path:
        """Fetch, then check out `branch` for the job in `worktrees/<job_id>`.

        The branch starts from the remote branch of that name when it exists (a retried
        job, or a revise job on the PR branch) or when `reuse_branch` asks for it; else
        from `base_ref`. Running it again for the same job id starts over cleanly.
        `fetch=False` skips the fetch when the caller has just run `update_mirror` (a
        missing mirror is still cloned).
        """
        path = self.worktree_path(job_id)
        self.jobs.hold(job_id)
        self._checkouts.pop(path, None)
        mirrors = self.mirrors
        try:
            async with mirrors.lock(repo) as lock:
                mirror = mirrors.path(repo)
                if fetch or not (mirror / "HEAD").exists():
                    mirror = await mirrors.sync(lock, clone_url, token)
                else:
                    clear_stale_locks(mirror)
                if path.exists():
                    await spares.drop(lock.git, mirror, path)
                await lock.git(["worktree", "prune"], mirror)
                await self._free_branch(lock, mirror, branch, path)
                # No live job holds the branch now; a lock left by a killed commit would
                # make `worktree add -B` fail forever.
                (mirror / "refs" / "heads" / f"{branch}.lock").unlink(missing_ok=True)
                remote_sha = await mirrors.rev(mirror, f"refs/remotes/origin/{branch}")
                if reuse_branch and remote_sha is None:
                    raise WorkspaceError(f"branch {branch!r} does not exist on the remote")
                start = remote_sha or await mirrors.resolve_base(
                    lock, mirror, base_ref, clone_url, token
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                spare = self.spare_path(repo)
                if not await spares.take(lock.git, mirror, spare, path, branch, start):
                    add = ["worktree", "add", "--quiet", "--no-track", "-B", branch, str(path)]
                    await lock.git([*spares.PARALLEL_CHECKOUT, *add, start], mirror)
        except BaseException:
            self.jobs.release(job_id)  # the caller gets no path to remove; free the job
            raise
        self._checkouts[path] = _Checkout(repo, mirror, branch, job_id, clone_url, token or "")
        log.info(
            "worktree ready",
            extra={"repo": repo, "branch": branch, "continued": remote_sha is not None},
        )
        return path

    async def _free_branch(self, lock: MirrorLock, mirror: Path, branch: str, ours: Path) -> None:
        """Remove a dead job's worktree that still has `branch` checked out."""
        ref = f"refs/heads/{branch}"
        for entry in await self.mirrors.worktrees(mirror):
            if entry.get("branch") != ref or "bare" in entry:
                continue
            other = Path(entry["worktree"])
            if other == ours:
                continue
            if other.parent == self.worktrees_dir and not self.jobs.is_live(other.name):
                await spares.drop(lock.git, mirror, other)
                continue
            raise WorkspaceBusy(f"branch {branch!r} is in use by another job ({other.name})")

    def _checkout(self, worktree: Path) -> _Checkout | None:
        return self._checkouts.get(Path(worktree).resolve())

    def _mirror_of(self, worktree: Path) -> Path | None:
        """The mirror a worktree belongs to, from its `.git` file (`gitdir: …/worktrees/x`)."""
        if (c := self._checkout(worktree)) is not None:
            return c.mirror
        try:
            text = (Path(worktree) / ".git").read_text()
        except OSError:
            return None
        gitdir = Path(text.removeprefix("gitdir:").strip())
        return gitdir.parent.parent if gitdir.parent.name == "worktrees" else None

    async def remove(self, worktree: Path) -> None:
        """Remove the worktree whatever its state (uncommitted changes, mid-rebase)."""
        worktree = Path(worktree).resolve()
        checkout = self._checkouts.pop(worktree, None)
        mirror = checkout.mirror if checkout else self._mirror_of(worktree)
        try:
            if mirror is not None and mirror.exists():
                async with self.mirrors.lock(Mirrors.repo_of(mirror)) as lock:
                    if checkout is None or not await spares.park(
                        lock.git, mirror, worktree, self.spare_path(checkout.repo)
                    ):
                        await spares.drop(lock.git, mirror, worktree)
                    if checkout is not None:
                        await lock.git(
                            ["branch", "-D", "--quiet", checkout.branch], mirror, check=False
                        )
                        # The job is over: its user waits no more. Not when it was stopped
                        # (the worker shuts down): the fetch could outlast the process's stop
                        # timeout, and a bot killed then leaves git's helpers holding the lock
                        # (and the restarted one waiting for them); a later job does it.
                        if checkout.clone_url and not _cancelling():
                            await self.mirrors.complete(
                                lock, checkout.clone_url, checkout.token or None
                            )
            else:
                shutil.rmtree(worktree, ignore_errors=True)
        finally:
            shutil.rmtree(worktree, ignore_errors=True)
            job_id = checkout.job_id if checkout else worktree.name
            self.jobs.release(job_id)
        log.info("worktree removed", extra={"worktree": str(worktree)})

    async def sweep(self) -> list[str]:
        """Remove worktrees of jobs no process on this machine runs (a killed worker's);
        returns their job ids. Safe at any time; workers run it when they start."""
        removed: list[str] = []
        if not self.worktrees_dir.is_dir():
            return removed
        for path in sorted(self.worktrees_dir.iterdir()):
            if not path.is_dir() or path.is_symlink() or self.jobs.is_live(path.name):
                continue
            await self.remove(path)
            removed.append(path.name)
        for mirror in self.mirrors.all():
            async with self.mirrors.lock(Mirrors.repo_of(mirror)) as lock:
                await lock.git(["worktree", "prune"], mirror, check=False)
        return removed

    # --- working in a worktree --------------------------------------------------------

    def _scrub(self, worktree: Path) -> Path:
        """A job's worktree loses any nested repository before git looks at it."""
        wt = Path(worktree)
        if wt.resolve().parent == self.worktrees_dir:
            remove_nested_repos(wt)
        return wt

    async def head(self, worktree: Path) -> str:
        return await commits.head(self._run, Path(worktree))

    async def changes(self, worktree: Path) -> Changes:
        """Stage everything (`git add -A`) and report what changed against HEAD."""
        return await commits.changes(self._run, self._scrub(worktree))

    async def commit(
        self,
        worktree: Path,
        message: str,
        author: tuple[str, str] | None = None,
        co_authors: Sequence[tuple[str, str] | str] = (),
    ) -> str:
        """Commit everything with the bot as author (unless given); return the new sha."""
        return await commits.commit(self._run, self._scrub(worktree), message, author, co_authors)

    def _remember(self, worktree: Path, clone_url: str | None, token: str | None) -> _Checkout:
        checkout = self._checkout(worktree)
        if checkout is None:
            mirror = self._mirror_of(worktree)
            if mirror is None:
                raise WorkspaceError(f"{worktree} is not a worktree of this workspace")
            checkout = _Checkout(Mirrors.repo_of(mirror), mirror, "", Path(worktree).name, "", "")
            self._checkouts[Path(worktree).resolve()] = checkout
        if clone_url:
            checkout.clone_url = clone_url
        if token:
            checkout.token = token
        return checkout

    async def push(self, worktree: Path, clone_url: str, token: str | None, branch: str) -> None:
        """Push HEAD to `branch`, never forcing. A refusal raises `PushRejected`."""
        wt = Path(worktree)
        checkout = self._remember(wt, clone_url, token)
        sha = await commits.push(self._run, wt, Remote(clone_url, token), branch)
        async with self.mirrors.lock(checkout.repo) as lock:
            await lock.git(
                ["update-ref", f"refs/remotes/origin/{branch}", sha], checkout.mirror, check=False
            )
        log.info("pushed", extra={"repo": checkout.repo, "branch": branch, "sha": sha})

    async def rebase_onto_remote(
        self, worktree: Path, branch: str, *, clone_url: str | None = None, token: str | None = None
    ) -> str:
        """Fetch the remote `branch` and replay our commits on top; return the new HEAD.

        `clone_url`/`token` default to those last given to `prepare`/`push` for this
        worktree. On conflict the rebase is aborted and `RebaseConflict(files)` raised.
        """
        wt = Path(worktree)
        checkout = self._remember(wt, clone_url, token)
        if not checkout.clone_url:
            raise WorkspaceError("rebase_onto_remote needs the clone URL of the repository")
        remote_ref = await self._fetch_branch(checkout, branch)
        return await commits.rebase(self._run, self._scrub(wt), remote_ref)

    async def merge_remote(
        self, worktree: Path, base: str, clone_url: str, token: str | None
    ) -> list[str] | None:
        """Fetch the remote `base` and merge it into the worktree's branch, uncommitted:
        None when the branch has it already, else the conflicted files (markers left in
        the worktree for the agent)."""
        wt = Path(worktree)
        checkout = self._remember(wt, clone_url, token)
        remote_ref = await self._fetch_branch(checkout, base)
        return await commits.merge(self._run, self._scrub(wt), remote_ref)

    async def complete_history(self, worktree: Path) -> None:
        """The whole history in the worktree's mirror, for what reads more than the tips
        (a commit's parent: in a new, shallow mirror a fetched branch's tip has none);
        raises when the fetch fails."""
        checkout = self._remember(Path(worktree), None, None)
        if not checkout.clone_url:
            raise WorkspaceError("complete_history needs the clone URL of the repository")
        async with self.mirrors.lock(checkout.repo) as lock:
            remote = Remote(checkout.clone_url, checkout.token or None)
            await self.mirrors.deepen(lock, checkout.mirror, remote)

    async def _fetch_branch(self, checkout: _Checkout, branch: str) -> str:
        """The remote `branch`, fresh in the mirror; its remote-tracking ref. A shallow
        mirror gets its whole history first: a merge or rebase needs the merge base."""
        remote_ref = f"refs/remotes/origin/{branch}"
        remote = Remote(checkout.clone_url, checkout.token or None)
        async with self.mirrors.lock(checkout.repo) as lock:
            clear_stale_locks(checkout.mirror)  # a killed fetch leaves its locks
            await self.mirrors.deepen(lock, checkout.mirror, remote)
            await lock.git(
                ["fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{branch}:{remote_ref}"],
                checkout.mirror,
                remote=remote,
            )
        return remote_ref

    async def remote_branch_exists(
        self,
        repo: str,
        branch: str,
        clone_url: str | None = None,
        token: str | None = None,
    ) -> bool:
        """Whether the remote has `branch`: asked live when `clone_url` is given, else as
        of the mirror's last fetch."""
        if clone_url:
            return await self.mirrors.ls_remote(branch, clone_url, token, cwd=self.data_dir)
        mirror = self.mirror_path(repo)
        if not mirror.exists():
            return False
        return await self.mirrors.rev(mirror, f"refs/remotes/origin/{branch}") is not None

    def tracked_files(self, worktree: Path) -> list[str]:
        """Paths git tracks in the worktree (for the repository map), sorted."""
        _, out, _ = self.runner.run_sync(["-c", "core.quotepath=off", "ls-files", "-z"], worktree)
        return sorted(p for p in out.split("\0") if p)


def _cancelling() -> bool:
    """Whether the running task has been cancelled (and is running its clean-up)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
