"""At-least-once for real: a SIGKILLed server keeps every 202, workers survive their jobs."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

import click
import httpx
import pytest
from conftest import app_credentials, load_payload

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.jobs.worker import JobControl, JobOutcome, run_workers

SECRET = "durability-secret"
PACT_BOT = Path(sys.executable).parent / "pact-bot"


class Server:
    """`pact-bot serve --port 0` in a subprocess; the port comes from its `listening` line."""

    def __init__(self, tmp_path: Path, workers: int = 0) -> None:
        self.tmp_path = tmp_path
        self.log = tmp_path / f"serve-{uuid.uuid4().hex[:6]}.log"
        env = {
            **os.environ,
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "PACT_DATABASE_URL": f"sqlite:///{tmp_path}/pact.db",
            "PACT_WORKERS": str(workers),
            "PACT_DATA_DIR": str(tmp_path / "data"),
            # load, not abuse: one sender's many triggers must all be accepted
            "PACT_RATE_LIMIT_SENDER": "1000000",
            "PACT_RATE_LIMIT_REPO": "1000000",
        }
        env.pop("GITHUB_PRIVATE_KEY_PATH", None)
        # configured, but its jobs never leave the machine: GitHub is a closed loopback port
        env.update(app_credentials(), GITHUB_API_URL="http://127.0.0.1:9")
        self.proc = subprocess.Popen(
            [str(PACT_BOT), "serve", "--port", "0"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.get("event") == "listening":
                    return int(line["port"])
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError("serve did not log `listening`")

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def comment_delivery(number: int) -> tuple[bytes, dict[str, str]]:
    p = copy.deepcopy(load_payload("api.github.com/issue_comment/created.payload.json"))
    p["issue"]["number"] = number
    p["comment"]["body"] = "/pact code docs/x-spec.md"
    body = json.dumps(p).encode()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issue_comment",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


async def test_sigkill_after_accepting_keeps_every_accepted_job(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(tmp_path)
    servers.append(server)
    deliveries = [comment_delivery(1000 + n) for n in range(60)]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        answers = await asyncio.gather(
            *(c.post("/webhook", content=b, headers=h) for b, h in deliveries)
        )
    pairs = zip(answers, deliveries, strict=True)
    accepted = {a.json()["job_id"]: h["X-GitHub-Delivery"] for a, (_, h) in pairs}
    assert [a.status_code for a in answers] == [202] * 60
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    again = Server(tmp_path)
    servers.append(again)
    async with httpx.AsyncClient(base_url=again.url, timeout=10) as c:
        health = (await c.get("/healthz")).json()
        assert health["queue"]["queued"] == 60  # distinct issues: no key was busy, no 👀 job
        body, h = deliveries[0]
        redelivered = await c.post("/webhook", content=body, headers=h)
        assert redelivered.status_code == 200 and redelivered.json()["duplicate"] is True
    again.stop(signal.SIGTERM)
    queue = SqliteQueue(tmp_path / "pact.db")
    async with queue:
        jobs = {j.id: j for j in await queue.list(limit=1000)}
    assert set(jobs) == set(accepted)
    assert all(jobs[i].delivery_id == d for i, d in accepted.items())


async def test_serve_with_workers_runs_jobs_and_stops_cleanly_on_sigterm(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(tmp_path, workers=2)
    servers.append(server)
    body, h = comment_delivery(7)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        r = await c.post("/webhook", content=body, headers=h)
        assert r.status_code == 202
        job_id = r.json()["job_id"]
        for _ in range(100):
            depth = (await c.get("/healthz")).json()["queue"]
            if depth["succeeded"] + depth["failed"] == 1:  # idle issue: no 👀 reply job
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the job did not run")
    assert server.stop(signal.SIGTERM) == 0
    finished = [line for line in server.lines() if line.get("event") == "job finished"]
    assert job_id in {line["job_id"] for line in finished}
    assert all(line["delivery_id"] for line in finished)
    assert any(line.get("event") == "stopped" for line in server.lines())


def make_job(n: int = 1) -> Job:
    return Job(
        kind=JobKind.code,
        key=f"o/r#{n}",
        repo="o/r",
        number=n,
        delivery_id=str(uuid.uuid4()),
        sender="alice",
        task={"fingerprint": str(n)},
    )


async def _run_until(queue: SqliteQueue, handler, done, grace: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_workers(
            queue, handler, 2, stop, poll_interval=0.02, grace_seconds=grace, clock=queue.clock
        )
    )
    for _ in range(300):
        if await done():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_worker_records_success_failure_and_progress(tmp_path: Path) -> None:
    async with SqliteQueue(tmp_path / "q.db") as queue:
        ok, bad = make_job(1), make_job(2)

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            await control.progress(turns=4, cost_usd=0.25)
            if job.id == bad.id:
                raise RuntimeError("the model said no")
            return JobOutcome(JobState.succeeded, pr_url="https://gh/o/r/pull/9")

        await queue.enqueue(ok)
        await queue.enqueue(bad)

        async def both_done() -> bool:
            return (await queue.depth())["queued"] + (await queue.depth())["running"] == 0

        await _run_until(queue, handler, both_done)
        good, failed = await queue.get(ok.id), await queue.get(bad.id)
        assert good and good.state is JobState.succeeded and good.pr_url == "https://gh/o/r/pull/9"
        assert good.turns == 4 and good.cost_usd == 0.25
        assert failed and failed.state is JobState.failed
        assert failed.error == "RuntimeError: the model said no"


async def test_idle_workers_start_a_job_enqueued_in_their_process_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serve process's workers do not wait out their poll interval after a 202."""
    async with SqliteQueue(tmp_path / "q.db") as queue:
        started: dict[str, float] = {}
        found_nothing = 0
        claim = queue.claim

        async def counted_claim(
            worker_id: str, kinds: Collection[JobKind] | None = None
        ) -> Job | None:
            nonlocal found_nothing
            job = await claim(worker_id, kinds)
            found_nothing += job is None
            return job

        monkeypatch.setattr(queue, "claim", counted_claim)

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            started[job.id] = time.monotonic()
            return JobOutcome(JobState.succeeded)

        stop = asyncio.Event()
        task = asyncio.create_task(run_workers(queue, handler, 2, stop, poll_interval=30))
        for _ in range(500):  # until both workers found nothing: from here on they are idle
            if found_nothing >= 2:
                break
            await asyncio.sleep(0.01)
        assert found_nothing == 2
        first, second = make_job(1), make_job(2)
        enqueued = time.monotonic()
        await queue.enqueue(first)
        await queue.enqueue(second)
        for _ in range(200):
            if len(started) == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert set(started) == {first.id, second.id}
        assert max(started.values()) - enqueued < 1.0  # not the 30 s poll


