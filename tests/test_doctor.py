"""`pact-bot doctor` against the GitHub and Anthropic simulators: one ✓/✗ line per check."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sim.auth import new_private_key_pem

from pact_bot.cli import main as cli
from pact_bot.jobs.sqlite import SqliteQueue

CHECKS = [
    "GitHub App JWT accepted",
    "App installed",
    "webhook secret set",
    "Anthropic key accepted",
    "bubblewrap sandbox usable",
    "sandbox resource limits",
    "private files hidden from the sandbox",
    "database reachable and migrated",
    "monthly budget",
    "data dir writable",
    "toolchains in the sandbox",
    "network for setup (socat)",
    "data dir disk use",
]


@pytest.fixture
def env(
    github_sim: Any, anthropic_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A complete, working configuration; tests break one thing at a time."""
    for key in list(os.environ):
        if key.startswith(("GITHUB_", "PACT_", "ANTHROPIC_")) and not key.startswith("PACT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    db = tmp_path / "pact-bot.db"
    SqliteQueue(db).migrate()
    values = {
        **github_sim.env(),
        **anthropic_sim.env(),
        "PACT_DATABASE_URL": f"sqlite:///{db}",
        "PACT_DATA_DIR": str(tmp_path / "data"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def doctor(monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> tuple[Result, dict]:
    for key, value in changes.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, ["doctor"])
    lines = {}
    for line in result.output.splitlines():
        for name in CHECKS:
            if line[2:].startswith(name + ":"):
                lines[name] = line
    assert list(lines) == CHECKS, f"{result.output}\n{result.exception!r}"
    return result, lines


def test_everything_configured_passes(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    result, lines = doctor(monkeypatch)
    assert result.exit_code == 0, result.output
    assert list(lines) == CHECKS
    assert all(line.startswith("✓ ") for line in lines.values()), result.output
    assert "App pact-bot (id " in lines["GitHub App JWT accepted"]
    assert "1 installation(s): acme" in lines["App installed"]
    assert "13/13 checks passed" in result.output
    for secret in (env["GITHUB_WEBHOOK_SECRET"], env["ANTHROPIC_API_KEY"]):
        assert secret not in result.output


def test_wrong_anthropic_key_fails_with_the_fix(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result, lines = doctor(monkeypatch, ANTHROPIC_API_KEY="sk-ant-wrong-key-000000")
    assert result.exit_code == 1
    line = lines["Anthropic key accepted"]
    assert line.startswith("✗ ") and "refused ANTHROPIC_API_KEY (401)" in line
    assert "fix: set ANTHROPIC_API_KEY to a valid key" in line
    assert "sk-ant-wrong-key" not in result.output
    assert lines["GitHub App JWT accepted"].startswith("✓ ")  # the others still run


def test_unknown_model_and_unreachable_gateway(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lines = doctor(monkeypatch, PACT_MODEL="claude-nonexistent-1")
    assert "does not know the model claude-nonexistent-1 (404)" in lines["Anthropic key accepted"]
    assert "fix: set PACT_MODEL" in lines["Anthropic key accepted"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    result, lines = doctor(monkeypatch, PACT_MODEL=None, ANTHROPIC_BASE_URL=closed)
    assert result.exit_code == 1
    assert f"cannot reach {closed}" in lines["Anthropic key accepted"]
    assert "fix: check ANTHROPIC_BASE_URL" in lines["Anthropic key accepted"]


def test_a_key_of_another_app_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result, lines = doctor(monkeypatch, GITHUB_PRIVATE_KEY=new_private_key_pem())
    assert result.exit_code == 1
    assert "answered 401 to GET /app" in lines["GitHub App JWT accepted"]
    assert "generate a new private key" in lines["GitHub App JWT accepted"]
    assert lines["App installed"].startswith("✗ App installed: not checked")


def test_no_app_points_at_setup(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    result, lines = doctor(
        monkeypatch, GITHUB_APP_ID=None, GITHUB_PRIVATE_KEY=None, GITHUB_WEBHOOK_SECRET=None
    )
    assert result.exit_code == 1
    assert "fix: run `pact-bot setup`" in lines["GitHub App JWT accepted"]
    assert "GITHUB_WEBHOOK_SECRET is not set" in lines["webhook secret set"]


def test_unreachable_github(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/api/v3"
    _, lines = doctor(monkeypatch, GITHUB_API_URL=closed)
    assert f"cannot reach {closed}" in lines["GitHub App JWT accepted"]
    assert "fix: check GITHUB_API_URL" in lines["GitHub App JWT accepted"]


def test_unmigrated_sqlite_and_unwritable_data_dir(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result, lines = doctor(
        monkeypatch,
        PACT_DATABASE_URL=f"sqlite:///{empty}",
        PACT_DATA_DIR=str(blocker / "data"),
    )
    assert result.exit_code == 1
    assert (
        "no jobs table — fix: run `pact-bot db migrate`" in lines["database reachable and migrated"]
    )
    assert lines["data dir writable"].startswith("✗ ")
    assert "fix: set PACT_DATA_DIR" in lines["data dir writable"]


def test_fresh_sqlite_path_is_fine_and_not_created(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fresh = tmp_path / "new.db"
    _, lines = doctor(monkeypatch, PACT_DATABASE_URL=f"sqlite:///{fresh}")
    assert lines["database reachable and migrated"].startswith("✓ ")
    assert not fresh.exists()


def test_postgres_unmigrated_then_migrated(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pg_support import new_schema_name, postgres_dsn

    from pact_bot.jobs.pg_schema import apply_schema, drop_schema

    dsn = postgres_dsn()
    schema = new_schema_name("doctor")
    try:
        _, lines = doctor(monkeypatch, PACT_DATABASE_URL=dsn, PACT_DATABASE_SCHEMA=schema)
        line = lines["database reachable and migrated"]
        assert line.startswith("✗ ") and "fix: run `pact-bot db migrate`" in line
        asyncio.run(apply_schema(dsn, schema))
        _, lines = doctor(monkeypatch)
        assert lines["database reachable and migrated"].startswith("✓ ")
        assert "schema ready" in lines["database reachable and migrated"]
    finally:
        asyncio.run(drop_schema(dsn, schema))
    bad = dsn.rsplit("/", 1)[0] + "/no_such_database_here"
    _, lines = doctor(monkeypatch, PACT_DATABASE_URL=bad, PACT_DATABASE_SCHEMA=None)
    line = lines["database reachable and migrated"]
    assert 'database "no_such_database_here" does not exist' in line
    assert "fix: check PACT_DATABASE_URL" in line


def test_sandbox_limits_line_names_the_mechanism_and_the_limits(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lines = doctor(monkeypatch, PACT_SANDBOX_PIDS="300", PACT_SANDBOX_MEMORY_MB="2048")
    line = lines["sandbox resource limits"]
    assert any(m in line for m in ("systemd scope", "cgroup v", "rlimits")), line
    assert "per command: 300 processes, 2048 MiB memory, 600 s CPU, 1024 MiB per file" in line


def test_private_file_inside_a_sandbox_bind_is_a_failure(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, lines = doctor(monkeypatch, PACT_SANDBOX_BINDS=f"/nonexistent-tools,{tmp_path}")
    assert result.exit_code == 1
    line = lines["private files hidden from the sandbox"]
    assert line.startswith("✗ ")
    assert f"{tmp_path / 'data'} (sandbox bind {tmp_path})" in line
    assert f"{tmp_path / 'pact-bot.db'} (sandbox bind {tmp_path})" in line
    assert "serve and worker refuse to start" in line
    assert "fix: move them out of /usr" in line


def test_toolchains_in_the_sandbox_and_disk_use_against_the_cap(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, lines = doctor(monkeypatch)
    # What a command inside the real sandbox finds (this machine has python3 and git).
    assert "python3 (Python 3." in lines["toolchains in the sandbox"]
    assert "git (git version " in lines["toolchains in the sandbox"]
    assert lines["network for setup (socat)"].startswith("✓ ")
    assert "cap PACT_DATA_MAX_GB=50" in lines["data dir disk use"]

    cache = tmp_path / "data" / "caches" / "acme" / "shop"
    cache.mkdir(parents=True)
    (cache / "wheel").write_bytes(os.urandom(300_000))
    result, lines = doctor(monkeypatch, PACT_DATA_MAX_GB="0.0001")
    assert result.exit_code != 0
    line = lines["data dir disk use"]
    assert line.startswith("✗ ") and "caches 0.3 MiB" in line and "raise PACT_DATA_MAX_GB" in line


async def test_no_toolchain_in_the_sandbox_is_a_failure_naming_what_was_looked_for(
    tmp_path: Path,
) -> None:
    from pact_bot.doctor_sandbox import check_toolchains
    from pact_bot.settings import Settings

    settings = Settings(_env_file=None, pact_data_dir=tmp_path)  # type: ignore[call-arg]
    [tools, _socat] = await check_toolchains(settings, ("no-such-cc", "no-such-go"))
    assert tools.line().startswith("✗ toolchains in the sandbox: none of no-such-cc, no-such-go")


async def test_the_budget_line_shows_this_months_spend_against_the_cap(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    import uuid

    from pact_bot.doctor_budget import check_budget
    from pact_bot.jobs.model import Job, JobKind, JobState
    from pact_bot.settings import Settings
    from pact_bot.spend import month_start

    monkeypatch.setenv("PACT_MONTHLY_BUDGET_USD", "20")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    now = time.time()
    queue = SqliteQueue(settings.sqlite_path)
    await queue.open()
    for cost, created in ((7.5, now), (40.0, month_start(now) - 1)):
        j = Job(
            kind=JobKind.code,
            key="acme/shop#1",
            repo="acme/shop",
            number=1,
            delivery_id=str(uuid.uuid4()),
            sender="alice",
            created_at=created,
            task={"fingerprint": str(cost)},
        )
        await queue.enqueue(j)
        await queue.claim("w")
        await queue.update(j.id, cost_usd=cost)
        await queue.finish(j.id, "w", JobState.succeeded)
    await queue.close()

    under = await check_budget(settings, now)
    assert under.ok and "$7.50 spent this month of PACT_MONTHLY_BUDGET_USD $20.00" in under.line()

    monkeypatch.setenv("PACT_MONTHLY_BUDGET_USD", "5")
    over = await check_budget(Settings(_env_file=None), now)  # type: ignore[call-arg]
    assert not over.ok and "jobs are refused until" in over.line()
