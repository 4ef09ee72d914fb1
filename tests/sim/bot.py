"""pact-bot wired to the simulators, two ways.

`bot` (in-process, fast): the simulated GitHub records every webhook it would send; `await
bot.process()` routes each new delivery through `pact_bot.triggers.route` (as the web
process does), enqueues it (and its `ack` reply job, first) in a real SQLite queue, then
claims and runs every job with the real handler from `pact_bot.pipeline.build_handler` (as a
worker does), and returns the finished jobs; `await bot.route_new()` only records them.
Settings point at both simulators; the data dir is a temp dir.

`bot_server` (subprocess): `pact-bot serve` on a free port configured ONLY by environment
variables (GITHUB_APP_ID, GITHUB_PRIVATE_KEY, GITHUB_WEBHOOK_SECRET, GITHUB_API_URL,
ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY, PACT_DATA_DIR, PACT_DATABASE_URL), with the
simulator's webhook URL pointed at it. `bot_server.jobs()` reads its queue (sqlite file).
`running_bot_server(..., PACT_X="…")` is the same with more settings, as a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pact_bot.jobs.model import Enqueued, Job, JobState
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline.handlers import build_handler
from pact_bot.pipeline.runtime import Runtime
from pact_bot.settings import Settings
from pact_bot.triggers import BotIdentity, TriggerConfig, route

from .anthropic import AnthropicSim
from .github import GitHubSim
from .server import BackgroundServer


def sim_settings(github: GitHubSim, anthropic: AnthropicSim, data_dir: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "github_app_id": github.app_id,
        "github_private_key": SecretStr(github.private_key_pem),
        "github_webhook_secret": SecretStr(github.webhook_secret),
        "github_api_url": github.base_url,
        "github_web_url": github.web_url,
        "anthropic_api_key": SecretStr(anthropic.api_key),
        "anthropic_base_url": anthropic.base_url,
        "pact_data_dir": data_dir,
        "pact_database_url": f"sqlite:///{data_dir / 'pact.db'}",
        "pact_model": None,
    }
    values.update(kw)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def without_acks(jobs: list[Job]) -> list[Job]:
    """The jobs minus the `ack` reply jobs that come with every `/pact code` comment."""
    return [j for j in jobs if j.task.get("command") != "ack"]


class InProcessBot:
    def __init__(self, github: GitHubSim, anthropic: AnthropicSim, data_dir: Path) -> None:
        from pact_bot.agent.retry import RetryPolicy

        self.github = github
        self.anthropic = anthropic
        self.data_dir = data_dir
        self.settings = sim_settings(github, anthropic, data_dir)
        self.queue = SqliteQueue(data_dir / "pact.db", lease_seconds=60, max_attempts=3)
        self.runtime = Runtime(
            self.settings,
            queue=self.queue,
            agent_retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05),
            progress_interval=0.0,
        )
        self.handler = build_handler(self.settings, runtime=self.runtime)
        self._seen: set[tuple[str, bool]] = set()
        self.routed: list[tuple[str, str]] = []  # (event.action, reason)

    def configure(self, **settings: Any) -> None:
        """Change settings (limits, model) for the next jobs."""
        self.settings = sim_settings(self.github, self.anthropic, self.data_dir, **settings)
        self.runtime.settings = self.settings

    async def process(self, timeout: float = 120.0) -> list[Job]:
        """Route new deliveries, then run every queued job to its end; return them."""
        await self.route_new()
        done: list[Job] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await self.queue.claim("test-worker")
            if job is None:
                break
            done.append(await self.run_job(job))
        return done

    async def route_new(self) -> list[Job]:
        """Route new deliveries and record their jobs as the web process does; run nothing."""
        recorded: list[Job] = []
        await self.github.wait_for_deliveries_async(timeout=10)
        for d in list(self.github.deliveries):
            key = (d.id, d.redelivery)
            if key in self._seen:
                continue
            self._seen.add(key)
            payload = json.loads(d.body)
            config = TriggerConfig.from_repo_config(
                await self.queue.get_repo_config(payload.get("repository", {}).get("full_name", ""))
            )
            decision = route(d.event, payload, BotIdentity(self.github.slug), config, d.id)
            self.routed.append((f"{d.event}.{d.action}", decision.reason))
            for job in (decision.ack, decision.job):  # the ack first, as the web process does
                if job is not None and await self.queue.enqueue(job) is Enqueued.created:
                    recorded.append(job)
        return recorded

    async def run_job(self, job: Job) -> Job:
        control = JobControl(self.queue, job)
        try:
            outcome = await self.handler(job, control)
        except Exception as e:  # as the worker does: the job fails with the error's text
            outcome = JobOutcome(JobState.failed, error=f"{type(e).__name__}: {e}")
        if outcome.pr_url:
            await self.queue.update(job.id, pr_url=outcome.pr_url)
        await self.queue.finish(job.id, "test-worker", outcome.state, outcome.error)
        final = await self.queue.get(job.id)
        assert final is not None
        return final

    def worktrees(self) -> list[Path]:
        root = self.data_dir / "worktrees"
        return [p for p in root.iterdir() if p.is_dir()] if root.exists() else []


async def _accept(scope: Any, receive: Any, send: Any) -> None:
    """ASGI sink for webhooks: the in-process bot reads them from the simulator's log."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def bot(
    github_sim: GitHubSim, anthropic_sim: AnthropicSim, tmp_path: Path
) -> AsyncIterator[InProcessBot]:
    data = tmp_path / "pact-data"
    data.mkdir()
    b = InProcessBot(github_sim, anthropic_sim, data)
    await b.queue.open()
    sink = BackgroundServer(_accept).start()
    github_sim.set_webhook_url(f"{sink.url}/webhook")
    try:
        yield b
    finally:
        github_sim.set_webhook_url(None)
        sink.stop()
        await b.queue.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotServer:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, db: Path, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.db = db
        self.log = log

    async def jobs(self) -> list[Job]:
        q = SqliteQueue(self.db)
        await q.open()
        try:
            return await q.list()
        finally:
            await q.close()

    async def wait_for_job(self, state: JobState | None = None, timeout: float = 60.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for job in await self.jobs():
                if state is None or job.state == state:
                    return job
            await asyncio.sleep(0.2)
        raise AssertionError(f"no job (state {state}) within {timeout}s; log:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running_bot_server(
    github_sim: GitHubSim, anthropic_sim: AnthropicSim, tmp_path: Path, **env_vars: str
) -> Iterator[BotServer]:
    """`pact-bot serve` with PACT_WORKERS=1, its env overridden by `env_vars`
    (`PACT_REPLY_WORKERS="0"`...), until the block ends."""
    data = tmp_path / "serve-data"
    data.mkdir()
    port = _free_port()
    db = data / "pact.db"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ANTHROPIC_", "PACT_"))
    }
    env.update(
        {
            "GITHUB_APP_ID": str(github_sim.app_id),
            "GITHUB_PRIVATE_KEY": github_sim.private_key_pem,
            "GITHUB_WEBHOOK_SECRET": github_sim.webhook_secret,
            "GITHUB_API_URL": github_sim.base_url,
            "GITHUB_WEB_URL": github_sim.web_url,
            "ANTHROPIC_BASE_URL": anthropic_sim.base_url,
            "ANTHROPIC_API_KEY": anthropic_sim.api_key,
            "PACT_DATA_DIR": str(data),
            "PACT_DATABASE_URL": f"sqlite:///{db}",
            "PACT_WORKERS": "1",
            **env_vars,
        }
    )
    log = tmp_path / "serve.log"
    exe = Path(sys.executable).with_name("pact-bot")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pact_bot.cli"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    server = BotServer(proc, url, db, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"pact-bot serve did not start:\n{server.logs()}")
            time.sleep(0.1)
        github_sim.set_webhook_url(f"{url}/webhook")
        yield server
    finally:
        github_sim.set_webhook_url(None)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bot_server(
    github_sim: GitHubSim, anthropic_sim: AnthropicSim, tmp_path: Path
) -> Iterator[BotServer]:
    with running_bot_server(github_sim, anthropic_sim, tmp_path) as server:
        yield server
