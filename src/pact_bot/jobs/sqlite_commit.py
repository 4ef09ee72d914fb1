"""Group commit for the SQLite queue: one fsync for a whole batch of concurrent writes.

The webhook answers 202 only once its job is on disk; committing each request alone would
cost one fsync per webhook, so requests that arrive while a COMMIT is in flight share the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class _Committer:
    """Group commit on the event loop: write requests collect while the loop is busy or the
    previous COMMIT is on disk, then run back to back in one transaction.

    The requests run on the loop thread (page-cache work, microseconds). BEGIN and COMMIT
    run inline too while they are fast (no other process holds the lock; fsync well under
    `INLINE_LIMIT`): a worker thread would have to win the GIL back from a busy loop for
    every hop, which costs more than the fsync. On a slow disk, or when another process
    holds the write lock, they move to a dedicated thread so the loop keeps answering.

    Several `serve` processes on one file (`PACT_WEB_PROCESSES`) take turns through an
    `flock` on `<db>.writer-lock` around each batch: the kernel wakes the waiting process as
    soon as the lock is released, where SQLite's busy handler sleeps 1, 2, 5, 10… ms and
    lets one process starve the other (p99 of 2 processes: ~200 ms without, ~15 ms with).
    """

    INLINE_LIMIT = 0.002  # seconds; moving average of COMMIT time above this → thread

    CHECKPOINT_EVERY = 0.5  # seconds between WAL checkpoints (off the loop)

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        checkpoint: Callable[[], Any],
        lock_path: Path | None = None,
    ) -> None:
        self._conn = conn
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600) if lock_path else None
        self._checkpoint = checkpoint
        self._checkpointing: asyncio.Future[Any] | None = None
        self._last_checkpoint = time.monotonic()
        self._executor = executor
        self.loop = asyncio.get_running_loop()
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], bool]]
        self._pending = []
        self._drain_task: asyncio.Task[None] | None = None
        self._commit_avg = 0.0

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], isolated: bool = True
    ) -> asyncio.Future[T]:
        fut: asyncio.Future[T] = self.loop.create_future()
        self._pending.append((fn, fut, isolated))
        if self._drain_task is None:
            self._drain_task = self.loop.create_task(self._drain())
        return fut

    async def _off_loop(self, sql: str) -> None:
        await self.loop.run_in_executor(self._executor, self._conn.execute, sql)

    async def _lock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another serve process is writing
            await self.loop.run_in_executor(
                self._executor, fcntl.flock, self._lock_fd, fcntl.LOCK_EX
            )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def _begin(self) -> None:
        await self._lock()
        try:
            await self._begin_transaction()
        except BaseException:
            self._unlock()
            raise

    async def _begin_transaction(self) -> None:
        conn = self._conn
        if self._commit_avg < self.INLINE_LIMIT:
            conn.execute("PRAGMA busy_timeout=0")
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError:
                pass  # another process is writing: wait for it off the loop
            finally:
                conn.execute("PRAGMA busy_timeout=30000")
        await self._off_loop("BEGIN IMMEDIATE")

    async def _commit(self) -> None:
        started = time.perf_counter()
        if self._commit_avg < self.INLINE_LIMIT:
            self._conn.execute("COMMIT")
        else:
            await self._off_loop("COMMIT")
        took = time.perf_counter() - started
        self._commit_avg = 0.8 * self._commit_avg + 0.2 * took
        now = time.monotonic()
        if self._checkpointing is None and now - self._last_checkpoint > self.CHECKPOINT_EVERY:
            self._last_checkpoint = now
            self._checkpointing = self.loop.run_in_executor(None, self._checkpoint)
            self._checkpointing.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, fut: asyncio.Future[Any]) -> None:
        self._checkpointing = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("WAL checkpoint failed: %s", fut.exception())

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let this loop iteration's other requests join
            while self._pending:
                try:
                    await self._begin()
                except Exception as e:
                    batch, self._pending = self._pending, []
                    for _fn, fut, _iso in batch:
                        _resolve(fut, False, e)
                    continue
                batch, self._pending = self._pending, []
                results = self._run(batch)
                try:
                    await self._commit()
                except Exception as e:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                    results = [(False, e)] * len(batch)
                finally:
                    self._unlock()
                for (_fn, fut, _iso), (ok, value) in zip(batch, results, strict=True):
                    _resolve(fut, ok, value)
                await asyncio.sleep(0)
        finally:
            self._drain_task = None

    def _run(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any, bool]]) -> list[Any]:
        conn = self._conn
        results: list[tuple[bool, Any]] = []
        for fn, _fut, isolated in batch:
            if not isolated:
                try:
                    results.append((True, fn(conn)))
                except Exception as e:
                    results.append((False, e))
                continue
            conn.execute("SAVEPOINT op")
            try:
                results.append((True, fn(conn)))
                conn.execute("RELEASE op")
            except Exception as e:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                results.append((False, e))
        return results

    async def close(self) -> None:
        while self._drain_task is not None:
            await asyncio.shield(self._drain_task)
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the caller gave up (cancelled); the write stands
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
