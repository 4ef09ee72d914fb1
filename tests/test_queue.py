"""Queue semantics, for real, on every backend: the same suite runs on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from queue_backends import BACKENDS, QueueFactory

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import QUICK_KINDS, Enqueued, Job, JobKind, JobState, Pruned, Queue
from pact_bot.jobs.retention import DAY, Retention

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS)
async def queues(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueFactory]:
    factory = QueueFactory(request.param, tmp_path)
    yield factory
    await factory.close_all()


@pytest.fixture
async def queue(queues: QueueFactory) -> Queue:
    return await queues()


def job(number: int = 1, kind: JobKind = JobKind.code, **task: object) -> Job:
    return Job(
        kind=kind,
        key=Job.key_for("octo/repo", number),
        repo="octo/repo",
        number=number,
        delivery_id=str(uuid.uuid4()),
        sender="alice",
        task={"fingerprint": "code::", **task},
    )


async def test_enqueue_then_claim_runs_to_success(queue: Queue) -> None:
    j = job(task_note="x")
    assert await queue.enqueue(j) is Enqueued.created
    claimed = await queue.claim("w1")
    assert claimed is not None and claimed.id == j.id
    assert claimed.state is JobState.running and claimed.attempts == 1
    assert claimed.task["task_note"] == "x"
    await queue.update(j.id, cost_usd=0.5, turns=3, pr_url="https://x/pull/2")
    await queue.finish(j.id, "w1", JobState.succeeded)
    done = await queue.get(j.id)
    assert done is not None and done.state is JobState.succeeded
    assert (done.cost_usd, done.turns, done.pr_url) == (0.5, 3, "https://x/pull/2")
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    assert (await queue.depth())["succeeded"] == 1
    assert await queue.claim("w1") is None


async def test_a_delivery_id_is_recorded_once(queue: Queue) -> None:
    j = job()
    assert await queue.enqueue(j) is Enqueued.created
    again = j.model_copy(update={"id": "other"})
    assert await queue.enqueue(again) is Enqueued.duplicate_delivery
    assert await queue.record_delivery("d-ignored") is True
    assert await queue.record_delivery("d-ignored") is False
    assert await queue.record_delivery(j.delivery_id) is False
    late = job(number=9).model_copy(update={"delivery_id": "d-ignored"})
    assert await queue.enqueue(late) is Enqueued.duplicate_delivery
    assert len(await queue.list()) == 1


async def test_a_body_is_recorded_once_whatever_its_delivery_id(queue: Queue) -> None:
    """A signed body replayed under a new delivery id (the signature does not cover the id)
    is a duplicate; deliveries without a body hash (acks, lost notices) never clash."""
    j = job()
    assert await queue.enqueue(j, body_sha256="h1") is Enqueued.created
    replay = job(number=2)  # new id, new job, same body
    assert await queue.enqueue(replay, body_sha256="h1") is Enqueued.duplicate_delivery
    assert await queue.record_delivery("d-new", body_sha256="h1") is False
    assert await queue.record_delivery("d-other", body_sha256="h2") is True
    assert await queue.enqueue(job(number=3), body_sha256="h2") is Enqueued.duplicate_delivery
    assert await queue.enqueue(job(number=4)) is Enqueued.created
    assert await queue.enqueue(job(number=5)) is Enqueued.created
    assert sorted(x.number or 0 for x in await queue.list()) == [1, 4, 5]


async def test_retention_prunes_finished_jobs_and_old_deliveries(queue: Queue) -> None:
    done = job(number=1)
    assert await queue.enqueue(done, body_sha256="b1") is Enqueued.created
    assert (await queue.claim("w1")) is not None
    await queue.finish(done.id, "w1", JobState.succeeded)
    running = job(number=2)
    await queue.enqueue(running)
    assert (await queue.claim("w2")) is not None
    waiting = job(number=3)
    await queue.enqueue(waiting)
    assert await queue.record_delivery("d-ignored") is True
    clock = FakeClock(start=time.time() + 8 * DAY)
    retention = Retention(queue, jobs_days=30, deliveries_days=7, clock=clock)

    pruned = await retention.prune_if_due()

    assert pruned == Pruned(jobs=0, deliveries=4)  # 8 days: deliveries go, jobs stay
    assert await queue.get(done.id) is not None
    assert await queue.record_delivery("d-ignored") is True  # forgotten: recorded anew
    assert await queue.enqueue(job(number=1), body_sha256="b1") is Enqueued.created
    assert await retention.prune_if_due() is None  # not due again within the hour
    await clock.advance(23 * DAY)

    pruned = await retention.prune_if_due()

    assert pruned is not None and pruned.jobs == 1  # 31 days: the finished job goes
    assert await queue.get(done.id) is None
    left = {x.id: x.state for x in await queue.list()}
    assert left[running.id] is JobState.running and left[waiting.id] is JobState.queued
    await queue.finish(running.id, "w2", JobState.succeeded)  # a kept job still finishes
    claimed = await queue.claim("w3")
    assert claimed is not None and claimed.id == waiting.id


async def test_identical_trigger_coalesces_only_while_queued(queue: Queue) -> None:
    first = job()
    assert await queue.enqueue(first) is Enqueued.created
    assert await queue.enqueue(job()) is Enqueued.coalesced
    assert await queue.enqueue(job(fingerprint="code:docs/a-spec.md:")) is Enqueued.created
    assert await queue.enqueue(job(kind=JobKind.revise)) is Enqueued.created
    claimed = await queue.claim("w1")
    assert claimed is not None and claimed.id == first.id
    # the first one is running now: a new identical trigger is new work
    assert await queue.enqueue(job()) is Enqueued.created
    assert len(await queue.list(key="octo/repo#1")) == 4


def ack_for(j: Job, comment_id: int) -> Job:
    return Job(
        kind=JobKind.reply,
        key=f"{j.key}:reply",
        repo=j.repo,
        number=j.number,
        delivery_id=f"{j.delivery_id}:ack",
        sender=j.sender,
        task={"command": "ack", "for_key": j.key, "fingerprint": f"ack:{comment_id}"},
    )


async def test_an_ack_given_as_a_function_is_built_only_when_recorded(queue: Queue) -> None:
    """The web process passes the ack as a function: building a job is a fair part of a
    delivery's cost, and a job whose key is idle needs no ack."""
    enqueue_with_ack = queue.enqueue_with_ack  # type: ignore[attr-defined]
    built: list[Job] = []

    def make(j: Job, comment_id: int) -> Any:
        def build() -> Job:
            built.append(ack_for(j, comment_id))
            return built[-1]

        return build

    idle = job(fingerprint="a")
    assert await enqueue_with_ack(idle, make(idle, 1)) is Enqueued.created
    assert built == [] and [j.id for j in await queue.list()] == [idle.id]
    waits = job(fingerprint="b")
    assert await enqueue_with_ack(waits, make(waits, 2)) is Enqueued.created
    assert len(built) == 1
    assert {j.id for j in await queue.list()} == {idle.id, waits.id, built[0].id}
    # a redelivery on the busy key records nothing, and needs no ack either
    assert await enqueue_with_ack(waits, make(waits, 2)) is Enqueued.duplicate_delivery
    assert len(await queue.list()) == 3


