"""Keep a bot PR's body true after a revise, CI-fix or continue job: the file table of the
whole PR, the assumptions of the summary as it is now, and the cost and turns summed over
every job that worked on it. The opening lines (the trigger, the specs, `Closes #N`) stay.

The running totals live in a hidden marker in the body itself (`<!-- pact-run … -->`),
with the ids of the jobs already counted, so a retried job is not counted twice; a body
written before the marker existed is read from its "### Run" line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.confined import read_present
from pact_bot.github.repo_api import best_effort
from pact_bot.pipeline import pr_text
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.pr_text import ASSUMPTIONS_LISTED, COMMENT_MAX, FileRow, Summary, file_table
from pact_bot.pipeline.report import RunStats

log = logging.getLogger(__name__)

_MARKER = re.compile(r"<!-- pact-run usd=([\d.]+) turns=(\d+) jobs=([\w,]*) -->")
_RUN_LINE = re.compile(r"^\$(\d+(?:\.\d+)?) · (\d+) turns?", re.M)
_FILES = "### Files"
_STATUS = {"added": "added", "removed": "removed", "renamed": "renamed"}


@dataclass(frozen=True)
class Totals:
    cost_usd: float
    turns: int
    jobs: tuple[str, ...]

    def marker(self) -> str:
        return (
            f"<!-- pact-run usd={self.cost_usd:.4f} turns={self.turns} "
            f"jobs={','.join(self.jobs)} -->"
        )


def totals_of(body: str) -> Totals:
    """What the body says was spent so far."""
    if m := _MARKER.search(body):
        jobs = tuple(j for j in m.group(3).split(",") if j)
        return Totals(float(m.group(1)), int(m.group(2)), jobs)
    if m := _RUN_LINE.search(body):
        first = re.search(r"pact-bot job `(\w+)`", body)
        return Totals(float(m.group(1)), int(m.group(2)), (first.group(1),) if first else ())
    return Totals(0.0, 0, ())


def refreshed_body(
    body: str,
    *,
    job_id: str,
    rows: Sequence[FileRow],
    summary: Summary | None,
    stats: RunStats,
    model: str,
) -> str:
    """The PR body with its files, assumptions and totals brought up to date."""
    before = totals_of(body)
    if job_id in before.jobs:
        totals = before
    else:
        totals = Totals(
            before.cost_usd + stats.cost_usd, before.turns + stats.turns, (*before.jobs, job_id)
        )
    head, found, _ = body.partition(_FILES)
    opening = head.rstrip() if found else body.split("<!-- pact-run", 1)[0].rstrip()
    parts = [opening, "", _FILES, "", file_table(rows), ""]
    if summary is not None:
        parts += ["### Assumptions the agent recorded", ""]
        if summary.assumptions:
            parts += [f"- {a}" for a in summary.assumptions[:ASSUMPTIONS_LISTED]]
        else:
            parts.append("None recorded.")
        parts.append("")
    runs = len(totals.jobs)
    parts += [
        "### Run",
        "",
        f"${totals.cost_usd:.2f} · {totals.turns} turn{'s' if totals.turns != 1 else ''} "
        f"over {runs} job{'s' if runs != 1 else ''} · last: {stats.line()} · model `{model}`",
        "",
        "Review it like any other pull request: a review with comments or "
        '"Request changes" makes pact-bot push a follow-up commit.',
        "",
        f"<sub>pact-bot job `{job_id}`</sub>",
        totals.marker(),
    ]
    return pr_text._clip("\n".join(parts), COMMENT_MAX)


async def refresh_pr_body(
    ctx: JobContext[Any],
    worktree: Path,
    summary_file: str | None,
    stats: RunStats,
    model: str,
) -> None:
    """Rewrite the PR's body after a push; never a reason for the job to fail."""
    with best_effort("refresh the pull request's body"):
        pr = await ctx.api.pull(ctx.number)
        files = await ctx.api.pull_files(ctx.number)
        rows = [
            FileRow(f.filename, _STATUS.get(f.status, "modified"), f.additions, f.deletions)
            for f in files
        ]
        summary = None
        if summary_file:
            text = "".join(t for _, t in read_present(worktree, [summary_file]))
            summary = pr_text.parse_summary(text) if text else None
        body = refreshed_body(
            pr.body or "", job_id=ctx.job.id, rows=rows, summary=summary, stats=stats, model=model
        )
        if body != (pr.body or ""):
            await ctx.api.set_pull_body(ctx.number, body)
