"""The job record and the one queue protocol both backends implement."""

from __future__ import annotations

import asyncio
import builtins
import enum
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from pact_bot.jobs.tasks import TASK_MODELS, ReplyTask, TaskBase, wire

ERROR_LIMIT = 2_000  # characters of the error a finished job records


class JobKind(enum.StrEnum):
    code = "code"  # implement specs, open or update a PR
    revise = "revise"  # answer a review on a bot PR with a commit
    reply = "reply"  # answer a command (help, status, refusal) with a comment
    spec_check = "spec_check"  # offer the "Implement" check run on a spec PR
    drift = "drift"  # a push to the default branch: spec and code drifting apart
    test = "test"  # the test engineer on a PR (`/pact test`, or `phases: [code, test]`)


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})

# Jobs that answer a person within seconds (a comment, 👀, the "Implement" button) and run no
# agent: a lane of workers claims only these, so they never wait behind agent jobs that run
# for minutes to tens of minutes.
QUICK_KINDS = frozenset({JobKind.reply, JobKind.spec_check})


class Job(BaseModel):
    """What a trigger asks for; `task` holds the trigger's details for the worker, stored as
    JSON and read as its kind's model (`jobs.tasks`) with `typed_task()`.

    `key` serialises work: jobs with one key (repository + issue/PR number) run one
    at a time, in arrival order.
    """

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    kind: JobKind
    key: str
    repo: str  # owner/name
    number: int | None = None
    installation_id: int | None = None
    delivery_id: str
    sender: str  # login of the person who triggered
    task: dict[str, Any] = Field(default_factory=dict)
    state: JobState = JobState.queued
    attempts: int = 0
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    pr_url: str | None = None
    cost_usd: float = 0.0
    turns: int = 0
    cancel_requested: bool = False
    worker_id: str | None = None

    def typed_task(self) -> TaskBase:
        """The task as its kind's model (pydantic's ValidationError when it is not one)."""
        return TASK_MODELS[self.kind].model_validate(self.task)

    @classmethod
    def routed(
        cls,
        *,
        id: str,
        kind: JobKind,
        key: str,
        repo: str,
        number: int | None,
        installation_id: int | None,
        delivery_id: str,
        sender: str,
        task: dict[str, Any],
    ) -> Job:
        """`Job(...)` with these fields, without validating them: routing builds one per
        delivery from values already typed (the payload models validated them), and
        validation was a fifth of its cost. What `model_construct` does, minus its walk over
        every field's aliases and defaults; a job read back from the queue is validated as
        ever (tests/test_triggers.py compares this with `Job(...)`)."""
        job = cls.__new__(cls)
        object.__setattr__(
            job,
            "__dict__",
            {
                "id": id,
                "kind": kind,
                "key": key,
                "repo": repo,
                "number": number,
                "installation_id": installation_id,
                "delivery_id": delivery_id,
                "sender": sender,
                "task": task,
                "state": JobState.queued,
                "attempts": 0,
                "created_at": time.time(),
                "started_at": None,
                "finished_at": None,
                "error": None,
                "pr_url": None,
                "cost_usd": 0.0,
                "turns": 0,
                "cancel_requested": False,
                "worker_id": None,
            },
        )
        object.__setattr__(job, "__pydantic_fields_set__", set(_ROUTED_FIELDS))
        object.__setattr__(job, "__pydantic_extra__", None)
        object.__setattr__(job, "__pydantic_private__", None)
        return job

    @staticmethod
    def key_for(repo: str, number: int | None) -> str:
        return f"{repo}#{number}" if number is not None else repo


_ROUTED_FIELDS = frozenset(
    ("id", "kind", "key", "repo", "number", "installation_id", "delivery_id", "sender", "task")
)


class Enqueued(enum.StrEnum):
    created = "created"  # recorded durably: answer 202
    duplicate_delivery = "duplicate_delivery"  # delivery id seen before: 200, nothing
    coalesced = "coalesced"  # an identical job is still queued: 200, nothing new


@dataclass(frozen=True)
class Pruned:
    """What one retention pass deleted."""

    jobs: int
    deliveries: int


