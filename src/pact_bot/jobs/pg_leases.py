"""The Postgres queue's leases: claim, heartbeat, finish, release, and recovery of lapsed jobs.

The protocol leases one job to a worker id; procrastinate heartbeats a worker row. Each claim
registers its own procrastinate worker, so "the worker's heartbeat is older than
`lease_seconds`" is exactly "this job's lease lapsed" (see `jobs/postgres.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import psycopg
import psycopg.rows
from procrastinate import exceptions as pexc
from psycopg.types.json import Jsonb

from pact_bot.jobs.model import (
    TERMINAL,
    Job,
    JobKind,
    JobState,
    lost_notice,
)
from pact_bot.jobs.pg_connection import PostgresConnection
from pact_bot.jobs.pg_schema import QUEUES
from pact_bot.jobs.pg_sql import (
    _BEAT_SQL,
    _CLAIM_SQL,
    _ENQUEUE_SQL,
    _LOCK_STALLED_SQL,
    _PROCRASTINATE_END,
    _SELECT_JOBS,
    _STALLED_SQL,
    _UPDATABLE,
    _enqueue_params,
    _row_to_job,
    queues_for,
)

log = logging.getLogger(__name__)


class PostgresLeases(PostgresConnection):
    """The lease half of `PostgresQueue`: who runs which job, and until when."""

    # -- workers -----------------------------------------------------------------------------

    async def _recover_stalled(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Requeue, fail or cancel jobs whose procrastinate worker stopped beating."""
        lease = {"now": self._lease_now(), "lease": self.lease_seconds}
        stalled = await self._fetchall(conn, _STALLED_SQL, {"queues": list(QUEUES), **lease})
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
                await self._requeue(conn, locked["id"])
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

    async def claim(self, worker_id: str, kinds: Collection[JobKind] | None = None) -> Job | None:
        """procrastinate's fetch from the queues of `kinds` (`queues_for`): oldest first
        across them, its lock (the job's key) held across every queue."""
        queues = queues_for(kinds)

        async def op() -> Job | None:
            async with self._tx() as conn:
                await self._recover_stalled(conn)
            async with self._tx() as conn:
                pw = (await self._p_one(conn, "register_worker"))["worker_id"]
                try:
                    async with conn.transaction():
                        row = await self._p_one(conn, "fetch_job", queues=queues, worker_id=pw)
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

    async def _requeue(self, conn: psycopg.AsyncConnection[Any], procrastinate_job: int) -> None:
        """procrastinate's job back to `todo` at once, as it was (its queue, lock, priority)."""
        await self._p_one(
            conn,
            "retry_job",
            job_id=procrastinate_job,
            retry_at=None,
            new_priority=None,
            new_queue_name=None,
            new_lock=None,
        )

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
                await self._requeue(conn, p["id"])
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
