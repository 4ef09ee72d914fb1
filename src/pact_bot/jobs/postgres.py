"""The distributed queue: procrastinate's jobs table on Postgres, behind the `Queue` protocol.

Why procrastinate and our own tables side by side. procrastinate is the engine: every job is
a row of `procrastinate_jobs`, deferred with `lock=<job key>` (its fetch function never hands
out a job while another job with that lock is running or an older one is waiting: one at a
time per key, in arrival order) and `queueing_lock=<key>|<fingerprint>` (its unique index
refuses a second identical waiting job: `AlreadyEnqueued` → `Enqueued.coalesced`). Claims go
through `procrastinate_fetch_job_v2`, finishes through `procrastinate_finish_job_v1`, retries
through `procrastinate_retry_job_v2`, cancels through `procrastinate_cancel_job_v1`, leases
through procrastinate's worker heartbeats (`procrastinate_workers.last_heartbeat`) and stall
detection by the test of its `select_stalled_jobs_by_heartbeat` query. What `pact-bot jobs` shows
(state, attempts, cost, turns, error, PR URL, timestamps, task) lives in `pact_jobs`, one row
per procrastinate job (its args carry our job id; our row carries its id), changed in the
same transaction as the procrastinate row. Deliveries (`pact_deliveries`: id and body
sha256, each unique, inserted in the job's transaction), the repo-config cache and cancel
flags are tables too, so every replica sees the same truth. Leases are measured with the
database's clock, not the workers' (a `clock` given to `PostgresQueue` replaces it, so tests
move leases by hand).

Where the protocol and procrastinate differ, and what this module does:
- The protocol leases one *job* to a worker id string; procrastinate heartbeats a *worker*
  row. Each claim registers its own procrastinate worker (in the claim's transaction; an
  empty claim unregisters it again), `heartbeat(job)` beats that worker, and `finish`/`release`
  unregister it. So "the worker's heartbeat is older than `lease_seconds`" is exactly "this
  job's lease lapsed", and a dead process's jobs are found by procrastinate's stalled-jobs
  query. A claim stamps its worker's heartbeat with `clock_timestamp()` at its end
  (procrastinate's functions use `NOW()`, the transaction's start, which a slow claim would
  hand out already stale).
- procrastinate's own `Worker` only prunes stalled workers at start-up and leaves retrying
  stalled jobs to the application; here every `claim` first recovers lapsed jobs (retry via
  `procrastinate_retry_job_v2`, or fail via `procrastinate_finish_job_v1` after
  `max_attempts` claims, or end as cancelled when a cancel was requested), as SQLite does.
  A job failed that way enqueues its `lost_notice` (a reply job that says so on GitHub) in
  the same transaction.
- procrastinate's `attempts` counts finished tries; ours (shown to operators) counts claims,
  like SQLite. A released job gives its attempt back in `pact_jobs` only.
- A running job that is cancelled gets procrastinate's `abort_requested`; the worker ends it
  with `finish(..., cancelled)`, stored by procrastinate as `aborted` (it has no other terminal
  state reachable from `doing`).
- The tasks are never run by `procrastinate worker`: pact-bot's own worker loop claims them.
- Two procrastinate queues: `QUICK_KINDS` go to `QUICK_QUEUE_NAME`, the rest to `QUEUE_NAME`
  (`pg_sql.queue_for`). A lane worker's claim fetches from the quick queue only, any other
  from both: `fetch_job` takes the oldest across the queues it is given, and the lock (the
  key) holds across all queues. Jobs deferred before the lane existed sit in `QUEUE_NAME`
  whatever their kind: general workers still claim them.
- `prune(now, jobs_before, deliveries_before)`: retention, as SQLite (`jobs.retention`).
- `enqueue_with_ack(job, ack)` (as in SQLite: the ack only when the key has a queued or
  running job) is one transaction: an advisory lock on the key, the check, the ack if
  needed, the job.
- `enqueue` normally is one statement (delivery, `procrastinate_defer_jobs_v1`, our record)
  and one commit; only when the queueing lock refuses it does it take the careful path
  (savepoint, `JobManager.defer_job_async`, `AlreadyEnqueued`).
- A dropped connection (Postgres restart, `pg_terminate_backend`) fails the statement in
  flight; every method retries on a fresh pooled connection with backoff. If the connection
  drops while COMMIT is in flight, `enqueue` may answer `duplicate_delivery` for a job it did
  record (the caller then answers 200 instead of 202; the job exists).
- Schema upgrades: `migrate` applies procrastinate's full schema to an empty schema only and
  records procrastinate's version; our tables upgrade in place (`ADD COLUMN IF NOT EXISTS`),
  and `open()` refuses a schema without them (NotMigrated); upgrading procrastinate later
  needs its migrations (`procrastinate schema --migrations`), not handled here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.rows
from procrastinate import exceptions as pexc
from procrastinate import jobs as pjobs
from psycopg.types.json import Jsonb

from pact_bot.jobs.model import (
    Enqueued,
    Job,
    Pruned,
    Queue,
    ack_job,
)
from pact_bot.jobs.pg_connection import _is_transient
from pact_bot.jobs.pg_leases import PostgresLeases
from pact_bot.jobs.pg_reads import PostgresReads
from pact_bot.jobs.pg_schema import QUEUES, TASK_NAME
from pact_bot.jobs.pg_sql import (
    _BUSY_SQL,
    _ENQUEUE_SQL,
    _enqueue_params,
    queue_for,
)

log = logging.getLogger(__name__)


class PostgresQueue(PostgresLeases, PostgresReads, Queue):
    """The `Queue` protocol on procrastinate (see the module docstring).

    Without `clock`, leases run on the database's clock (replicas on several hosts agree on
    it) and job timestamps on the system clock; with one, both on it.
    """

    async def record_delivery(self, delivery_id: str, body_sha256: str | None = None) -> bool:
        async def op() -> bool:
            async with self._tx() as conn:
                row = await self._fetchone(  # nothing when the id or the body hash is known
                    conn,
                    "INSERT INTO pact_deliveries(delivery_id, received_at, body_sha256) "
                    "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING delivery_id",
                    (delivery_id, time.time(), body_sha256),
                )
                return row is not None

        return await self._retrying("record_delivery", op)

    async def enqueue(self, job: Job, body_sha256: str | None = None) -> Enqueued:
        params = _enqueue_params(job, body_sha256)
        fp, qlock = params["fingerprint"], params["qlock"]

        async def fast() -> Enqueued | None:
            """One statement, one round trip: the common case (no identical job waiting)."""
            try:
                async with self.connector.pool.connection() as conn:
                    cur = await conn.execute(_ENQUEUE_SQL, params)
                    return Enqueued.created if await cur.fetchone() else Enqueued.duplicate_delivery
            except psycopg.errors.UniqueViolation:
                return None  # an identical job is queued (or a race): the careful path decides

        async def op() -> Enqueued:
            if (done := await fast()) is not None:
                return done
            async with self._tx() as conn:
                return await self._enqueue_careful(conn, job, qlock, fp, body_sha256)

        return await self._retrying("enqueue", op)

    async def enqueue_with_ack(
        self, job: Job, ack: Job | Callable[[], Job], body_sha256: str | None = None
    ) -> Enqueued:
        """`enqueue(job)`, recording `ack` first (same transaction) only when `job.key`
        already has a queued or running job: the job would wait, so a worker should react
        👀 now. The result is the job's; a redelivery records neither.

        A transaction-scoped advisory lock on the key orders concurrent deliveries for the
        same key (READ COMMITTED would let both see it idle)."""
        params = _enqueue_params(job, body_sha256)
        fp, qlock = params["fingerprint"], params["qlock"]

        async def op() -> Enqueued:
            async with self._tx() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (job.key,))
                row = await self._fetchone(conn, _BUSY_SQL, (job.key, job.delivery_id, body_sha256))
                assert row is not None
                if row["seen"]:
                    return Enqueued.duplicate_delivery
                if row["busy"]:
                    try:
                        async with conn.transaction():  # savepoint: a failure undoes only this
                            await conn.execute(_ENQUEUE_SQL, _enqueue_params(ack_job(ack)))
                    except psycopg.Error as e:
                        if _is_transient(e):
                            raise
                        log.exception("could not record the acknowledgement of job %s", job.id)
                try:
                    async with conn.transaction():
                        cur = await conn.execute(_ENQUEUE_SQL, params)
                        created = await cur.fetchone()
                except psycopg.errors.UniqueViolation:
                    return await self._enqueue_careful(conn, job, qlock, fp, body_sha256)
                return Enqueued.created if created else Enqueued.duplicate_delivery

        return await self._retrying("enqueue", op)

    async def _enqueue_careful(
        self,
        conn: psycopg.AsyncConnection[Any],
        job: Job,
        qlock: str,
        fp: str,
        body_sha256: str | None = None,
    ) -> Enqueued:
        """In the caller's transaction: `enqueue` when the queueing lock may refuse the job."""
        seen = await self._fetchone(
            conn,
            "INSERT INTO pact_deliveries(delivery_id, received_at, job_id, body_sha256) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING delivery_id",
            (job.delivery_id, time.time(), job.id, body_sha256),
        )
        if seen is None:
            return Enqueued.duplicate_delivery
        for _ in range(3):
            try:
                async with conn.transaction():  # savepoint: a refusal undoes only this
                    pj = await self._defer(conn, job, qlock)
            except pexc.AlreadyEnqueued:
                same = await self._fetchone(
                    conn,
                    "SELECT j.id FROM procrastinate_jobs p JOIN pact_jobs j "
                    "ON j.pj_id = p.id WHERE p.queueing_lock = %s AND p.status = 'todo'",
                    (qlock,),
                )
                if same is None:  # claimed meanwhile: no longer queued, defer anew
                    continue
                await conn.execute(
                    "UPDATE pact_deliveries SET job_id = %s WHERE delivery_id = %s",
                    (same["id"], job.delivery_id),
                )
                return Enqueued.coalesced
            await conn.execute(
                "INSERT INTO pact_jobs(id, pj_id, kind, key, repo, number, "
                "installation_id, delivery_id, sender, task, fingerprint, state, "
                "attempts, created_at) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,'queued',0,%s)",
                (
                    job.id,
                    pj,
                    str(job.kind),
                    job.key,
                    job.repo,
                    job.number,
                    job.installation_id,
                    job.delivery_id,
                    job.sender,
                    Jsonb(job.task),
                    fp,
                    job.created_at,
                ),
            )
            return Enqueued.created
        raise RuntimeError(f"could not enqueue job {job.id}: queueing lock kept changing")

    async def _defer(self, conn: psycopg.AsyncConnection[Any], job: Job, qlock: str) -> int:
        deferred = await self._manager.defer_job_async(
            pjobs.Job(
                queue=queue_for(job.kind),
                task_name=TASK_NAME,
                lock=job.key,
                queueing_lock=qlock,
                task_kwargs={"job_id": job.id},
            ),
            connection=conn,
        )
        assert deferred.id is not None
        return deferred.id

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, now: float, jobs_before: float, deliveries_before: float) -> Pruned:
        """Finished jobs (our rows and procrastinate's, whose events cascade) and old
        deliveries go; queued and running jobs never do."""

        async def op() -> Pruned:
            async with self._tx() as conn:
                gone = await self._fetchall(
                    conn,
                    "DELETE FROM pact_jobs WHERE state IN ('succeeded','failed','cancelled') "
                    "AND COALESCE(finished_at, created_at) < %s RETURNING pj_id",
                    (jobs_before,),
                )
                pj_ids = [r["pj_id"] for r in gone if r["pj_id"] is not None]
                if pj_ids:
                    await conn.execute(
                        "DELETE FROM procrastinate_jobs WHERE id = ANY(%s) "
                        "AND status NOT IN ('todo', 'doing')",
                        (pj_ids,),
                    )
                cur = await conn.execute(
                    "DELETE FROM pact_deliveries WHERE received_at < %s", (deliveries_before,)
                )
                return Pruned(len(gone), cur.rowcount)

        return await self._retrying("prune", op)

    async def request_cancel(self, key: str) -> list[str]:
        async def op() -> list[str]:
            async with self._tx() as conn:
                rows = await self._fetchall(
                    conn,
                    "SELECT p.id AS pj_id, p.status::text AS status FROM procrastinate_jobs p "
                    "WHERE p.lock = %s AND p.queue_name = ANY(%s) "
                    "AND p.status IN ('todo','doing') ORDER BY p.id FOR UPDATE",
                    (key, list(QUEUES)),
                )
                ids: list[str] = []
                now = self.clock.now()
                for r in rows:
                    mine = await self._fetchone(
                        conn, "SELECT id FROM pact_jobs WHERE pj_id = %s FOR UPDATE", (r["pj_id"],)
                    )
                    await self._p_one(
                        conn,
                        "cancel_job",
                        job_id=r["pj_id"],
                        abort=r["status"] == "doing",
                        delete_job=False,
                    )
                    if mine is None:
                        continue
                    ids.append(mine["id"])
                    if r["status"] == "todo":
                        await conn.execute(
                            "UPDATE pact_jobs SET state='cancelled', finished_at=%s, "
                            "error='cancelled before it started' WHERE id=%s",
                            (now, mine["id"]),
                        )
                    else:
                        await conn.execute(
                            "UPDATE pact_jobs SET cancel_requested=true WHERE id=%s", (mine["id"],)
                        )
                return ids

        return await self._retrying("request_cancel", op)
