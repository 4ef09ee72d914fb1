"""Anthropic's `bash` tool (`bash_20250124`), run only inside a bubblewrap sandbox.

Each command runs in a fresh `bash -c` inside `bwrap`: the worktree bound read-write at
`/workspace` (the working directory), system directories read-only, a private `/tmp`, `/proc`
and `/dev`, every namespace unshared (so no network at all), all capabilities dropped (even
when the bot runs as root), nested user namespaces disabled where the kernel allows it,
`--die-with-parent`, and an environment rebuilt from nothing (PATH, HOME=/tmp, LANG) — no
token or key of the bot can be read from inside. `.git` is bound read-only over itself, so a
command can inspect history but cannot plant hooks or config that the bot's own git would
later run outside the sandbox.

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
import logging
import os
import shutil
import signal
import subprocess
import tempfile
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


class SandboxError(Exception):
    """bwrap is not usable; the message says why."""


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    for extra in ("/opt",):
        args += ["--ro-bind-try", extra, extra]
    args += ["--dir", "/etc"]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def bwrap_argv(worktree: Path, command: str, env: JobEnv | None = None) -> list[str]:
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
        env: JobEnv | None = None,
    ) -> None:
        self.worktree = worktree.resolve()
        self.timeout = timeout
        self.max_output = max_output
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
        return await self.execute(command)

    async def execute(
        self, command: str, *, env: JobEnv | None = None, timeout: float | None = None
    ) -> tuple[str, bool]:
        """Run one command; `env` and `timeout` override the tool's own (setup commands get
        the network and a longer limit than the agent's calls)."""
        timeout = self.timeout if timeout is None else timeout
        out = _Capped(self.max_output // 2)
        err = _Capped(self.max_output // 2)
        proc = await asyncio.create_subprocess_exec(
            *bwrap_argv(self.worktree, command, env or self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": SANDBOX_PATH},
            start_new_session=True,
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
            return text + sep + note, True
        if proc.returncode:
            return text + sep + f"[exit code {proc.returncode}]", True
        return text or "(no output)", False


async def _pump(stream: asyncio.StreamReader, sink: _Capped) -> None:
    while chunk := await stream.read(65536):
        sink.feed(chunk)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
