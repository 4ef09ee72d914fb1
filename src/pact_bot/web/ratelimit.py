"""Sliding-window limits on the jobs triggers start, per (repository, sender) and per
repository: what is left of a flood once strangers are dropped (a leaked collaborator
token, a runaway script) must not fill the queue or spend the installation's API budget.

Per process, in memory: no extra round trip to the queue on every delivery's hot path. With
`PACT_WEB_PROCESSES=N` a flood spread over the N sockets may start up to N times the limit;
separate `serve` replicas (Postgres) each count their own.
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

    def unhit(self, key: str) -> None:
        hits = self._hits.get(key)
        if hits:
            hits.pop()


class TriggerLimits:
    """The two windows together. `take` reserves a slot before the job is recorded (a check
    followed by a hit after the write would let a burst of concurrent deliveries all pass);
    `give_back` returns it when the delivery turned out to be a duplicate."""

    def __init__(
        self,
        per_sender: int,
        per_repo: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sender = SlidingWindow(per_sender, window, clock)
        self.repo = SlidingWindow(per_repo, window, clock)

    @staticmethod
    def _keys(repo: str, sender: str) -> tuple[str, str]:
        return repo.lower(), f"{repo.lower()}\0{sender.lower()}"

    def take(self, repo: str, sender: str) -> str | None:
        """None when the trigger may start a job (its slot is taken), else which limit it
        is over (nothing taken)."""
        by_repo, by_sender = self._keys(repo, sender)
        if self.repo.full(by_repo):
            return "repo"
        if self.sender.full(by_sender):
            return "sender"
        self.repo.hit(by_repo)
        self.sender.hit(by_sender)
        return None

    def give_back(self, repo: str, sender: str) -> None:
        by_repo, by_sender = self._keys(repo, sender)
        self.repo.unhit(by_repo)
        self.sender.unhit(by_sender)