async def test_worker_sees_cancel_requests(tmp_path: Path) -> None:
    async with SqliteQueue(tmp_path / "q.db") as queue:
        j = make_job()
        started = asyncio.Event()

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            started.set()
            while not await control.cancelled():
                await asyncio.sleep(0.02)
            return JobOutcome(JobState.cancelled, error="cancelled on request")

        await queue.enqueue(j)

        async def cancel_then_done() -> bool:
            if started.is_set():
                await queue.request_cancel(j.key)
            got = await queue.get(j.id)
            return got is not None and got.state is JobState.cancelled

        await _run_until(queue, handler, cancel_then_done)
        got = await queue.get(j.id)
        assert got and got.state is JobState.cancelled and got.error == "cancelled on request"


async def test_heartbeats_keep_a_long_job_from_being_taken(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        SqliteQueue(tmp_path / "q.db", lease_seconds=30, clock=clock) as queue,
        SqliteQueue(tmp_path / "q.db", lease_seconds=30, clock=clock) as rival,
    ):
        j = make_job()
        seen_by_rival: list[Job | None] = []

        async def heartbeat_asleep() -> None:
            """The worker's heartbeat loop sleeps on the clock again: its last beat committed."""
            for _ in range(1000):
                if clock.sleepers == 1:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the heartbeat loop never went back to sleep")

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            await heartbeat_asleep()
            for _ in range(8):  # 80 s, the lease is 30 s: only the beats (every 10 s) keep it
                await clock.advance(9.5)  # just before the next beat
                seen_by_rival.append(await rival.claim("rival"))
                await clock.advance(0.5)
                await heartbeat_asleep()
            return JobOutcome(JobState.succeeded)

        await queue.enqueue(j)

        async def done() -> bool:
            got = await queue.get(j.id)
            return got is not None and got.state is JobState.succeeded

        await _run_until(queue, handler, done)
        assert seen_by_rival == [None] * 8
        got = await queue.get(j.id)
        assert got and got.attempts == 1


