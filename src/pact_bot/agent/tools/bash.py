"""Anthropic's `bash` tool (`bash_20250124`), run only inside a bubblewrap sandbox.

Each command runs in a fresh `bash -c` inside `bwrap`: the worktree bound read-write at
`/workspace` (the working directory), system directories read-only, a private `/tmp`, `/proc`
and `/dev`, every namespace unshared (so no network at all), all capabilities dropped (even
when the bot runs as root), nested user namespaces disabled where the kernel allows it,
`--die-with-parent`, and an environment rebuilt from nothing (PATH, HOME=/tmp, LANG) — no
token or key of the bot can be read from inside. Of the host only `/usr`, the top-level
library/binary dirs, a short list of `/etc` files and the operator's `PACT_SANDBOX_BINDS` are
visible; `/opt` and the rest are not, and start-up refuses a data dir, database, env file or
key under any of them (`exposed_paths`).

Resources are capped per command (`Limits`): processes and memory through a cgroup where the
bot can make one (a systemd scope, else a writable cgroup v2/v1 directory of its own), CPU
seconds and file size always through rlimits set between fork and exec, and processes and
address space through rlimits when no cgroup is usable. RLIMIT_NPROC counts every process of
the real uid and does not bind root at all (the sandbox keeps the bot's uid), so a bot running
as root without a cgroup cannot stop a fork bomb; `limit_mechanism()` says which case holds
and `pact-bot doctor` shows it. `disk_usage` measures the worktree after each command.

`.git` is bound read-only over itself, so a command can inspect history but cannot plant
hooks or config that the bot's own git would later run outside the sandbox.

Why a fresh shell per command rather than one long-lived session: a hung or killed command
cannot poison later ones, and the timeout kills one process group cleanly. The cost is that
`cd` and exported variables do not persist between calls; the system prompt tells the model
(chain with `&&`). `restart` is accepted and answers as the reference tool does.

`sandbox_available()` probes bwrap once; when it is missing or unusable the bash tool is not
offered at all (there is no unsandboxed fallback) and the reason is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.agent.paths import WORKSPACE
from pact_bot.agent.tools.jobenv import JobEnv

log = logging.getLogger(__name__)

NAME = "bash"
TYPE = "bash_20250124"
DEFAULT_TIMEOUT = 120.0
TMP_BYTES = 1024 * 1024 * 1024
MAX_OUTPUT = 30_000
BWRAP = "/usr/bin/bwrap"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# /etc entries programs commonly need; nothing secret lives here (no shadow, no ssh keys).
_ETC = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "mime.types",
    "os-release",
    "debian_version",
    "profile",
    "bash.bashrc",
    "inputrc",
    "python3",
)


_TOP_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MiB = 1024 * 1024


DEFAULT_DISK_CAP = 2048 * MiB


class SandboxError(Exception):
    """bwrap is not usable; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What one command may use; defaults fit a backend test suite."""

    pids: int = 512
    memory_bytes: int = 4096 * MiB
    cpu_seconds: int = 600
    file_bytes: int = 1024 * MiB

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            pids=settings.pact_sandbox_pids,
            memory_bytes=settings.pact_sandbox_memory_mb * MiB,
            cpu_seconds=settings.pact_sandbox_cpu_seconds,
            file_bytes=settings.pact_sandbox_file_size_mb * MiB,
        )

    def describe(self) -> str:
        return (
            f"{self.pids} processes, {self.memory_bytes // MiB} MiB memory, "
            f"{self.cpu_seconds} s CPU, {self.file_bytes // MiB} MiB per file"
        )


def options_from_settings(settings: Any) -> dict[str, Any]:
    """BashTool's keyword arguments for limits, binds and disk cap from the server settings."""
    if settings is None:
        return {}
    return {
        "limits": Limits.from_settings(settings),
        "extra_binds": tuple(settings.pact_sandbox_binds),
        "disk_cap": settings.pact_sandbox_disk_mb * MiB,
    }


def _size(n: int) -> str:
    return f"{n / (1024 * MiB):.1f} GiB" if n >= 1024 * MiB else f"{n / MiB:.0f} MiB"


