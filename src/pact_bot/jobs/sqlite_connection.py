"""The SQLite queue's connections: one writer that group-commits, one reader per thread.

Reads never wait for writes (WAL), and every write goes through the one writer so a batch of
concurrent webhooks costs one fsync; a queue belongs to the event loop that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self, TypeVar

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.sqlite_commit import _Committer
from pact_bot.jobs.sqlite_db import _connect, _create_schema

T = TypeVar("T")

log = logging.getLogger(__name__)


class SqliteConnection:
    """The writer and the readers of one queue file (see `SqliteQueue`).

    `clock` stamps and judges leases (`now()`); processes sharing the file share the wall
    clock.
    """

    def __init__(
        self,
        path: str | Path,
        lease_seconds: float = 60.0,
        max_attempts: int = 3,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.clock = clock
        self._writer: _Committer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._work = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-commit:{self.path.name}")
        loop = asyncio.get_running_loop()

        def connect() -> sqlite3.Connection:
            conn = _connect(self.path)
            _create_schema(conn)
            # checkpoints run in a thread (`_Committer`), not inside an inline COMMIT
            conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn

        try:
            self._conn = await loop.run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor
        lock = self.path.with_name(self.path.name + ".writer-lock")
        self._writer = _Committer(self._conn, executor, self._checkpoint, lock)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        conn, self._conn = self._conn, None
        executor, self._executor = self._executor, None
        if conn is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=False)
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        self._local = threading.local()

    def migrate(self) -> None:
        """Create the schema (idempotent); usable without an event loop."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            _create_schema(conn)
        finally:
            conn.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _write(self, fn: Callable[[sqlite3.Connection], T], isolated: bool = True) -> Awaitable[T]:
        """`isolated=False` for requests that leave nothing behind when they raise."""
        if self._writer is None:
            raise RuntimeError("SqliteQueue is not open")
        if asyncio.get_running_loop() is not self._writer.loop:
            return asyncio.to_thread(self._write_alone, fn)
        return self._writer.submit(fn, isolated)

    def _checkpoint(self) -> None:
        self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _write_alone(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write from another event loop (a TestClient thread, say): its own transaction on
        this thread's connection; SQLite's lock orders it with the batches."""
        conn = self._reader()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self._reader()))
