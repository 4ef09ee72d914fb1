"""The quick lane through `pact-bot serve`: a `/pact status` is answered while the only general
worker runs an agent job, and without the lane (`PACT_REPLY_WORKERS=0`) it waits for it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sim.anthropic import AnthropicSim, PolicyError, Turn
from sim.bot import BotServer, running_bot_server
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import REPO, bot_comments, label, setup_repo

from pact_bot.jobs.model import Job, JobKind, JobState

WAIT = 60.0  # seconds any one step may take on a loaded machine


class Gate:
    """An Anthropic policy that holds every model call until `open` is set, then plays the
    spec coder: the code job sits in its agent run, its worker busy, for as long as the test
    wants."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self._coder = SpecCoderPolicy()

    def __call__(self, request: dict[str, Any]) -> Turn:
        self.entered.set()
        if not self.open.wait(timeout=300):
            raise PolicyError("the test never opened the gate")
        return self._coder(request)


@pytest.fixture
def gate(anthropic_sim: AnthropicSim) -> Iterator[Gate]:
    held = Gate()
    anthropic_sim.set_policy(held)
    yield held
    held.open.set()  # whatever happened, let the server's job end so it can stop


async def until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status_answers(github: GitHubSim, number: int) -> list[str]:
    """The bot's answers to `/pact status` on the issue."""
    starts = ("pact-bot jobs for", "No pact-bot job is queued or running")
    return [c for c in bot_comments(github, number) if c.startswith(starts)]


async def job_of(server: BotServer, kind: JobKind) -> Job | None:
    return next((j for j in await server.jobs() if j.kind is kind), None)


async def succeeded(server: BotServer, kind: JobKind) -> Job | None:
    job = await job_of(server, kind)
    return job if job is not None and job.state is JobState.succeeded else None


async def hold_a_code_job(server: BotServer, github: GitHubSim, gate: Gate) -> tuple[int, Job]:
    """Label an issue and wait until its code job's agent waits on the gate."""
    setup_repo(github)
    number = label(github)
    await until("the agent's first call", lambda: gate.entered.is_set())
    code = await job_of(server, JobKind.code)
    assert code is not None and code.state is JobState.running, server.logs()
    return number, code


async def test_status_is_answered_while_the_only_worker_runs_an_agent(
    github_sim: GitHubSim, anthropic_sim: AnthropicSim, gate: Gate, tmp_path: Path
) -> None:
    with running_bot_server(github_sim, anthropic_sim, tmp_path, PACT_REPLY_WORKERS="1") as server:
        number, code = await hold_a_code_job(server, github_sim, gate)

        github_sim.comment(REPO, number, "/pact status", user="alice")
        [answer] = await until("the status answer", lambda: status_answers(github_sim, number))

        still = await job_of(server, JobKind.code)
        assert still is not None and still.state is JobState.running  # the agent is held
        assert f"| `{code.id}` | code | running |" in answer
        reply = await until("the reply job's end", lambda: succeeded(server, JobKind.reply))
        assert reply.worker_id is not None and ":reply0:" in reply.worker_id
        gate.open.set()
        await until("the code job's end", lambda: succeeded(server, JobKind.code))


async def test_without_the_lane_status_waits_for_the_agent_job(
    github_sim: GitHubSim, anthropic_sim: AnthropicSim, gate: Gate, tmp_path: Path
) -> None:
    with running_bot_server(github_sim, anthropic_sim, tmp_path, PACT_REPLY_WORKERS="0") as server:
        number, code = await hold_a_code_job(server, github_sim, gate)
        github_sim.comment(REPO, number, "/pact status", user="alice")
        queued = await until("the reply job", lambda: job_of(server, JobKind.reply))
        assert queued.state is JobState.queued

        gate.open.set()
        [answer] = await until("the status answer", lambda: status_answers(github_sim, number))

        assert answer.startswith(f"No pact-bot job is queued or running for #{number}")  # too late
        done = await until("the code job's end", lambda: succeeded(server, JobKind.code))
        reply = await until("the reply job's end", lambda: succeeded(server, JobKind.reply))
        assert done.id == code.id and done.finished_at is not None and reply.started_at
        assert reply.started_at >= done.finished_at  # it waited for the agent job to end
        assert reply.worker_id == done.worker_id  # one worker, in turn
