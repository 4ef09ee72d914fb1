"""The Postgres queue's own SQL and the mapping of its rows to `Job`.

Kept apart from the methods that run them so each statement can be read whole, next to the
others that touch the same tables.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from procrastinate import jobs as pjobs
from psycopg.types.json import Jsonb

from pact_bot.jobs.model import (
    QUICK_KINDS,
    Job,
    JobKind,
    JobState,
    fingerprint,
)
from pact_bot.jobs.pg_schema import QUEUE_NAME, QUEUES, QUICK_QUEUE_NAME, TASK_NAME

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
WHERE p.status = 'doing' AND p.queue_name = ANY(%(queues)s)
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
# procrastinate's finish function knows no "cancelled" from `doing`: a cancelled run is aborted.
_PROCRASTINATE_END = {
    JobState.succeeded: pjobs.Status.SUCCEEDED,
    JobState.failed: pjobs.Status.FAILED,
    JobState.cancelled: pjobs.Status.ABORTED,
}


def queue_for(kind: JobKind) -> str:
    """The procrastinate queue a job is deferred to: the lane's for `QUICK_KINDS`."""
    return QUICK_QUEUE_NAME if kind in QUICK_KINDS else QUEUE_NAME


def queues_for(kinds: Collection[JobKind] | None) -> list[str]:
    """The procrastinate queues a claim of `kinds` fetches from. A queue holds whole lanes
    (and the agent queue holds every kind queued before the lane existed), so only all
    kinds or exactly `QUICK_KINDS` can be asked for."""
    wanted = frozenset(JobKind) if kinds is None else frozenset(kinds)
    if wanted == frozenset(JobKind):
        return list(QUEUES)
    if wanted == QUICK_KINDS:
        return [QUICK_QUEUE_NAME]
    lane = ", ".join(sorted(QUICK_KINDS))
    raise ValueError(
        f"the Postgres queue claims every kind or exactly {lane}, not {sorted(wanted)}"
    )


def _row_to_job(r: dict[str, Any]) -> Job:
    """A row of `_COLUMNS` (every column is named after its field of `Job`)."""
    return Job.model_validate(r)


def _enqueue_params(job: Job, body_sha256: str | None = None) -> dict[str, Any]:
    """`_ENQUEUE_SQL`'s parameters for one job."""
    fp = fingerprint(job)
    return {
        "delivery_id": job.delivery_id,
        "body_sha256": body_sha256,
        "received_at": time.time(),
        "id": job.id,
        "queue": queue_for(job.kind),
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
