"""Workers: claim a job, run the handler under a renewed lease, record how it ended.

The handler is injected by the process wiring (`cli`, `web.server`): this package knows
nothing of job kinds, and a test passes its own.

A handler exception fails the job with its text (traceback in the log, secrets redacted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from pact_bot import metrics
from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.backends import open_queue
from pact_bot.jobs.model import ERROR_LIMIT, QUICK_KINDS, Job, JobKind, JobState, Queue
from pact_bot.jobs.retention import Retention
from pact_bot.logs import log_context, redact
from pact_bot.settings import Settings
from pact_bot.workspace import Workspace

log = logging.getLogger(__name__)

SWEEP_LOCK_WAIT = 60.0  # seconds the start-up sweep waits for a mirror's lock


@dataclass
class JobOutcome:
    """What a handler returns: how its job ended (the error is redacted before it is stored)."""

    state: JobState
    error: str | None = None
    pr_url: str | None = None


class JobControl:
    """What a running handler may ask of the worker besides its own work."""

    def __init__(self, queue: Queue, job: Job) -> None:
        self.job = job
        self._queue = queue
        self.lease_lost = False

    @property
    def queue(self) -> Queue:
        """The queue this job came from (status, cancel and ack replies read it)."""
        return self._queue

    async def progress(self, **fields: Any) -> None:
        """Record `cost_usd`, `turns` or `pr_url` on the job; any other field lands in
        `task["progress"]`."""
        await self._queue.update(self.job.id, **fields)

    async def cancelled(self) -> bool:
        """Someone ran `/pact cancel`, or this worker lost the lease: stop soon and return a
        cancelled outcome."""
        return self.lease_lost or await self._queue.is_cancelled(self.job.id)

    async def set_repo_config(self, repo: str, config: dict[str, Any]) -> None:
        """Cache a repository's trigger settings for ingress."""
        await self._queue.set_repo_config(repo, config)


Handler = Callable[[Job, JobControl], Awaitable[JobOutcome]]


