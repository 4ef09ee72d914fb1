"""Queue factories for the backend-parametrised tests (edit the postgres branch freely).

`QueueFactory(backend, tmp_path)` makes queues that share one store: calling it twice gives two
independent clients (two connections / writers), like two processes. `spec()` is a JSON-able
description a subprocess can rebuild the same queue from with `queue_from_spec`. A `clock`
(a `FakeClock`) runs the queue's leases on time the test moves by hand.
"""

from __future__ import annotations

import importlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.model import Queue
from pact_bot.jobs.sqlite import SqliteQueue

BACKENDS = ["sqlite", "postgres"]


def queue_from_spec(spec: dict[str, Any], clock: Clock | None = None) -> Queue:
    if spec["backend"] == "sqlite":
        return SqliteQueue(
            spec["path"],
            lease_seconds=spec["lease_seconds"],
            max_attempts=spec["max_attempts"],
            clock=clock or SYSTEM_CLOCK,
        )
    postgres: Any = importlib.import_module("pact_bot.jobs.postgres")
    return postgres.PostgresQueue(
        spec["dsn"],
        lease_seconds=spec["lease_seconds"],
        max_attempts=spec["max_attempts"],
        schema=spec["schema"],
        clock=clock,
    )


class QueueFactory:
    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        self.opened: list[Queue] = []
        self._migrated = False
        if backend == "postgres":
            try:
                importlib.import_module("pact_bot.jobs.postgres")
            except ImportError:
                pytest.skip("pact_bot.jobs.postgres is not written yet")
            if not os.environ.get("PACT_TEST_POSTGRES_DSN"):
                pytest.skip("PACT_TEST_POSTGRES_DSN is not set")

    def spec(self, lease_seconds: float = 30.0, max_attempts: int = 3) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "path": str(self.tmp_path / "queue.db"),
            "dsn": os.environ.get("PACT_TEST_POSTGRES_DSN", ""),
            "schema": self.schema,
            "lease_seconds": lease_seconds,
            "max_attempts": max_attempts,
        }

    async def __call__(
        self, lease_seconds: float = 30.0, max_attempts: int = 3, clock: Clock | None = None
    ) -> Queue:
        if self.backend == "postgres" and not self._migrated:  # one fresh schema per test
            pg_schema: Any = importlib.import_module("pact_bot.jobs.pg_schema")
            await pg_schema.apply_schema(os.environ["PACT_TEST_POSTGRES_DSN"], self.schema)
            self._migrated = True
        queue = queue_from_spec(self.spec(lease_seconds, max_attempts), clock)
        await queue.open()
        self.opened.append(queue)
        return queue

    async def close_all(self) -> None:
        for queue in self.opened:
            await queue.close()
        self.opened.clear()
        if self._migrated:
            pg_schema: Any = importlib.import_module("pact_bot.jobs.pg_schema")
            await pg_schema.drop_schema(os.environ["PACT_TEST_POSTGRES_DSN"], self.schema)
            self._migrated = False