async def test_the_ack_is_recorded_only_when_the_key_is_busy(queue: Queue) -> None:
    enqueue_with_ack = queue.enqueue_with_ack  # type: ignore[attr-defined]
    idle = job(fingerprint="a")
    assert await enqueue_with_ack(idle, ack_for(idle, 1)) is Enqueued.created
    assert [j.id for j in await queue.list()] == [idle.id]  # idle key: the job alone
    # a redelivery records neither, although the key is busy now
    again = idle.model_copy(update={"id": "other"})
    assert await enqueue_with_ack(again, ack_for(idle, 1)) is Enqueued.duplicate_delivery
    assert len(await queue.list()) == 1
    # queued behind a queued job: the ack first, in the same write
    waits = job(fingerprint="b")
    ack = ack_for(waits, 2)
    assert await enqueue_with_ack(waits, ack) is Enqueued.created
    assert [j.id for j in await queue.list()] == [waits.id, ack.id, idle.id]
    assert await enqueue_with_ack(waits, ack) is Enqueued.duplicate_delivery
    assert len(await queue.list()) == 3
    # coalesced into a queued job: the ack still comes
    same = job(fingerprint="b")
    assert await enqueue_with_ack(same, ack_for(same, 3)) is Enqueued.coalesced
    assert (await queue.list())[0].delivery_id == f"{same.delivery_id}:ack"
    # behind a running job
    claimed = await queue.claim("w1")
    assert claimed is not None and claimed.id == idle.id
    await queue.request_cancel(idle.key)
    running = job(fingerprint="c")
    assert await enqueue_with_ack(running, ack_for(running, 4)) is Enqueued.created
    assert [j.delivery_id for j in (await queue.list())[:2]] == [
        running.delivery_id,
        f"{running.delivery_id}:ack",
    ]
    # idle again: the job alone; another key is never looked at
    await queue.request_cancel(idle.key)
    await queue.finish(idle.id, "w1", JobState.cancelled)
    for later in (job(fingerprint="d"), job(2, fingerprint="a")):
        assert await enqueue_with_ack(later, ack_for(later, 5)) is Enqueued.created
        assert (await queue.list())[0].id == later.id
        assert (await queue.list())[1].task.get("command") != "ack"


