"""Pick the queue backend from PACT_DATABASE_URL.

`open_queue` returns the queue not yet opened (call `await q.open()`); `migrate` is
`pact-bot db migrate`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from pact_bot.jobs.model import Queue
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.settings import Settings


def open_queue(settings: Settings) -> Queue:
    """SQLite for `sqlite:///…`; `pact_bot.jobs.postgres.PostgresQueue` for `postgresql://…`."""
    if settings.is_postgres:
        from pact_bot.jobs.postgres import PostgresQueue  # psycopg only when configured

        return PostgresQueue(
            settings.pact_database_url,
            lease_seconds=settings.pact_lease_seconds,
            max_attempts=settings.pact_max_attempts,
            schema=settings.pact_database_schema,
        )
    return SqliteQueue(
        settings.sqlite_path,
        lease_seconds=settings.pact_lease_seconds,
        max_attempts=settings.pact_max_attempts,
    )


def migrate(settings: Settings) -> int:
    """Apply the schema (idempotent); prints one line."""
    if settings.is_postgres:
        try:
            pg_schema: Any = importlib.import_module("pact_bot.jobs.pg_schema")
        except ImportError as e:
            print(f"pact-bot: the Postgres backend is not available ({e})", file=sys.stderr)
            return 1
        return int(pg_schema.migrate(settings))
    SqliteQueue(settings.sqlite_path).migrate()
    print(f"schema ready in {settings.sqlite_path}")
    return 0
