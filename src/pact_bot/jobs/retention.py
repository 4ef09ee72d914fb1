"""Retention: finished jobs and remembered deliveries are deleted once old enough, so the
queue's tables stop growing with every webhook ever received.

Run by every process that runs workers (`serve` with workers, `pact-bot worker`): each
prunes at most once per `every` seconds; several doing it is harmless (the deletes are
idempotent). Delivery ids and body hashes only need to outlive GitHub's redeliveries and a
replay's usefulness; finished jobs stay for `pact-bot jobs` and the status page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from pact_bot import metrics
from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.model import Pruned, Queue
from pact_bot.settings import Settings

log = logging.getLogger(__name__)
DAY = 86_400.0


@dataclass
class Retention:
    """`prune_if_due()` deletes what is past its age, at most once per `every` seconds of
    the injected wall clock (the tables store epoch seconds)."""

    queue: Queue
    jobs_days: float
    deliveries_days: float
    every: float = 3600.0
    clock: Clock = SYSTEM_CLOCK
    _due: float = field(default=float("-inf"), init=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, queue: Queue, clock: Clock = SYSTEM_CLOCK
    ) -> Retention:
        return cls(
            queue,
            settings.pact_retention_jobs_days,
            settings.pact_retention_deliveries_days,
            clock=clock,
        )

    async def prune_if_due(self) -> Pruned | None:
        """None when not due yet or when the queue failed (logged; tried again next time)."""
        now = self.clock.now()
        if now < self._due:
            return None
        self._due = now + self.every
        jobs_cut, deliveries_cut = now - self.jobs_days * DAY, now - self.deliveries_days * DAY
        try:
            pruned = await self.queue.prune(now, jobs_cut, deliveries_cut)
        except Exception:
            log.exception("retention: pruning the queue failed")
            return None
        metrics.pruned.labels(table="jobs").inc(pruned.jobs)
        metrics.pruned.labels(table="deliveries").inc(pruned.deliveries)
        if pruned.jobs or pruned.deliveries:
            log.info("retention", extra={"jobs": pruned.jobs, "deliveries": pruned.deliveries})
        return pruned

    async def run(self, stop: asyncio.Event, poll: float = 60.0) -> None:
        """Until `stop`: prune when due, look again every `poll` seconds."""
        while not stop.is_set():
            await self.prune_if_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