async def test_a_worker_that_lost_its_lease_stops_the_job_and_records_nothing(
    tmp_path: Path,
) -> None:
    """Another worker took the job after the lease lapsed (here: the rival's clock ran 31 s
    ahead, as if this worker had stalled): the next heartbeat is refused, the handler is
    cancelled, and the rival's run is left alone."""
    clock = FakeClock()
    rival_clock = FakeClock(clock.now())
    async with (
        SqliteQueue(tmp_path / "q.db", lease_seconds=30, clock=clock) as queue,
        SqliteQueue(tmp_path / "q.db", lease_seconds=30, clock=rival_clock) as rival,
    ):
        j = make_job()
        running, stopped = asyncio.Event(), asyncio.Event()

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            running.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                stopped.set()
                raise
            return JobOutcome(JobState.succeeded)

        await queue.enqueue(j)
        stop = asyncio.Event()
        workers = asyncio.create_task(
            run_workers(queue, handler, 1, stop, poll_interval=0.02, clock=clock)
        )
        await asyncio.wait_for(running.wait(), 10)
        assert await rival.claim("rival") is None  # the lease holds on the rival's clock too
        await rival_clock.advance(31)
        taken = await rival.claim("rival")
        assert taken is not None and taken.id == j.id and taken.attempts == 2
        assert not stopped.is_set()
        await clock.advance(10)  # this worker's next heartbeat: refused
        await asyncio.wait_for(stopped.wait(), 10)
        stop.set()
        await asyncio.wait_for(workers, 10)
        got = await queue.get(j.id)
        assert got is not None and got.state is JobState.running and got.worker_id == "rival"


async def test_shutdown_waits_for_running_jobs_then_hands_back_the_rest(tmp_path: Path) -> None:
    async with SqliteQueue(tmp_path / "q.db") as queue:
        quick, slow = make_job(1), make_job(2)
        started: set[str] = set()

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            started.add(job.id)
            await asyncio.sleep(0.2 if job.id == quick.id else 30)
            return JobOutcome(JobState.succeeded)

        await queue.enqueue(quick)
        await queue.enqueue(slow)

        async def both_started() -> bool:
            return len(started) == 2

        await _run_until(queue, handler, both_started, grace=0.6)
        q, s = await queue.get(quick.id), await queue.get(slow.id)
        assert q and q.state is JobState.succeeded
        assert s and s.state is JobState.queued and s.attempts == 0 and s.worker_id is None


def make_reply(n: int = 1) -> Job:
    return make_job(n).model_copy(update={"kind": JobKind.reply, "key": f"o/r#{n}:reply"})


