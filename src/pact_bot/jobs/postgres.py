"""The distributed queue: procrastinate's jobs table on Postgres, behind the `Queue` protocol.

Public API:
- `PostgresQueue(dsn, lease_seconds=60, max_attempts=3, schema=None, clock=None)` implements
  `pact_bot.jobs.model.Queue`, plus `release(job_id, worker_id)` (hand a job back on shutdown),
  like `SqliteQueue`.
- `migrate(settings_or_dsn, schema=None) -> int`: `pact-bot db migrate` (idempotent, one line).
- `apply_schema(dsn, schema=None) -> str` (async; returns the schema it migrated).
- `NotMigrated`: raised by `open()` against a database `migrate` has not prepared.

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

import asyncio
import contextlib
import importlib.metadata
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import psycopg.rows
import psycopg_pool
from procrastinate import exceptions as pexc
from procrastinate import jobs as pjobs
from procrastinate import manager as pmanager
from procrastinate import sql as psql
from procrastinate.psycopg_connector import PsycopgConnector
from procrastinate.schema import SchemaManager
from psycopg.types.json import Jsonb

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.model import (
    TERMINAL,
    Enqueued,
    Job,
    JobKind,
    JobState,
    Pruned,
    Queue,
    ack_job,
    fingerprint,
    lost_notice,
)
from pact_bot.settings import ConfigError, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_NAME = "pact"
TASK_NAME = "pact_bot.job"
SCHEMA_VERSION = "2"  # 2: pact_deliveries.body_sha256 (replay dedupe), received_at index
CONNECT_TIMEOUT = 10
NOT_MIGRATED = "database not migrated: run `pact-bot db migrate`"

PACT_SCHEMA = """
CREATE TABLE IF NOT EXISTS pact_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS pact_jobs (
    seq bigserial NOT NULL,
    id text PRIMARY KEY,
    pj_id bigint UNIQUE REFERENCES procrastinate_jobs(id) ON DELETE SET NULL,
    kind text NOT NULL,
    key text NOT NULL,
    repo text NOT NULL,
    number integer,
    installation_id bigint,
    delivery_id text NOT NULL,
    sender text NOT NULL,
    task jsonb NOT NULL,
    fingerprint text NOT NULL,
    state text NOT NULL CHECK (state IN ('queued','running','succeeded','failed','cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    error text,
    pr_url text,
    cost_usd double precision NOT NULL DEFAULT 0,
    turns integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    worker_id text
);
CREATE INDEX IF NOT EXISTS pact_jobs_seq ON pact_jobs(seq);
CREATE INDEX IF NOT EXISTS pact_jobs_state_seq ON pact_jobs(state, seq);
CREATE INDEX IF NOT EXISTS pact_jobs_key_seq ON pact_jobs(key, seq);
CREATE TABLE IF NOT EXISTS pact_deliveries (
    delivery_id text PRIMARY KEY,
    received_at double precision NOT NULL,
    job_id text
);
ALTER TABLE pact_deliveries ADD COLUMN IF NOT EXISTS body_sha256 text;
CREATE UNIQUE INDEX IF NOT EXISTS pact_deliveries_body ON pact_deliveries(body_sha256);
CREATE INDEX IF NOT EXISTS pact_deliveries_received ON pact_deliveries(received_at);
CREATE TABLE IF NOT EXISTS pact_repo_config (
    repo text PRIMARY KEY,
    config jsonb NOT NULL,
    updated_at double precision NOT NULL
);
"""

_COLUMNS = (
    "id, kind, key, repo, number, installation_id, delivery_id, sender, task, state, attempts, "
    "created_at, started_at, finished_at, error, pr_url, cost_usd, turns, cancel_requested, "
    "worker_id"
)
_SELECT_JOBS = f"SELECT {_COLUMNS} FROM pact_jobs"  # noqa: S608
_CLAIM_SET = "state='running', attempts=attempts+1, started_at=%s, finished_at=NULL, worker_id=%s"
_CLAIM_SQL = f"UPDATE pact_jobs SET {_CLAIM_SET} WHERE id=%s AND pj_id=%s RETURNING {_COLUMNS}"  # noqa: S608
# Delivery, procrastinate job (its own defer function) and our record in one statement. When
# the queueing lock refuses the job, the statement fails whole and `enqueue` takes its careful
# path (savepoint, `JobManager.defer_job_async`, AlreadyEnqueued -> coalesced).
_ENQUEUE_SQL = """
WITH d AS (
    INSERT INTO pact_deliveries(delivery_id, received_at, job_id, body_sha256)
    VALUES (%(delivery_id)s, %(received_at)s, %(id)s, %(body_sha256)s)
    ON CONFLICT DO NOTHING RETURNING delivery_id
), p AS (
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
        %(queue)s, %(task_name)s, 0, %(lock)s, %(qlock)s, %(args)s, NULL
    )::procrastinate_job_to_defer_v1])) AS pj_id
    FROM d
)
INSERT INTO pact_jobs(id, pj_id, kind, key, repo, number, installation_id, delivery_id,
    sender, task, fingerprint, state, attempts, created_at)
