"""The Postgres backend's own promises: migration, refusal, procrastinate kept in step, leases
measured by procrastinate's worker heartbeats, and reconnecting after dropped connections.

The shared queue semantics (tests/test_queue.py) also run against this backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_support import PgSchema, make_schema, postgres_dsn, remove_schema, with_params

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import QUICK_KINDS, Enqueued, Job, JobKind, JobState, Pruned
from pact_bot.jobs.pg_schema import NOT_MIGRATED, QUEUE_NAME, NotMigrated, apply_schema
from pact_bot.jobs.postgres import PostgresQueue
from pact_bot.jobs.worker import JobControl, JobOutcome, run_workers

PACT_BOT = Path(sys.executable).with_name("pact-bot")


@pytest.fixture
def pg() -> Iterator[PgSchema]:
    schema = make_schema("pq")
    yield schema
    remove_schema(schema)


@pytest.fixture
async def queue(pg: PgSchema) -> AsyncIterator[PostgresQueue]:
    q = PostgresQueue(pg.dsn, lease_seconds=30, max_attempts=3, schema=pg.name)
    await q.open()
    yield q
    await q.close()


def make_job(delivery: str, number: int = 1, **task: object) -> Job:
    return Job(
        kind=JobKind.code,
        key=Job.key_for("octo/repo", number),
        repo="octo/repo",
        number=number,
        delivery_id=delivery,
        sender="alice",
        task=dict(task) or {"delivery": delivery},
    )


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PACT_", "GITHUB_"))}
    full.update(env)
    return subprocess.run(
        [str(PACT_BOT), *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=60
    )


async def test_open_refuses_an_unmigrated_database_with_one_line() -> None:
    schema = make_schema("unmig", migrate=False)
    try:
        q = PostgresQueue(schema.dsn, schema=schema.name)
        with pytest.raises(NotMigrated) as err:
            await q.open()
        assert str(err.value) == "database not migrated: run `pact-bot db migrate`"
    finally:
        remove_schema(schema)


def test_cli_refuses_then_migrates_idempotently_then_lists_jobs(tmp_path: Path) -> None:
    schema = make_schema("cli", migrate=False)
    try:
        for command in (["worker"], ["serve", "--port", "0"]):
            refused = run_cli(*command, env=schema.env(), cwd=tmp_path)
            assert refused.returncode == 2
            assert refused.stderr.strip().splitlines()[-1] == f"pact-bot: {NOT_MIGRATED}"
            assert "Traceback" not in refused.stderr

        for _ in range(2):  # idempotent
            done = run_cli("db", "migrate", env=schema.env(), cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert f"schema {schema.name}" in done.stdout

        async def add() -> None:
            async with PostgresQueue(schema.dsn, schema=schema.name) as q:
                assert await q.enqueue(make_job("d-cli", 7)) is Enqueued.created

        asyncio.run(add())
        listed = run_cli("jobs", env=schema.env(), cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "octo/repo#7" in listed.stdout
        assert "queued" in listed.stdout
    finally:
        remove_schema(schema)


async def test_schema_can_be_chosen_in_the_dsn_alone() -> None:
    dsn = postgres_dsn()
    name = make_schema("dsn", migrate=False).name
    scoped = with_params(dsn, options=f"-csearch_path={name}")
    try:
        assert await apply_schema(scoped) == name
        async with PostgresQueue(scoped) as q:
            assert await q.enqueue(make_job("d-dsn")) is Enqueued.created
        rows = PgSchema(dsn, name).query("SELECT count(*) FROM pact_jobs")
        assert rows == [(1,)]
    finally:
        remove_schema(PgSchema(dsn, name))


async def test_each_job_is_a_procrastinate_job_with_the_key_as_lock(
    queue: PostgresQueue, pg: PgSchema
) -> None:
    first = make_job("d1", 3, command="code")
    assert await queue.enqueue(first) is Enqueued.created
    assert await queue.enqueue(make_job("d2", 3, command="code")) is Enqueued.coalesced
    assert await queue.enqueue(make_job("d3", 3, command="code other")) is Enqueued.created

    rows = pg.query(
        "SELECT p.lock, p.queueing_lock, p.status::text, p.args->>'job_id', j.state "
        "FROM procrastinate_jobs p JOIN pact_jobs j ON j.pj_id = p.id ORDER BY p.id"
    )
    assert [r[0] for r in rows] == ["octo/repo#3", "octo/repo#3"]
    assert rows[0][1].startswith("octo/repo#3|code:")
    assert rows[0][2:] == ("todo", first.id, "queued")
    # The coalesced delivery points at the job that will serve it.
    assert pg.query("SELECT job_id FROM pact_deliveries WHERE delivery_id='d2'") == [(first.id,)]

    claimed = await queue.claim("w1")
    assert claimed is not None and claimed.id == first.id
    assert await queue.claim("w2") is None  # the key is busy
    status = pg.query(
        "SELECT p.status::text, w.id IS NOT NULL FROM procrastinate_jobs p "
        "LEFT JOIN procrastinate_workers w ON w.id = p.worker_id WHERE p.args->>'job_id' = %s",
        first.id,
    )
    assert status == [("doing", True)]  # claimed through fetch_job, owned by a live worker
    await queue.finish(first.id, "w1", JobState.succeeded)
    events = pg.query(
        "SELECT e.type::text FROM procrastinate_events e JOIN procrastinate_jobs p "
        "ON p.id = e.job_id WHERE p.args->>'job_id' = %s ORDER BY e.id",
        first.id,
    )
    assert [e[0] for e in events] == ["deferred", "started", "succeeded"]
    assert pg.query("SELECT count(*) FROM procrastinate_workers") == [(0,)]


async def test_a_job_whose_worker_stops_beating_is_retried_then_failed(pg: PgSchema) -> None:
    clock = FakeClock()
    async with PostgresQueue(
        pg.dsn, lease_seconds=30, max_attempts=2, schema=pg.name, clock=clock
    ) as q:
        job = make_job("d-stall")
        await q.enqueue(job)
        assert (await q.claim("dead-1")) is not None
        await clock.advance(31)  # no heartbeat: procrastinate's worker row looks stalled
        again = await q.claim("alive")
        assert again is not None and again.id == job.id and again.attempts == 2
        assert not await q.heartbeat(job.id, "dead-1")
        await q.finish(job.id, "dead-1", JobState.succeeded)  # too late: not its job any more
        assert (await q.get(job.id)).state is JobState.running  # type: ignore[union-attr]

        await clock.advance(31)  # the second worker dies too: attempts exhausted
        notice = await q.claim("third")  # all that is left: the reply that says so on GitHub
        assert notice is not None and notice.task["lost_job_id"] == job.id
        failed = await q.get(job.id)
        assert failed is not None and failed.state is JobState.failed
        assert failed.error == "worker lost (lease expired) after 2 attempts"
        assert pg.query("SELECT status::text FROM procrastinate_jobs ORDER BY id") == [
            ("failed",),
            ("doing",),
        ]


async def test_heartbeats_keep_a_slow_job(pg: PgSchema) -> None:
    clock = FakeClock()
    async with PostgresQueue(
        pg.dsn, lease_seconds=30, max_attempts=2, schema=pg.name, clock=clock
    ) as q:
        job = make_job("d-slow")
        await q.enqueue(job)
        await q.claim("w1")
        for _ in range(6):  # three leases long
            await clock.advance(15)
            assert await q.heartbeat(job.id, "w1")
            assert await q.claim("w2") is None
        beats = pg.query(
            "SELECT extract(epoch FROM last_heartbeat)::float8 FROM procrastinate_workers"
        )
        assert beats == [(pytest.approx(clock.now(), abs=0.01),)]  # stamped on our clock
        await q.finish(job.id, "w1", JobState.succeeded)
        assert (await q.get(job.id)).attempts == 1  # type: ignore[union-attr]


async def test_pruning_deletes_procrastinates_rows_too(queue: PostgresQueue, pg: PgSchema) -> None:
    done, kept = make_job("r1", 6, n=1), make_job("r2", 7, n=2)
    await queue.enqueue(done)
    await queue.enqueue(kept)
    assert (await queue.claim("w1")) is not None
    await queue.finish(done.id, "w1", JobState.succeeded)
    far = time.time() + 10**6
    assert await queue.prune(far, far, 0) == Pruned(jobs=1, deliveries=0)
    rows = pg.query("SELECT p.args->>'job_id', p.status::text FROM procrastinate_jobs p")
    assert rows == [(kept.id, "todo")]  # the finished one and its events are gone
    assert pg.query("SELECT count(DISTINCT job_id) FROM procrastinate_events") == [(1,)]


async def test_a_schema_from_before_body_hashes_is_upgraded_by_migrate(pg: PgSchema) -> None:
    with psycopg.connect(pg.base_dsn, autocommit=True) as conn:  # as version 1 left it
        conn.execute(f'ALTER TABLE "{pg.name}".pact_deliveries DROP COLUMN body_sha256')
    with pytest.raises(NotMigrated):
        await PostgresQueue(pg.dsn, schema=pg.name).open()
    await apply_schema(pg.dsn, pg.name)
    q = PostgresQueue(pg.dsn, schema=pg.name)
    await q.open()
    try:
        assert await q.record_delivery("u1", body_sha256="b") is True
        assert await q.record_delivery("u2", body_sha256="b") is False
    finally:
        await q.close()


async def test_without_a_clock_leases_run_on_the_database_clock(pg: PgSchema) -> None:
    """The default: stamps and the stall test use Postgres's own time, whatever the hosts say."""
    async with PostgresQueue(pg.dsn, lease_seconds=1, max_attempts=3, schema=pg.name) as q:
        job = make_job("d-db-clock")
        await q.enqueue(job)
        assert await q.claim("dead") is not None
        claimed = time.monotonic()
        (db_now,) = pg.query("SELECT extract(epoch FROM clock_timestamp())::float8")[0]
        (beat,) = pg.query(
            "SELECT extract(epoch FROM last_heartbeat)::float8 FROM procrastinate_workers"
        )[0]
        assert db_now - 5 < beat <= db_now
        again = None
        while again is None and time.monotonic() - claimed < 60:
            again = await q.claim("survivor")
            await asyncio.sleep(0.05)
        assert again is not None and again.id == job.id and again.attempts == 2
        assert time.monotonic() - claimed >= 1  # not before the lease ran out