def bound_paths(extra: Iterable[Path] = ()) -> list[Path]:
    """Host paths the sandbox shows (read-only), besides the job's own worktree."""
    paths = [Path("/usr")]
    paths += [Path(t) for t in _TOP_DIRS if Path(t).is_dir() and not Path(t).is_symlink()]
    paths += [Path("/etc") / name for name in _ETC]
    paths += [Path(p) for p in extra]
    return paths


def exposed_paths(private: Iterable[Path], extra_binds: Iterable[Path] = ()) -> list[str]:
    """Each private path (data dir, database, env file, key) the sandbox would show, as
    `"<path> (under <bind>)"`; also a bind that lies inside a private directory."""
    binds = [(b, _real(b)) for b in bound_paths(extra_binds)]
    found = []
    for path in private:
        real = _real(path)
        for shown, bind in binds:
            if real == bind or bind in real.parents or real in bind.parents:
                found.append(f"{path} (sandbox bind {shown})")
                break
    return found


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in _TOP_DIRS:
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    args += ["--dir", "/etc"]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _extra_binds(extra: Sequence[Path]) -> list[str]:
    """After the private /tmp, so a bind under /tmp is not hidden by it."""
    args: list[str] = []
    for path in extra:
        args += ["--ro-bind-try", str(path), str(path)]
    return args


def bwrap_argv(
    worktree: Path, command: str, extra_binds: Sequence[Path] = (), env: JobEnv | None = None
) -> list[str]:
    """The full bwrap command line for one shell command in `worktree`."""
    argv = [
        bwrap_path() or BWRAP,
        "--unshare-all",
        *_userns_flags(),
        "--cap-drop", "ALL",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv", "PATH", SANDBOX_PATH,
        "--setenv", "HOME", SANDBOX_TMP,
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "TERM", "dumb",
        *_system_binds(),
        "--proc", "/proc",
        "--dev", "/dev",
        *_tmp_size(),
        "--tmpfs", SANDBOX_TMP,
        *_extra_binds(extra_binds),
        "--bind", str(worktree), WORKSPACE,
        *(env.bwrap_args() if env is not None else ()),
    ]  # fmt: skip
    git = worktree / ".git"
    if git.exists() and not git.is_symlink():
        argv += ["--ro-bind", str(git), f"{WORKSPACE}/.git"]
    if env is not None:
        command = env.command(command)
    argv += ["--chdir", WORKSPACE, "/bin/bash", "--noprofile", "--norc", "-c", command]
    return argv


