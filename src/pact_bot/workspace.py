"""Git checkouts for jobs: a bare mirror per repository, a worktree per job.

The mirror is fetched, never re-cloned, so the second job on a repository only
pays for new objects. Every job works in its own `git worktree`, so concurrent
jobs on one repository share objects but never a working directory.

Layout under `data_dir`::

    mirrors/<owner>/<name>.git    bare mirror; remote branches as refs/remotes/origin/*
    mirrors/<owner>/<name>.lock   fcntl lock serialising mirror updates across processes
    mirrors/<owner>/<name>.spare  the last finished job's checkout, cleaned, detached
    worktrees/<job_id>/           the job's checkout
    worktrees/<job_id>.lock       held while the job runs; a free lock means a dead job

A finished job's worktree is not deleted but cleaned (`checkout -f --detach`, `clean
-ffdx`) and parked as the repository's spare; the next job moves it into place and checks
out its branch, so only the files that differ are written. Creating every file of a large
repository is the slowest part of a warm job (~1 ms a file on a busy disk). A spare that
is not exactly as expected (its `.git` file, a rebase in progress, a failing git) is
deleted instead, and the job gets a fresh `git worktree add`.

Remote branches are fetched into `refs/remotes/origin/*` rather than `refs/heads/*`:
jobs' local branches live in `refs/heads/*` of the same repository, and a prune of
`refs/heads/*` would delete them (and git refuses to fetch into a checked-out branch).

The installation token reaches git only through the environment of the one git
process that talks to GitHub (`GIT_CONFIG_*` setting `http.<clone_url>.extraHeader`):
never in a URL, a config file, the worktree, argv, or an error message.

Public API::

    ws = Workspace(data_dir, identity=("pact-bot[bot]", "...@users.noreply.github.com"))
    await ws.update_mirror(repo, clone_url, token)   # clone/fetch only; may run ahead
    path = await ws.prepare(repo, clone_url, token, base_ref, branch, job_id,
                            reuse_branch=False, fetch=True)           # -> Path
    changes = await ws.changes(path)          # -> Changes(files, diff); stages everything
    sha = await ws.commit(path, message, author=(name, email), co_authors=[...])
    await ws.push(path, clone_url, token, branch)                 # PushRejected on refusal
    await ws.rebase_onto_remote(path, branch, clone_url=..., token=...)  # RebaseConflict
    await ws.remove(path)                      # always safe, whatever state the worktree is in
    await ws.sweep()                           # drop dead jobs' worktrees (worker start-up)
    await ws.remote_branch_exists(repo, branch, clone_url=None, token=None)  # -> bool
    ws.tracked_files(path)                     # -> list[str]
    ws.spare_path(repo)                        # -> Path of the parked checkout (may not exist)
    await ws.head(path)                        # -> sha

Errors: `WorkspaceError` (base), `GitError(cmd, stderr, returncode)`, `PushRejected(reason)`
(`.non_fast_forward`), `RebaseConflict(files)`, `WorkspaceBusy`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pact_bot.logs import redact

log = logging.getLogger(__name__)

DEFAULT_IDENTITY = ("pact-bot[bot]", "pact-bot[bot]@users.noreply.github.com")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Environment passed through to git: what it needs to find itself, its certificates and
# proxies. Nothing else of the bot's environment (API keys) reaches a git process.
_PASS_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)


# No credential helper, no hooks, and no automatic gc behind our back: gc runs only in the
# foreground, under the mirror lock, after a fetch (see `_sync_mirror`).
_BASE_CONFIG = (
    "-c",
    "credential.helper=",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
)
# Write a fresh worktree's files with one checkout worker per core (git ≥ 2.32; older
# gits ignore the setting): a fresh checkout of a large repository is mostly file writes.
_PARALLEL_CHECKOUT = ("-c", "checkout.workers=0")
# Lock files only git processes under the mirror lock create; after a kill -9 they stay
# behind and would fail every later fetch on this worker.
_MIRROR_LOCKS = ("packed-refs.lock", "shallow.lock", "config.lock", "HEAD.lock", "FETCH_HEAD.lock")


class WorkspaceError(Exception):
    """A workspace operation failed; the message is safe to show to users."""


class GitError(WorkspaceError):
    """A git command failed. `cmd` and `stderr` are scrubbed of secrets."""

    def __init__(self, cmd: Sequence[str], stderr: str, returncode: int | None = None) -> None:
        self.cmd = list(cmd)
        self.stderr = stderr
        self.returncode = returncode
        sub = next((a for a in self.cmd[1:] if not a.startswith("-") and "=" not in a), "")
        detail = stderr.strip() or "no output"
        super().__init__(f"git {sub} failed (exit {returncode}): {detail}")


class PushRejected(WorkspaceError):
    """The remote refused the push (non-fast-forward, protected branch, hook declined)."""

    def __init__(self, reason: str, *, non_fast_forward: bool = False) -> None:
        self.reason = reason
        self.non_fast_forward = non_fast_forward
        super().__init__(f"push rejected: {reason}")


class RebaseConflict(WorkspaceError):
    """Rebasing onto the remote branch conflicted; the rebase was aborted."""

    def __init__(self, files: list[str]) -> None:
        self.files = files
        super().__init__("rebase onto the remote branch conflicted in: " + ", ".join(files))


class WorkspaceBusy(WorkspaceError):
    """Another live job holds the job id or the branch on this machine."""


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


@dataclass
class _Checkout:
    repo: str
    mirror: Path
    branch: str
    job_id: str
    clone_url: str
    token: str


def _auth_header(token: str) -> str:
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"Authorization: Basic {basic}"


def _check_name(value: str, what: str) -> str:
    if not _SAFE_NAME.match(value) or value.endswith((".lock", ".git")) or ".." in value:
        raise ValueError(f"unsafe {what}: {value!r}")
    return value


def _split_repo(repo: str) -> tuple[str, str]:
    owner, sep, name = repo.partition("/")
    if not sep:
        raise ValueError(f"repository must be owner/name, got {repo!r}")
    return _check_name(owner, "owner"), _check_name(name, "repository name")


class Workspace:
    """Mirror cache and per-job worktrees under one data directory (per worker machine)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        identity: tuple[str, str] = DEFAULT_IDENTITY,
        git_timeout: float = 900.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.mirrors_dir = self.data_dir / "mirrors"
        self.worktrees_dir = self.data_dir / "worktrees"
        self.identity = identity
        self.git_timeout = git_timeout
        self._locks: dict[str, asyncio.Lock] = {}
        self._job_fds: dict[str, int] = {}
        self._checkouts: dict[Path, _Checkout] = {}

    # --- paths and locks -------------------------------------------------------------

    def mirror_path(self, repo: str) -> Path:
        owner, name = _split_repo(repo)
        return self.mirrors_dir / owner / f"{name}.git"

    def worktree_path(self, job_id: str) -> Path:
        return self.worktrees_dir / _check_name(job_id, "job id")

    @contextlib.asynccontextmanager
    async def _repo_lock(self, repo: str) -> AsyncIterator[None]:
        """One mirror update at a time: asyncio lock in-process, flock across processes."""
        lock = self._locks.setdefault(repo, asyncio.Lock())
        async with lock:
            path = self.mirror_path(repo).with_suffix(".lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.05)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _hold_job(self, job_id: str) -> None:
        """Mark the job as live on this machine until `remove`; refuse a live duplicate."""
        if job_id in self._job_fds:
            return
        self.worktrees_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.worktrees_dir / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkspaceBusy(f"job {job_id} is already running on this machine") from None
        self._job_fds[job_id] = fd

    def _release_job(self, job_id: str) -> None:
        fd = self._job_fds.pop(job_id, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                (self.worktrees_dir / f"{job_id}.lock").unlink()
            os.close(fd)

    def _job_is_live(self, job_id: str) -> bool:
        if job_id in self._job_fds:
            return True
        path = self.worktrees_dir / f"{job_id}.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # --- running git ------------------------------------------------------------------

    def _env(self, clone_url: str | None = None, token: str | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        name, email = self.identity
        env.update(
            {
                "HOME": str(self.data_dir),
                "LC_ALL": "C",  # English messages: push rejections are recognised by text
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "SSH_ASKPASS": "",
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email,
            }
        )
        if token and clone_url:
            env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": f"http.{clone_url}.extraHeader",
                    "GIT_CONFIG_VALUE_0": _auth_header(token),
                }
            )
        return env

    def _scrub(self, text: str, token: str | None) -> str:
        if token:
            text = text.replace(token, "[redacted]")
            text = text.replace(_auth_header(token), "Authorization: [redacted]")
        return redact(text)

    async def _git(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        clone_url: str | None = None,
        token: str | None = None,
        stdin: str | None = None,
        check: bool = True,
    ) -> tuple[int, str, str]:
        """Run git; return (code, stdout, stderr). Only this process sees the token."""
        cmd = ["git", *_BASE_CONFIG, *args]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=cwd,
            env=self._env(clone_url, token),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                self.git_timeout,
            )
        except (TimeoutError, asyncio.CancelledError) as e:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if isinstance(e, TimeoutError):
                raise GitError(cmd, f"timed out after {self.git_timeout:.0f}s") from None
            raise
        code = proc.returncode or 0
        stdout = out.decode(errors="replace")
        stderr = self._scrub(err.decode(errors="replace"), token)
        if check and code != 0:
            raise GitError([self._scrub(c, token) for c in cmd], stderr, code)
        return code, stdout, stderr

    # --- mirror -----------------------------------------------------------------------

    async def _sync_mirror(self, repo: str, clone_url: str, token: str | None) -> Path:
        """Create the mirror on first use (atomically), else fetch. Caller holds the lock."""
        mirror = self.mirror_path(repo)
        refspec = "+refs/heads/*:refs/remotes/origin/*"
        if not (mirror / "HEAD").exists():
            tmp = mirror.with_name(mirror.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                await self._git(["init", "--bare", "--quiet", str(tmp)], tmp.parent)
                await self._git(["remote", "add", "origin", clone_url], tmp)
                await self._git(["config", "remote.origin.fetch", refspec], tmp)
                await self._git(
                    ["fetch", "--quiet", "--no-tags", "--prune", "origin"],
                    tmp,
                    clone_url=clone_url,
                    token=token,
                )
                tmp.rename(mirror)
            except BaseException:  # failed or cancelled: no half-made mirror stays behind
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            log.info("mirror created", extra={"repo": repo})
            return mirror
        _clear_stale_locks(mirror)
        await self._git(["remote", "set-url", "origin", clone_url], mirror)
        await self._git(
            ["fetch", "--quiet", "--no-tags", "--prune", "origin"],
            mirror,
            clone_url=clone_url,
            token=token,
        )
        await self._git(
            ["-c", "gc.auto=6700", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"],
            mirror,
            check=False,
        )
        log.info("mirror fetched", extra={"repo": repo})
        return mirror

    async def _rev(self, repo_dir: Path, ref: str) -> str | None:
        code, out, _ = await self._git(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo_dir, check=False
        )
        return out.strip() if code == 0 else None

    async def _resolve_base(
        self, mirror: Path, base_ref: str, clone_url: str, token: str | None
    ) -> str:
        """A branch name, a full ref (e.g. refs/pull/7/head, fetched on demand) or a sha."""
        if _SHA.match(base_ref):
            if sha := await self._rev(mirror, base_ref):
                return sha
            await self._git(
                ["fetch", "--quiet", "--no-tags", "origin", base_ref],
                mirror,
                clone_url=clone_url,
                token=token,
            )
            if sha := await self._rev(mirror, base_ref):
                return sha
            raise WorkspaceError(f"base commit {base_ref} is not on the remote")
        if base_ref.startswith("refs/heads/"):
            base_ref = base_ref.removeprefix("refs/heads/")
        if not base_ref.startswith("refs/"):
            sha = await self._rev(mirror, f"refs/remotes/origin/{base_ref}")
            if sha is None:
                raise WorkspaceError(f"base branch {base_ref!r} does not exist on the remote")
            return sha
        local = "refs/pact-base/" + base_ref.removeprefix("refs/")
        await self._git(
            ["fetch", "--quiet", "--no-tags", "origin", f"+{base_ref}:{local}"],
            mirror,
            clone_url=clone_url,
            token=token,
        )
        sha = await self._rev(mirror, local)
        if sha is None:
            raise WorkspaceError(f"base ref {base_ref!r} is not a commit")
        return sha

    # --- worktrees --------------------------------------------------------------------

    async def _worktrees(self, mirror: Path) -> list[dict[str, str]]:
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

    async def _drop_worktree(self, mirror: Path | None, path: Path) -> None:
        if mirror is not None and mirror.exists():
            await self._git(
                ["worktree", "remove", "--force", "--force", str(path)], mirror, check=False
            )
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        if mirror is not None and mirror.exists():
            await self._git(["worktree", "prune"], mirror, check=False)

    async def update_mirror(self, repo: str, clone_url: str, token: str | None) -> Path:
        """Clone or fetch the repository's mirror, without touching any worktree.

        Safe to run ahead of `prepare` (e.g. while a job is still reading its config) and
        to cancel: a cancelled first clone leaves no mirror, a cancelled fetch leaves the
        mirror as it was or with some refs updated, as an interrupted fetch always may.
        """
        async with self._repo_lock(repo):
            return await self._sync_mirror(repo, clone_url, token)

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
        self._hold_job(job_id)
        self._checkouts.pop(path, None)
        try:
            async with self._repo_lock(repo):
                mirror = self.mirror_path(repo)
                if fetch or not (mirror / "HEAD").exists():
                    mirror = await self._sync_mirror(repo, clone_url, token)
                else:
                    _clear_stale_locks(mirror)
                if path.exists():
                    await self._drop_worktree(mirror, path)
                await self._git(["worktree", "prune"], mirror)
                await self._free_branch(mirror, branch, path)
                # No live job holds the branch now; a lock left by a killed commit would
                # make `worktree add -B` fail forever.
                (mirror / "refs" / "heads" / f"{branch}.lock").unlink(missing_ok=True)
                remote_sha = await self._rev(mirror, f"refs/remotes/origin/{branch}")
                if reuse_branch and remote_sha is None:
                    raise WorkspaceError(f"branch {branch!r} does not exist on the remote")
                start = remote_sha or await self._resolve_base(mirror, base_ref, clone_url, token)
                path.parent.mkdir(parents=True, exist_ok=True)
                if not await self._take_spare(repo, mirror, path, branch, start):
                    add = ["worktree", "add", "--quiet", "--no-track", "-B", branch, str(path)]
                    await self._git([*_PARALLEL_CHECKOUT, *add, start], mirror)
        except BaseException:
            self._release_job(job_id)  # the caller gets no path to remove; free the job
            raise
        self._checkouts[path] = _Checkout(repo, mirror, branch, job_id, clone_url, token or "")
        log.info(
            "worktree ready",
            extra={"repo": repo, "branch": branch, "continued": remote_sha is not None},
        )
        return path

    def spare_path(self, repo: str) -> Path:
        return self.mirror_path(repo).with_suffix(".spare")

    def _admin_dir(self, mirror: Path, worktree: Path) -> Path | None:
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

    async def _park(self, repo: str, mirror: Path, worktree: Path) -> bool:
        """Clean a finished job's worktree and keep it as the spare. Caller holds the lock."""
        spare = self.spare_path(repo)
        if spare.exists() or not worktree.is_dir():
            return False
        admin = self._admin_dir(mirror, worktree)
        busy = ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD", "locked")
        if admin is None or any((admin / name).exists() for name in busy):
            return False
        try:
            await self._git(["checkout", "--quiet", "--force", "--detach"], worktree)
            await self._git(["clean", "-ffdxq"], worktree)
            await self._git(["worktree", "move", str(worktree), str(spare)], mirror)
        except GitError:
            log.warning("worktree not kept as spare", exc_info=True)
            return False
        return True

    async def _take_spare(
        self, repo: str, mirror: Path, path: Path, branch: str, start: str
    ) -> bool:
        """Move the spare to `path` on `branch` at `start`; False (spare gone) if unusable."""
        spare = self.spare_path(repo)
        if not spare.is_dir():
            return False
        try:
            if self._admin_dir(mirror, spare) is None:
                raise WorkspaceError("spare worktree is not one of the mirror's")
            await self._git(["worktree", "move", str(spare), str(path)], mirror)
            await self._git(
                ["checkout", "--quiet", "--force", "--no-track", "-B", branch, start], path
            )
            await self._git(["clean", "-ffdxq"], path)
        except (WorkspaceError, OSError):
            log.warning("spare worktree dropped", exc_info=True)
            for p in (spare, path):
                await self._drop_worktree(mirror, p)
            return False
        return True

    async def _free_branch(self, mirror: Path, branch: str, ours: Path) -> None:
        """Remove a dead job's worktree that still has `branch` checked out."""
        ref = f"refs/heads/{branch}"
        for entry in await self._worktrees(mirror):
            if entry.get("branch") != ref or "bare" in entry:
                continue
            other = Path(entry["worktree"])
            if other == ours:
                continue
            if other.parent == self.worktrees_dir and not self._job_is_live(other.name):
                await self._drop_worktree(mirror, other)
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

    def _repo_of(self, mirror: Path) -> str:
        return f"{mirror.parent.name}/{mirror.name.removesuffix('.git')}"

    async def remove(self, worktree: Path) -> None:
        """Remove the worktree whatever its state (uncommitted changes, mid-rebase)."""
        worktree = Path(worktree).resolve()
        checkout = self._checkouts.pop(worktree, None)
        mirror = checkout.mirror if checkout else self._mirror_of(worktree)
        try:
            if mirror is not None and mirror.exists():
                async with self._repo_lock(self._repo_of(mirror)):
                    if checkout is None or not await self._park(checkout.repo, mirror, worktree):
                        await self._drop_worktree(mirror, worktree)
                    if checkout is not None:
                        await self._git(
                            ["branch", "-D", "--quiet", checkout.branch], mirror, check=False
                        )
            else:
                shutil.rmtree(worktree, ignore_errors=True)
        finally:
            shutil.rmtree(worktree, ignore_errors=True)
            job_id = checkout.job_id if checkout else worktree.name
            self._release_job(job_id)
        log.info("worktree removed", extra={"worktree": str(worktree)})

    async def sweep(self) -> list[str]:
        """Remove worktrees of jobs no process on this machine runs (a killed worker's);
        returns their job ids. Safe at any time, e.g. when a worker starts."""
        removed: list[str] = []
        if not self.worktrees_dir.is_dir():
            return removed
        for path in sorted(self.worktrees_dir.iterdir()):
            if not path.is_dir() or self._job_is_live(path.name):
                continue
            await self.remove(path)
            removed.append(path.name)
        for mirror in self.mirrors_dir.glob("*/*.git"):
            async with self._repo_lock(self._repo_of(mirror)):
                await self._git(["worktree", "prune"], mirror, check=False)
        return removed

    # --- working in a worktree --------------------------------------------------------

    async def head(self, worktree: Path) -> str:
        _, out, _ = await self._git(["rev-parse", "HEAD"], Path(worktree))
        return out.strip()

    async def changes(self, worktree: Path) -> Changes:
        """Stage everything (`git add -A`) and report what changed against HEAD."""
        wt = Path(worktree)
        await self._git(["add", "-A"], wt)
        _, out, _ = await self._git(
            ["diff", "--cached", "--no-renames", "--name-status", "-z", "HEAD"], wt
        )
        parts = out.split("\0")
        files = [
            ChangedFile(path=parts[i + 1], status=parts[i][:1])
            for i in range(0, len(parts) - 1, 2)
            if parts[i]
        ]
        _, diff, _ = await self._git(
            [
                "-c",
                "core.quotepath=off",
                "diff",
                "--cached",
                "--no-renames",
                "--no-color",
                "--no-ext-diff",
                "HEAD",
            ],
            wt,
        )
        return Changes(files=files, diff=diff)

    async def commit(
        self,
        worktree: Path,
        message: str,
        author: tuple[str, str] | None = None,
        co_authors: Sequence[tuple[str, str] | str] = (),
    ) -> str:
        """Commit everything with the bot as author (unless given); return the new sha."""
        wt = Path(worktree)
        await self._git(["add", "-A"], wt)
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
        code, out, err = await self._git(args, wt, stdin=text, check=False)
        if code != 0:
            if "nothing to commit" in out + err:
                raise WorkspaceError("nothing to commit: the worktree has no changes")
            raise GitError(["git", *args], err or out, code)
        return await self.head(wt)

    def _remember(self, worktree: Path, clone_url: str | None, token: str | None) -> _Checkout:
        checkout = self._checkout(worktree)
        if checkout is None:
            mirror = self._mirror_of(worktree)
            if mirror is None:
                raise WorkspaceError(f"{worktree} is not a worktree of this workspace")
            checkout = _Checkout(self._repo_of(mirror), mirror, "", Path(worktree).name, "", "")
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
        sha = await self.head(wt)
        code, _, err = await self._git(
            ["push", "--quiet", "--no-verify", clone_url, f"HEAD:refs/heads/{branch}"],
            wt,
            clone_url=clone_url,
            token=token,
            check=False,
        )
        if code != 0:
            if "[rejected]" in err or "[remote rejected]" in err:
                nff = any(s in err for s in ("non-fast-forward", "fetch first", "stale info"))
                raise PushRejected(_rejection(err), non_fast_forward=nff)
            raise GitError(["git", "push", "<clone_url>", f"HEAD:refs/heads/{branch}"], err, code)
        async with self._repo_lock(checkout.repo):
            await self._git(
                ["update-ref", f"refs/remotes/origin/{branch}", sha], checkout.mirror, check=False
            )
        log.info("pushed", extra={"repo": checkout.repo, "branch": branch, "sha": sha})

    async def rebase_onto_remote(
        self,
        worktree: Path,
        branch: str,
        clone_url: str | None = None,
        token: str | None = None,
    ) -> str:
        """Fetch the remote `branch` and replay our commits on top; return the new HEAD.

        `clone_url`/`token` default to those last given to `prepare`/`push` for this
        worktree. On conflict the rebase is aborted and `RebaseConflict(files)` raised.
        """
        wt = Path(worktree)
        checkout = self._remember(wt, clone_url, token)
        if not checkout.clone_url:
            raise WorkspaceError("rebase_onto_remote needs the clone URL of the repository")
        remote_ref = f"refs/remotes/origin/{branch}"
        async with self._repo_lock(checkout.repo):
            await self._git(
                ["fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{branch}:{remote_ref}"],
                checkout.mirror,
                clone_url=checkout.clone_url,
                token=checkout.token or None,
            )
        code, out, err = await self._git(["rebase", "--quiet", remote_ref], wt, check=False)
        if code != 0:
            _, conflicted, _ = await self._git(
                ["diff", "--name-only", "--diff-filter=U", "-z"], wt, check=False
            )
            files = [f for f in conflicted.split("\0") if f]
            await self._git(["rebase", "--abort"], wt, check=False)
            if files:
                raise RebaseConflict(files)
            raise GitError(["git", "rebase", remote_ref], err or out, code)
        return await self.head(wt)

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
            code, out, err = await self._git(
                ["ls-remote", "--heads", clone_url, f"refs/heads/{branch}"],
                self.data_dir if self.data_dir.exists() else Path.cwd(),
                clone_url=clone_url,
                token=token,
                check=False,
            )
            if code != 0:
                raise GitError(["git", "ls-remote", "<clone_url>"], err, code)
            return bool(out.strip())
        mirror = self.mirror_path(repo)
        if not mirror.exists():
            return False
        return await self._rev(mirror, f"refs/remotes/origin/{branch}") is not None

    def tracked_files(self, worktree: Path) -> list[str]:
        """Paths git tracks in the worktree (for the repository map), sorted."""
        result = subprocess.run(
            ["git", "-c", "core.quotepath=off", "ls-files", "-z"],
            cwd=worktree,
            env=self._env(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise GitError(["git", "ls-files"], result.stderr.decode(errors="replace"))
        return sorted(p for p in result.stdout.decode(errors="replace").split("\0") if p)


def _clear_stale_locks(mirror: Path) -> None:
    """Remove lock files a killed git left in the mirror. Caller holds the mirror lock."""
    for name in _MIRROR_LOCKS:
        (mirror / name).unlink(missing_ok=True)
    remotes = mirror / "refs" / "remotes"
    if remotes.is_dir():
        for stale in remotes.rglob("*.lock"):
            stale.unlink(missing_ok=True)


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
