"""One progress comment per job, edited as the job goes, never faster than GitHub likes.

GitHub's secondary rate limits punish bursts of content-creating writes, so edits
are throttled: at least `min_interval` seconds apart, except phase changes and the
final state (`force=True`), which are written at once. A throttled update is not
lost: the newest text is written when the interval has passed (trailing edit), and
identical text is never written twice.

The comment is posted and edited through two callbacks, so this module holds no
client: `post(body) -> comment id`, `edit(comment id, body)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pact_bot.clock import Interval

log = logging.getLogger(__name__)

Post = Callable[[str], Awaitable[int]]
Edit = Callable[[int, str], Awaitable[None]]


class ProgressComment:
    def __init__(
        self, post: Post, edit: Edit, *, comment_id: int | None = None, every: Interval
    ) -> None:
        self._post = post
        self._edit = edit
        self.comment_id = comment_id
        self._every = every  # between writes that are not forced
        self._written: str | None = None
        self._pending: str | None = None
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.writes = 0

    async def show(self, body: str, *, force: bool = False) -> None:
        """Show `body`: now when forced or due, otherwise as the trailing edit."""
        if body == self._written and self._pending is None:
            return
        wait = self._every.remaining()
        if force or self.comment_id is None or wait <= 0:
            self._cancel_timer()
            self._pending = None
            await self._write(body)
            return
        self._pending = body
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._trailing(wait))

    async def _trailing(self, wait: float) -> None:
        await self._every.clock.sleep(wait)
        body, self._pending = self._pending, None
        if body is not None:
            try:
                await self._write(body)
            except Exception:
                log.warning("progress comment edit failed", exc_info=True)

    async def _write(self, body: str) -> None:
        async with self._lock:
            if body == self._written:
                return
            if self.comment_id is None:
                self.comment_id = await self._post(body)
            else:
                await self._edit(self.comment_id, body)
            self._written = body
            self._every.mark()
            self.writes += 1

    def _cancel_timer(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = None

    async def close(self) -> None:
        """Drop a pending trailing edit (the final state was forced already)."""
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