class _Held:
    """A handler that holds code jobs until `release` and finishes anything else at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: dict[str, asyncio.Event] = {}

    def began(self, job_id: str) -> asyncio.Event:
        return self.started.setdefault(job_id, asyncio.Event())

    async def __call__(self, job: Job, control: JobControl) -> JobOutcome:
        self.began(job.id).set()
        if job.kind is JobKind.code:
            await self.release.wait()
        return JobOutcome(JobState.succeeded)


async def _finished(queue: SqliteQueue, job_id: str) -> Job:
    for _ in range(500):
        got = await queue.get(job_id)
        if got is not None and got.state is JobState.succeeded:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


async def test_a_lane_worker_answers_while_every_general_worker_runs_an_agent_job(
    tmp_path: Path,
) -> None:
    async with SqliteQueue(tmp_path / "q.db") as queue:
        handler = _Held()
        code, reply, more_code = make_job(1), make_reply(1), make_job(2)
        stop = asyncio.Event()
        workers = asyncio.create_task(
            run_workers(queue, handler, 1, stop, poll_interval=0.02, grace_seconds=5, lanes=1)
        )
        await queue.enqueue(code)
        await asyncio.wait_for(handler.began(code.id).wait(), 10)
        await queue.enqueue(more_code)
        await queue.enqueue(reply)

        answered = await _finished(queue, reply.id)

        held, waiting = await queue.get(code.id), await queue.get(more_code.id)
        assert held is not None and held.state is JobState.running
        assert waiting is not None and waiting.state is JobState.queued  # the lane runs no agent
        assert answered.worker_id is not None and ":reply0:" in answered.worker_id
        assert held.worker_id is not None and ":0:" in held.worker_id
        handler.release.set()
        await _finished(queue, more_code.id)
        stop.set()
        await asyncio.wait_for(workers, 10)


async def test_no_lane_runs_without_general_workers(tmp_path: Path) -> None:
    """A web-only process (`PACT_WORKERS=0`) claims nothing, quick jobs included."""
    async with SqliteQueue(tmp_path / "q.db") as queue:
        reply = make_reply()
        await queue.enqueue(reply)

        await asyncio.wait_for(
            run_workers(queue, _Held(), 0, asyncio.Event(), poll_interval=0.02, lanes=2), 5
        )

        got = await queue.get(reply.id)
        assert got is not None and got.state is JobState.queued


async def test_shutdown_hands_back_a_lane_workers_job_as_any_other(tmp_path: Path) -> None:
    async with SqliteQueue(tmp_path / "q.db") as queue:
        code, stuck = make_job(1), make_reply()
        started: dict[str, str] = {}
        both = asyncio.Event()

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            started[job.id] = control.job.worker_id or ""
            if len(started) == 2:
                both.set()
            await asyncio.Event().wait()  # never ends by itself
            return JobOutcome(JobState.succeeded)

        await queue.enqueue(code)
        await queue.enqueue(stuck)
        stop = asyncio.Event()
        workers = asyncio.create_task(
            run_workers(queue, handler, 1, stop, poll_interval=0.02, grace_seconds=0.2, lanes=1)
        )
        await asyncio.wait_for(both.wait(), 10)
        stop.set()
        await asyncio.wait_for(workers, 10)

        assert ":reply0:" in started[stuck.id] and ":0:" in started[code.id]
        for job in (code, stuck):
            back = await queue.get(job.id)
            assert back is not None and back.state is JobState.queued
            assert back.attempts == 0 and back.worker_id is None


def test_the_cli_runs_the_pipeline_unless_its_caller_injects_a_handler() -> None:
    """A worker without its pipeline must not mark jobs succeeded: the wiring always names
    a real handler, the pipeline's unless the program running the CLI passes its own."""
    from pact_bot.cli import _handler_factory
    from pact_bot.pipeline.handlers import build_handler

    assert _handler_factory(click.Context(click.Command("x"))) is build_handler
    own = click.Context(click.Command("x"), obj={"handler_factory": make_job})
    assert _handler_factory(own) is make_job


async def test_job_control_caches_repo_config_in_its_queue(tmp_path: Path) -> None:
    async with SqliteQueue(tmp_path / "q.db") as queue:
        control = JobControl(queue, make_job())
        await control.set_repo_config("octo/repo", {"label": "bot:go", "command": "/bot"})
        assert await queue.get_repo_config("octo/repo") == {"label": "bot:go", "command": "/bot"}
