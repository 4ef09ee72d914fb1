"""The Postgres queue's schema: procrastinate's tables and pact-bot's beside them.

`pact-bot db migrate` runs here, apart from the queue, because migrating is an operator's
step: a replica that opens the queue only checks the tables are there (`NotMigrated`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
from typing import Any

import psycopg
import psycopg.rows
from procrastinate.psycopg_connector import PsycopgConnector
from procrastinate.schema import SchemaManager

from pact_bot.settings import ConfigError, Settings

QUEUE_NAME = "pact"  # agent jobs; every job queued before the lane existed is here too
QUICK_QUEUE_NAME = "pact_quick"  # the jobs of `QUICK_KINDS`, which the lane's workers claim
QUEUES = (QUICK_QUEUE_NAME, QUEUE_NAME)  # pact-bot's procrastinate queues, the lane's first
TASK_NAME = "pact_bot.job"
SCHEMA_VERSION = "2"  # 2: pact_deliveries.body_sha256 (replay dedupe), received_at index
CONNECT_TIMEOUT = 10
NOT_MIGRATED = "database not migrated: run `pact-bot db migrate`"

PACT_SCHEMA = """
CREATE TABLE IF NOT EXISTS pact_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS pact_jobs (
    seq bigserial NOT NULL,
    id text PRIMARY KEY,
    pj_id bigint UNIQUE REFERENCES procrastinate_jobs(id) ON DELETE SET NULL,
    kind text NOT NULL,
    key text NOT NULL,
    repo text NOT NULL,
    number integer,
    installation_id bigint,
    delivery_id text NOT NULL,
    sender text NOT NULL,
    task jsonb NOT NULL,
    fingerprint text NOT NULL,
    state text NOT NULL CHECK (state IN ('queued','running','succeeded','failed','cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    error text,
    pr_url text,
    cost_usd double precision NOT NULL DEFAULT 0,
    turns integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    worker_id text
);
CREATE INDEX IF NOT EXISTS pact_jobs_seq ON pact_jobs(seq);
CREATE INDEX IF NOT EXISTS pact_jobs_state_seq ON pact_jobs(state, seq);
CREATE INDEX IF NOT EXISTS pact_jobs_key_seq ON pact_jobs(key, seq);
CREATE TABLE IF NOT EXISTS pact_deliveries (
    delivery_id text PRIMARY KEY,
    received_at double precision NOT NULL,
    job_id text
);
ALTER TABLE pact_deliveries ADD COLUMN IF NOT EXISTS body_sha256 text;
CREATE UNIQUE INDEX IF NOT EXISTS pact_deliveries_body ON pact_deliveries(body_sha256);
CREATE INDEX IF NOT EXISTS pact_deliveries_received ON pact_deliveries(received_at);
CREATE TABLE IF NOT EXISTS pact_repo_config (
    repo text PRIMARY KEY,
    config jsonb NOT NULL,
    updated_at double precision NOT NULL
);
"""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class NotMigrated(ConfigError):
    """The database lacks procrastinate's or pact-bot's tables."""


def _conn_kwargs(schema: str | None) -> dict[str, Any]:
    if schema is None:
        return {}
    if not _IDENT.match(schema):
        raise ConfigError(f"PACT_DATABASE_SCHEMA: not a plain identifier: {schema!r}")
    return {"options": f"-c search_path={schema}"}


# -- schema ------------------------------------------------------------------------------------


async def _is_migrated(connector: PsycopgConnector) -> bool:
    row = await connector.execute_query_one_async(
        query="SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS p, "
        "to_regclass('pact_jobs') IS NOT NULL AS j, "
        "to_regclass('pact_deliveries') IS NOT NULL AS d, "
        "to_regclass('pact_repo_config') IS NOT NULL AS c, "
        "EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('pact_deliveries') "
        "AND attname = 'body_sha256' AND NOT attisdropped) AS h"
    )
    return all(row.values())


async def apply_schema(dsn: str, schema: str | None = None) -> str:
    """Create procrastinate's schema and ours (idempotent, safe to run concurrently).

    The target is `schema` or the first entry of the connection's search_path (created when
    missing, so `?options=-csearch_path%3Dname` in the DSN works too). Returns its name.
    """
    kwargs = _conn_kwargs(schema)
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **kwargs
    ) as conn:
        target = schema
        if target is None:
            row = await (await conn.execute("SELECT current_schema()")).fetchone()
            target = row[0] if row and row[0] else None
        if target is None:
            path = (await (await conn.execute("SHOW search_path")).fetchone() or [""])[0]
            first = path.split(",")[0].strip().strip('"')
            target = first if first and first != "$user" else "public"
        if not _IDENT.match(target):
            raise ConfigError(f"database schema is not a plain identifier: {target!r}")
        async with conn.transaction():
            # One migrator at a time per schema (replicas may start together).
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('pact-bot migrate:' || %s))", (target,)
            )
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{target}"')
            await conn.execute(f'SET LOCAL search_path TO "{target}"')
            row = await (
                await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            ).fetchone()
            if not (row and row[0]):
                await conn.execute(SchemaManager.get_schema())
            await conn.execute(PACT_SCHEMA)
            await conn.execute(
                "INSERT INTO pact_meta(key, value) VALUES ('schema_version', %s), "
                "('procrastinate_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (SCHEMA_VERSION, importlib.metadata.version("procrastinate")),
            )
    return target


def migrate(target: Settings | str, schema: str | None = None) -> int:
    """`pact-bot db migrate` for Postgres: apply the schema, print one line, return 0."""
    if isinstance(target, Settings):
        dsn = target.pact_database_url
        schema = schema or getattr(target, "pact_database_schema", None)
    else:
        dsn = target
    try:
        name = asyncio.run(apply_schema(dsn, schema))
    except psycopg.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"pact-bot: cannot migrate the database: {first}", flush=True)
        return 1
    print(f"schema ready in Postgres (schema {name})", flush=True)
    return 0


async def drop_schema(dsn: str, schema: str) -> None:
    """Remove a schema and everything in it (tests and benchmarks clean up with this)."""
    if not _IDENT.match(schema):
        raise ValueError(f"not a plain identifier: {schema!r}")
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT
    ) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