async def test_cancel_reaches_procrastinate(queue: PostgresQueue, pg: PgSchema) -> None:
    running, waiting = make_job("c1", 5, n=1), make_job("c2", 5, n=2)
    await queue.enqueue(running)
    await queue.enqueue(waiting)
    await queue.claim("w1")
    assert await queue.request_cancel("octo/repo#5") == [running.id, waiting.id]
    assert await queue.is_cancelled(running.id)
    await queue.finish(running.id, "w1", JobState.cancelled, "cancelled by /pact cancel")
    states = pg.query(
        "SELECT j.state, p.status::text FROM pact_jobs j JOIN procrastinate_jobs p "
        "ON p.id = j.pj_id ORDER BY j.seq"
    )
    assert states == [("cancelled", "aborted"), ("cancelled", "cancelled")]


async def test_release_hands_the_job_back_first_in_line(queue: PostgresQueue) -> None:
    a, b = make_job("r1", 9, n=1), make_job("r2", 9, n=2)
    await queue.enqueue(a)
    await queue.enqueue(b)
    assert (await queue.claim("w1")).id == a.id  # type: ignore[union-attr]
    assert await queue.release(a.id, "w1")
    assert not await queue.release(a.id, "w1")
    again = await queue.claim("w2")
    assert again is not None and again.id == a.id and again.attempts == 1


