"""The bubblewrap command line of the sandbox: what a command can see and what it cannot.

Each command runs in a fresh `bash -c` inside `bwrap`: the worktree bound read-write at
`/workspace` (the working directory), system directories read-only, a private `/tmp`, `/proc`
and `/dev`, every namespace unshared (so no network at all), all capabilities dropped (even
when the bot runs as root), nested user namespaces disabled where the kernel allows it,
`--die-with-parent`, and an environment rebuilt from nothing (PATH, HOME=/tmp, LANG) — no
token or key of the bot can be read from inside. Of the host only `/usr`, the top-level
library/binary dirs, a short list of `/etc` files and the operator's `PACT_SANDBOX_BINDS` are
visible; `/opt` and the rest are not, and start-up refuses a data dir, database, env file or
key under any of them (`exposed_paths`).

`.git` is bound read-only over itself, so a command can inspect history but cannot plant
hooks or config that the bot's own git would later run outside the sandbox.

`sandbox_available()` probes bwrap once; when it is missing or unusable the bash tool is not
offered at all (there is no unsandboxed fallback) and the reason is logged.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from pact_bot.agent.paths import WORKSPACE
from pact_bot.agent.tools.jobenv import JobEnv

log = logging.getLogger(__name__)


TMP_BYTES = 1024 * 1024 * 1024
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


class SandboxError(Exception):
    """bwrap is not usable; the message says why."""


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
