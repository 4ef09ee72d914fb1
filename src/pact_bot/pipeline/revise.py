"""A revise job: a review (or `/pact code <instructions>`) on a bot PR in, one commit and
a reply in every thread out.

One job answers a whole review: the agent gets the review body, every line comment (id,
path, line or range, `diff_hunk`, text) and the PR's spec and implementation summary,
works in a worktree of the PR's head branch with the same tools, budgets and checks as a
code job, and ends its last message with one `REPLY <comment_id>: …` line per comment
(`revise_text.parse_replies`). Then: one commit "Address review by @user" (Co-authored-by
the reviewer) pushed to the PR branch, never forced; when the branch moved meanwhile the
new commit is rebased onto it, and a conflict stops the job with a clear message. Each
review thread gets a reply citing the commit (or saying why nothing changed); a review
with only a body, or a command, gets one PR comment. Progress comment and "PACT Code"
check run as for code jobs.

Jobs of one PR share the PR's job key, so a second review waits for the first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from pact_bot.ci_triggers import CI_TRIGGER
from pact_bot.confined import Refused, read_present
from pact_bot.jobs.model import Job, JobState
from pact_bot.jobs.tasks import ReviseTask
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import pr_text, trace
from pact_bot.pipeline.agent_run import failure_of, run_job_agent, stop_on_failure
from pact_bot.pipeline.ci_fix import CiPlan, ci_comment, plan_ci_fix
from pact_bot.pipeline.context import JobContext, open_context
from pact_bot.pipeline.partial import continue_notes, finish_continue, keepable
from pact_bot.pipeline.partial_keep import keep_revise_partial
from pact_bot.pipeline.post_run import summary_files
from pact_bot.pipeline.pr_branch import BranchWork, open_pull, run_on_branch
from pact_bot.pipeline.pr_branch import prepare as _prepare
from pact_bot.pipeline.pr_branch import push as _push
from pact_bot.pipeline.pr_refresh import refresh_pr_body
from pact_bot.pipeline.rebase import rebase_pr
from pact_bot.pipeline.reply import refusal_text
from pact_bot.pipeline.report import SHA_SHORT, Failure, JobProgress, Phase, RunStats
from pact_bot.pipeline.review_policy import review_wanted
from pact_bot.pipeline.revise_text import (
    ReviewComment,
    command_instructions,
    commit_title,
    parse_replies,
    progress_body,
    revise_message,
    thread_reply,
    without_replies,
)
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import (
    JobFailed,
    ProgressTracker,
    commit,
    config_or_fail,
    ensure_allowed,
    ensure_budget,
    post_check_run,
    react,
    refused,
    stats_dict,
)
from pact_bot.pipeline.toolchain_run import ToolchainReport
from pact_bot.specs import component_name, refused_paths_text
from pact_bot.traceability import Coverage

log = logging.getLogger(__name__)

FINAL_TEXT_LIMIT = 5_000  # characters of the agent's last message kept and posted
_SUMMARY_NAME = re.compile(r"docs/implementation-summary-(.+)\.md$")
_DOING = {  # the progress comment's "implementing" step, by what started the job
    "ci": "Fixing the failed checks",
    "continue": "Continuing the partial work",
    "rebase": "Merging the base branch and resolving conflicts",
}
DEFAULT_REQUEST = "Look at the pull request again and fix what is wrong or missing."


async def handle_revise(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await run_on_branch(runtime, job, control, "revise", _run)


async def _run(runtime: Runtime, job: Job, control: JobControl, work: BranchWork) -> JobOutcome:
    async with open_context(runtime, job, control, ReviseTask) as ctx:
        task = ctx.task
        trigger = task.trigger or "review"
        what = "review" if trigger == "review" else "command"
        ci: CiPlan | None = None
        if trigger == CI_TRIGGER:  # a failed check: no person to check, the PR must be ours
            ci = await plan_ci_fix(ctx, (await ctx.rt.app.identity())[1])
            if ci is None:
                return JobOutcome(JobState.succeeded)
        elif trigger == "auto_rebase":  # `.github/pact.yml` asked for it, not a person
            if not (await config_or_fail(ctx)).auto_rebase:
                return JobOutcome(JobState.succeeded)
        elif not await ensure_allowed(
            ctx, lambda perm, command: refusal_text(job.sender, perm, what, command)
        ):
            return refused(ctx)
        if (over := await ensure_budget(ctx)) is not None:
            return over
        if trigger == "review" and not await review_wanted(ctx):
            return JobOutcome(JobState.succeeded)
        comments = await _review_comments(ctx) if trigger == "review" else []
        instructions = ci.task_text() if ci else command_instructions(task)
        if task.command == "continue":  # resume partial work: where the last run stopped
            body = (await ctx.api.pull(ctx.number)).body or ""
            done = [f.filename for f in await ctx.api.pull_files(ctx.number)]
            instructions = continue_notes(body, done, task.instructions)
        if trigger == "review" and not comments and not task.review_body.strip():
            log.info("review without body or comments: nothing to address")
            return JobOutcome(JobState.succeeded)
        if trigger != "review" and not instructions.strip():
            instructions = DEFAULT_REQUEST
        reviewer = job.sender
        doing = _DOING.get("ci" if ci else task.command or "", "")
        tracker = work.tracker = ProgressTracker(
            ctx, lambda p: progress_body(p, reviewer=reviewer, done=work.done_text, doing=doing)
        )
        await react(ctx)
        await tracker.start()

        pull = await open_pull(ctx)
        pr, pr_files, branch = pull.pr, pull.files, pull.branch
        summaries = summary_files(pr_files)

        token = await ctx.api.token()
        wt = work.worktree = await _prepare(ctx, pull.info.clone_url, token, branch)
        if task.command == "rebase":  # merge the base in; the agent resolves conflicts
            return await rebase_pr(ctx, work, pull, token, summaries)
        refused_paths: list[Refused] = []
        specs = pull.specs(refused_paths)
        spec_texts = read_present(wt, specs, refused=refused_paths)
        if refused_paths:
            raise JobFailed(Failure.no_specs, refused_paths_text(refused_paths))
        sfile = summaries[0] if summaries else None
        summary = next(iter(read_present(wt, [sfile])), None) if sfile else None
        if sfile and (m := _SUMMARY_NAME.search(sfile)):
            component = m.group(1)
        else:
            component = component_name(specs[0]) if specs else "revision"

        model = pull.eff.model
        if ctx.saved.pushed_sha:  # a retry after the push: only the replies are left
            pushed = ctx.saved.pushed_sha
            log.info("resuming after push", extra={"sha": pushed})
            stats = RunStats(**ctx.saved.stats) if ctx.saved.stats else RunStats()
            replies = {int(k): v for k, v in ctx.saved.replies.items()}
            return await _answer(
                ctx,
                tracker,
                work,
                comments,
                replies,
                ctx.saved.final,
                pushed,
                stats,
                specs,
                model,
                ci=ci,
            )

        reviewed = (task.head_sha or "") if trigger == "review" else ""
        message = revise_message(
            reviewer=reviewer,
            review_body=task.review_body if trigger == "review" else "",
            comments=comments,
            instructions=instructions if trigger != "review" else "",
            pr_number=ctx.number,
            pr_title=pr.title,
            pr_files=pr_files,
            specs=spec_texts,
            summary=summary,
            moved_since=reviewed if reviewed and reviewed != pr.head.sha else None,
        )
        # A revision need not touch the summary; a bot PR without one (older versions) is
        # not asked to write one either.
        existing = summaries or [f"docs/implementation-summary-{component}.md"]
        impl = await run_job_agent(ctx, work, token, message, component, (), existing)
        if (stop := keepable(failure_of(impl), impl)) is not None:  # partial: pushed, said so
            return await keep_revise_partial(ctx, tracker, wt, impl, stop, branch)
        await stop_on_failure(ctx, tracker, impl, no_change_ok=True)
        replies = parse_replies(impl.final_text)
        final = without_replies(impl.final_text)

        sha: str | None = None
        if impl.paths:
            title = commit_title("continue" if task.command == "continue" else trigger, reviewer)
            sha = await commit(ctx, wt, title, credit=ci is None)
            await tracker.show(JobProgress(job.id, Phase.opening_pr, stats=impl.stats))
            if await control.cancelled():
                raise JobFailed(Failure.cancelled)
            sha = await _push(ctx, wt, pull.info.clone_url, token, branch)
            await ctx.save(
                pushed_sha=sha,
                replies={str(k): v for k, v in replies.items()},
                final=final[:FINAL_TEXT_LIMIT],
                stats=stats_dict(impl.stats),
            )
            if task.command == "continue":
                await finish_continue(ctx, wt)
            await refresh_pr_body(ctx, wt, existing[0], impl.stats, impl.model or model)
        # traceability (pipeline/trace.py): the PR body's coverage section kept current
        coverage = None
        if sha and sfile:
            traced = trace.job_specs(spec_texts, sfile)
            changed = sorted(set(pr_files) | set(impl.paths))
            tracked = runtime.workspace.tracked_files(wt)
            coverage = trace.coverage_of(wt, traced, changed, tracked, impl.deleted)
            body_now = (await ctx.api.pull(ctx.number)).body or ""  # as the refresh left it
            await trace.refresh_pr_body(ctx.api, ctx.number, body_now, coverage)
        return await _answer(
            ctx, tracker, work, comments, replies, final, sha, impl.stats, specs, model, impl.diff,
            impl.toolchain, coverage, ci=ci,
        )  # fmt: skip


async def _review_comments(ctx: JobContext[ReviseTask]) -> list[ReviewComment]:
    rid = ctx.task.review_id
    if not rid:
        return []
    items = await ctx.api.review_comments(ctx.number, rid)
    return [ReviewComment.of(c) for c in items if not c.in_reply_to_id]


async def _answer(
    ctx: JobContext[ReviseTask],
    tracker: ProgressTracker,
    work: BranchWork,
    comments: Sequence[ReviewComment],
    replies: dict[int, str],
    final: str,
    sha: str | None,
    stats: RunStats,
    specs: Sequence[str],
    model: str,
    diff: str = "",
    toolchain: ToolchainReport | None = None,
    coverage: Coverage | None = None,
    ci: CiPlan | None = None,
) -> JobOutcome:
    job, reviewer = ctx.job, ctx.sender
    tc = toolchain or ToolchainReport()
    web = ctx.rt.settings.web_url.rstrip("/")
    pr_url = f"{web}/{job.repo}/pull/{job.number}"
    commit_url = f"{pr_url}/commits/{sha}" if sha else None
    done = set(ctx.saved.replied)
    for c in comments:
        if c.id in done:
            continue
        await ctx.api.reply_in_thread(
            ctx.number, c.id, thread_reply(replies.get(c.id), sha, commit_url)
        )
        done.add(c.id)
        await ctx.save(replied=sorted(done))
    if not comments and not ctx.saved.pr_comment:
        cite = f"[`{sha[:SHA_SHORT]}`]({commit_url})" if sha and commit_url else None
        said = final.strip()[:FINAL_TEXT_LIMIT] or "(the agent said nothing more)"
        head = f"@{reviewer} " + (
            f"pact-bot pushed {cite}." if cite else "pact-bot made no change."
        )
        await ctx.api.comment(ctx.number, ci_comment(ci, cite, said) if ci else f"{head}\n\n{said}")
        await ctx.save(pr_comment=True)
    if sha and ctx.saved.check_sha != sha:
        output = pr_text.check_run_output(
            specs=list(specs),
            stats=stats,
            rows=pr_text.file_rows(diff),
            model=model,
            job_id=job.id,
            summary_file=None,
            tests=tc.markdown(),
        )
        output["title"] = commit_title(ctx.task.trigger, reviewer)
        output = trace.with_check_output(output, coverage)
        await post_check_run(ctx, sha, output, trace.conclusion(tc.conclusion, coverage))
        await ctx.save(check_sha=sha)
    n = len(comments)
    answered = f"replied to {n} comment{'s' if n != 1 else ''}" if n else "replied on the PR"
    if sha:
        work.done_text = f"pushed [`{sha[:SHA_SHORT]}`]({commit_url}) and {answered}."
    else:
        work.done_text = f"made no change and {answered} to say why."
    await tracker.show(JobProgress(job.id, Phase.done, stats=stats), force=True)
    return JobOutcome(JobState.succeeded, pr_url=pr_url)
