"""Wake idle Postgres workers the moment a job is enqueued, from any process.

procrastinate's insert trigger on `procrastinate_jobs` runs `pg_notify` on
`procrastinate_queue_v1#<queue>` with `{"type": "job_inserted", "job_id": ...}`. One dedicated
connection per queue object LISTENs on the channels of pact-bot's queues (the agent jobs' and
the quick lane's) and sets an event that every idle worker of this process waits on, so a job
starts within milliseconds instead of at the next poll.

The notification is only a hint: the worker's poll stays the guarantee. When the LISTEN
connection drops (Postgres restart, `pg_terminate_backend`), waiters simply time out into
their poll while it reconnects with backoff; once listening again it wakes them all, since a
job may have arrived unheard meanwhile. A connection that dies silently is caught by a
`SELECT 1` whenever no notification came for `check_every` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import psycopg
from psycopg import sql

from pact_bot.jobs.pg_schema import CONNECT_TIMEOUT, QUEUES, _conn_kwargs

log = logging.getLogger(__name__)

CHANNELS = tuple(f"procrastinate_queue_v1#{queue}" for queue in QUEUES)
_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)


class Wakeups:
    """A LISTEN connection that sets `work` on each enqueue (see the module docstring)."""

    def __init__(self, dsn: str, schema: str | None, check_every: float = 30.0) -> None:
        self._dsn = dsn
        self._schema = schema
        self._check_every = check_every
        self.work = asyncio.Event()
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def start(self) -> None:
        """Listen from now on (idempotent); the first idle worker calls this."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="pact-pg-listen")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def wait(self, timeout: float) -> None:
        """Return on a notification (or one heard since the last wait), or after `timeout`."""
        self.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.work.wait(), timeout)
        self.work.clear()

    @property
    def backend_pid(self) -> int | None:
        """The LISTEN connection's server pid while connected (tests kill it)."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                log.warning(
                    "postgres: LISTEN connection lost; workers poll until it is back",
                    extra={"error": type(e).__name__, "retry_in": delay},
                )
                await asyncio.sleep(delay)
            else:
                failures = 0

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            **_conn_kwargs(self._schema),
        )
        self._conn = conn
        try:
            for channel in CHANNELS:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.listening.set()
            self.work.set()  # a job enqueued while we were not listening went unheard
            while True:
                heard = False
                async for note in conn.notifies(timeout=self._check_every):
                    heard = True
                    if _is_insert(note.payload):
                        self.work.set()
                if not heard:
                    await conn.execute("SELECT 1")  # a silently dead connection raises here
        finally:
            self.listening.clear()
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()


def _is_insert(payload: str) -> bool:
    """An abort request shares the channel; only a new job is work."""
    try:
        return bool(json.loads(payload).get("type") == "job_inserted")
    except (ValueError, AttributeError):
        return True  # an unknown payload: a needless claim is cheaper than a missed job
