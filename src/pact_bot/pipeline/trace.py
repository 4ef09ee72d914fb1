"""Requirement traceability in code and revise jobs: the table contract in the first
message, the check after the agent stops, and the coverage shown on the PR and check run.

The coverage is computed from the worktree, so a retry after the push (no agent run) shows
the same table as the first attempt. Which files exist is what git tracks in the worktree
(through the hardened runner: no filesystem walk that could follow the agent's symlinks)
plus the paths the change added; the summaries are read through the confined reader.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pact_bot.confined import read_present
from pact_bot.github.repo_api import RepoAPI, best_effort
from pact_bot.traceability import (
    Coverage,
    SpecRequirements,
    check_job,
    followup_message,
    for_spec,
    instruction,
)
from pact_bot.traceability_text import check_output, pr_table

START = "<!-- pact-bot:coverage -->"
END = "<!-- /pact-bot:coverage -->"
_SECTION = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
PR_BODY_MAX = 65_536
GH_TEXT_MAX = 65_535
TITLE_MAX = 250


def job_specs(spec_texts: Sequence[tuple[str, str]], summary_file: str) -> list[SpecRequirements]:
    """The job's specs and their requirements; a job writes one summary for all its specs."""
    return [replace(for_spec(path, text), summary=summary_file) for path, text in spec_texts]


def retarget(specs: Sequence[SpecRequirements], summary_file: str) -> list[SpecRequirements]:
    """The same specs, their table read from the summary the job actually wrote."""
    return [replace(s, summary=summary_file) for s in specs]


def message_part(specs: Sequence[SpecRequirements]) -> str:
    """The table contract for the first message ("" when no spec lists requirements)."""
    return instruction(specs) if any(s.requirements for s in specs) else ""


def coverage_of(
    worktree: Path,
    specs: Sequence[SpecRequirements],
    changed: Collection[str],
    tracked: Collection[str],
    deleted: Collection[str] = (),
) -> Coverage | None:
    """The agent's table checked against the repository after the change; None when no
    spec of the job lists requirements (nothing to trace)."""
    if not any(s.requirements for s in specs):
        return None
    gone = set(deleted)
    exists = (set(tracked) | set(changed)) - gone
    live = [p for p in changed if p not in gone]

    def summary(path: str) -> str | None:
        found = read_present(worktree, [path])
        return found[0][1] if found else None

    return check_job(specs, summary, live, exists)


def followup(coverage: Coverage | None, specs: Sequence[SpecRequirements]) -> str | None:
    """The one follow-up asking for missing rows, or None when nothing is missing."""
    if coverage is None:
        return None
    return followup_message(coverage, sorted({s.summary for s in specs}))


def with_coverage(body: str, coverage: Coverage | None) -> str:
    """The PR body with its coverage section put in (or replaced: revise keeps it current)."""
    if coverage is None:
        return body
    section = f"{START}\n{pr_table(coverage)}\n{END}"
    if _SECTION.search(body):
        new = _SECTION.sub(lambda _: section, body, count=1)
    else:
        new = body.rstrip() + "\n\n" + section + "\n"
    return new if len(new) <= PR_BODY_MAX else body


async def refresh_pr_body(api: RepoAPI, number: int, body: str, coverage: Coverage | None) -> None:
    """Put the current coverage into the PR body; an edit that fails never fails the job."""
    new = with_coverage(body, coverage)
    if new != body:
        with best_effort("refresh the PR body's coverage"):
            await api.set_pull_body(number, new)


def conclusion(base: str, coverage: Coverage | None) -> str:
    """`neutral` when a requirement is untraced; a failure stays a failure."""
    if coverage is None or base in ("failure", "cancelled", "timed_out", "action_required"):
        return base
    return "neutral" if coverage.gaps and base == "success" else base


def with_check_output(output: dict[str, Any], coverage: Coverage | None) -> dict[str, Any]:
    """The check run's output with the coverage: its counts and gaps in the summary, its
    table in the text."""
    if coverage is None:
        return output
    cov = check_output(coverage, limit=30_000)
    out = dict(output)
    if coverage.gaps:  # what needs a look comes first
        out["title"] = f"{cov['title']} · {output.get('title', '')}"[:TITLE_MAX]
    lead = f"**{cov['title']}.** {cov['summary']}"
    out["summary"] = (str(output.get("summary", "")) + "\n\n" + lead)[:GH_TEXT_MAX]
    text = str(output.get("text", ""))
    out["text"] = (cov["text"] + "\n\n" + text)[:GH_TEXT_MAX] if text else cov["text"]
    return out