SELECT %(id)s, p.pj_id, %(kind)s, %(lock)s, %(repo)s, %(number)s, %(installation_id)s,
    %(delivery_id)s, %(sender)s, %(task)s, %(fingerprint)s, 'queued', 0, %(created_at)s
FROM p
RETURNING id
"""
_BUSY_SQL = """
SELECT EXISTS (SELECT 1 FROM pact_jobs WHERE key = %s AND state IN ('queued', 'running')) AS busy,
    EXISTS (SELECT 1 FROM pact_deliveries WHERE delivery_id = %s OR body_sha256 = %s) AS seen
"""
# Leases run on `now` (%(now)s): the database's clock, or the epoch seconds of an injected one.
_STALLED_SQL = """
WITH lease_now AS (SELECT COALESCE(to_timestamp(%(now)s::double precision), clock_timestamp()) AS t)
SELECT p.id FROM procrastinate_jobs p
LEFT JOIN procrastinate_workers w ON w.id = p.worker_id
WHERE p.status = 'doing' AND p.queue_name = %(queue)s
  AND (w.id IS NULL
       OR w.last_heartbeat < (SELECT t FROM lease_now) - make_interval(secs => %(lease)s))
"""
_LOCK_STALLED_SQL = """
WITH lease_now AS (SELECT COALESCE(to_timestamp(%(now)s::double precision), clock_timestamp()) AS t)
SELECT p.id, p.worker_id FROM procrastinate_jobs p
LEFT JOIN procrastinate_workers w ON w.id = p.worker_id
WHERE p.id = %(id)s AND p.status = 'doing'
  AND (w.id IS NULL
       OR w.last_heartbeat < (SELECT t FROM lease_now) - make_interval(secs => %(lease)s))
FOR UPDATE OF p SKIP LOCKED
"""
_BEAT_SQL = """
UPDATE procrastinate_workers
SET last_heartbeat = COALESCE(to_timestamp(%(now)s::double precision), clock_timestamp())
WHERE id = %(id)s
"""
_UPDATABLE = {"cost_usd", "turns", "pr_url", "error"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
# procrastinate's finish function knows no "cancelled" from `doing`: a cancelled run is aborted.
_PROCRASTINATE_END = {
    JobState.succeeded: pjobs.Status.SUCCEEDED,
    JobState.failed: pjobs.Status.FAILED,
    JobState.cancelled: pjobs.Status.ABORTED,
}


class NotMigrated(ConfigError):
    """The database lacks procrastinate's or pact-bot's tables."""


def _row_to_job(r: dict[str, Any]) -> Job:
    return Job(
        id=r["id"],
        kind=JobKind(r["kind"]),
        key=r["key"],
        repo=r["repo"],
        number=r["number"],
        installation_id=r["installation_id"],
        delivery_id=r["delivery_id"],
        sender=r["sender"],
        task=r["task"],
        state=JobState(r["state"]),
        attempts=r["attempts"],
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        error=r["error"],
        pr_url=r["pr_url"],
        cost_usd=r["cost_usd"],
        turns=r["turns"],
        cancel_requested=r["cancel_requested"],
        worker_id=r["worker_id"],
    )


def _enqueue_params(job: Job, body_sha256: str | None = None) -> dict[str, Any]:
    """`_ENQUEUE_SQL`'s parameters for one job."""
    fp = fingerprint(job)
    return {
        "delivery_id": job.delivery_id,
        "body_sha256": body_sha256,
        "received_at": time.time(),
        "id": job.id,
        "queue": QUEUE_NAME,
        "task_name": TASK_NAME,
        "lock": job.key,
        "qlock": f"{job.key}|{fp}",
        "args": Jsonb({"job_id": job.id}),
        "kind": str(job.kind),
        "repo": job.repo,
        "number": job.number,
        "installation_id": job.installation_id,
        "sender": job.sender,
        "task": Jsonb(job.task),
        "fingerprint": fp,
        "created_at": job.created_at,
    }