def _worker_id(slot: int | str) -> str:
    """host:pid:slot:random; a lane worker's slot is `reply<i>`, so leases, logs and
    `pact-bot jobs --json` tell which lane ran a job."""
    return f"{socket.gethostname()}:{os.getpid()}:{slot}:{uuid.uuid4().hex[:6]}"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _idle(queue: Queue, stop: asyncio.Event, seconds: float) -> None:
    """Wait for the next poll, waking early when the backend says work arrived."""
    stopping = asyncio.ensure_future(stop.wait())
    work = asyncio.ensure_future(queue.wait_for_work(seconds))
    try:
        await asyncio.wait({stopping, work}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        work.cancel()


@dataclass(frozen=True)
class _Runner:
    """What the n worker tasks of one `run_workers` share."""

    queue: Queue
    handler: Handler
    stop: asyncio.Event
    poll_interval: float
    grace_seconds: float
    lease_seconds: float
    clock: Clock

    async def loop(self, worker_id: str, kinds: Collection[JobKind] | None = None) -> None:
        """Claim (only `kinds` when given), run, repeat until `stop`."""
        while not self.stop.is_set():
            try:
                job = await self.queue.claim(worker_id, kinds)
            except Exception:
                log.exception("claim failed", extra={"worker_id": worker_id})
                await _wait(self.stop, self.poll_interval)
                continue
            if job is None:
                await _idle(self.queue, self.stop, self.poll_interval)
                continue
            with log_context(job_id=job.id, delivery_id=job.delivery_id):
                await self.run(job, worker_id)

    async def _heartbeat(self, job: Job, worker_id: str, control: JobControl) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            await self.clock.sleep(interval)
            try:
                ok = await self.queue.heartbeat(job.id, worker_id)
            except Exception:
                log.exception("heartbeat failed")
                continue
            if not ok:
                control.lease_lost = True
                return

    async def run(self, job: Job, worker_id: str) -> None:
        control = JobControl(self.queue, job)
        started = self.clock.monotonic()
        log.info(
            "job started",
            extra={"kind": str(job.kind), "key": job.key, "attempt": job.attempts},
        )
        task: asyncio.Task[JobOutcome] = asyncio.ensure_future(self.handler(job, control))
        beat = asyncio.create_task(self._heartbeat(job, worker_id, control))
        stopping = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({task, beat, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and beat.done():
                log.warning("lease lost: another worker may run this job; stopping it")
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                return
            if not task.done():  # shutting down: give it the grace period
                done, _ = await asyncio.wait(
                    {task, beat}, timeout=self.grace_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if task not in done:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    if not control.lease_lost:
                        await self.queue.release(job.id, worker_id)
                    log.warning("job handed back at shutdown")
                    return
            outcome = self._outcome(task)
        finally:
            beat.cancel()
            stopping.cancel()
        if outcome.pr_url:
            await self.queue.update(job.id, pr_url=outcome.pr_url)
        await self.queue.finish(job.id, worker_id, outcome.state, outcome.error)
        elapsed = self.clock.monotonic() - started
        metrics.jobs.labels(kind=str(job.kind), outcome=str(outcome.state)).inc()
        metrics.job_duration.labels(kind=str(job.kind)).observe(elapsed)
        log.info(
            "job finished",
            extra={
                "kind": str(job.kind),
                "outcome": str(outcome.state),
                "error": outcome.error,
                "latency_ms": round(elapsed * 1000, 1),
            },
        )

    @staticmethod
    def _outcome(task: asyncio.Task[JobOutcome]) -> JobOutcome:
        if task.cancelled():
            return JobOutcome(JobState.cancelled, error="handler was cancelled")
        exc = task.exception()
        if exc is not None:
            log.error("job handler raised", exc_info=exc)
            text = redact(f"{type(exc).__name__}: {exc}")[:ERROR_LIMIT]
            return JobOutcome(JobState.failed, error=text)
        outcome = task.result()
        if not isinstance(outcome, JobOutcome):
            return JobOutcome(JobState.failed, error=f"handler returned {outcome!r}")
        if outcome.error:
            outcome.error = redact(outcome.error)
        return outcome


async def run_workers(
    queue: Queue,
    handler: Handler,
    n: int,
    stop: asyncio.Event,
    poll_interval: float = 1.0,
    grace_seconds: float = 30.0,
    lease_seconds: float | None = None,
    clock: Clock = SYSTEM_CLOCK,
    lanes: int = 0,
) -> None:
    """Run n worker tasks, plus `lanes` that claim only `QUICK_KINDS`, until `stop` is set and
    their jobs are finished or handed back.

    The lane keeps a `/pact status` from waiting behind n agent jobs that run for many
    minutes; the n general workers take quick jobs too when they are free. n = 0 runs nothing,
    lanes included (a web-only process claims nothing). Once `stop` is set nothing new is
    claimed; running jobs get `grace_seconds` to finish and the rest are handed back
    (`queue.release`). Heartbeats sleep on `clock`: give the queue's, so a test moves both by
    hand."""
    if n <= 0:
        return
    lease = lease_seconds or queue.lease_seconds
    runner = _Runner(queue, handler, stop, poll_interval, grace_seconds, lease, clock)
    await asyncio.gather(
        *(runner.loop(_worker_id(i)) for i in range(n)),
        *(runner.loop(_worker_id(f"reply{i}"), QUICK_KINDS) for i in range(max(lanes, 0))),
    )


async def sweep_worktrees(settings: Settings) -> None:
    """Remove the worktrees a killed worker's jobs left behind on this machine (no live
    process holds their job lock), before this worker claims anything.

    `pact-bot worker` and `pact-bot serve` run it first; it also removes the homes of killed
    jobs and brings the data dir within `PACT_DATA_MAX_GB` (`pact_bot.housekeeping`). A mirror
    still locked by a killed bot's git is waited for briefly: the worker does not wait to
    start for a helper that may never end, and a later sweep removes what was left."""
    try:
        ws = Workspace(settings.pact_data_dir, mirror_lock_wait=SWEEP_LOCK_WAIT)
        removed = await ws.sweep()
    except Exception:  # a failed clean-up must not keep the worker from starting
        log.warning("could not sweep dead jobs' worktrees", exc_info=True)
        return
    if removed:
        log.info("dead jobs' worktrees removed", extra={"jobs": removed})
    from pact_bot.housekeeping import tidy

    await tidy(settings, dead_jobs=True)


def _reloading(settings: Settings, handler_factory: Callable[[Settings], Handler]) -> Handler:
    """The factory's handler, rebuilt before a job when the env file changed (the setup flow,
    in another process, wrote the App's credentials there)."""
    from pact_bot.settings_watch import EnvFileWatch

    current = {"handler": handler_factory(settings)}

    def changed(new: Settings) -> None:
        current["handler"] = handler_factory(new)

    watch = EnvFileWatch(settings.pact_env_file, changed)

    async def handler(job: Job, control: JobControl) -> JobOutcome:
        watch.check()
        return await current["handler"](job, control)

    return handler


def run_worker_process(
    settings: Settings, concurrency: int, handler_factory: Callable[[Settings], Handler]
) -> None:
    """`pact-bot worker`: workers only (`concurrency` of them, plus `PACT_REPLY_WORKERS` for
    quick jobs), stopped by SIGTERM/SIGINT.

    The handler is rebuilt when the env file changed, so an App registered by `serve`'s setup
    flow is used without a restart."""
    handler = _reloading(settings, handler_factory)

    async def main() -> None:
        queue = open_queue(settings)
        await queue.open()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sweep_worktrees(settings)
        lanes = settings.pact_reply_workers
        log.info("worker started", extra={"concurrency": concurrency, "reply_workers": lanes})
        pruning = asyncio.create_task(Retention.from_settings(settings, queue).run(stop))
        try:
            await run_workers(queue, handler, concurrency, stop, lanes=lanes)
        finally:
            stop.set()
            await pruning
            await queue.close()
        log.info("worker stopped")

    asyncio.run(main())
