"""Pushing partial work (the rules are in `pipeline/partial.py`): the code job's draft PR,
and the revise job's commit on its PR."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pact_bot.github.repo_api import best_effort
from pact_bot.jobs.model import JobState
from pact_bot.jobs.tasks import CodeTask
from pact_bot.jobs.worker import JobOutcome
from pact_bot.pipeline import pr_text
from pact_bot.pipeline.agent_run import Implementation
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.partial import (
    END,
    START,
    TITLE_PREFIX,
    Stop,
    not_pushed_text,
    partial_block,
    partial_pr_body,
    strip_partial,
    unsafe,
)
from pact_bot.pipeline.publish import Publication, trigger_text
from pact_bot.pipeline.report import SHA_SHORT, Failure
from pact_bot.pipeline.steps import ERROR_LINE_LIMIT, JobFailed, ProgressTracker, author, fail
from pact_bot.workspace import PushRejected

log = logging.getLogger(__name__)


async def _commit_and_push(
    ctx: JobContext[Any], wt: Path, impl: Implementation, stop: Stop, branch: str, title: str
) -> str:
    if (why := unsafe(impl)) is not None:
        raise JobFailed(Failure.partial, not_pushed_text(stop, why))
    info = await ctx.info()
    if branch == info.default_branch:  # never: partial work goes to the job's own branch
        raise JobFailed(stop.kind, stop.detail)
    ws = ctx.rt.workspace
    # The job line differs from a finished commit's, so a retry never takes this commit
    # for a finished implementation.
    sha = await ws.commit(
        wt,
        f"WIP: {title} (partial: {stop.reason()})\n\npact-bot partial job {ctx.job.id}",
        author=await author(ctx),
    )
    try:
        await ws.push(wt, info.clone_url, await ctx.api.token(), branch)
    except PushRejected as e:
        raise JobFailed(Failure.push_refused, str(e).splitlines()[0][:ERROR_LINE_LIMIT]) from None
    return sha


def _with_block(body: str, block: str) -> str:
    body = strip_partial(body) if START in body and END in body else body
    head, found, rest = body.partition("### Files")
    return f"{head.rstrip()}\n\n{block}\n\n{found}{rest}" if found else f"{body}\n\n{block}"


async def _outcome(
    ctx: JobContext[Any], tracker: ProgressTracker, stop: Stop, text: str, pr_url: str
) -> JobOutcome:
    out = await fail(tracker, Failure.partial, text)
    state = JobState.cancelled if stop.kind is Failure.cancelled else out.state
    return JobOutcome(state, error=out.error, pr_url=pr_url)


async def keep_code_partial(
    ctx: JobContext[CodeTask],
    tracker: ProgressTracker,
    wt: Path,
    impl: Implementation,
    stop: Stop,
    pub: Publication,
) -> JobOutcome:
    """Commit, push to the job's branch and open (or mark) the draft PR."""
    title = pr_text.pr_title(pub.components)
    sha = await _commit_and_push(ctx, wt, impl, stop, pub.branch, title)
    command = await ctx.command_word()
    block = partial_block(stop, impl, command)
    rows = pr_text.file_rows(impl.diff)
    full = pr_text.pr_body(
        job_id=ctx.job.id,
        specs=pub.specs,
        rows=rows,
        summary_file=None,
        summary=pr_text.Summary(None, ()),
        stats=impl.stats,
        model=impl.model,
        issue_number=None if ctx.task.is_pr else ctx.job.number,
        trigger=trigger_text(ctx),
    )
    opening = full.partition("### Files")[0]
    api = ctx.api
    pr = pub.existing or await api.open_pull(pub.branch)
    if pr is None:
        created = await api.create_pull(
            title=TITLE_PREFIX + title,
            head=pub.branch,
            base=pub.pr_base,
            body=partial_pr_body(opening, block, rows, ctx.job.id),
            draft=True,
        )
        number, url = created.number, str(created.html_url)
        with best_effort("request a review"):
            await api.request_review(number, ctx.sender)
    else:
        number, url = pr.number, str(pr.html_url)
        await api.set_pull_body(number, _with_block(pr.body or "", block))
    await ctx.save(pr_url=url, pr_number=number)
    text = (
        f"The agent stopped before finishing: {stop.reason()}. pact-bot kept its partial "
        f"work: [`{sha[:SHA_SHORT]}`]({url}/commits/{sha}) on `{pub.branch}`, in draft pull "
        f"request #{number}. Comment `{command} continue [instructions]` there to resume "
        "with a fresh budget."
    )
    return await _outcome(ctx, tracker, stop, text, url)


async def keep_revise_partial(
    ctx: JobContext[Any],
    tracker: ProgressTracker,
    wt: Path,
    impl: Implementation,
    stop: Stop,
    branch: str,
) -> JobOutcome:
    """Commit and push the partial revision to the PR's branch; the PR body says so."""
    sha = await _commit_and_push(ctx, wt, impl, stop, branch, "revision")
    command = await ctx.command_word()
    pr = await ctx.api.pull(ctx.number)
    with best_effort("mark the pull request body partial"):
        await ctx.api.set_pull_body(
            ctx.number, _with_block(pr.body or "", partial_block(stop, impl, command))
        )
    url = str(pr.html_url)
    text = (
        f"The agent stopped before finishing: {stop.reason()}. pact-bot pushed its partial "
        f"work as [`{sha[:SHA_SHORT]}`]({url}/commits/{sha}). Comment `{command} continue "
        "[instructions]` to resume with a fresh budget."
    )
    return await _outcome(ctx, tracker, stop, text, url)