async def test_operations_survive_dropped_connections(queue: PostgresQueue, pg: PgSchema) -> None:
    await queue.enqueue(make_job("k0"))
    assert pg.terminate_connections() >= 1
    assert await queue.enqueue(make_job("k1", 2)) is Enqueued.created
    job = await queue.claim("w1")
    assert job is not None
    pg.terminate_connections()
    assert await queue.heartbeat(job.id, "w1")
    pg.terminate_connections()
    await queue.finish(job.id, "w1", JobState.succeeded)
    assert (await queue.depth())["succeeded"] == 1


async def test_many_workers_on_two_replicas_run_each_job_once_in_key_order(pg: PgSchema) -> None:
    """Two queue objects stand for two machines; 6 workers race on 40 jobs over 4 keys."""
    ran: list[tuple[str, str, float, float]] = []

    async def handler(job: Job, control: JobControl) -> JobOutcome:
        start = asyncio.get_running_loop().time()
        await asyncio.sleep(0.01)
        ran.append((job.key, job.id, start, asyncio.get_running_loop().time()))
        return JobOutcome(JobState.succeeded)

    async with (
        PostgresQueue(pg.dsn, lease_seconds=30, schema=pg.name) as web,
        PostgresQueue(pg.dsn, lease_seconds=30, schema=pg.name) as other,
    ):
        order: dict[str, list[str]] = {}
        for i in range(40):
            job = make_job(f"m{i}", i % 4, i=i)
            order.setdefault(job.key, []).append(job.id)
            assert await web.enqueue(job) is Enqueued.created
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(run_workers(q, handler, 3, stop, poll_interval=0.02))
            for q in (web, other)
        ]
        for _ in range(300):
            if (await web.depth())["succeeded"] == 40:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*workers)

    assert sorted(r[1] for r in ran) == sorted(i for ids in order.values() for i in ids)
    for key, ids in order.items():
        mine = sorted((r for r in ran if r[0] == key), key=lambda r: r[2])
        assert [r[1] for r in mine] == ids  # arrival order per key
        for prev, nxt in itertools.pairwise(mine):
            assert prev[3] <= nxt[2]  # never two at once