def _is_transient(exc: BaseException) -> bool:
    """A dropped connection, a restarting server, a deadlock victim: worth another go."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError | psycopg.errors.AdminShutdown):
            return True
        if isinstance(seen, psycopg.InterfaceError):
            return True
        if type(seen).__name__ == "PoolTimeout":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _pool_without_checkout_check(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's pool checks each connection at checkout and, when one is dead, backs off
    1 s, 2 s, 4 s… before trying the next: after a restart a pool of dead connections stalls
    every query for seconds (longer than a lease). We skip that check; a statement on a dead
    connection fails fast, `_retrying` then has the pool drop all dead idle connections and
    tries again."""
    kwargs["check"] = None
    return psycopg_pool.AsyncConnectionPool(**kwargs)


def _conn_kwargs(schema: str | None) -> dict[str, Any]:
    if schema is None:
        return {}
    if not _IDENT.match(schema):
        raise ConfigError(f"PACT_DATABASE_SCHEMA: not a plain identifier: {schema!r}")
    return {"options": f"-c search_path={schema}"}


class PostgresQueue(Queue):
    """The `Queue` protocol on procrastinate (see the module docstring).

    Without `clock`, leases run on the database's clock (replicas on several hosts agree on
    it) and job timestamps on the system clock; with one, both on it.
    """

    def __init__(
        self,
        dsn: str,
        lease_seconds: float = 60.0,
        max_attempts: int = 3,
        schema: str | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        clock: Clock | None = None,
    ) -> None:
        self.dsn = dsn
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.schema = schema
        self.clock = clock or SYSTEM_CLOCK
        self._lease_clock = clock
        self._pool_args: dict[str, Any] = {
            "conninfo": self.dsn,
            # autocommit: every transaction is an explicit `_tx()` block
            "kwargs": {
                **_conn_kwargs(schema),
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
            },
            "min_size": min_connections,
            "max_size": max_connections,
            "timeout": 15.0,
            "reconnect_timeout": 60.0,
        }
        self._connector: PsycopgConnector | None = None
        self._jobs: pmanager.JobManager | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._connector is not None:
            return
        connector = PsycopgConnector(pool_factory=_pool_without_checkout_check, **self._pool_args)
        await connector.open_async()
        try:
            migrated = await _is_migrated(connector)
        except BaseException:
            await connector.close_async()
            raise
        if not migrated:
            await connector.close_async()
            raise NotMigrated(NOT_MIGRATED)
        self._connector = connector
        self._jobs = pmanager.JobManager(connector)

    async def close(self) -> None:
        connector, self._connector, self._jobs = self._connector, None, None
        if connector is not None:
            await connector.close_async()

    async def __aenter__(self) -> PostgresQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connector(self) -> PsycopgConnector:
        if self._connector is None:
            raise RuntimeError("PostgresQueue is not open")
        return self._connector

    def _lease_now(self) -> float | None:
        """`%(now)s` of the lease queries: None for the database's clock."""
        return None if self._lease_clock is None else self._lease_clock.now()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.connector.pool.connection() as conn, conn.transaction():
            yield conn

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        for delay in (*_RETRY_DELAYS, None):
            try:
                return await op()
            except Exception as e:
                if delay is None or not _is_transient(e):
                    raise
                with contextlib.suppress(Exception):  # drop every dead idle connection at once
                    await self.connector.pool.check()
                log.warning(
                    "postgres: retrying after a transient error",
                    extra={"op": what, "error": type(e).__name__, "retry_in": delay},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _p_one(
        self, conn: psycopg.AsyncConnection[Any], name: str, **args: Any
    ) -> dict[str, Any]:
        """Run one of procrastinate's own queries on our transaction's connection."""
        row: dict[str, Any] = await self.connector.execute_query_one_async_with_connection(
            conn, query=psql.queries[name], **args
        )
        return row

    @staticmethod
    async def _fetchone(
        conn: psycopg.AsyncConnection[Any], query: str, args: tuple[Any, ...] | dict[str, Any] = ()
    ) -> dict[str, Any] | None:
        async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute(query, args)
            return await cur.fetchone()

    @staticmethod
    async def _fetchall(
        conn: psycopg.AsyncConnection[Any], query: str, args: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute(query, args)
            return await cur.fetchall()

    # -- deliveries and enqueue --------------------------------------------------------------

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
                queue=QUEUE_NAME,
                task_name=TASK_NAME,
                lock=job.key,
                queueing_lock=qlock,
                task_kwargs={"job_id": job.id},
            ),
            connection=conn,
        )
        assert deferred.id is not None
        return deferred.id

    @property
    def _manager(self) -> pmanager.JobManager:
        if self._jobs is None:
            raise RuntimeError("PostgresQueue is not open")
        return self._jobs

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

    # -- workers -----------------------------------------------------------------------------

    async def _recover_stalled(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Requeue, fail or cancel jobs whose procrastinate worker stopped beating."""
        lease = {"now": self._lease_now(), "lease": self.lease_seconds}
        stalled = await self._fetchall(conn, _STALLED_SQL, {"queue": QUEUE_NAME, **lease})
        for s in stalled:
            locked = await self._fetchone(conn, _LOCK_STALLED_SQL, {"id": s["id"], **lease})
            if locked is None:  # beat again, or another claimer is recovering it
                continue
            mine = await self._fetchone(
                conn,
                "SELECT id, attempts, cancel_requested FROM pact_jobs WHERE pj_id = %s FOR UPDATE",
                (locked["id"],),
            )
            now = self.clock.now()
            if mine is None:
                await self._p_one(
                    conn, "finish_job", job_id=locked["id"], status="failed", delete_job=False
                )
            elif mine["cancel_requested"]:
                await self._p_one(
                    conn, "finish_job", job_id=locked["id"], status="aborted", delete_job=False
                )
                await conn.execute(
                    "UPDATE pact_jobs SET state='cancelled', finished_at=%s, worker_id=NULL, "
                    "error='cancelled (worker lost)' WHERE id=%s",
                    (now, mine["id"]),
                )
            elif mine["attempts"] >= self.max_attempts:
                await self._p_one(
                    conn, "finish_job", job_id=locked["id"], status="failed", delete_job=False
                )
                await conn.execute(
                    "UPDATE pact_jobs SET state='failed', finished_at=%s, worker_id=NULL, "
                    "error=%s WHERE id=%s",
                    (
                        now,
                        f"worker lost (lease expired) after {mine['attempts']} attempts",
                        mine["id"],
                    ),
                )
                await self._notify_lost(conn, mine["id"])
            else:
                await self._p_one(
                    conn,
                    "retry_job",
                    job_id=locked["id"],
                    retry_at=None,
                    new_priority=None,
                    new_queue_name=None,
                    new_lock=None,
                )
                await conn.execute(
                    "UPDATE pact_jobs SET state='queued', worker_id=NULL WHERE id=%s",
                    (mine["id"],),
                )
            log.info(
                "postgres: recovered a job whose worker stopped beating",
                extra={"job_id": mine["id"] if mine else None, "procrastinate_id": s["id"]},
            )
            if locked["worker_id"] is not None:
                await self._p_one(conn, "unregister_worker", worker_id=locked["worker_id"])

    async def _notify_lost(self, conn: psycopg.AsyncConnection[Any], job_id: str) -> None:
        """In the failing transaction: the reply job that says so on GitHub."""
        row = await self._fetchone(conn, f"{_SELECT_JOBS} WHERE id=%s", (job_id,))
        notice = lost_notice(_row_to_job(row)) if row else None
        if notice is None:
            return
        # its delivery id is unique per failed job: at most one notice (no queueing-lock clash)
        await conn.execute(_ENQUEUE_SQL, _enqueue_params(notice))

    async def claim(self, worker_id: str) -> Job | None:
        async def op() -> Job | None:
            async with self._tx() as conn:
                await self._recover_stalled(conn)
            async with self._tx() as conn:
                pw = (await self._p_one(conn, "register_worker"))["worker_id"]
                try:
                    async with conn.transaction():
                        row = await self._p_one(
                            conn, "fetch_job", queues=[QUEUE_NAME], worker_id=pw
                        )
                except pexc.UniqueViolation:  # raced another claimer on one lock
                    row = {"id": None}
                if row["id"] is not None:
                    got = await self._fetchone(
                        conn,
                        _CLAIM_SQL,
                        (self.clock.now(), worker_id, row["args"].get("job_id"), row["id"]),
                    )
                    if got is not None:
                        # procrastinate stamps a new worker with NOW(), the transaction's start;
                        # under load that can already look stale to the next claimer. Stamp
                        # the lease from the clock, at the end of the claim.
                        await self._beat(conn, pw)
                        return _row_to_job(got)
                    # A procrastinate job without our record: never run it.
                    await self._p_one(
                        conn, "finish_job", job_id=row["id"], status="failed", delete_job=False
                    )
                await self._p_one(conn, "unregister_worker", worker_id=pw)
                return None

        return await self._retrying("claim", op)

    async def heartbeat(self, job_id: str, worker_id: str) -> bool:
        async def op() -> bool:
            async with self._tx() as conn:
                row = await self._fetchone(
                    conn,
                    "SELECT p.worker_id FROM pact_jobs j JOIN procrastinate_jobs p "
                    "ON p.id = j.pj_id WHERE j.id = %s AND j.worker_id = %s "
                    "AND j.state = 'running' AND p.status = 'doing'",
                    (job_id, worker_id),
                )
                if row is None or row["worker_id"] is None:
                    return False
                await self._beat(conn, row["worker_id"])
                return True

        return await self._retrying("heartbeat", op)

    async def _beat(self, conn: psycopg.AsyncConnection[Any], procrastinate_worker: int) -> None:
        """procrastinate's `update_heartbeat`, on the lease clock."""
        await conn.execute(_BEAT_SQL, {"now": self._lease_now(), "id": procrastinate_worker})

    async def update(self, job_id: str, **fields: Any) -> None:
        """Known columns are set; any other field is merged into `task["progress"]`."""
        cols = {k: v for k, v in fields.items() if k in _UPDATABLE}
        extra = {k: v for k, v in fields.items() if k not in _UPDATABLE}
        if not cols and not extra:
            return

        async def op() -> None:
            async with self._tx() as conn:
                sets = [f"{k} = %s" for k in cols]
                args: list[Any] = list(cols.values())
                if extra:
                    sets.append(
                        "task = jsonb_set(task, '{progress}', "
                        "COALESCE(task->'progress', '{}'::jsonb) || %s)"
                    )
                    args.append(Jsonb(extra))
                await conn.execute(
                    f"UPDATE pact_jobs SET {', '.join(sets)} WHERE id = %s",  # noqa: S608
                    (*args, job_id),
                )

        await self._retrying("update", op)

    async def _lock_owned(
        self, conn: psycopg.AsyncConnection[Any], job_id: str, worker_id: str
    ) -> dict[str, Any] | None:
        """Lock procrastinate's row, then ours (the order every writer uses)."""
        p = await self._fetchone(
            conn,
            "SELECT p.id, p.worker_id FROM procrastinate_jobs p WHERE p.id = "
            "(SELECT pj_id FROM pact_jobs WHERE id = %s) AND p.status = 'doing' FOR UPDATE",
            (job_id,),
        )
        if p is None:
            return None
        mine = await self._fetchone(
            conn,
            "SELECT id FROM pact_jobs WHERE id = %s AND worker_id = %s AND state = 'running' "
            "FOR UPDATE",
            (job_id, worker_id),
        )
        return p if mine is not None else None

    async def finish(
        self, job_id: str, worker_id: str, state: JobState, error: str | None = None
    ) -> None:
        state = JobState(state)
        if state not in TERMINAL:
            raise ValueError(f"finish needs a terminal state, not {state}")

        async def op() -> None:
            async with self._tx() as conn:
                p = await self._lock_owned(conn, job_id, worker_id)
                if p is None:  # lease lost: another worker owns this job now
                    return
                await self._p_one(
                    conn,
                    "finish_job",
                    job_id=p["id"],
                    status=_PROCRASTINATE_END[state].value,
                    delete_job=False,
                )
                if p["worker_id"] is not None:
                    await self._p_one(conn, "unregister_worker", worker_id=p["worker_id"])
                await conn.execute(
                    "UPDATE pact_jobs SET state=%s, error=COALESCE(%s, error), finished_at=%s "
                    "WHERE id=%s",
                    (str(state), error, self.clock.now(), job_id),
                )

        await self._retrying("finish", op)

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Hand a running job back unstarted (shutdown): queued again, this attempt undone."""

        async def op() -> bool:
            async with self._tx() as conn:
                p = await self._lock_owned(conn, job_id, worker_id)
                if p is None:
                    return False
                await self._p_one(
                    conn,
                    "retry_job",
                    job_id=p["id"],
                    retry_at=None,
                    new_priority=None,
                    new_queue_name=None,
                    new_lock=None,
                )
                if p["worker_id"] is not None:
                    await self._p_one(conn, "unregister_worker", worker_id=p["worker_id"])
                await conn.execute(
                    "UPDATE pact_jobs SET state='queued', attempts=GREATEST(attempts-1, 0), "
                    "worker_id=NULL, started_at=NULL WHERE id=%s",
                    (job_id,),
                )
                return True

        return await self._retrying("release", op)

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, key: str) -> list[str]:
        async def op() -> list[str]:
            async with self._tx() as conn:
                rows = await self._fetchall(
                    conn,
                    "SELECT p.id AS pj_id, p.status::text AS status FROM procrastinate_jobs p "
                    "WHERE p.lock = %s AND p.queue_name = %s AND p.status IN ('todo','doing') "
                    "ORDER BY p.id FOR UPDATE",
                    (key, QUEUE_NAME),
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

    async def is_cancelled(self, job_id: str) -> bool:
        async def op() -> bool:
            async with self._tx() as conn:
                row = await self._fetchone(
                    conn, "SELECT state, cancel_requested FROM pact_jobs WHERE id=%s", (job_id,)
                )
                return row is not None and (row["state"] == "cancelled" or row["cancel_requested"])

        return await self._retrying("is_cancelled", op)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        async def op() -> Job | None:
            async with self._tx() as conn:
                row = await self._fetchone(
                    conn,
                    f"{_SELECT_JOBS} WHERE id=%s",
                    (job_id,),
                )
                return _row_to_job(row) if row else None

        return await self._retrying("get", op)

    async def list(
        self, state: JobState | None = None, key: str | None = None, limit: int = 100
    ) -> list[Job]:
        async def op() -> list[Job]:
            async with self._tx() as conn:
                rows = await self._fetchall(
                    conn,
                    f"{_SELECT_JOBS} "
                    "WHERE (%s::text IS NULL OR state = %s) AND (%s::text IS NULL OR key = %s) "
                    "ORDER BY seq DESC LIMIT %s",
                    (
                        None if state is None else str(state),
                        None if state is None else str(state),
                        key,
                        key,
                        limit,
                    ),
                )
                return [_row_to_job(r) for r in rows]

        return await self._retrying("list", op)

    async def depth(self) -> dict[str, int]:
        async def op() -> dict[str, int]:
            async with self._tx() as conn:
                out = {s.value: 0 for s in JobState}
                for r in await self._fetchall(
                    conn, "SELECT state, count(*) AS n FROM pact_jobs GROUP BY state"
                ):
                    out[r["state"]] = r["n"]
                return out

        return await self._retrying("depth", op)

    async def get_repo_config(self, repo: str) -> dict[str, Any] | None:
        async def op() -> dict[str, Any] | None:
            async with self._tx() as conn:
                row = await self._fetchone(
                    conn, "SELECT config FROM pact_repo_config WHERE repo=%s", (repo,)
                )
                return row["config"] if row else None

        return await self._retrying("get_repo_config", op)

    async def set_repo_config(self, repo: str, config: dict[str, Any]) -> None:
        async def op() -> None:
            async with self._tx() as conn:
                await conn.execute(
                    "INSERT INTO pact_repo_config(repo, config, updated_at) VALUES (%s,%s,%s) "
                    "ON CONFLICT (repo) DO UPDATE SET config=excluded.config, "
                    "updated_at=excluded.updated_at",
                    (repo, Jsonb(config), time.time()),
                )

        await self._retrying("set_repo_config", op)


# -- schema ------------------------------------------------------------------------------------


async def _is_migrated(connector: PsycopgConnector) -> bool:
    row = await connector.execute_query_one_async(
        query="SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS p, "
        "to_regclass('pact_jobs') IS NOT NULL AS j, "
        "to_regclass('pact_deliveries') IS NOT NULL AS d, "
        "to_regclass('pact_repo_config') IS NOT NULL AS c, "
        "EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('pact_deliveries') "
        "AND attname = 'body_sha256' AND NOT attisdropped) AS h"
    )
    return all(row.values())


async def apply_schema(dsn: str, schema: str | None = None) -> str:
    """Create procrastinate's schema and ours (idempotent, safe to run concurrently).

    The target is `schema` or the first entry of the connection's search_path (created when
    missing, so `?options=-csearch_path%3Dname` in the DSN works too). Returns its name.
    """
    kwargs = _conn_kwargs(schema)
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **kwargs
    ) as conn:
        target = schema
        if target is None:
            row = await (await conn.execute("SELECT current_schema()")).fetchone()
            target = row[0] if row and row[0] else None
        if target is None:
            path = (await (await conn.execute("SHOW search_path")).fetchone() or [""])[0]
            first = path.split(",")[0].strip().strip('"')
            target = first if first and first != "$user" else "public"
        if not _IDENT.match(target):
            raise ConfigError(f"database schema is not a plain identifier: {target!r}")
        async with conn.transaction():
            # One migrator at a time per schema (replicas may start together).
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('pact-bot migrate:' || %s))", (target,)
            )
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{target}"')
            await conn.execute(f'SET LOCAL search_path TO "{target}"')
            row = await (
                await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            ).fetchone()
            if not (row and row[0]):
                await conn.execute(SchemaManager.get_schema())
            await conn.execute(PACT_SCHEMA)
            await conn.execute(
                "INSERT INTO pact_meta(key, value) VALUES ('schema_version', %s), "
                "('procrastinate_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (SCHEMA_VERSION, importlib.metadata.version("procrastinate")),
            )
    return target


def migrate(target: Settings | str, schema: str | None = None) -> int:
    """`pact-bot db migrate` for Postgres: apply the schema, print one line, return 0."""
    if isinstance(target, Settings):
        dsn = target.pact_database_url
        schema = schema or getattr(target, "pact_database_schema", None)
    else:
        dsn = target
    try:
        name = asyncio.run(apply_schema(dsn, schema))
    except psycopg.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"pact-bot: cannot migrate the database: {first}", flush=True)
        return 1
    print(f"schema ready in Postgres (schema {name})", flush=True)
    return 0


async def drop_schema(dsn: str, schema: str) -> None:
    """Remove a schema and everything in it (tests and benchmarks clean up with this)."""
    if not _IDENT.match(schema):
        raise ValueError(f"not a plain identifier: {schema!r}")
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT
    ) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