async def test_concurrent_commands_on_one_idle_key_ack_all_but_the_first(queue: Queue) -> None:
    enqueue_with_ack = queue.enqueue_with_ack  # type: ignore[attr-defined]
    jobs = [job(fingerprint=f"f{n}") for n in range(6)]
    results = await asyncio.gather(
        *(enqueue_with_ack(j, ack_for(j, n)) for n, j in enumerate(jobs))
    )
    assert results == [Enqueued.created] * 6
    acks = [j for j in await queue.list() if j.task.get("command") == "ack"]
    assert len(acks) == 5  # whichever came first found the key idle


async def test_same_key_runs_one_at_a_time_in_arrival_order(queue: Queue) -> None:
    a, b, c = job(1, step="a"), job(1, step="b", fingerprint="b"), job(1, fingerprint="c")
    other = job(2)
    for j in (a, b, c, other):
        assert await queue.enqueue(j) is Enqueued.created
    first = await queue.claim("w1")
    second = await queue.claim("w2")
    assert first is not None and first.id == a.id
    assert second is not None and second.id == other.id  # key 1 is busy
    assert await queue.claim("w3") is None
    await queue.finish(a.id, "w1", JobState.failed, error="boom")
    nxt = await queue.claim("w3")
    assert nxt is not None and nxt.id == b.id
    await queue.finish(b.id, "w3", JobState.succeeded)
    last = await queue.claim("w1")
    assert last is not None and last.id == c.id


def quick(number: int, kind: JobKind = JobKind.reply, **task: object) -> Job:
    """A reply (or spec-check) job on the issue's own key, as triggers make them."""
    suffix = ":reply" if kind is JobKind.reply else ":check"
    made = job(number, kind=kind, fingerprint=f"{kind}:{uuid.uuid4().hex}", **task)
    return made.model_copy(update={"key": made.key + suffix})


async def test_the_lane_passes_over_older_agent_jobs_for_the_oldest_quick_job(
    queue: Queue,
) -> None:
    agents = [job(1), job(2, kind=JobKind.revise), job(3, kind=JobKind.test)]
    for j in agents:
        await queue.enqueue(j)
    check, reply = quick(4, kind=JobKind.spec_check), quick(1)
    await queue.enqueue(check)
    await queue.enqueue(reply)

    first = await queue.claim("lane", QUICK_KINDS)
    second = await queue.claim("lane-2", QUICK_KINDS)

    assert first is not None and first.id == check.id and first.worker_id == "lane"
    assert second is not None and second.id == reply.id
    assert await queue.claim("lane", QUICK_KINDS) is None  # only agent jobs wait
    assert [j.id for j in await queue.list(state=JobState.queued)][::-1] == [a.id for a in agents]


async def test_the_lane_claims_nothing_while_only_agent_jobs_wait(queue: Queue) -> None:
    await queue.enqueue(job(1))
    await queue.enqueue(job(2, kind=JobKind.drift))

    assert await queue.claim("lane", QUICK_KINDS) is None
    got = await queue.get((await queue.list())[0].id)
    assert got is not None and got.state is JobState.queued and got.attempts == 0


