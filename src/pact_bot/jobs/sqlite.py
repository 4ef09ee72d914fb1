"""The embedded queue: one SQLite file in WAL mode, durable before the webhook answers 202.

Why group commit: every write (enqueue, claim, heartbeat, finish…) goes through one
connection. Requests that arrive while a COMMIT is on its way to disk wait, then all run in
the next transaction (`synchronous=FULL`); their futures resolve only after COMMIT — one fsync
for a whole batch of concurrent webhooks. Each request runs in its own SAVEPOINT, so one
failing request does not undo the others (`_Committer` says what runs on the loop). Reads
use per-thread connections and never wait for writes. A queue belongs to the event loop that
opened it. Several processes (serve + `pact-bot worker`) may share the
file: transactions are `BEGIN IMMEDIATE` with a busy timeout.

Semantics (shared with the Postgres backend):
- `deliveries` remembers every delivery id and the sha256 of its body; a job insert records
  its delivery in the same transaction, so a redelivery (same id) or a replay (same signed
  body, new id) is `duplicate_delivery` whether or not it started a job.
- `prune(now, jobs_before, deliveries_before)` deletes finished jobs and old deliveries
  (retention, `jobs.retention`).
- A job identical to one still queued (same key and `fingerprint()`) is `coalesced`.
- `enqueue_with_ack(job, ack)`: the job, and before it (same transaction) its 👀 `ack`
  reply job only when the job's key already has a queued or running job.
- `claim` takes the oldest queued job of a key only when that key has no running job;
  `claim(worker, kinds)` the oldest such job of those kinds (`kind IN (…)`).
- A running job whose lease lapsed is queued again (claim adds the attempt); after
  `max_attempts` claims it fails with "worker lost (lease expired) after N attempts", and
  the same transaction enqueues its `lost_notice` (a reply job that says so on GitHub).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection
from typing import Any

from pact_bot.jobs.model import (
    TERMINAL,
    Enqueued,
    Job,
    JobKind,
    JobState,
    Pruned,
    Queue,
    lost_notice,
)
from pact_bot.jobs.sqlite_connection import SqliteConnection
from pact_bot.jobs.sqlite_db import _COLUMNS, _UPDATABLE, _row_to_job
from pact_bot.jobs.sqlite_enqueue import _enqueue_op, _enqueue_with_ack_op

log = logging.getLogger(__name__)


class SqliteQueue(SqliteConnection, Queue):
    """The `Queue` protocol on one SQLite file (see the module docstring).

    `clock` stamps and judges leases (`now()`); processes sharing the file share the wall
    clock.
    """

    # -- deliveries and enqueue --------------------------------------------------------------

    async def record_delivery(self, delivery_id: str, body_sha256: str | None = None) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO deliveries(delivery_id, received_at, body_sha256) "
                "VALUES (?, ?, ?)",
                (delivery_id, time.time(), body_sha256),
            )
            return cur.rowcount == 1

        return await self._write(op, isolated=False)

    async def enqueue(self, job: Job, body_sha256: str | None = None) -> Enqueued:
        result = await self._write(_enqueue_op(job, body_sha256), isolated=False)
        if result is Enqueued.created:
            self._work.set()
        return result

    async def enqueue_with_ack(
        self, job: Job, ack: Job | Callable[[], Job], body_sha256: str | None = None
    ) -> Enqueued:
        """`enqueue(job)`, recording `ack` first (in the same transaction) only when
        `job.key` already has a queued or running job: the job would wait, so a worker
        should react 👀 now. The result is the job's."""
        result = await self._write(_enqueue_with_ack_op(job, ack, body_sha256), isolated=False)
        if result is Enqueued.created:
            self._work.set()
        return result

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, now: float, jobs_before: float, deliveries_before: float) -> Pruned:
        """Finished jobs and old deliveries go; queued and running jobs never do."""

        def op(c: sqlite3.Connection) -> Pruned:
            jobs = c.execute(
                "DELETE FROM jobs WHERE state IN ('succeeded','failed','cancelled') "
                "AND COALESCE(finished_at, created_at) < ?",
                (jobs_before,),
            ).rowcount
            deliveries = c.execute(
                "DELETE FROM deliveries WHERE received_at < ?", (deliveries_before,)
            ).rowcount
            return Pruned(jobs, deliveries)

        return await self._write(op)

    async def wait_for_work(self, timeout: float) -> None:
        """Return when this process enqueued or finished a job, or after `timeout`.

        Workers in the serve process start a job as soon as its 202 is sent instead of at
        their next poll; workers in other processes still poll.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    # -- workers -----------------------------------------------------------------------------

    def _expire_leases(self, c: sqlite3.Connection, now: float) -> None:
        lapsed = c.execute(
            "SELECT id, attempts, cancel_requested FROM jobs "
            "WHERE state = 'running' AND lease_until < ?",
            (now,),
        ).fetchall()
        for job_id, attempts, cancel_requested in lapsed:
            if cancel_requested:
                c.execute(
                    "UPDATE jobs SET state='cancelled', finished_at=?, worker_id=NULL, "
                    "lease_until=NULL, error='cancelled (worker lost)' WHERE id=?",
                    (now, job_id),
                )
            elif attempts >= self.max_attempts:
                c.execute(
                    "UPDATE jobs SET state='failed', finished_at=?, worker_id=NULL, "
                    "lease_until=NULL, error=? WHERE id=?",
                    (now, f"worker lost (lease expired) after {attempts} attempts", job_id),
                )
                self._notify_lost(c, job_id)
            else:
                c.execute(
                    "UPDATE jobs SET state='queued', worker_id=NULL, lease_until=NULL WHERE id=?",
                    (job_id,),
                )

    @staticmethod
    def _notify_lost(c: sqlite3.Connection, job_id: str) -> None:
        """In the failing transaction: the reply job that says so on GitHub."""
        row = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()  # noqa: S608
        notice = lost_notice(_row_to_job(row)) if row else None
        if notice is not None:
            _enqueue_op(notice)(c)

    async def claim(self, worker_id: str, kinds: Collection[JobKind] | None = None) -> Job | None:
        # `jobs_state_seq` still serves the lane: queued rows in seq order, the kind checked on
        # each (measured: 5,000 queued agent jobs ahead of a reply add ~0.7 ms to a claim).
        only = [str(k) for k in kinds or ()]
        kind_filter = "" if kinds is None else f"AND j.kind IN ({','.join('?' * len(only))}) "

        def op(c: sqlite3.Connection) -> Job | None:
            now = self.clock.now()
            self._expire_leases(c, now)
            row = c.execute(
                "SELECT j.seq FROM jobs j WHERE j.state = 'queued' "  # noqa: S608 - placeholders
                f"{kind_filter}"
                "AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.key = j.key AND r.state = 'running') "
                "AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.key = j.key "
                "  AND o.state = 'queued' AND o.seq < j.seq) "
                "ORDER BY j.seq LIMIT 1",
                only,
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, started_at=?, "
                "worker_id=?, lease_until=? WHERE seq=?",
                (now, worker_id, now + self.lease_seconds, row[0]),
            )
            got = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE seq=?", (row[0],))  # noqa: S608
            got = got.fetchone()
            return _row_to_job(got)

        return await self._write(op)

    async def heartbeat(self, job_id: str, worker_id: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND worker_id=? AND state='running'",
                (self.clock.now() + self.lease_seconds, job_id, worker_id),
            )
            return cur.rowcount == 1

        return await self._write(op)

    async def update(self, job_id: str, **fields: Any) -> None:
        """Known columns are set; any other field is merged into `task["progress"]`."""
        cols = {k: v for k, v in fields.items() if k in _UPDATABLE}
        extra = {k: v for k, v in fields.items() if k not in _UPDATABLE}

        def op(c: sqlite3.Connection) -> None:
            if cols:
                sets = ", ".join(f"{k}=?" for k in cols)
                sql = f"UPDATE jobs SET {sets} WHERE id=?"  # noqa: S608 - column names from _UPDATABLE
                c.execute(sql, (*cols.values(), job_id))
            if extra:
                row = c.execute("SELECT task FROM jobs WHERE id=?", (job_id,)).fetchone()
                if row is not None:
                    task = json.loads(row[0])
                    task.setdefault("progress", {}).update(extra)
                    c.execute(
                        "UPDATE jobs SET task=? WHERE id=?",
                        (json.dumps(task, default=str), job_id),
                    )

        await self._write(op)

    async def finish(
        self, job_id: str, worker_id: str, state: JobState, error: str | None = None
    ) -> None:
        if JobState(state) not in TERMINAL:
            raise ValueError(f"finish needs a terminal state, not {state}")

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE jobs SET state=?, error=COALESCE(?, error), finished_at=?, "
                "lease_until=NULL WHERE id=? AND worker_id=? AND state='running'",
                (str(state), error, self.clock.now(), job_id, worker_id),
            )

        await self._write(op)
        self._work.set()  # the next job of this key may start now

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Hand a running job back unstarted (shutdown): queued again, this attempt undone."""

        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), worker_id=NULL, "
                "lease_until=NULL, started_at=NULL WHERE id=? AND worker_id=? AND state='running'",
                (job_id, worker_id),
            )
            return cur.rowcount == 1

        return await self._write(op)

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, key: str) -> list[str]:
        def op(c: sqlite3.Connection) -> list[str]:
            now = self.clock.now()
            rows = c.execute(
                "SELECT id, state FROM jobs WHERE key=? AND state IN ('queued','running') "
                "ORDER BY seq",
                (key,),
            ).fetchall()
            for job_id, state in rows:
                if state == "queued":
                    c.execute(
                        "UPDATE jobs SET state='cancelled', finished_at=?, "
                        "error='cancelled before it started' WHERE id=?",
                        (now, job_id),
                    )
                else:
                    c.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
            return [r[0] for r in rows]

        return await self._write(op)

    async def is_cancelled(self, job_id: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT state, cancel_requested FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
            return row is not None and (row[0] == "cancelled" or bool(row[1]))

        return await self._read(op)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        def op(c: sqlite3.Connection) -> Job | None:
            row = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,))  # noqa: S608
            row = row.fetchone()
            return _row_to_job(row) if row else None

        return await self._read(op)

    async def list(
        self, state: JobState | None = None, key: str | None = None, limit: int = 100
    ) -> list[Job]:
        def op(c: sqlite3.Connection) -> list[Job]:
            where, args = [], []
            if state is not None:
                where.append("state=?")
                args.append(str(state))
            if key is not None:
                where.append("key=?")
                args.append(key)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT ?",  # noqa: S608
                (*args, limit),
            ).fetchall()
            return [_row_to_job(r) for r in rows]

        return await self._read(op)

    async def depth(self) -> dict[str, int]:
        def op(c: sqlite3.Connection) -> dict[str, int]:
            out = {s.value: 0 for s in JobState}
            for state, n in c.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                out[state] = n
            return out

        return await self._read(op)

    async def spent_since(
        self, since: float, repo: str | None = None, installation_id: int | None = None
    ) -> float:
        def op(c: sqlite3.Connection) -> float:
            row = c.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM jobs WHERE created_at >= ? "
                "AND (? IS NULL OR repo = ?) AND (? IS NULL OR installation_id = ?)",
                (since, repo, repo, installation_id, installation_id),
            ).fetchone()
            return float(row[0])

        return await self._read(op)

    async def spend_by_repo(self, since: float) -> dict[str, float]:
        def op(c: sqlite3.Connection) -> dict[str, float]:
            rows = c.execute(
                "SELECT repo, SUM(cost_usd) FROM jobs WHERE created_at >= ? AND cost_usd > 0 "
                "GROUP BY repo",
                (since,),
            ).fetchall()
            return {repo: float(spent) for repo, spent in rows}

        return await self._read(op)

    async def get_repo_config(self, repo: str) -> dict[str, Any] | None:
        def op(c: sqlite3.Connection) -> dict[str, Any] | None:
            row = c.execute("SELECT config FROM repo_config WHERE repo=?", (repo,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._read(op)

    async def set_repo_config(self, repo: str, config: dict[str, Any]) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO repo_config(repo, config, updated_at) VALUES (?,?,?) "
                "ON CONFLICT(repo) DO UPDATE SET config=excluded.config, "
                "updated_at=excluded.updated_at",
                (repo, json.dumps(config), time.time()),
            )

        await self._write(op)
