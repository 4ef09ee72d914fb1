"""Monthly spend caps: per installation (PACT_MONTHLY_BUDGET_USD) and per repository
(`.github/pact.yml` `budget.monthly_usd`), counted from the jobs the queue recorded.

Why from the queue: every replica and worker sees the same jobs table, so the cap holds
across processes without a counter of its own. The month is the calendar month in UTC;
when both caps apply, the one with less headroom left is the one a user is told about.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from pact_bot.jobs.model import Queue
from pact_bot.pipeline.context import JobContext
from pact_bot.repo_config import RepoConfigError
from pact_bot.spend import month_start, next_month, show_spend

WARN_SHARE = 0.8  # from this share of a cap on, a job's progress comment says so


@dataclass(frozen=True)
class Cap:
    """One cap and this month's spend against it."""

    scope: str  # "installation" or "repository"
    limit: float
    spent: float

    @property
    def headroom(self) -> float:
        return self.limit - self.spent

    @property
    def reached(self) -> bool:
        return self.spent >= self.limit

    @property
    def warn(self) -> bool:
        return self.spent >= WARN_SHARE * self.limit


@dataclass(frozen=True)
class Budget:
    """The caps that apply to a repository's job this month; `binding` has least headroom."""

    caps: tuple[Cap, ...]
    repo_spent: float
    resets: dt.datetime

    @property
    def binding(self) -> Cap | None:
        return min(self.caps, key=lambda c: c.headroom, default=None)


async def budget_for(
    queue: Queue,
    now: float,
    repo: str,
    installation_id: int | None,
    installation_cap: float | None,
    repo_cap: float | None,
) -> Budget:
    """This month's spend of `repo` (and of its installation, when capped) against the caps."""
    since = month_start(now)
    repo_spent = await queue.spent_since(since, repo=repo)
    show_spend(repo, repo_spent)
    caps: list[Cap] = []
    if installation_cap is not None:
        spent = await queue.spent_since(since, installation_id=installation_id)
        caps.append(Cap("installation", installation_cap, spent))
    if repo_cap is not None:
        caps.append(Cap("repository", repo_cap, repo_spent))
    return Budget(tuple(caps), repo_spent, next_month(now))


def _cap_words(cap: Cap) -> str:
    if cap.scope == "repository":
        return f"this repository's monthly budget (`budget.monthly_usd`) of ${cap.limit:.2f}"
    return f"this installation's monthly budget (`PACT_MONTHLY_BUDGET_USD`) of ${cap.limit:.2f}"


def _resets(b: Budget) -> str:
    return b.resets.strftime("%Y-%m-%d 00:00 UTC")


def refusal_text(b: Budget, cap: Cap) -> str:
    return (
        f"⛔ **pact-bot** did not start: {_cap_words(cap)} is reached — ${cap.spent:.2f} "
        f"spent this month. No model was called. The budget resets on {_resets(b)}."
    )


def warning_note(b: Budget, cap: Cap) -> str:
    share = round(100 * cap.spent / cap.limit)
    return (
        f"⚠️ {share}% of {_cap_words(cap)} is spent (${cap.spent:.2f}); it resets on {_resets(b)}."
    )


def status_line(b: Budget) -> str:
    """`/pact status`: the month's spend, against the binding cap when there is one."""
    cap = b.binding
    if cap is None:
        return f"This month: ${b.repo_spent:.2f} (no monthly budget set)."
    return f"This month: ${cap.spent:.2f} of ${cap.limit:.2f} ({cap.scope} budget)."


async def job_budget(ctx: JobContext[Any]) -> Budget | None:
    """The caps of `ctx`'s repository this month; None when neither cap is set. An
    unreadable `.github/pact.yml` counts without its cap (the job says why elsewhere)."""
    settings = ctx.rt.settings
    repo_cap = None
    with contextlib.suppress(RepoConfigError):
        repo_cap = (await ctx.config()).budget.monthly_usd
    if repo_cap is None and settings.pact_monthly_budget_usd is None:
        return None
    return await budget_for(
        ctx.queue,
        ctx.rt.clock.now(),
        ctx.job.repo,
        ctx.job.installation_id,
        settings.pact_monthly_budget_usd,
        repo_cap,
    )


async def month_status(ctx: JobContext[Any]) -> str:
    """The `/pact status` line: this month's spend, against the binding cap if any."""
    b = await job_budget(ctx)
    if b is None:
        spent = await ctx.queue.spent_since(month_start(ctx.rt.clock.now()), repo=ctx.job.repo)
        show_spend(ctx.job.repo, spent)
        return f"This month: ${spent:.2f} (no monthly budget set)."
    return status_line(b)
