"""What `pact-bot jobs`, the status page, the budgets and the workers read from the Postgres
queue, and the repo-config cache: each read in its own transaction, retried on a dropped
connection like every other statement (`PostgresConnection._retrying`)."""

from __future__ import annotations

import time
from typing import Any

from psycopg.types.json import Jsonb

from pact_bot.jobs.model import Job, JobState
from pact_bot.jobs.pg_connection import PostgresConnection
from pact_bot.jobs.pg_sql import _SELECT_JOBS, _row_to_job


class PostgresReads(PostgresConnection):
    """The `Queue` protocol's reads on `pact_jobs` and `pact_repo_config`."""

    async def _read_one(
        self, what: str, query: str, args: tuple[Any, ...]
    ) -> dict[str, Any] | None:
        """One row of a read in its own transaction, retried on a dropped connection."""

        async def op() -> dict[str, Any] | None:
            async with self._tx() as conn:
                return await self._fetchone(conn, query, args)

        return await self._retrying(what, op)

    async def _read_all(
        self, what: str, query: str, args: tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Every row of a read in its own transaction, retried on a dropped connection."""

        async def op() -> list[dict[str, Any]]:
            async with self._tx() as conn:
                return await self._fetchall(conn, query, args)

        return await self._retrying(what, op)

    async def is_cancelled(self, job_id: str) -> bool:
        row = await self._read_one(
            "is_cancelled", "SELECT state, cancel_requested FROM pact_jobs WHERE id=%s", (job_id,)
        )
        return row is not None and (row["state"] == "cancelled" or row["cancel_requested"])

    async def get(self, job_id: str) -> Job | None:
        row = await self._read_one("get", f"{_SELECT_JOBS} WHERE id=%s", (job_id,))
        return _row_to_job(row) if row else None

    async def list(
        self, state: JobState | None = None, key: str | None = None, limit: int = 100
    ) -> list[Job]:
        rows = await self._read_all(
            "list",
            f"{_SELECT_JOBS} "
            "WHERE (%s::text IS NULL OR state = %s) AND (%s::text IS NULL OR key = %s) "
            "ORDER BY seq DESC LIMIT %s",
            (
                None if state is None else str(state),
                None if state is None else str(state),
                key,
                key,
                limit,
            ),
        )
        return [_row_to_job(r) for r in rows]

    async def depth(self) -> dict[str, int]:
        rows = await self._read_all(
            "depth", "SELECT state, count(*) AS n FROM pact_jobs GROUP BY state"
        )
        return {s.value: 0 for s in JobState} | {r["state"]: r["n"] for r in rows}

    async def spent_since(
        self, since: float, repo: str | None = None, installation_id: int | None = None
    ) -> float:
        row = await self._read_one(
            "spent_since",
            "SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM pact_jobs "
            "WHERE created_at >= %s AND (%s::text IS NULL OR repo = %s) "
            "AND (%s::bigint IS NULL OR installation_id = %s)",
            (since, repo, repo, installation_id, installation_id),
        )
        return float(row["spent"]) if row else 0.0

    async def spend_by_repo(self, since: float) -> dict[str, float]:
        rows = await self._read_all(
            "spend_by_repo",
            "SELECT repo, SUM(cost_usd) AS spent FROM pact_jobs "
            "WHERE created_at >= %s AND cost_usd > 0 GROUP BY repo",
            (since,),
        )
        return {row["repo"]: float(row["spent"]) for row in rows}

    async def get_repo_config(self, repo: str) -> dict[str, Any] | None:
        row = await self._read_one(
            "get_repo_config", "SELECT config FROM pact_repo_config WHERE repo=%s", (repo,)
        )
        return row["config"] if row else None

    async def set_repo_config(self, repo: str, config: dict[str, Any]) -> None:
        async def op() -> None:
            async with self._tx() as conn:
                await conn.execute(
                    "INSERT INTO pact_repo_config(repo, config, updated_at) VALUES (%s,%s,%s) "
                    "ON CONFLICT (repo) DO UPDATE SET config=excluded.config, "
                    "updated_at=excluded.updated_at",
                    (repo, Jsonb(config), time.time()),
                )

        await self._retrying("set_repo_config", op)
