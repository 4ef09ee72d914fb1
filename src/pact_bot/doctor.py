"""`pact-bot doctor`: check the configuration end to end, one line per check.

Each line is `✓ <check>: <what was found>` or `✗ <check>: <what is wrong> — fix: <what to do>`.
Every check talks to the real thing (GitHub's API with the App's JWT, the Anthropic API,
bubblewrap, the database, the data directory); nothing is changed except a probe file in the
data directory, which is removed again.

The checks live in `doctor_services.py` and `doctor_host.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from pact_bot.doctor_budget import check_budget
from pact_bot.doctor_check import Check
from pact_bot.doctor_host import (
    check_bubblewrap,
    check_data_dir,
    check_database,
    check_sandbox_exposure,
    check_sandbox_limits,
)
from pact_bot.doctor_sandbox import check_disk, check_toolchains
from pact_bot.doctor_services import (
    PROVIDER_CHECK,
    _first_line,
    check_github,
    check_provider,
    check_webhook_secret,
)
from pact_bot.settings import Settings


async def _guard(name: str, fn: Any, *args: Any) -> list[Check]:
    """A check that breaks unexpectedly is a ✗ line, not a traceback that hides the others."""
    try:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            result = await result
    except Exception as e:
        return [
            Check(
                name,
                False,
                f"the check itself failed ({_first_line(e)})",
                "report this; the other lines still apply",
            )
        ]
    return result if isinstance(result, list) else [result]


async def check_all(settings: Settings) -> list[Check]:
    github, anthropic_check, database = await asyncio.gather(
        _guard("GitHub App JWT accepted", check_github, settings),
        _guard(PROVIDER_CHECK[settings.pact_provider], check_provider, settings),
        _guard("database reachable and migrated", check_database, settings),
    )
    bwrap = await asyncio.to_thread(check_bubblewrap)
    return [
        *github,
        check_webhook_secret(settings),
        *anthropic_check,
        bwrap,
        *await _guard("sandbox resource limits", check_sandbox_limits, settings),
        *await _guard("private files hidden from the sandbox", check_sandbox_exposure, settings),
        *database,
        *await _guard("monthly budget", check_budget, settings),
        *await _guard("data dir writable", check_data_dir, settings),
        *await _guard("toolchains in the sandbox", check_toolchains, settings),
        *await _guard("data dir disk use", check_disk, settings),
    ]


def run_doctor(settings: Settings) -> int:
    checks = asyncio.run(check_all(settings))
    for c in checks:
        click.echo(c.line())
    failed = sum(not c.ok for c in checks)
    click.echo(f"\n{len(checks) - failed}/{len(checks)} checks passed.")
    return 0 if not failed else 1