# -- the quick lane: a second procrastinate queue ---------------------------------------------


def make_quick(delivery: str, number: int, kind: JobKind = JobKind.reply) -> Job:
    made = make_job(delivery, number, fingerprint=delivery)
    return made.model_copy(update={"kind": kind, "key": f"{made.key}:reply"})


def queue_names(pg: PgSchema) -> dict[str, str]:
    rows = pg.query(
        "SELECT j.kind, p.queue_name FROM pact_jobs j JOIN procrastinate_jobs p ON p.id = j.pj_id"
    )
    return {str(kind): str(name) for kind, name in rows}


async def test_quick_kinds_are_deferred_to_the_lanes_own_queue(
    queue: PostgresQueue, pg: PgSchema
) -> None:
    code = make_job("q-code", 1)
    await queue.enqueue(code)
    await queue.enqueue(make_quick("q-reply", 1))
    await queue.enqueue(make_quick("q-check", 2, kind=JobKind.spec_check))
    busy = make_job("q-revise", 1, fingerprint="again").model_copy(update={"kind": JobKind.revise})
    ack = make_quick("q-revise:ack", 1).model_copy(update={"kind": JobKind.reply})
    assert await queue.enqueue_with_ack(busy, ack) is Enqueued.created

    names = queue_names(pg)

    assert names == {
        "code": QUEUE_NAME,
        "revise": QUEUE_NAME,
        "reply": "pact_quick",
        "spec_check": "pact_quick",
    }
    assert len(pg.query("SELECT 1 FROM procrastinate_jobs WHERE queue_name = 'pact_quick'")) == 3


