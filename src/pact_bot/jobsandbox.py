"""The sandbox one job's commands share: a home, the repository's caches, an allowlisted way out.

Setup commands get the network (through the proxy) and their own time limit; the agent's
bash stays offline unless the repository opted in; the bot's own test run gets the network
only when the agent had it, so a test run cannot fetch what the agent could not see.
Everything under the job's directory is removed when the job ends; caches stay (bounded).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pact_bot import caches, netproxy
from pact_bot.agent.tools.bash import BashTool
from pact_bot.agent.tools.jobenv import JobEnv
from pact_bot.toolchain import SuiteRun

SETUP_TAIL_LINES = 20
MAX_SOCKET_PATH = 100  # bytes; a Unix socket's path must fit in sun_path (108 on Linux)


@dataclass(frozen=True)
class SetupStep:
    command: str
    ok: bool
    seconds: float
    output: str

    @property
    def tail(self) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-SETUP_TAIL_LINES:])


@dataclass
class SetupResult:
    steps: list[SetupStep] = field(default_factory=list)

    @property
    def failed(self) -> SetupStep | None:
        return next((s for s in self.steps if not s.ok), None)

    def notes(self) -> list[str]:
        """What the agent is told ran before it started."""
        return [f"Setup command `{s.command}` succeeded." for s in self.steps if s.ok]


@dataclass
class JobSandbox:
    """Made per job by `open()`; `close()` removes the home and stops the proxy."""

    root: Path
    env: JobEnv
    proxy: netproxy.AllowlistProxy | None
    agent_network: bool
    socket_dir: Path | None = None  # a short directory of our own, when the job's is too long

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        job_id: str,
        repo: str,
        allow: Sequence[str],
        *,
        agent_network: bool = False,
        cache: bool = True,
    ) -> JobSandbox:
        root = data_dir / "jobs" / job_id
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        cache_dir = caches.repo_cache(data_dir, repo) if cache else None
        if cache_dir is not None:  # so eviction elsewhere leaves this job's cache alone
            (root / caches.IN_USE).write_text(str(cache_dir))
        env = JobEnv.create(root / "home", cache_dir)
        proxy = None
        rules = netproxy.parse_rules(allow)
        socket_dir = None
        if rules:
            socket = root / "run" / "proxy.sock"
            if len(os.fsencode(socket)) > MAX_SOCKET_PATH:  # bind() refuses long paths
                socket_dir = Path(tempfile.mkdtemp(prefix="pact-proxy-"))  # 0700, ours
                socket = socket_dir / "proxy.sock"
            proxy = netproxy.AllowlistProxy(socket, rules)
            await proxy.start()
        return cls(root, env, proxy, agent_network, socket_dir)

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    @property
    def refused(self) -> list[str]:
        return list(self.proxy.refused) if self.proxy is not None else []

    @property
    def networked_env(self) -> JobEnv:
        return self.env.networked(self.proxy.socket_path if self.proxy is not None else None)

    @property
    def agent_env(self) -> JobEnv:
        """What the agent's own bash gets: offline unless the repository opted in."""
        return self.networked_env if self.agent_network else self.env

    async def setup(self, bash: BashTool, commands: Sequence[str], timeout: float) -> SetupResult:
        """Run each command in order until one fails, with the network."""
        return await run_steps(bash, commands, timeout, self.networked_env)

    async def run_tests(self, bash: BashTool, command: str, timeout: float) -> SuiteRun:
        """The bot's own run: the agent's network, and the working copy read-only (what
        was checked is what gets committed)."""
        done = await bash.outcome(command, env=self.agent_env.read_only(), timeout=timeout)
        return SuiteRun(command, done.exit_code, done.text, timed_out=done.timed_out)


async def run_steps(
    bash: BashTool, commands: Sequence[str], timeout: float, env: JobEnv | None
) -> SetupResult:
    """Each command in order until one fails; the budget is for all of them, and the
    worktree's disk cap holds as for the agent's commands."""
    result = SetupResult()
    deadline = time.monotonic() + timeout
    for command in commands:
        left = deadline - time.monotonic()
        start = time.monotonic()
        if left <= 0:
            result.steps.append(SetupStep(command, False, 0.0, "setup time limit reached"))
            break
        done = await bash.outcome(command, env=env, timeout=left)
        text = done.text
        if await bash.over_disk_cap():
            text += f"\n\nSetup stops here: {bash.halt}."
        ok = not done.is_error and bash.halt is None
        result.steps.append(SetupStep(command, ok, time.monotonic() - start, text))
        if not ok:
            break
    return result