async def test_a_general_claim_takes_the_oldest_job_of_any_kind(queue: Queue) -> None:
    reply, code, check = quick(1), job(2), quick(3, kind=JobKind.spec_check)
    for j in (reply, code, check):
        await queue.enqueue(j)

    taken = [await queue.claim("w") for _ in range(3)]

    assert [t.id if t else None for t in taken] == [reply.id, code.id, check.id]


async def test_the_lane_keeps_one_job_at_a_time_per_key_in_arrival_order(queue: Queue) -> None:
    first, second = quick(1), quick(1)
    other = quick(2)
    for j in (first, second, other):
        await queue.enqueue(j)

    a = await queue.claim("lane-1", QUICK_KINDS)
    b = await queue.claim("lane-2", QUICK_KINDS)

    assert a is not None and a.id == first.id
    assert b is not None and b.id == other.id  # the first reply's key is busy
    assert await queue.claim("lane-3", QUICK_KINDS) is None
    assert await queue.claim("general") is None  # nor does a general worker jump the key
    await queue.finish(first.id, "lane-1", JobState.succeeded)
    c = await queue.claim("lane-1", QUICK_KINDS)
    assert c is not None and c.id == second.id


async def test_the_lane_never_passes_an_older_agent_job_of_its_own_key(queue: Queue) -> None:
    """Quick jobs have keys of their own (`…:reply`, `…:check`); one that shared an agent
    job's key would still wait its turn behind it."""
    code = job(1)
    odd = quick(1).model_copy(update={"key": code.key})
    await queue.enqueue(code)
    await queue.enqueue(odd)

    assert await queue.claim("lane", QUICK_KINDS) is None
    taken = await queue.claim("general")
    assert taken is not None and taken.id == code.id
    await queue.finish(code.id, "general", JobState.succeeded)
    then = await queue.claim("lane", QUICK_KINDS)
    assert then is not None and then.id == odd.id


async def test_a_lapsed_quick_job_goes_back_to_the_lane(queues: QueueFactory) -> None:
    clock = FakeClock()
    q = await queues(lease_seconds=30, clock=clock)
    reply = quick(1)
    await q.enqueue(job(2))
    await q.enqueue(reply)
    lost = await q.claim("lane-dies", QUICK_KINDS)
    assert lost is not None and lost.id == reply.id
    await clock.advance(31)

    again = await q.claim("lane", QUICK_KINDS)

    assert again is not None and again.id == reply.id and again.attempts == 2


async def test_two_workers_racing_never_share_a_job(queues: QueueFactory) -> None:
    producer = await queues()
    ids = set()
    for n in range(40):
        j = job(n)
        ids.add(j.id)
        await producer.enqueue(j)
    w1, w2 = await queues(), await queues()
    taken: dict[str, str] = {}

    async def work(q: Queue, name: str) -> None:
        while (got := await q.claim(name)) is not None:
            assert got.id not in taken, f"{got.id} claimed by {taken.get(got.id)} and {name}"
            taken[got.id] = name
            await q.finish(got.id, name, JobState.succeeded)

    await asyncio.gather(work(w1, "w1"), work(w2, "w2"), work(w1, "w1b"), work(w2, "w2b"))
    assert set(taken) == ids
    assert (await producer.depth())["succeeded"] == 40


async def test_heartbeats_keep_the_lease(queues: QueueFactory) -> None:
    clock = FakeClock()
    q = await queues(lease_seconds=30, clock=clock)
    await q.enqueue(job())
    claimed = await q.claim("w1")
    assert claimed is not None
    for _ in range(6):  # 120 s in all, four leases long
        await clock.advance(20)
        assert await q.heartbeat(claimed.id, "w1") is True
        assert await q.claim("w2") is None
    await clock.advance(31)  # the beats stop: the lease lapses 30 s after the last one
    again = await q.claim("w2")
    assert again is not None and again.id == claimed.id and again.attempts == 2


async def test_lapsed_lease_hands_the_job_to_another_worker(queues: QueueFactory) -> None:
    clock = FakeClock()
    q = await queues(lease_seconds=30, clock=clock)
    j = job()
    await q.enqueue(j)
    first = await q.claim("w1")
    assert first is not None and first.attempts == 1
    await clock.advance(29)
    assert await q.claim("w2") is None  # not yet
    await clock.advance(2)
    second = await q.claim("w2")
    assert second is not None and second.id == j.id and second.attempts == 2
    assert await q.heartbeat(j.id, "w1") is False  # the first worker lost it
    await q.finish(j.id, "w1", JobState.succeeded)  # ignored: not its job any more
    got = await q.get(j.id)
    assert got is not None and got.state is JobState.running and got.worker_id == "w2"
    await q.finish(j.id, "w2", JobState.succeeded)
    got = await q.get(j.id)
    assert got is not None and got.state is JobState.succeeded


