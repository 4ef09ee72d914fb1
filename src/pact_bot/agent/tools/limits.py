"""What one sandboxed command may use: cgroups and rlimits, and the size of the worktree.

Resources are capped per command (`Limits`): processes and memory through a cgroup where the
bot can make one (a systemd scope, else a writable cgroup v2/v1 directory of its own), CPU
seconds and file size always through rlimits set between fork and exec, and processes and
address space through rlimits when no cgroup is usable. RLIMIT_NPROC counts every process of
the real uid and does not bind root at all (the sandbox keeps the bot's uid), so a bot running
as root without a cgroup cannot stop a fork bomb; `limit_mechanism()` says which case holds
and `pact-bot doctor` shows it. `disk_usage` measures the worktree after each command.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import resource
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


DEFAULT_DISK_CAP = 2048 * MiB


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
