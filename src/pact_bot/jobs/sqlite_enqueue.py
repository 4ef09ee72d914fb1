"""The SQLite queue's enqueue transactions, as functions a write batch runs.

They are plain functions of a connection because a claim runs one too (a lost job's notice is
enqueued in the claim's transaction).
"""

from __future__ import annotations

import logging
import operator
import sqlite3
import time
from collections.abc import Callable

import orjson

from pact_bot.jobs.model import (
    Enqueued,
    Job,
    ack_job,
    fingerprint,
)

log = logging.getLogger(__name__)

# the jobs row's leading columns, in the INSERT's order (kind: a StrEnum, bound as its text)
_JOB_COLUMNS = operator.attrgetter(
    "id", "kind", "key", "repo", "number", "installation_id", "delivery_id", "sender"
)


_INSERT_FREE = (
    "INSERT INTO jobs(id, kind, key, repo, number, installation_id, delivery_id, sender, task, "
    "fingerprint, state, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,'queued',0,?)"
)
_INSERT_UNLESS_QUEUED = (
    "INSERT INTO jobs(id, kind, key, repo, number, installation_id, delivery_id, sender, task, "
    "fingerprint, state, attempts, created_at) SELECT ?,?,?,?,?,?,?,?,?,?,'queued',0,? "
    "WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE key = ? AND state = 'queued' AND fingerprint = ?)"
)


def _enqueue_op(
    job: Job, body_sha256: str | None = None, key_free: bool = False
) -> Callable[[sqlite3.Connection], Enqueued]:
    """The enqueue transaction's body, also run inside a claim (a lost job's notice).

    `key_free`: this transaction found no queued or running job of `job.key`, so there is
    nothing to coalesce with and the insert skips that lookup."""
    fp = fingerprint(job)
    task = orjson.dumps(job.task, default=str).decode()

    row = (*_JOB_COLUMNS(job), task, fp, job.created_at)
    insert = _INSERT_FREE if key_free else _INSERT_UNLESS_QUEUED
    if not key_free:
        row += (job.key, fp)  # the coalescing lookup's

    def op(c: sqlite3.Connection) -> Enqueued:
        # Two statements on the common path; self-contained (no savepoint): the only
        # write before a possible failure is undone by hand.
        cur = c.execute(  # ignored when the id or the body hash is there already
            "INSERT OR IGNORE INTO deliveries(delivery_id, received_at, job_id, body_sha256) "
            "VALUES (?,?,?,?)",
            (job.delivery_id, time.time(), job.id, body_sha256),
        )
        if cur.rowcount != 1:
            return Enqueued.duplicate_delivery
        try:
            cur = c.execute(insert, row)
            if cur.rowcount == 1:
                return Enqueued.created
            c.execute(
                "UPDATE deliveries SET job_id = (SELECT id FROM jobs WHERE key = ? AND "
                "state = 'queued' AND fingerprint = ? LIMIT 1) WHERE delivery_id = ?",
                (job.key, fp, job.delivery_id),
            )
            return Enqueued.coalesced
        except BaseException:
            c.execute("DELETE FROM deliveries WHERE delivery_id = ?", (job.delivery_id,))
            raise

    return op


def _enqueue_with_ack_op(
    job: Job, ack: Job | Callable[[], Job], body_sha256: str | None = None
) -> Callable[[sqlite3.Connection], Enqueued]:
    """`job`, and before it `ack` only when `job.key` already has a queued or running job
    (otherwise a free worker claims `job` at once and reacts itself). One indexed lookup on
    the common path; a redelivery records neither."""

    def op(c: sqlite3.Connection) -> Enqueued:
        busy = c.execute(
            "SELECT 1 FROM jobs WHERE key = ? AND state IN ('queued','running') LIMIT 1",
            (job.key,),
        ).fetchone()
        if busy is None:
            return _enqueue_op(job, body_sha256, key_free=True)(c)
        job_op = _enqueue_op(job, body_sha256)
        if c.execute(
            "SELECT 1 FROM deliveries WHERE delivery_id = ? OR body_sha256 = ?",
            (job.delivery_id, body_sha256),
        ).fetchone():
            return Enqueued.duplicate_delivery
        c.execute("SAVEPOINT enqueue_ack")
        try:
            try:
                # the ack first, so a free worker reacts while the job waits
                _enqueue_op(ack_job(ack))(c)
            except Exception:
                log.exception("could not record the acknowledgement of job %s", job.id)
            result = job_op(c)
        except BaseException:
            c.execute("ROLLBACK TO enqueue_ack")
            c.execute("RELEASE enqueue_ack")
            raise
        c.execute("RELEASE enqueue_ack")
        return result

    return op