async def test_jobs_queued_before_the_lane_are_still_claimed_and_recovered(pg: PgSchema) -> None:
    """An upgrade with jobs in flight: the old version deferred every kind to `QUEUE_NAME`.
    General workers claim those (replies too), and a running one whose worker died is
    recovered as before; the lane, which reads only its own queue, leaves them alone."""
    clock = FakeClock()
    async with PostgresQueue(
        pg.dsn, lease_seconds=30, max_attempts=3, schema=pg.name, clock=clock
    ) as q:
        running, reply, code = make_job("u-run", 1), make_quick("u-reply", 2), make_job("u-code", 3)
        for j in (running, reply, code):
            await q.enqueue(j)
        pg.query(f"UPDATE procrastinate_jobs SET queue_name = '{QUEUE_NAME}' RETURNING id")
        assert await q.claim("old-version") is not None  # running when the old version died
        await clock.advance(31)

        lane = await q.claim("lane", QUICK_KINDS)
        taken = [await q.claim("general") for _ in range(3)]

        assert lane is None
        assert [t.id if t else None for t in taken] == [running.id, reply.id, code.id]
        assert taken[0] is not None and taken[0].attempts == 2
        assert await q.request_cancel(code.key) == [code.id]  # cancel reaches them too
        assert await q.is_cancelled(code.id)


async def test_a_claim_that_splits_a_lane_is_refused(queue: PostgresQueue) -> None:
    """A procrastinate queue serves whole lanes: a claim of replies alone, or of code jobs
    alone, cannot be answered from the queues, and says so rather than hand out others."""
    await queue.enqueue(make_quick("s-reply", 1))
    for kinds in ({JobKind.reply}, {JobKind.code}, QUICK_KINDS | {JobKind.code}):
        with pytest.raises(ValueError, match="every kind or exactly reply, spec_check"):
            await queue.claim("w", kinds)
    got = await queue.claim("w", set(JobKind))
    assert got is not None and got.kind is JobKind.reply


async def test_replicas_migrating_at_once_all_succeed() -> None:
    schema = make_schema("race", migrate=False)
    try:
        names = await asyncio.gather(
            *(apply_schema(schema.base_dsn, schema.name) for _ in range(4))
        )
        assert names == [schema.name] * 4
        async with PostgresQueue(schema.dsn, schema=schema.name) as q:
            assert await q.enqueue(make_job("d-race")) is Enqueued.created
    finally:
        remove_schema(schema)


# -- waking idle workers (LISTEN/NOTIFY) -------------------------------------------------------

SLOW_POLL = 5.0  # far above every bound below: a job started in time was woken, not polled


class _Starts:
    """A handler that records when each job started."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.event = asyncio.Event()

    async def __call__(self, job: Job, control: JobControl) -> JobOutcome:
        self.started[job.id] = time.monotonic()
        self.event.set()
        return JobOutcome(JobState.succeeded)

    async def wait_for(self, job_id: str, timeout: float) -> float:
        async def started() -> float:
            while job_id not in self.started:
                self.event.clear()
                await self.event.wait()
            return self.started[job_id]

        return await asyncio.wait_for(started(), timeout)


async def _listening_pid(q: PostgresQueue, other_than: int | None = None) -> int:
    """The pid of `q`'s LISTEN connection once it listens (and is not `other_than`)."""
    for _ in range(200):
        wakeups = getattr(q, "_wakeups", None)
        if wakeups is not None and wakeups.listening.is_set():
            pid = wakeups.backend_pid
            if pid is not None and pid != other_than:
                return pid
        await asyncio.sleep(0.02)
    raise AssertionError("the worker's queue never listened")


@contextlib.asynccontextmanager
async def _web_and_idle_worker(
    pg: PgSchema, starts: _Starts
) -> AsyncIterator[tuple[PostgresQueue, PostgresQueue]]:
    """The web's queue, with one worker on another connection that polls only every
    SLOW_POLL: a job it starts sooner was woken by the web's enqueue."""
    async with (
        PostgresQueue(pg.dsn, schema=pg.name) as web,
        PostgresQueue(pg.dsn, schema=pg.name) as workers,
    ):
        stop = asyncio.Event()
        running = asyncio.create_task(
            run_workers(workers, starts, 1, stop, poll_interval=SLOW_POLL)
        )
        try:
            yield web, workers
        finally:
            stop.set()
            await running