@functools.cache
def _userns_flags() -> tuple[str, ...]:
    """A user namespace of its own with nested ones disabled, where the kernel allows it.

    Without it a sandbox started by root keeps root's capabilities unless dropped (we always
    drop them) and could create nested namespaces to try remounting what we bound read-only.
    """
    strict = ("--unshare-user", "--disable-userns")
    path = bwrap_path()
    if path is None:
        return ()
    try:
        proc = subprocess.run(
            [path, *strict, "--ro-bind", "/", "/", "/bin/true"],
            capture_output=True,
            timeout=30,
            env={"PATH": SANDBOX_PATH},
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    if proc.returncode != 0:
        log.info("bwrap cannot disable nested user namespaces here; relying on --cap-drop ALL")
        return ()
    return strict


@functools.cache
def _tmp_size() -> tuple[str, ...]:
    """Cap the private /tmp (RAM-backed) where bwrap supports `--size` (0.5+)."""
    path = bwrap_path()
    if path is None:
        return ()
    try:
        out = subprocess.run([path, "--help"], capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return ("--size", str(TMP_BYTES)) if b"--size" in out else ()


def bwrap_path() -> str | None:
    """/usr/bin/bwrap, else whatever `bwrap` PATH finds."""
    return BWRAP if Path(BWRAP).exists() else shutil.which("bwrap")


@functools.cache
def sandbox_available() -> tuple[bool, str]:
    """Whether bwrap can run a command here, and why not; probed once per process."""
    if bwrap_path() is None:
        return False, f"bubblewrap is not installed ({BWRAP} not found, none on PATH)"
    with tempfile.TemporaryDirectory(prefix="pact-bwrap-probe-") as d:
        try:
            proc = subprocess.run(
                bwrap_argv(Path(d), "echo ok > probe && cat probe"),
                capture_output=True,
                timeout=30,
                env={"PATH": SANDBOX_PATH},
            )
        except (OSError, subprocess.SubprocessError) as e:
            return False, f"bubblewrap failed to start: {e}"
        if proc.returncode != 0 or proc.stdout.strip() != b"ok":
            err = proc.stderr.decode(errors="replace").strip()[:300]
            return False, f"bubblewrap cannot create a sandbox here (exit {proc.returncode}): {err}"
    return True, "bubblewrap sandbox works"


# --- resource limits ---------------------------------------------------------------------

_SYSTEMD_RUN = ("systemd-run", "--scope", "--quiet", "--collect")
_names = itertools.count()


@dataclass(frozen=True)
class Mechanism:
    """How per-command limits are enforced here; probed once per process."""

    kind: str  # "systemd" | "cgroup" | "rlimit"
    detail: str
    cgroup_dirs: tuple[Path, ...] = ()  # parents of the per-command cgroups ("cgroup")
    cgroup_v2: bool = False
    contains_fork_bomb: bool = True


@functools.cache
def limit_mechanism() -> Mechanism:
    """A systemd scope, else a cgroup directory we may write, else rlimits alone."""
    if _systemd_scope_works():
        return Mechanism("systemd", "systemd scope (cgroup v2: TasksMax, MemoryMax)")
    found = _writable_cgroup()
    if found is not None:
        dirs, v2 = found
        where = ", ".join(str(d) for d in dirs)
        return Mechanism("cgroup", f"cgroup {'v2' if v2 else 'v1'} under {where}", dirs, v2)
    if os.getuid() == 0:
        return Mechanism(
            "rlimit",
            "rlimits only, and the bot runs as root: RLIMIT_NPROC does not apply to root, so "
            "the number of processes in the sandbox is not limited",
            contains_fork_bomb=False,
        )
    return Mechanism(
        "rlimit",
        f"rlimits (RLIMIT_NPROC counts all processes of uid {os.getuid()}, RLIMIT_AS per process)",
    )


def _systemd_scope_works() -> bool:
    if shutil.which("systemd-run") is None:
        return False
    user = () if os.getuid() == 0 else ("--user",)
    props = ["-p", "TasksMax=64", "-p", "MemoryMax=64M", "-p", "MemorySwapMax=0"]
    argv = [*_SYSTEMD_RUN, *user, *props, "--", "/bin/true"]
    try:
        return subprocess.run(argv, capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _writable_cgroup() -> tuple[tuple[Path, ...], bool] | None:
    """Our own cgroup's directory where we may create children with a pids limit: cgroup v2
    (pids, and memory when delegated), or the v1 pids (+ memory) hierarchies."""
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    groups: dict[str, str] = {}
    for line in own:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            groups[c] = path
    bases: dict[str, Path] = {}
    for line in mounts:
        fields = line.split()
        sep = fields.index("-")
        root, point, fstype, opts = fields[3], fields[4], fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2" and "" in groups:
            bases.setdefault("", _under(Path(point), root, groups[""]))
        elif fstype == "cgroup":
            for c in ("pids", "memory"):
                if c in opts.split(",") and c in groups:
                    bases.setdefault(c, _under(Path(point), root, groups[c]))
    if "pids" in bases and _probe_child(bases["pids"], "pids.max"):
        dirs = [bases["pids"]]
        if "memory" in bases and _probe_child(bases["memory"], "memory.limit_in_bytes"):
            dirs.append(bases["memory"])
        return tuple(dirs), False
    v2 = bases.get("")
    if v2 is not None and _enable_v2(v2) and _probe_child(v2, "pids.max"):
        return (v2,), True
    return None


def _under(point: Path, root: str, path: str) -> Path:
    rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return point / rel if rel != "." else point


def _enable_v2(base: Path) -> bool:
    try:
        have = (base / "cgroup.subtree_control").read_text().split()
        if "pids" not in have:
            (base / "cgroup.subtree_control").write_text("+pids")
        if "memory" not in have:
            with contextlib.suppress(OSError):
                (base / "cgroup.subtree_control").write_text("+memory")
        return "pids" in (base / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False


def _probe_child(base: Path, knob: str) -> bool:
    probe = base / f"pact-sandbox-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        (probe / knob).write_text("64")
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


class _CommandCgroup:
    """The cgroup(s) of one command: created before it starts, emptied and removed after."""

    def __init__(self, mech: Mechanism, limits: Limits) -> None:
        name = f"pact-sandbox-{os.getpid()}-{next(_names)}"
        self.dirs: list[Path] = []
        self.limits_memory = False
        try:
            for base in mech.cgroup_dirs:
                d = base / name
                d.mkdir()
                self.dirs.append(d)
                if mech.cgroup_v2:
                    (d / "pids.max").write_text(str(limits.pids))
                    self.limits_memory |= _try_write(d / "memory.max", str(limits.memory_bytes))
                    _try_write(d / "memory.swap.max", "0")
                elif (d / "pids.max").exists():
                    (d / "pids.max").write_text(str(limits.pids))
                else:
                    mem = str(limits.memory_bytes)
                    self.limits_memory |= _try_write(d / "memory.limit_in_bytes", mem)
        except OSError:
            self.remove()
            raise
        self.procs = [str(d / "cgroup.procs") for d in self.dirs]

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
                with contextlib.suppress(OSError):
                    for pid in (d / "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _try_write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _preexec(
    limits: Limits, procs: Sequence[str], nproc: bool, address_space: bool
) -> Callable[[], None]:
    """Runs in the child between fork and exec: join the cgroups, set the rlimits (soft and
    hard, so nothing inside can raise them: raising a hard limit needs CAP_SYS_RESOURCE)."""

    def apply() -> None:
        pid = str(os.getpid())
        for path in procs:
            with open(path, "w") as f:
                f.write(pid)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        if nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))

    return apply


def describe_limits(limits: Limits) -> tuple[bool, str]:
    """(enforced, one line) for `pact-bot doctor`."""
    mech = limit_mechanism()
    return mech.contains_fork_bomb, f"{mech.detail}; per command: {limits.describe()}"


# --- worktree size ---------------------------------------------------------------------


def disk_usage(root: Path, stop_above: int | None = None) -> int:
    """Bytes under `root` without following symlinks, hard links once, sparse files at their
    apparent size (git would read them whole); stops counting once past `stop_above`."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if not (current == root and entry.name == ".git"):
                    stack.append(Path(entry.path))
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += max(st.st_size, st.st_blocks * 512)
            if stop_above is not None and total > stop_above:
                return total
    return total


class _Capped:
    """Keeps the first and last `limit/2` characters of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        if self.total <= len(self.head) + len(self.tail):
            return head + self.tail.decode("utf-8", "replace")
        skipped = self.total - len(self.head) - len(self.tail)
        return (
            head + f"\n\n[... {skipped} bytes of output omitted; showing the first and last "
            f"{self.half} ...]\n\n" + self.tail.decode("utf-8", "replace")
        )


class BashTool:
    def __init__(
        self,
        worktree: Path,
        timeout: float = DEFAULT_TIMEOUT,
        max_output: int = MAX_OUTPUT,
        limits: Limits | None = None,
        extra_binds: Sequence[Path] = (),
        disk_cap: int | None = DEFAULT_DISK_CAP,
        env: JobEnv | None = None,
    ) -> None:
        self.worktree = worktree.resolve()
        self.timeout = timeout
        self.max_output = max_output
        self.limits = limits or Limits()
        self.extra_binds = tuple(extra_binds)
        self.disk_cap = disk_cap
        self.halt: str | None = None  # set once a command grew the worktree past disk_cap
        self.env = env

    def definition(self) -> dict[str, Any]:
        return {"type": TYPE, "name": NAME}

    async def run(self, tool_input: dict[str, Any]) -> tuple[str, bool]:
        """(output, is_error) for one call; a non-zero exit is reported as an error."""
        if tool_input.get("restart"):
            return "tool has been restarted.", False
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            return "no command provided.", True
        if self.halt is not None:
            return f"Not run: {self.halt}.", True
        text, is_error = await self.execute(command)
        if await self.over_disk_cap():
            return f"{text}\n\nThe job stops here: {self.halt}.", True
        return text, is_error

    async def over_disk_cap(self) -> bool:
        """Measure the worktree after a command (host side, symlinks not followed); past the
        cap `halt` says why, and the agent loop ends the job on it."""
        if self.disk_cap is None:
            return False
        size = await asyncio.to_thread(disk_usage, self.worktree, self.disk_cap)
        if size <= self.disk_cap:
            return False
        self.halt = (
            f"the working copy grew to more than {_size(self.disk_cap)} "
            f"(at least {_size(size)}) after a command"
        )
        return True

    async def execute(
        self, command: str, *, env: JobEnv | None = None, timeout: float | None = None
    ) -> tuple[str, bool]:
        """(output, is_error) for one command; `env` and `timeout` override the tool's own
        (setup commands get the network and a longer limit than the agent's calls)."""
        done = await self.outcome(command, env=env, timeout=timeout)
        return done.text, done.is_error

    async def outcome(
        self, command: str, *, env: JobEnv | None = None, timeout: float | None = None
    ) -> Outcome:
        """The same, with the exit code and whether the time ran out (for the bot's own
        runs of setup and tests, which report them)."""
        mech = limit_mechanism()
        group = _CommandCgroup(mech, self.limits) if mech.kind == "cgroup" else None
        try:
            return await self._execute(
                command, mech, group, env or self.env, self.timeout if timeout is None else timeout
            )
        finally:
            if group is not None:
                await asyncio.to_thread(group.remove)

    async def _execute(
        self,
        command: str,
        mech: Mechanism,
        group: _CommandCgroup | None,
        env: JobEnv | None,
        timeout: float,
    ) -> Outcome:
        out = _Capped(self.max_output // 2)
        err = _Capped(self.max_output // 2)
        argv = bwrap_argv(self.worktree, command, self.extra_binds, env)
        if mech.kind == "systemd":
            user = () if os.getuid() == 0 else ("--user",)
            argv = [
                *_SYSTEMD_RUN, *user,
                "-p", f"TasksMax={self.limits.pids}",
                "-p", f"MemoryMax={self.limits.memory_bytes}",
                "-p", "MemorySwapMax=0",
                "--", *argv,
            ]  # fmt: skip
        cgroup_memory = mech.kind == "systemd" or (group is not None and group.limits_memory)
        preexec = _preexec(
            self.limits,
            group.procs if group is not None else (),
            nproc=mech.kind == "rlimit",
            address_space=not cgroup_memory,
        )
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": SANDBOX_PATH},
            start_new_session=True,
            preexec_fn=preexec,
        )
        assert proc.stdout is not None and proc.stderr is not None
        readers = asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, err))
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                _kill(proc.pid)
                await proc.wait()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await readers
        text = out.text()
        if err.total:
            text += ("\n" if text and not text.endswith("\n") else "") + err.text()
        sep = "\n" if text and not text.endswith("\n") else ""
        if timed_out:
            note = (
                f"Command timed out after {timeout:g} seconds and was killed (each command "
                "runs in a fresh shell; run long tasks in the background or with a shorter "
                "scope)."
            )
            return Outcome(text + sep + note, None, timed_out=True)
        if proc.returncode:
            return Outcome(text + sep + f"[exit code {proc.returncode}]", proc.returncode)
        return Outcome(text or "(no output)", 0)


@dataclass(frozen=True)
class Outcome:
    text: str
    exit_code: int | None  # None when the command was killed at its time limit
    timed_out: bool = False

    @property
    def is_error(self) -> bool:
        return self.timed_out or self.exit_code != 0


async def _pump(stream: asyncio.StreamReader, sink: _Capped) -> None:
    while chunk := await stream.read(65536):
        sink.feed(chunk)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