async def test_job_fails_after_max_attempts_of_lost_workers(queues: QueueFactory) -> None:
    clock = FakeClock()
    q = await queues(lease_seconds=30, max_attempts=2, clock=clock)
    j = job()
    await q.enqueue(j)
    for _ in range(2):
        assert await q.claim("w") is not None
        await clock.advance(31)
    nxt = await q.claim("w")  # only the notice of its failure is left
    assert nxt is not None and nxt.task["command"] == "lost"
    got = await q.get(j.id)
    assert got is not None and got.state is JobState.failed
    assert got.error is not None and "worker lost" in got.error and "2 attempts" in got.error


async def test_a_job_failed_for_lost_workers_leaves_one_notice_for_github(
    queues: QueueFactory,
) -> None:
    """The failure is not silent: the failing transaction queues a `lost` reply job."""
    clock = FakeClock()
    q = await queues(lease_seconds=30, max_attempts=2, clock=clock)
    j = job(7, comment_id=42, trigger="command", is_pr=False)
    quiet = job(8, kind=JobKind.reply, command="help").model_copy(
        update={"key": "octo/repo#8:reply"}
    )
    await q.enqueue(j)
    await q.enqueue(quiet)
    for _ in range(2):
        claimed = [await q.claim("w"), await q.claim("w")]
        assert {c.id for c in claimed if c} == {j.id, quiet.id}
        await clock.advance(31)
    notice = await q.claim("w")
    assert notice is not None and notice.kind is JobKind.reply
    assert notice.key == "octo/repo#7:reply" and notice.number == 7 and notice.sender == "alice"
    assert notice.task["command"] == "lost" and notice.task["lost_job_id"] == j.id
    assert notice.task["attempts"] == 2 and notice.task["original"]["comment_id"] == 42
    assert "comment_id" not in notice.task  # nobody's comment gets 👀 for it
    failed = await q.get(j.id)
    assert failed is not None and failed.state is JobState.failed
    await q.finish(notice.id, "w", JobState.succeeded)
    assert await q.claim("w") is None  # one notice; none for the lost reply job
    replies = await q.list(key="octo/repo#7:reply") + await q.list(key="octo/repo#8:reply")
    assert [r.id for r in replies if r.task.get("command") == "lost"] == [notice.id]


