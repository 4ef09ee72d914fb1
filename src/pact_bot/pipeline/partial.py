"""Partial work is kept: a code or revise job that stops early (turn, dollar or time budget,
cancel, the context window, or no summary after changes) commits what the agent wrote and
pushes it to the job's own branch as a DRAFT pull request that says it is partial: what was
done, what the agent was doing when it stopped, and which limit ran out. Never to the
default branch; the post-run checks still apply, so a partial change that touches a
protected path or holds a secret is not pushed, and the job says so.

`/pact continue [instructions]` on that PR resumes on the same branch with a fresh budget
(a revise job whose first message carries `continue_notes`); when it completes, the PR is
marked ready for review (GraphQL: REST cannot un-draft) and loses its "[partial]" title.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.github.repo_api import best_effort
from pact_bot.pipeline.agent_run import Implementation
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.pr_text import COMMENT_MAX, FileRow, file_table
from pact_bot.pipeline.report import Failure

log = logging.getLogger(__name__)

# Stops that leave work worth keeping (model errors with changes count too: the service
# failed, not the work).
KEEPABLE = frozenset(
    {
        Failure.budget,
        Failure.cancelled,
        Failure.context_window,
        Failure.no_summary,
        Failure.model_error,
    }
)
TITLE_PREFIX = "[partial] "
START, END = "<!-- pact-partial -->", "<!-- /pact-partial -->"
LAST_TEXT = 1_500
LAST_CALLS = 8
_BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)


@dataclass(frozen=True)
class Stop:
    """Why the run stopped, in words."""

    kind: Failure
    detail: str

    def reason(self) -> str:
        return {
            Failure.budget: f"it reached its budget ({self.detail})",
            Failure.cancelled: "the job was cancelled",
            Failure.context_window: "the work outgrew the model's context window",
            Failure.no_summary: "it did not write the implementation summary",
            Failure.model_error: f"the model service failed ({self.detail})",
        }.get(self.kind, self.kind.value)


def keepable(failed: tuple[Failure, str, list[str]] | None, impl: Implementation) -> Stop | None:
    """The stop to keep partial work for, or None (nothing changed, or another failure)."""
    if failed is None or failed[0] not in KEEPABLE or not impl.paths:
        return None
    return Stop(failed[0], failed[1] or impl.budget_detail)


def unsafe(impl: Implementation) -> str | None:
    """Why the partial change may not be pushed (the post-run checks), or None."""
    problems = impl.checks.problems
    if Failure.protected in problems:
        files = ", ".join(f"`{p}`" for p in impl.checks.protected[:10])
        return f"it changes protected paths ({files})"
    if Failure.secret in problems:
        return "its diff holds a secret value of the bot's own configuration"
    return None


def not_pushed_text(stop: Stop, why: str) -> str:
    return (
        f"The agent stopped before finishing: {stop.reason()}. Its partial work was NOT "
        f"pushed: {why}. Nothing was changed on GitHub."
    )


def last_steps(messages: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """The agent's last words and its last tool calls, from the run's conversation."""
    words = ""
    calls: list[str] = []
    for msg in reversed(messages):
        if msg.get("role") != "assistant":
            continue
        content = msg.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for b in reversed(blocks or []):
            kind = b.get("type") if isinstance(b, dict) else getattr(b, "type", None)
            get = b.get if isinstance(b, dict) else lambda k, b=b: getattr(b, k, None)
            if kind == "text" and not words and str(get("text") or "").strip():
                words = str(get("text")).strip()
            elif kind == "tool_use" and len(calls) < LAST_CALLS:
                args = json.dumps(get("input") or {}, ensure_ascii=False)
                calls.append(f"`{get('name')}` {args[:160]}")
        if words and len(calls) >= LAST_CALLS:
            break
    calls.reverse()
    return words[-LAST_TEXT:], calls


def partial_block(stop: Stop, impl: Implementation, command: str) -> str:
    """What the PR body says about the stop, between markers a later job replaces."""
    words, calls = last_steps(impl.messages)
    lines = [
        START,
        "> [!WARNING]",
        f"> **Partial work.** pact-bot stopped before finishing: {stop.reason()}. These "
        "commits are what the agent had written so far; the implementation is not complete.",
        "",
        f"Comment `{command} continue [instructions]` to resume on this branch with a fresh "
        "budget; the pull request is marked ready for review when that job completes.",
        "",
        "#### What the agent was doing when it stopped",
        "",
    ]
    if words:
        lines += ["Its last words:", "", *(f"> {line}" for line in words.splitlines()), ""]
    if calls:
        lines += ["Its last tool calls:", "", *(f"- {c}" for c in calls), ""]
    if not words and not calls:
        lines += ["(the transcript holds no text or tool call)", ""]
    lines += [
        f"Budget used: {impl.stats.line()}; stop: `{impl.stop}`.",
        END,
    ]
    return "\n".join(lines)


def strip_partial(body: str) -> str:
    return _BLOCK.sub("", body).strip() + "\n"


def notes_of(body: str) -> str:
    """The previous run's notes from a partial PR's body (for `/pact continue`)."""
    m = _BLOCK.search(body)
    if not m:
        return ""
    text = m.group(0).removeprefix(START).removesuffix(END)
    return text.split("#### What the agent was doing when it stopped", 1)[-1].strip()


def continue_notes(body: str, files: Sequence[str], instructions: str) -> str:
    """The first message's part for `/pact continue`: where the last run stopped."""
    parts = [
        "This pull request holds PARTIAL work: an earlier run stopped before it finished. "
        "Continue the implementation from where it stopped (the files are on the branch), "
        "complete it, and write or update the implementation summary.",
        "Files the pull request changes so far: " + ", ".join(f"`{f}`" for f in files[:100]),
    ]
    if notes := notes_of(body):
        parts.append("What the previous run was doing when it stopped:\n\n" + notes)
    if instructions.strip():
        parts.append("The person asking to continue adds:\n\n" + instructions.strip())
    return "\n\n".join(parts)


def partial_pr_body(opening: str, block: str, rows: Sequence[FileRow], job_id: str) -> str:
    text = "\n".join(
        [
            opening.rstrip(),
            "",
            block,
            "",
            "### Files",
            "",
            file_table(rows),
            "",
            f"<sub>pact-bot job `{job_id}`</sub>",
        ]
    )
    return text[:COMMENT_MAX]


async def finish_continue(ctx: JobContext[Any], worktree: Path) -> None:
    """A completed `/pact continue`: the PR is ready for review and no longer partial."""
    del worktree  # the body is refreshed by the revise job itself
    pr = await ctx.api.pull(ctx.number)
    with best_effort("mark the pull request ready for review"):
        if pr.draft:
            await ctx.api.mark_ready(pr.node_id)
    with best_effort("update the pull request's title and body"):
        if pr.title.startswith(TITLE_PREFIX):
            await ctx.api.set_pull_title(ctx.number, pr.title.removeprefix(TITLE_PREFIX))
        body = pr.body or ""
        if START in body:
            await ctx.api.set_pull_body(ctx.number, strip_partial(body))
