"""The Postgres queue's connection: the pool, transactions and retries on a dropped connection.

Every queue method runs its statements through `_retrying` on a fresh pooled connection, so a
Postgres restart costs a retry, not a failed webhook or a lost job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Self, TypeVar

import psycopg
import psycopg.rows
import psycopg_pool
from procrastinate import manager as pmanager
from procrastinate import sql as psql
from procrastinate.psycopg_connector import PsycopgConnector

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.pg_listen import Wakeups
from pact_bot.jobs.pg_schema import (
    CONNECT_TIMEOUT,
    NOT_MIGRATED,
    NotMigrated,
    _conn_kwargs,
    _is_migrated,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)


def _is_transient(exc: BaseException) -> bool:
    """A dropped connection, a restarting server, a deadlock victim: worth another go."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError | psycopg.errors.AdminShutdown):
            return True
        if isinstance(seen, psycopg.InterfaceError):
            return True
        if type(seen).__name__ == "PoolTimeout":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _pool_without_checkout_check(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's pool checks each connection at checkout and, when one is dead, backs off
    1 s, 2 s, 4 s… before trying the next: after a restart a pool of dead connections stalls
    every query for seconds (longer than a lease). We skip that check; a statement on a dead
    connection fails fast, `_retrying` then has the pool drop all dead idle connections and
    tries again."""
    kwargs["check"] = None
    return psycopg_pool.AsyncConnectionPool(**kwargs)


class PostgresConnection:
    """A pool of connections to the queue's schema (see `PostgresQueue`).

    Without `clock`, leases run on the database's clock (replicas on several hosts agree on
    it) and job timestamps on the system clock; with one, both on it.
    """

    def __init__(
        self,
        dsn: str,
        lease_seconds: float = 60.0,
        max_attempts: int = 3,
        schema: str | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        clock: Clock | None = None,
    ) -> None:
        self.dsn = dsn
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.schema = schema
        self.clock = clock or SYSTEM_CLOCK
        self._lease_clock = clock
        self._pool_args: dict[str, Any] = {
            "conninfo": self.dsn,
            # autocommit: every transaction is an explicit `_tx()` block
            "kwargs": {
                **_conn_kwargs(schema),
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
            },
            "min_size": min_connections,
            "max_size": max_connections,
            "timeout": 15.0,
            "reconnect_timeout": 60.0,
        }
        self._connector: PsycopgConnector | None = None
        self._jobs: pmanager.JobManager | None = None
        self._wakeups: Wakeups | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._connector is not None:
            return
        connector = PsycopgConnector(pool_factory=_pool_without_checkout_check, **self._pool_args)
        await connector.open_async()
        try:
            migrated = await _is_migrated(connector)
        except BaseException:
            await connector.close_async()
            raise
        if not migrated:
            await connector.close_async()
            raise NotMigrated(NOT_MIGRATED)
        self._connector = connector
        self._jobs = pmanager.JobManager(connector)

    async def close(self) -> None:
        wakeups, self._wakeups = self._wakeups, None
        if wakeups is not None:
            await wakeups.stop()
        connector, self._connector, self._jobs = self._connector, None, None
        if connector is not None:
            await connector.close_async()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a job was enqueued anywhere (LISTEN, `jobs/pg_listen.py`), or after
        `timeout`: the caller's poll, which also covers a notification lost while the LISTEN
        connection was down."""
        if self._wakeups is None:
            self._wakeups = Wakeups(self.dsn, self.schema)
        await self._wakeups.wait(timeout)

    @property
    def connector(self) -> PsycopgConnector:
        if self._connector is None:
            raise RuntimeError("PostgresQueue is not open")
        return self._connector

    def _lease_now(self) -> float | None:
        """`%(now)s` of the lease queries: None for the database's clock."""
        return None if self._lease_clock is None else self._lease_clock.now()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.connector.pool.connection() as conn, conn.transaction():
            yield conn

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        for delay in (*_RETRY_DELAYS, None):
            try:
                return await op()
            except Exception as e:
                if delay is None or not _is_transient(e):
                    raise
                with contextlib.suppress(Exception):  # drop every dead idle connection at once
                    await self.connector.pool.check()
                log.warning(
                    "postgres: retrying after a transient error",
                    extra={"op": what, "error": type(e).__name__, "retry_in": delay},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _p_one(
        self, conn: psycopg.AsyncConnection[Any], name: str, **args: Any
    ) -> dict[str, Any]:
        """Run one of procrastinate's own queries on our transaction's connection."""
        row: dict[str, Any] = await self.connector.execute_query_one_async_with_connection(
            conn, query=psql.queries[name], **args
        )
        return row

    @staticmethod
    async def _fetchone(
        conn: psycopg.AsyncConnection[Any], query: str, args: tuple[Any, ...] | dict[str, Any] = ()
    ) -> dict[str, Any] | None:
        async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute(query, args)
            return await cur.fetchone()

    @staticmethod
    async def _fetchall(
        conn: psycopg.AsyncConnection[Any], query: str, args: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute(query, args)
            return await cur.fetchall()

    # -- deliveries and enqueue --------------------------------------------------------------

    @property
    def _manager(self) -> pmanager.JobManager:
        if self._jobs is None:
            raise RuntimeError("PostgresQueue is not open")
        return self._jobs