async def test_crash_between_claim_and_finish(queues: QueueFactory) -> None:
    """A real process claims the job and dies (os._exit); another worker gets it later.

    The dead process stamped its lease on the real clock; the survivor judges it on a fake
    clock that starts after the death, so a slow machine cannot make the lease lapse early.
    """
    spec = queues.spec(lease_seconds=30)
    q = await queues(lease_seconds=30)
    j = job()
    await q.enqueue(j)
    script = textwrap.dedent(
        f"""
        import asyncio, json, os, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from queue_backends import queue_from_spec
        async def main():
            q = queue_from_spec(json.loads({json.dumps(spec)!r}))
            await q.open()
            got = await q.claim("doomed")
            print(got.id, flush=True)
            os._exit(9)
        asyncio.run(main())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 9, out.stderr
    assert out.stdout.strip() == j.id
    running = await q.get(j.id)
    assert running is not None and running.state is JobState.running
    clock = FakeClock()
    survivor = await queues(lease_seconds=30, clock=clock)
    assert await survivor.claim("survivor") is None  # lease still held by the dead worker
    await clock.advance(31)
    again = await survivor.claim("survivor")
    assert again is not None and again.id == j.id and again.attempts == 2


async def test_cancel_marks_queued_now_and_running_on_request(queue: Queue) -> None:
    running, waiting = job(1), job(1, fingerprint="second")
    await queue.enqueue(running)
    await queue.enqueue(waiting)
    reply = job(1, kind=JobKind.reply).model_copy(update={"key": "octo/repo#1:reply"})
    await queue.enqueue(reply)
    claimed = await queue.claim("w1")
    assert claimed is not None and claimed.id == running.id
    ids = await queue.request_cancel("octo/repo#1")
    assert set(ids) == {running.id, waiting.id}
    w = await queue.get(waiting.id)
    assert w is not None and w.state is JobState.cancelled and w.finished_at
    r = await queue.get(running.id)
    assert r is not None and r.state is JobState.running and r.cancel_requested
    assert await queue.is_cancelled(running.id) is True
    assert await queue.is_cancelled(reply.id) is False
    nxt = await queue.claim("w2")
    assert nxt is not None and nxt.id == reply.id  # the reply key is not blocked
    await queue.finish(running.id, "w1", JobState.cancelled, error="cancelled by alice")
    r = await queue.get(running.id)
    assert r is not None and r.state is JobState.cancelled and r.error == "cancelled by alice"


async def test_list_filters_and_repo_config(queue: Queue) -> None:
    a, b = job(1), job(2)
    await queue.enqueue(a)
    await queue.enqueue(b)
    await queue.claim("w")
    assert [j.id for j in await queue.list(state=JobState.queued)] == [b.id]
    assert [j.id for j in await queue.list(key="octo/repo#1")] == [a.id]
    depth = await queue.depth()
    assert depth["queued"] == 1 and depth["running"] == 1
    assert await queue.get("nope") is None
    assert await queue.get_repo_config("octo/repo") is None
    await queue.set_repo_config("octo/repo", {"label": "bot:go", "command": "/bot"})
    await queue.set_repo_config("octo/repo", {"label": "bot:go2", "command": "/bot"})
    assert await queue.get_repo_config("octo/repo") == {"label": "bot:go2", "command": "/bot"}


async def test_progress_fields_beyond_columns_are_kept(queue: Queue) -> None:
    j = job()
    await queue.enqueue(j)
    await queue.claim("w")
    await queue.update(j.id, comment_id=77, turns=2)
    got = await queue.get(j.id)
    assert got is not None and got.turns == 2 and got.task["progress"]["comment_id"] == 77


async def test_a_failed_enqueue_records_nothing(queue: Queue) -> None:
    first = job(1)
    await queue.enqueue(first)
    clash = job(2).model_copy(update={"id": first.id})  # same job id: the insert fails
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its driver's error
        await queue.enqueue(clash)
    retry = clash.model_copy(update={"id": "fresh000000000002"})
    assert await queue.enqueue(retry) is Enqueued.created  # the delivery was not kept


async def test_spent_since_sums_only_the_months_jobs_of_a_repository(queue: Queue) -> None:
    month = 1_780_000_000.0  # a month's first second (any epoch works: `since` is explicit)

    def costly(repo: str, created: float, installation: int, number: int) -> Job:
        return Job(
            kind=JobKind.code,
            key=Job.key_for(repo, number),
            repo=repo,
            number=number,
            installation_id=installation,
            delivery_id=str(uuid.uuid4()),
            sender="alice",
            created_at=created,
            task={"fingerprint": f"code::{number}"},
        )

    spend = [
        (costly("octo/repo", month - 1, 7, 1), 4.0),  # last month: not counted
        (costly("octo/repo", month, 7, 2), 1.25),
        (costly("octo/repo", month + 3600, 7, 3), 0.5),
        (costly("octo/other", month + 60, 7, 4), 2.0),  # same installation, other repo
        (costly("else/repo", month + 60, 9, 5), 8.0),  # another installation
    ]
    for j, cost in spend:
        assert await queue.enqueue(j) is Enqueued.created
        await queue.update(j.id, cost_usd=cost)
    assert await queue.spent_since(month, repo="octo/repo") == pytest.approx(1.75)
    assert await queue.spent_since(month, installation_id=7) == pytest.approx(3.75)
    assert await queue.spent_since(month) == pytest.approx(11.75)
    assert await queue.spent_since(month - 1, repo="octo/repo") == pytest.approx(5.75)
    assert await queue.spent_since(month, repo="nobody/here") == 0.0
    assert await queue.spend_by_repo(month) == pytest.approx(
        {"octo/repo": 1.75, "octo/other": 2.0, "else/repo": 8.0}
    )
    assert await queue.spend_by_repo(month + 7200) == {}
