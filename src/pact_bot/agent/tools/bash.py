"""Anthropic's `bash` tool (`bash_20250124`), run only inside a bubblewrap sandbox.

The sandbox's command line is `agent/tools/bwrap.py`; what a command may use is
`agent/tools/limits.py`.

Why a fresh shell per command rather than one long-lived session: a hung or killed command
cannot poison later ones, and the timeout kills one process group cleanly. The cost is that
`cd` and exported variables do not persist between calls; the system prompt tells the model
(chain with `&&`). `restart` is accepted and answers as the reference tool does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.agent.tools.bwrap import SANDBOX_PATH, bwrap_argv
from pact_bot.agent.tools.jobenv import JobEnv
from pact_bot.agent.tools.limits import (
    _SYSTEMD_RUN,
    DEFAULT_DISK_CAP,
    Limits,
    Mechanism,
    MiB,
    _CommandCgroup,
    _preexec,
    disk_usage,
    limit_mechanism,
)

log = logging.getLogger(__name__)

NAME = "bash"
TYPE = "bash_20250124"
DEFAULT_TIMEOUT = 120.0
MAX_OUTPUT = 30_000


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
