"""The end of a code job: the pull request (opened, or the open one updated), the review
request, the handoff comment and the "PACT Code" check run. Each step is recorded in the
job's saved progress, so a retry after a partial publish does not repeat it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from githubkit_schemas.latest.models import PullRequest, PullRequestSimple

from pact_bot.confined import read_present
from pact_bot.github.repo_api import best_effort
from pact_bot.jobs.model import JobState
from pact_bot.jobs.tasks import CodeTask
from pact_bot.jobs.worker import JobOutcome
from pact_bot.pipeline import pr_text, test_job, trace
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.report import JobProgress, Phase, RunStats
from pact_bot.pipeline.steps import ProgressTracker, post_check_run
from pact_bot.pipeline.toolchain_run import ToolchainReport
from pact_bot.traceability import Coverage, SpecRequirements


@dataclass
class Publication:
    """What a pushed commit is published as."""

    specs: list[str]
    components: list[str]
    branch: str
    pr_base: str  # the branch a new PR targets
    existing: PullRequestSimple | None  # the open bot PR for the same specs
    sha: str
    stats: RunStats
    rows: list[pr_text.FileRow]
    summary_file: str
    model: str
    draft: bool
    toolchain: ToolchainReport | None = None  # None on a retry after the push: not rerun
    traced: Sequence[SpecRequirements] = ()  # the specs' requirements (pipeline/trace.py)
    phases: Sequence[str] = ("code",)  # `test` too: the Test phase follows (test_job.py)


def trigger_text(ctx: JobContext[CodeTask]) -> str:
    who, n = ctx.sender, ctx.number
    if ctx.task.trigger == "label":
        return f"label on #{n} by @{who}"
    if ctx.task.trigger == "check_run":
        return f"Implement button on #{n} by @{who}"
    return f"requested by @{who} on #{n}"


def _coverage(ctx: JobContext[CodeTask], worktree: Path, pub: Publication) -> Coverage | None:
    """Checked against the committed worktree, so a retry shows what the first attempt did."""
    traced = trace.retarget(pub.traced, pub.summary_file)
    changed = [r.path for r in pub.rows if r.status != "removed"]
    tracked = ctx.rt.workspace.tracked_files(worktree)
    return trace.coverage_of(worktree, traced, changed, tracked)


async def publish(
    ctx: JobContext[CodeTask], tracker: ProgressTracker, worktree: Path, pub: Publication
) -> JobOutcome:
    job, api = ctx.job, ctx.api
    summary_text = "".join(text for _, text in read_present(worktree, [pub.summary_file]))
    summary = pr_text.parse_summary(summary_text)
    web = ctx.rt.settings.web_url.rstrip("/")
    tc = pub.toolchain or ToolchainReport()
    body = pr_text.pr_body(
        job_id=job.id,
        specs=pub.specs,
        rows=pub.rows,
        summary_file=pub.summary_file,
        summary=summary,
        stats=pub.stats,
        model=pub.model,
        issue_number=None if ctx.task.is_pr else job.number,
        trigger=trigger_text(ctx),
        tests=tc.markdown(),
    )
    coverage = _coverage(ctx, worktree, pub)
    body = trace.with_coverage(body, coverage)
    pr: PullRequest | PullRequestSimple | None = pub.existing or await api.open_pull(pub.branch)
    updated = pr is not None
    if pr is None:
        pr = await api.create_pull(
            title=pr_text.pr_title(pub.components),
            head=pub.branch,
            base=pub.pr_base,
            body=body,
            draft=pub.draft,
        )
        with best_effort("request a review"):
            await api.request_review(pr.number, ctx.sender)
    else:
        await api.set_pull_body(pr.number, body)
    number = pr.number
    pr_url = str(pr.html_url or f"{web}/{job.repo}/pull/{number}")
    await ctx.save(pr_url=pr_url, pr_number=number)
    summary_url = f"{web}/{job.repo}/blob/{pub.branch}/{pub.summary_file}"
    if ctx.saved.handoff_sha != pub.sha:
        handoff = pr_text.handoff_comment(
            summary, pub.summary_file, summary_url, tc.line(), command=await ctx.command_word()
        )
        await api.comment(number, handoff)
        await ctx.save(handoff_sha=pub.sha)
    if ctx.saved.check_sha != pub.sha:
        output = pr_text.check_run_output(
            specs=pub.specs,
            stats=pub.stats,
            rows=pub.rows,
            model=pub.model,
            job_id=job.id,
            summary_file=pub.summary_file,
            tests=tc.markdown(),
        )
        output = trace.with_check_output(output, coverage)
        await post_check_run(ctx, pub.sha, output, trace.conclusion(tc.conclusion, coverage))
        await ctx.save(check_sha=pub.sha)
    await test_job.after_code(ctx, number, pub.phases)
    await tracker.show(
        JobProgress(
            job.id,
            Phase.done,
            specs=tuple(pub.specs),
            pr_url=pr_url,
            stats=pub.stats,
            updated_pr=updated,
        ),
        force=True,
    )
    return JobOutcome(JobState.succeeded, pr_url=pr_url)
