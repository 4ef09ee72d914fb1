"""This month's spend by repository, from the jobs table: the month's bounds and the
`pact_spend_usd_total` gauge.

Apart from the caps (`pipeline/budget.py`) because the web process needs it for `/metrics`
and must not import the pipeline.
"""

from __future__ import annotations

import datetime as dt

from pact_bot import metrics
from pact_bot.jobs.model import Queue

# Repositories this process has shown: a new month sets those without spend back to zero.
_counted: set[str] = set()


def month_start(now: float) -> float:
    """The first second of `now`'s calendar month in UTC (epoch seconds)."""
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_month(now: float) -> dt.datetime:
    """When the month of `now` ends and the caps reset (UTC)."""
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def show_spend(repo: str, spent: float) -> None:
    _counted.add(repo)
    metrics.spend.labels(repository=repo).set(spent)


async def refresh_spend(queue: Queue, now: float) -> None:
    """On a scrape: this month's spend of every repository, from the jobs table, so a web
    process shows the jobs that `pact-bot worker` processes ran too (one GROUP BY over the
    month's jobs)."""
    spent = await queue.spend_by_repo(month_start(now))
    for repo in sorted(_counted | spent.keys()):
        show_spend(repo, spent.get(repo, 0.0))
