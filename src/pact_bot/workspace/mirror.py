"""The bare mirror per repository: created once, then only fetched.

Remote branches are fetched into `refs/remotes/origin/*` rather than `refs/heads/*`:
jobs' local branches live in `refs/heads/*` of the same repository, and a prune of
`refs/heads/*` would delete them (and git refuses to fetch into a checked-out branch).
Updates are serialised per repository: an asyncio lock in-process, an fcntl lock across
processes (`mirrors/<owner>/<name>.lock`). Every git that writes the mirror runs under
the lock and is passed its descriptor (`MirrorLock.git`), as are the processes git starts:
the flock, which belongs to the open file, stays held while any of them lives. A bot
SIGKILLed mid-fetch takes its gits along (`git.py`) but not their helpers (remote-https,
index-pack); the restarted bot waits for those instead of clearing lock files under a
live writer. The wait is bounded (`lock_wait`; in a `Workspace`, twice one git's timeout):
past it the operation fails naming the processes that hold the lock, and a wait of over
half a minute is logged with them.

A new mirror is fetched shallow (`--depth 1`: each branch's tip and its tree, a fraction
of a large repository's history), so the repository's first job waits only for what it
checks out. The first job completes the history when it ends (`complete`, from
`Workspace.remove`; not a job stopped at shutdown), and anything that needs history before
then (a merge or rebase onto a remote branch, a pushed commit's diff) completes it first.
Unlike a blobless (partial) mirror, a shallow one has every object of the commits it has:
no git command fetches lazily, so only the fetch, `ls-remote` and the push ever see the
token. A plain fetch into a shallow mirror stays correct (the server
sends whatever the mirror lacks, down to its shallow boundary), so a mirror whose completion
failed is still usable and is completed by a later job.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.workspace.errors import GitError, WorkspaceError
from pact_bot.workspace.git import Remote, RunGit

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
_SAFE_COMM = re.compile(r"[^A-Za-z0-9._-]")  # a process names itself; it goes into messages
# Lock files only git processes under the mirror lock create; after a kill -9 they stay
# behind and would fail every later fetch on this worker.
_MIRROR_LOCKS = ("packed-refs.lock", "shallow.lock", "config.lock", "HEAD.lock", "FETCH_HEAD.lock")
_POLL = 0.05  # seconds between tries of a busy flock
_REPORT_AFTER = 30.0  # a wait this long is logged, with the processes holding the lock


def check_name(value: str, what: str) -> str:
    if not _SAFE_NAME.match(value) or value.endswith((".lock", ".git")) or ".." in value:
        raise ValueError(f"unsafe {what}: {value!r}")
    return value


def _split_repo(repo: str) -> tuple[str, str]:
    owner, sep, name = repo.partition("/")
    if not sep:
        raise ValueError(f"repository must be owner/name, got {repo!r}")
    return check_name(owner, "owner"), check_name(name, "repository name")


@dataclass(frozen=True)
class MirrorLock:
    """A repository's mirror lock while this process holds it: the mirror operations that
    need it take it, and run their gits through `git`."""

    repo: str
    fd: int
    _run: RunGit

    async def git(self, args: Sequence[str], cwd: Path, **kw: Any) -> tuple[int, str, str]:
        """Run git holding the lock: it, and whatever it starts, inherit the descriptor."""
        return await self._run(args, cwd, hold_fds=(self.fd,), **kw)


class Mirrors:
    """Mirrors under `mirrors_dir`; `git` is the workspace's one way of running git."""

    def __init__(
        self,
        mirrors_dir: Path,
        git: RunGit,
        *,
        lock_wait: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.dir = mirrors_dir
        self._git = git
        self._locks: dict[str, asyncio.Lock] = {}
        self.lock_wait = lock_wait
        self._clock = clock

    def path(self, repo: str) -> Path:
        owner, name = _split_repo(repo)
        return self.dir / owner / f"{name}.git"

    @staticmethod
    def repo_of(mirror: Path) -> str:
        return f"{mirror.parent.name}/{mirror.name.removesuffix('.git')}"

    def all(self) -> list[Path]:
        return sorted(self.dir.glob("*/*.git"))

    @contextlib.asynccontextmanager
    async def lock(self, repo: str) -> AsyncIterator[MirrorLock]:
        """One mirror update at a time: asyncio lock in-process, flock across processes
        and the gits run under it. The flock is waited for at most `lock_wait`, then
        `WorkspaceError` names the holders; the in-process wait is not counted (this
        process's holders are bounded by their own gits' timeouts)."""
        async with self._locks.setdefault(repo, asyncio.Lock()):
            started = self._clock.monotonic()
            path = self.path(repo).with_suffix(".lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await self._flock(repo, fd, path, started)
                yield MirrorLock(repo, fd, self._git)
            finally:
                os.close(fd)  # releases the flock, unless a git run under it still lives

    async def _flock(self, repo: str, fd: int, path: Path, started: float) -> None:
        reported = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = self._clock.monotonic() - started
            if waited >= self.lock_wait:
                holders = await asyncio.to_thread(lock_holders, path)
                by = ", ".join(holders) or "a process this one cannot see"
                raise WorkspaceError(
                    f"gave up waiting for the mirror of {repo} after {waited:.0f}s: "
                    f"it is locked by {by}"
                )
            if waited >= _REPORT_AFTER and not reported:
                holders = await asyncio.to_thread(lock_holders, path)
                extra = {"repo": repo, "seconds": round(waited), "holders": holders}
                log.warning("mirror lock busy", extra=extra)
                reported = True
            await self._clock.sleep(_POLL)

    async def sync(self, lock: MirrorLock, clone_url: str, token: str | None) -> Path:
        """Create the mirror on first use (atomically, shallow), else fetch."""
        repo = lock.repo
        mirror = self.path(repo)
        git, remote = lock.git, Remote(clone_url, token)
        started = time.monotonic()
        if not (mirror / "HEAD").exists():
            tmp = mirror.with_name(mirror.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                await git(["init", "--bare", "--quiet", str(tmp)], tmp.parent)
                await git(["remote", "add", "origin", clone_url], tmp)
                await git(["config", "remote.origin.fetch", _REFSPEC], tmp)
                await self._fetch(lock, tmp, remote, "--depth", "1", "--prune", "origin")
                tmp.rename(mirror)
            except BaseException:  # failed or cancelled: no half-made mirror stays behind
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            seconds = round(time.monotonic() - started, 3)
            log.info("mirror created", extra={"repo": repo, "shallow": True, "seconds": seconds})
            return mirror
        clear_stale_locks(mirror)
        await git(["remote", "set-url", "origin", clone_url], mirror)
        await self._fetch(lock, mirror, remote, "--prune", "origin")
        await git(
            ["-c", "gc.auto=6700", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"],
            mirror,
            check=False,
        )
        seconds = round(time.monotonic() - started, 3)
        extra = {"repo": repo, "shallow": is_shallow(mirror), "seconds": seconds}
        log.info("mirror fetched", extra=extra)
        return mirror

    async def complete(self, lock: MirrorLock, clone_url: str, token: str | None) -> bool:
        """Fetch the history a shallow mirror lacks; False when it failed (logged; the
        mirror stays shallow and usable: git replaces `shallow` only once every object is
        in). Nothing to do for a full mirror."""
        mirror = self.path(lock.repo)
        if not is_shallow(mirror):
            return True
        try:
            await self.deepen(lock, mirror, Remote(clone_url, token))
        except WorkspaceError:
            extra = {"repo": lock.repo}
            log.warning("mirror history not completed", extra=extra, exc_info=True)
            return False
        return True

    async def deepen(self, lock: MirrorLock, mirror: Path, remote: Remote) -> None:
        """The full history of every branch, for what needs more than the tips (a merge
        base); raises when the fetch fails."""
        if is_shallow(mirror):
            clear_stale_locks(mirror)  # a killed history fetch leaves shallow.lock
            await self._fetch(lock, mirror, remote, "--unshallow", "origin")
            log.info("mirror history completed", extra={"repo": self.repo_of(mirror)})

    @staticmethod
    async def _fetch(lock: MirrorLock, cwd: Path, remote: Remote, *args: str) -> None:
        await lock.git(["fetch", "--quiet", "--no-tags", *args], cwd, remote=remote)

    async def rev(self, repo_dir: Path, ref: str) -> str | None:
        code, out, _ = await self._git(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo_dir, check=False
        )
        return out.strip() if code == 0 else None

    async def resolve_base(
        self, lock: MirrorLock, mirror: Path, base_ref: str, clone_url: str, token: str | None
    ) -> str:
        """A branch name, a full ref (e.g. refs/pull/7/head, fetched on demand) or a sha."""
        remote = Remote(clone_url, token)
        if _SHA.match(base_ref):
            if sha := await self.rev(mirror, base_ref):
                return sha
            await self._fetch(lock, mirror, remote, "origin", base_ref)
            if sha := await self.rev(mirror, base_ref):
                return sha
            raise WorkspaceError(f"base commit {base_ref} is not on the remote")
        if base_ref.startswith("refs/heads/"):
            base_ref = base_ref.removeprefix("refs/heads/")
        if not base_ref.startswith("refs/"):
            sha = await self.rev(mirror, f"refs/remotes/origin/{base_ref}")
            if sha is None:
                raise WorkspaceError(f"base branch {base_ref!r} does not exist on the remote")
            return sha
        local = "refs/pact-base/" + base_ref.removeprefix("refs/")
        await self._fetch(lock, mirror, remote, "origin", f"+{base_ref}:{local}")
        sha = await self.rev(mirror, local)
        if sha is None:
            raise WorkspaceError(f"base ref {base_ref!r} is not a commit")
        return sha

    async def ls_remote(self, branch: str, clone_url: str, token: str | None, *, cwd: Path) -> bool:
        """Whether the remote has `branch` right now."""
        code, out, err = await self._git(
            ["ls-remote", "--heads", clone_url, f"refs/heads/{branch}"],
            cwd if cwd.exists() else Path.cwd(),
            remote=Remote(clone_url, token),
            check=False,
        )
        if code != 0:
            raise GitError(["git", "ls-remote", "<clone_url>"], err, code)
        return bool(out.strip())

    async def worktrees(self, mirror: Path) -> list[dict[str, str]]:
        _, out, _ = await self._git(["worktree", "list", "--porcelain"], mirror)
        entries: list[dict[str, str]] = []
        for block in out.strip().split("\n\n"):
            entry: dict[str, str] = {}
            for line in block.splitlines():
                key, _, value = line.partition(" ")
                entry[key] = value
            if "worktree" in entry:
                entries.append(entry)
        return entries


def is_shallow(mirror: Path) -> bool:
    return (mirror / "shallow").exists()


def admin_dir(mirror: Path, worktree: Path) -> Path | None:
    """The mirror's admin directory of `worktree`, if its `.git` file points at it and
    nothing else (a job's sandbox can write that file)."""
    dot_git = worktree / ".git"
    if dot_git.is_symlink() or not dot_git.is_file():
        return None
    admin = Path(dot_git.read_text().removeprefix("gitdir:").strip())
    if admin.parent != mirror / "worktrees" or not admin.is_dir():
        return None
    try:
        recorded = Path((admin / "gitdir").read_text().strip())
    except OSError:
        return None
    return admin if recorded == dot_git else None


def lock_holders(path: Path) -> list[str]:
    """The processes other than this one with `path` open, as `name (pid N)`: whoever
    keeps a mirror locked. Only those /proc shows this user; none off Linux."""
    target, me, found = os.path.realpath(path), os.getpid(), []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in sorted(pids):
        if pid == me or not _has_open(pid, target):
            continue
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:  # gone meanwhile
            continue
        found.append(f"{_SAFE_COMM.sub('?', name)} (pid {pid})")
    return found


def _has_open(pid: int, target: str) -> bool:
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:  # not ours to read, or gone
        return False
    for fd in names:
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(f"{fds}/{fd}") == target:
                return True
    return False


def clear_stale_locks(mirror: Path) -> None:
    """Remove lock files a killed git left in the mirror. Caller holds the mirror lock."""
    for name in _MIRROR_LOCKS:
        (mirror / name).unlink(missing_ok=True)
    remotes = mirror / "refs" / "remotes"
    if remotes.is_dir():
        for stale in remotes.rglob("*.lock"):
            stale.unlink(missing_ok=True)
