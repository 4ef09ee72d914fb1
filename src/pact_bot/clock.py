"""The time source for leases, heartbeats and throttles, injectable so tests move it by hand.

A lease test on the real clock has to sleep past the lease, and a 0.3 s lease with 0.1 s
heartbeats flakes on a busy machine. Code that measures time asks a `Clock`; `SYSTEM_CLOCK`
is the real one, `FakeClock` stands still until a test calls `advance`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch: what is stored and compared across processes."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back: intervals within a process."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class Interval:
    """Something done at most once every `seconds` on `clock` (a progress comment's edits, a
    look at the env file): the throttles share one notion of when the next may happen."""

    def __init__(self, seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last = -math.inf  # never done: due at once

    def remaining(self) -> float:
        """Seconds until the next may happen; zero or less: now."""
        return self._last + self.seconds - self.clock.monotonic()

    def mark(self) -> None:
        """It happened now."""
        self._last = self.clock.monotonic()


class FakeClock:
    """Time that passes only in `advance`; sleepers wake when it passes their deadline.

    `now()` starts at the real wall time (so stamps look plausible next to real ones, e.g.
    in a database) and moves with `monotonic()`.
    """

    def __init__(self, start: float | None = None) -> None:
        self._epoch = time.time() if start is None else start
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._epoch + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    @property
    def sleepers(self) -> int:
        """How many `sleep` calls are waiting (a test waits for a task to reach its sleep)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._order), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper due by then in deadline order.

        Each woken sleeper's task gets to run (up to its next await) before time moves on, so
        a loop that sleeps again is woken again if its next deadline also falls in the step.
        """
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self._elapsed + seconds
        for _ in range(3):  # tasks created just before reach their sleep first
            await asyncio.sleep(0)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, deadline)
            if not fut.done():
                fut.set_result(None)
                for _ in range(3):  # the woken task runs until it awaits something else
                    await asyncio.sleep(0)
        self._elapsed = target
        await asyncio.sleep(0)