async def test_an_enqueue_from_another_connection_wakes_an_idle_worker_at_once(
    pg: PgSchema,
) -> None:
    starts = _Starts()
    async with _web_and_idle_worker(pg, starts) as (web, workers):
        with contextlib.suppress(AssertionError):  # (a queue that cannot listen just polls)
            await _listening_pid(workers)
        latencies = []
        for i in range(3):
            await asyncio.sleep(0.3)  # the worker is idle, in its 5 s wait since its last claim
            job = make_job(f"wake{i}", i)
            sent = time.monotonic()
            assert await web.enqueue(job) is Enqueued.created
            latencies.append(await starts.wait_for(job.id, SLOW_POLL) - sent)
    assert max(latencies) < 0.5, latencies


async def test_an_enqueued_reply_wakes_the_idle_lane_while_the_general_worker_is_busy(
    pg: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane listens on its own queue's channel: a reply starts at once, not at the poll,
    while the one general worker is held in a code job."""
    starts = _Starts()
    release = asyncio.Event()
    lane_idle_since: list[float] = []  # when each of the lane's empty claims began

    async def handler(job: Job, control: JobControl) -> JobOutcome:
        outcome = await starts(job, control)
        if job.kind is JobKind.code:
            await release.wait()
        return outcome

    async with (
        PostgresQueue(pg.dsn, schema=pg.name) as web,
        PostgresQueue(pg.dsn, schema=pg.name) as workers,
    ):
        claim = workers.claim

        async def watched(worker_id: str, kinds: Any = None) -> Job | None:
            began = time.monotonic()
            got = await claim(worker_id, kinds)
            if kinds is not None and got is None:
                lane_idle_since.append(began)
            return got

        monkeypatch.setattr(workers, "claim", watched)
        stop = asyncio.Event()
        running = asyncio.create_task(
            run_workers(workers, handler, 1, stop, poll_interval=SLOW_POLL, lanes=1)
        )
        with contextlib.suppress(AssertionError):  # (a queue that cannot listen just polls)
            await _listening_pid(workers)
        held = make_job("held", 1)
        assert await web.enqueue(held) is Enqueued.created
        committed = time.monotonic()
        await starts.wait_for(held.id, SLOW_POLL)

        # the held job's insert woke the lane too: once that claim found nothing, the lane
        # is idle in its 5 s wait
        async def lane_idle() -> None:
            while not any(t > committed for t in lane_idle_since):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(lane_idle(), 2 * SLOW_POLL)
        reply = make_quick("wake-reply", 1)
        sent = time.monotonic()
        assert await web.enqueue(reply) is Enqueued.created
        latency = await starts.wait_for(reply.id, SLOW_POLL) - sent
        release.set()
        stop.set()
        await running
        ran = await web.get(reply.id)
    assert latency < 0.5, latency
    assert ran is not None and ran.worker_id is not None and ":reply0:" in ran.worker_id


async def test_a_killed_listen_connection_is_reconnected_and_no_job_is_missed(
    pg: PgSchema,
) -> None:
    starts = _Starts()
    async with _web_and_idle_worker(pg, starts) as (web, workers):
        pid = await _listening_pid(workers)
        await asyncio.sleep(0.1)
        pg.query("SELECT pg_terminate_backend(%s)", pid)
        # enqueued while nobody listens: its notification is lost; the reconnect wakes the
        # worker to look anyway, well before its next poll
        lost = make_job("while-down", 1)
        sent = time.monotonic()
        assert await web.enqueue(lost) is Enqueued.created
        assert await starts.wait_for(lost.id, SLOW_POLL) - sent < 2.0
        new_pid = await _listening_pid(workers, other_than=pid)
        assert new_pid != pid
        await asyncio.sleep(0.1)
        job = make_job("after", 2)
        sent = time.monotonic()
        assert await web.enqueue(job) is Enqueued.created
        assert await starts.wait_for(job.id, SLOW_POLL) - sent < 0.5
