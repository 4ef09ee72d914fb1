"""Postgres test helpers: the DSN from PACT_TEST_POSTGRES_DSN, one throwaway schema per test.

Without PACT_TEST_POSTGRES_DSN the Postgres tests skip with a reason (`.ci/run` sets it).
A schema per test keeps tests (and other helpers' test runs) from seeing each other's jobs;
`application_name` in the DSN lets a test find, and kill, only its own connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest

from pact_bot.jobs.model import Job, JobState
from pact_bot.jobs.pg_schema import apply_schema, drop_schema
from pact_bot.jobs.worker import Handler, JobControl, JobOutcome
from pact_bot.settings import Settings

DSN_ENV = "PACT_TEST_POSTGRES_DSN"
T = TypeVar("T")


def postgres_dsn() -> str:
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        pytest.skip(f"{DSN_ENV} is not set: no Postgres to test against (.ci/run sets it)")
    return dsn


def with_params(dsn: str, **params: str) -> str:
    """Add libpq parameters (application_name, options…) to a postgresql:// URL."""
    sep = "&" if "?" in dsn else "?"
    return dsn + sep + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def new_schema_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class PgSchema:
    """A migrated schema that lives for one test."""

    def __init__(self, dsn: str, name: str) -> None:
        self.base_dsn = dsn
        self.name = name
        self.app_name = f"pact-test-{name}"
        self.dsn = with_params(dsn, application_name=self.app_name)

    def env(self) -> dict[str, str]:
        """What a `pact-bot` subprocess needs to use this schema."""
        return {"PACT_DATABASE_URL": self.dsn, "PACT_DATABASE_SCHEMA": self.name}

    def terminate_connections(self) -> int:
        """pg_terminate_backend on this test's connections only; returns how many."""
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.app_name,),
            ).fetchall()
        return len(rows)

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.name}"')
            return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from sync or async code (its own loop, its own thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


def make_schema(prefix: str = "t", migrate: bool = True) -> PgSchema:
    dsn = postgres_dsn()
    schema = PgSchema(dsn, new_schema_name(prefix))
    if migrate:
        _run(apply_schema(dsn, schema.name))
    return schema


def remove_schema(schema: PgSchema) -> None:
    _run(drop_schema(schema.base_dsn, schema.name))


# -- handlers for worker subprocesses (`python -m pg_support worker|serve ...`) ---------------


async def sleep_handler(job: Job, control: JobControl, app_id: int | None = None) -> JobOutcome:
    """Takes PACT_TEST_SLEEP seconds and appends its start/end (and the App id its worker's
    settings held) to PACT_TEST_RECORD."""
    record = Path(os.environ["PACT_TEST_RECORD"])
    seconds = float(os.environ.get("PACT_TEST_SLEEP", "0.05"))
    start = time.time()
    await asyncio.sleep(seconds)
    end = time.time()
    line = {
        "job_id": job.id,
        "key": job.key,
        "delivery_id": job.delivery_id,
        "attempt": job.attempts,
        "pid": os.getpid(),
        "start": start,
        "end": end,
        "app_id": app_id,
    }
    with record.open("a") as f:  # one short write per line: appends from processes stay whole
        f.write(json.dumps(line) + "\n")
    return JobOutcome(JobState.succeeded)


def read_records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sleep_handler_for(settings: Settings) -> Handler:
    """`sleep_handler`, recording the App id of the settings the worker built it from."""

    async def handler(job: Job, control: JobControl) -> JobOutcome:
        return await sleep_handler(job, control, app_id=settings.github_app_id)

    return handler


if __name__ == "__main__":  # pact-bot's CLI with `sleep_handler` injected as the job handler
    from pact_bot.cli import main

    main(obj={"handler_factory": sleep_handler_for})