class Queue(Protocol):
    """Durable, at-least-once, one-at-a-time per key.

    Every method is safe to call from several processes at once. `claim` hands out
    the oldest queued job whose key has no running job, under a lease that
    `heartbeat` renews; a job whose lease lapsed is claimable again (attempts+1)
    until `max_attempts`, after which it is failed and, in the same transaction, its
    `lost_notice` reply job is enqueued (the failure is said on GitHub).

    Backends subclass it for the default `wait_for_work`. Inside this class `list` is the
    method, hence `builtins.list` in annotations.
    """

    lease_seconds: float

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def record_delivery(self, delivery_id: str, body_sha256: str | None = None) -> bool:
        """Remember a delivery that starts nothing; False when its id or its body (sha256
        of the raw bytes, which the signature covers and the id does not) was seen before."""
        ...

    async def enqueue(self, job: Job, body_sha256: str | None = None) -> Enqueued:
        """Record `job` and its delivery (id and body hash) in one transaction; a delivery
        whose id or body was seen before is `duplicate_delivery`."""
        ...

    async def prune(self, now: float, jobs_before: float, deliveries_before: float) -> Pruned:
        """Delete finished jobs that finished before `jobs_before` and deliveries received
        before `deliveries_before` (epoch seconds; `now` dates nothing, it is for the log)."""
        ...

    async def enqueue_with_ack(
        self, job: Job, ack: Job | Callable[[], Job], body_sha256: str | None = None
    ) -> Enqueued:
        """`enqueue(job)`, recording `ack` first in the same transaction only when the job's
        key already has a queued or running job (the job would wait: react now). `ack` may
        be a function that builds it (`ack_job`): most jobs start at once and need none."""
        ...

    async def claim(self, worker_id: str, kinds: Collection[JobKind] | None = None) -> Job | None:
        """The oldest claimable job, of `kinds` when given: the lane's claim (`QUICK_KINDS`)
        passes over older agent jobs of other keys, never an older job of its own key. The
        Postgres queue keeps the lanes in procrastinate queues, so there `kinds` is None or
        exactly `QUICK_KINDS` (else ValueError)."""
        ...

    async def heartbeat(self, job_id: str, worker_id: str) -> bool:
        """Renew the lease; False when the job is no longer ours (lease lost)."""
        ...

    async def update(self, job_id: str, **fields: Any) -> None:
        """Progress fields a running job reports (cost_usd, turns, pr_url)."""
        ...

    async def finish(
        self, job_id: str, worker_id: str, state: JobState, error: str | None = None
    ) -> None: ...
    async def get(self, job_id: str) -> Job | None: ...
    async def list(
        self, state: JobState | None = None, key: str | None = None, limit: int = 100
    ) -> builtins.list[Job]: ...
    async def depth(self) -> dict[str, int]:
        """Number of jobs per state."""
        ...

    async def request_cancel(self, key: str) -> builtins.list[str]:
        """Mark queued and running jobs of a key cancelled; returns their ids."""
        ...

    async def is_cancelled(self, job_id: str) -> bool: ...

    async def spent_since(
        self, since: float, repo: str | None = None, installation_id: int | None = None
    ) -> float:
        """Dollars (`cost_usd`) of the jobs created at or after `since` (epoch seconds), of
        `repo` and/or `installation_id` when given: what a monthly budget counts."""
        ...

    async def spend_by_repo(self, since: float) -> dict[str, float]:
        """Dollars of the jobs created at or after `since`, by repository (those that spent
        anything): what `/metrics` shows, whichever process ran the jobs."""
        ...

    async def get_repo_config(self, repo: str) -> dict[str, Any] | None:
        """Trigger settings (label, command) cached from the repo's .github/pact.yml."""
        ...

    async def set_repo_config(self, repo: str, config: dict[str, Any]) -> None: ...

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Hand a running job back unstarted (shutdown); False when it is not ours."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when work may have arrived, or after `timeout`.

        Without a way to hear of new work, this just waits: the worker polls.
        """
        await asyncio.sleep(timeout)


LOST_NOTICE_KINDS = frozenset({JobKind.code, JobKind.revise, JobKind.test})


def lost_notice(job: Job) -> Job | None:
    """The reply job that tells GitHub a job failed because its workers kept vanishing.

    Both backends enqueue it in the transaction that fails `job` after `max_attempts` lost
    leases, so the failure is never silent. Only code and revise jobs get one (reply and
    spec-check jobs are themselves the answer; a notice about a notice would loop). Its
    command `lost` is never produced by a webhook (triggers answer unknown words with help);
    its delivery id `lost:<job id>` makes it at most one per failed job.
    """
    if job.kind not in LOST_NOTICE_KINDS:
        return None
    task = job.task
    return Job(
        kind=JobKind.reply,
        key=f"{job.key}:reply",
        repo=job.repo,
        number=job.number,
        installation_id=job.installation_id,
        delivery_id=f"lost:{job.id}",
        sender=job.sender,
        task=wire(
            ReplyTask(
                trigger="system",
                command="lost",
                lost_job_id=job.id,
                lost_kind=str(job.kind),
                attempts=job.attempts,
                number=job.number,
                is_pr=bool(task.get("is_pr")),
                default_branch=task.get("default_branch"),
                original={
                    k: task[k]
                    for k in ("trigger", "comment_id", "review_id", "check_run_id", "command")
                    if k in task
                },
                fingerprint=f"lost:{job.id}",
            )
        ),
    )


def ack_job(ack: Job | Callable[[], Job]) -> Job:
    """The ack job of `enqueue_with_ack`, built only now when it was passed as a function
    (building a job is a fair part of a webhook's routing cost, and most acks are never
    recorded)."""
    return ack if isinstance(ack, Job) else ack()


def fingerprint(job: Job) -> str:
    """What makes two triggers "identical" for coalescing: kind + the task's fingerprint.

    Triggers put a `fingerprint` string in the task (command, spec paths, review id…);
    without one, the whole task is hashed. Both backends coalesce on this value.
    """
    fp = job.task.get("fingerprint")
    if not isinstance(fp, str):
        fp = hashlib.sha256(json.dumps(job.task, sort_keys=True, default=str).encode()).hexdigest()
    return f"{job.kind}:{fp}"
