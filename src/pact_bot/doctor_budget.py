"""`pact-bot doctor`'s budget line: this month's spend against PACT_MONTHLY_BUDGET_USD."""

from __future__ import annotations

import asyncio
import contextlib
import time

from pact_bot.doctor_check import Check
from pact_bot.jobs.backends import open_queue
from pact_bot.settings import Settings
from pact_bot.spend import month_start, next_month

NAME = "monthly budget"
TIMEOUT = 10.0


async def check_budget(settings: Settings, now: float | None = None) -> Check:
    """Spend of every installation together: over the cap, at least one job will be refused
    (each installation has the cap to itself, so under it none is known to be)."""
    now = time.time() if now is None else now
    cap = settings.pact_monthly_budget_usd
    if not settings.is_postgres and not settings.sqlite_path.exists():
        spent = 0.0  # no queue yet: opening one here would create it
    else:
        queue = open_queue(settings)
        try:
            await asyncio.wait_for(queue.open(), TIMEOUT)
            spent = await queue.spent_since(month_start(now))
        finally:
            with contextlib.suppress(Exception):
                await queue.close()
    resets = next_month(now).strftime("%Y-%m-%d")
    if cap is None:
        return Check(NAME, True, f"${spent:.2f} spent this month; PACT_MONTHLY_BUDGET_USD not set")
    detail = f"${spent:.2f} spent this month of PACT_MONTHLY_BUDGET_USD ${cap:.2f}"
    if spent >= cap:
        return Check(
            NAME,
            False,
            f"{detail} (per installation): jobs are refused until {resets}",
            "raise PACT_MONTHLY_BUDGET_USD, or wait for the new month",
        )
    return Check(NAME, True, f"{detail} (per installation; resets {resets})")
