"""A test job: the test engineer on a pull request's branch (`/pact test [instructions]`, or
right after a code job opened the PR when `.github/pact.yml` says `phases: [code, test]`),
one commit of tests, one report comment.

The PR needs an implementation summary (a bot PR, or any PR that has one): its "For the
Test Engineer" section and its Traceability rows are the task (`test_phase.task_text`).
The agent is the repository's `.claude/agents/pact-test-engineer.md` when present (read
through the confined reader by `load_definition`), else the packaged one.

Files outside tests that the agent changed are put back before the commit and listed in
the report as not pushed: its instructions say implementation changes are discarded
(`test_phase.operating_section`), so they are; code nobody reviewed never rides in on a
"tests" commit, and the listing shows what the test engineer thought needed changing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pact_bot import test_phase
from pact_bot.confined import read_present
from pact_bot.jobs.model import Enqueued, Job, JobKind, JobState
from pact_bot.jobs.tasks import TestTask
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import pr_branch, pr_text, report
from pact_bot.pipeline.agent_run import run_job_agent, stop_on_failure
from pact_bot.pipeline.context import JobContext, open_context
from pact_bot.pipeline.post_run import summary_files
from pact_bot.pipeline.pr_branch import BranchWork, open_pull, run_on_branch
from pact_bot.pipeline.reply import refusal_text
from pact_bot.pipeline.report import SHA_SHORT, Failure, JobProgress, Phase
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import (
    JobFailed,
    ProgressTracker,
    commit,
    ensure_allowed,
    ensure_budget,
    follow_up,
    react,
    refused,
    stats_dict,
)
from pact_bot.specs import component_name
from pact_bot.traceability import is_test_path, parse_table
from pact_bot.traceability_text import cell
from pact_bot.workspace import default_runner
from pact_bot.workspace.tree import restore

log = logging.getLogger(__name__)

INSTRUCTIONS_LIMIT = 20_000
FINAL_LIMIT = 20_000
OUTSIDE_LISTED = 30
NO_SUMMARY = (
    "This pull request has no implementation summary (`docs/implementation-summary-*.md`), "
    "so the test engineer has nothing to start from. Nothing was changed."
)


async def handle_test(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await run_on_branch(runtime, job, control, "test", _run)


def _discard(worktree: Path, paths: list[str]) -> None:
    """Unstage `paths` (the checks staged everything) and put them back as HEAD has them."""
    default_runner().run_sync(
        ["--literal-pathspecs", "reset", "-q", "--", *paths], worktree, check=False
    )
    restore(worktree, paths)


def progress_body(p: JobProgress, *, done: str = "") -> str:
    if p.phase in (Phase.failed, Phase.cancelled):
        return report.progress_body(p)
    lines = [report.marker(p.job_id)]
    if p.phase is Phase.done:
        lines.append(f"✅ **pact-bot** {done}")
    else:
        turn = f" — turn {p.turn}, ${p.cost_usd:.2f} so far" if p.turn else ""
        lines.append(f"⏳ **pact-bot** is testing this pull request{turn}.")
    return "\n".join(lines + report.footer(p))


async def _run(runtime: Runtime, job: Job, control: JobControl, work: BranchWork) -> JobOutcome:
    async with open_context(runtime, job, control, TestTask) as ctx:
        if not await ensure_allowed(
            ctx, lambda perm, cmd: refusal_text(job.sender, perm, "test", cmd)
        ):
            return refused(ctx)
        if (over := await ensure_budget(ctx)) is not None:
            return over
        tracker = work.tracker = ProgressTracker(
            ctx, lambda p: progress_body(p, done=work.done_text)
        )
        await react(ctx)
        await tracker.start()
        if not ctx.task.is_pr:
            raise JobFailed(
                Failure.unsupported,
                "`test` works on pull requests that have an implementation summary.",
            )
        pull = await open_pull(ctx)
        summaries = summary_files(pull.files)
        if not summaries:
            raise JobFailed(Failure.unsupported, NO_SUMMARY)
        sfile = summaries[0]
        specs = pull.specs()

        if ctx.saved.pushed_sha or ctx.saved.final:  # a retry: only the report is left
            return await _report(ctx, tracker, work, ctx.saved.final, ctx.saved.pushed_sha, [])

        token = await ctx.api.token()
        wt = work.worktree = await pr_branch.prepare(ctx, pull.info.clone_url, token, pull.branch)
        summary = "".join(text for _, text in read_present(wt, [sfile]))
        message = test_phase.task_text(
            specs=specs,
            summary_path=sfile,
            handoff=pr_text.parse_summary(summary).test_engineer or None,
            rows=parse_table(summary),
        )
        if ctx.task.instructions.strip():
            extra = ctx.task.instructions.strip()[:INSTRUCTIONS_LIMIT]
            message += f"\n\n<instructions>\n{extra}\n</instructions>"
        component = component_name(specs[0]) if specs else "tests"
        impl = await run_job_agent(
            ctx, work, token, message, component, tuple(specs), summaries, test_engineer=True
        )
        await stop_on_failure(ctx, tracker, impl, no_change_ok=True)
        outside = sorted(p for p in impl.paths if not is_test_path(p))
        if outside:
            await asyncio.to_thread(_discard, wt, outside)
        sha: str | None = None
        if any(is_test_path(p) for p in impl.paths):
            await commit(
                ctx,
                wt,
                f"Add tests for {', '.join(specs) or 'the implementation'}"
                f" (test engineer, asked by @{ctx.sender})",
            )
            sha = await pr_branch.push(ctx, wt, pull.info.clone_url, token, pull.branch)
        final = impl.final_text[-FINAL_LIMIT:]
        await ctx.save(pushed_sha=sha, final=final, stats=stats_dict(impl.stats))
        return await _report(ctx, tracker, work, final, sha, outside)


async def _report(
    ctx: JobContext[TestTask],
    tracker: ProgressTracker,
    work: BranchWork,
    final: str,
    sha: str | None,
    outside: Sequence[str],
) -> JobOutcome:
    web = ctx.rt.settings.web_url.rstrip("/")
    pr_url = f"{web}/{ctx.job.repo}/pull/{ctx.number}"
    if not ctx.saved.pr_comment:
        await ctx.api.comment(ctx.number, report_text(ctx, final, sha, outside))
        await ctx.save(pr_comment=True)
    cite = f"[`{sha[:SHA_SHORT]}`]({pr_url}/commits/{sha})" if sha else None
    work.done_text = (
        f"pushed the tests in {cite} and posted the test report."
        if cite
        else "pushed no tests; the test report says why."
    )
    await tracker.show(JobProgress(ctx.job.id, Phase.done), force=True)
    return JobOutcome(JobState.succeeded, pr_url=pr_url)


def report_text(
    ctx: JobContext[TestTask], final: str, sha: str | None, outside: Sequence[str]
) -> str:
    parsed = test_phase.parse_report(final)
    web = ctx.rt.settings.web_url
    if parsed is not None:
        body = test_phase.report_comment(parsed, web_url=web, repo=ctx.job.repo, sha=sha or "HEAD")
    else:
        body = "### Test report\n\nThe test engineer ended without a `## Test report` section."
    head = f"@{ctx.sender} the test engineer " + (
        f"pushed its tests in `{sha[:SHA_SHORT]}`." if sha else "pushed no tests."
    )
    parts = [head, body]
    if outside:
        shown = ", ".join(f"`{cell(p, 120).replace('`', '')}`" for p in outside[:OUTSIDE_LISTED])
        more = f" and {len(outside) - OUTSIDE_LISTED} more" if len(outside) > OUTSIDE_LISTED else ""
        parts.append(f"Changed outside tests (not pushed): {shown}{more}.")
    return "\n\n".join(parts)[:60_000]


async def after_code(ctx: JobContext[Any], number: int, phases: Sequence[str]) -> None:
    """`phases: [code, test]`: the Test phase follows the code job on its PR (once)."""
    if "test" not in phases or ctx.saved.test_enqueued:
        return
    task = TestTask(
        trigger="phase",
        number=number,
        is_pr=True,
        default_branch=getattr(ctx.task, "default_branch", None),
        fingerprint=f"test:phase:{ctx.job.id}",
    )
    result = await ctx.queue.enqueue(follow_up(ctx, JobKind.test, number, task, "test"))
    log.info("test phase enqueued", extra={"result": str(result)})
    if result in (Enqueued.created, Enqueued.duplicate_delivery):
        await ctx.save(test_enqueued=True)
