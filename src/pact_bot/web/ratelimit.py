"""Sliding-window limits on the jobs triggers start, per (repository, sender) and per
repository: what is left of a flood once strangers are dropped (a leaked collaborator
token, a runaway script) must not fill the queue or spend the installation's API budget.

Per process, in memory: a webhook answer must not wait for another round trip to the
queue, and GitHub does not retry (so nothing is gained by a shared exact count). With
`PACT_WEB_PROCESSES=N` a flood spread over the N sockets may start up to N times the limit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` hits per key in any `window` seconds; the clock is injectable."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _live(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    def full(self, key: str) -> bool:
        return len(self._live(key, self.clock())) >= self.limit

    def hit(self, key: str) -> None:
        now = self.clock()
        self._live(key, now)
        self._hits.setdefault(key, deque()).append(now)
        if len(self._hits) > 100_000:  # keys of a long-gone window: forget the oldest half
            for old in list(self._hits)[: len(self._hits) // 2]:
                self._live(old, now)


class TriggerLimits:
    """The two windows together: `check` before recording a job, `hit` once it is new."""

    def __init__(
        self,
        per_sender: int,
        per_repo: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sender = SlidingWindow(per_sender, window, clock)
        self.repo = SlidingWindow(per_repo, window, clock)

    def check(self, repo: str, sender: str) -> str | None:
        """None when the trigger may start a job, else which limit it is over."""
        if self.repo.full(repo.lower()):
            return "repo"
        if self.sender.full(f"{repo.lower()}\0{sender.lower()}"):
            return "sender"
        return None

    def hit(self, repo: str, sender: str) -> None:
        self.repo.hit(repo.lower())
        self.sender.hit(f"{repo.lower()}\0{sender.lower()}")
