"""A code job: specs in, a pull request (or one clear failure comment) out.

The steps (docs/architecture.md, "Flow of one job"): installation client → the sender's
permission (refused in a comment, before any work) → 👀 on the trigger → progress comment
→ `.github/pact.yml` → specs → worktree → agent (budgets, cancellation) → checks (asking
once more for a missing summary) → commit, push → PR (or the open bot PR for the same
specs, updated) → handoff comment → check run "PACT Code" → final progress. The worktree
is removed whatever happens.

Retries are safe: the progress comment is found again by its hidden marker (and its id is
kept in the job's saved progress), the branch and PR are found by name, and a job that
already pushed (`pushed_sha`) skips the agent and finishes the PR instead of pushing a
second commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.confined import read_present
from pact_bot.jobs.model import Job
from pact_bot.jobs.tasks import CodeTask
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import drift_check, pr_text, report, trace
from pact_bot.pipeline.agent_run import (
    failure_of,
    load_agent_soon,
    run_job_agent,
    stop_on_failure,
)
from pact_bot.pipeline.code_specs import _context, _find_specs, _read_specs, _Target, _target
from pact_bot.pipeline.context import JobContext, open_context
from pact_bot.pipeline.partial import keepable
from pact_bot.pipeline.partial_keep import keep_code_partial
from pact_bot.pipeline.post_run import summary_files
from pact_bot.pipeline.prompts import AGENT_DOCS, first_message
from pact_bot.pipeline.publish import Publication, publish
from pact_bot.pipeline.report import Failure, JobProgress, Phase, RunStats
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import (
    ERROR_LINE_LIMIT,
    JobFailed,
    ProgressTracker,
    Work,
    commit,
    config_or_fail,
    ensure_allowed,
    ensure_budget,
    guarded,
    react,
    refused,
    stats_dict,
)
from pact_bot.pipeline.worktree_git import _base_sha, _head_diff, _head_message
from pact_bot.specs import (
    branch_name,
    component_name,
    summary_path,
)
from pact_bot.workspace import PushRejected, WorkspaceError

log = logging.getLogger(__name__)

SAVED_DIFF_LIMIT = 200_000  # characters of the diff kept for a retry's PR body
MAX_BRANCH_SUFFIX = 100
_JOB_LINE = "pact-bot job {job_id}"


@dataclass
class _Work(Work):
    """`Work`, and the mirror's update started before the checkout needs it."""

    mirror_update: asyncio.Task[Path] | None = None


async def handle_code(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    work = _Work()
    agent_loaded = load_agent_soon()
    try:
        return await guarded(lambda: _run(runtime, job, control, work, agent_loaded), work, "code")
    finally:
        try:
            await _drop_mirror_update(work)
        finally:
            await work.release(runtime.workspace)


def refusal(user: str) -> Callable[[str, str], str]:
    return lambda perm, command: report.refusal_comment(user, perm, command)


async def _run(
    runtime: Runtime,
    job: Job,
    control: JobControl,
    work: _Work,
    agent_loaded: Awaitable[None],
) -> JobOutcome:
    async with open_context(runtime, job, control, CodeTask) as ctx:
        if not await ensure_allowed(ctx, refusal(job.sender)):
            return refused(ctx)
        if (over := await ensure_budget(ctx)) is not None:
            return over
        info = await ctx.info()
        # The sender may write: clone or fetch the mirror while the API calls below run
        # (cold, the clone is most of the wait). `_checkout` awaits it; `handle_code`
        # cancels it if the job fails before then.
        work.mirror_update = asyncio.create_task(
            runtime.workspace.update_mirror(job.repo, info.clone_url, await ctx.api.token())
        )
        tracker = work.tracker = ProgressTracker(ctx)
        await _all(react(ctx, on_issue=ctx.task.trigger == "label"), tracker.start())
        cfg, target = await _all(config_or_fail(ctx), _target(ctx, info.default_branch))
        eff = cfg.effective(runtime.settings)
        await tracker.show(JobProgress(job.id, Phase.reading_specs))
        specs, sections = _find_specs(ctx, eff, target)
        if not specs:
            raise JobFailed(
                Failure.no_specs, report.no_specs_comment(eff.spec_glob, eff.label, eff.command)
            )
        components = [component_name(s) for s in specs]
        component = "-".join(components) if len(components) <= 3 else components[0]
        branch = branch_name(eff.branch_prefix, specs)
        existing = await ctx.api.open_pull(branch)
        if existing is not None:
            target.pr_base = existing.base.ref

        token = await ctx.api.token()
        pushed = ctx.saved.pushed_sha
        wt, branch, head_sha = await _checkout(
            ctx,
            work,
            info.clone_url,
            token,
            target,
            branch,
            reuse=existing is not None or bool(pushed),
        )
        if not pushed and existing is None and head_sha != await _base_sha(wt, target):
            # The branch is there but no open PR uses it: ours from an attempt of this very
            # job that pushed before it could record so (resume), or a stale one (start anew).
            if _JOB_LINE.format(job_id=job.id) in await _head_message(wt):
                pushed = head_sha
            else:
                await runtime.workspace.remove(wt)
                work.worktree = None
                branch = await _fresh_branch(ctx, branch)
                wt, branch, head_sha = await _checkout(
                    ctx, work, info.clone_url, token, target, branch, reuse=False
                )
        spec_texts = _read_specs(wt, specs, target, eff)
        tracker.state = JobProgress(job.id, Phase.reading_specs, specs=tuple(specs))
        summary_file = summary_path(component)
        traced = trace.job_specs(spec_texts, summary_file)
        pub = Publication(
            specs=specs,
            components=components,
            branch=branch,
            pr_base=target.pr_base,
            existing=existing,
            sha="",
            stats=RunStats(),
            rows=[],
            summary_file=summary_file,
            model=eff.model,
            draft=eff.draft,
            traced=traced,
            phases=eff.phases,
        )

        if pushed and pushed == head_sha:
            log.info("resuming after push", extra={"sha": pushed})
            summaries = summary_files(runtime.workspace.tracked_files(wt))
            pub.sha = pushed
            pub.stats = RunStats(**ctx.saved.stats) if ctx.saved.stats else RunStats()
            pub.rows = pr_text.file_rows(ctx.saved.diff or await _pushed_diff(ctx, wt))
            if summary_file not in summaries:
                pub.summary_file = (summaries or [summary_file])[0]
            pub.model = ctx.saved.model or eff.model
            return await publish(ctx, tracker, wt, pub)

        files = runtime.workspace.tracked_files(wt)
        docs = read_present(wt, AGENT_DOCS)
        message = first_message(
            specs=spec_texts,
            context=_context(ctx, target),
            instructions=ctx.task.instructions,
            files=files,
            agent_docs=docs,
            summary_file=summary_file,
            sections=sections,
        )
        if ctx.task.update:  # a drift update: the changed sections, not the whole spec
            message = drift_check.update_message(ctx.task.update, files, docs, summary_file)
        if contract := trace.message_part(traced):
            message += "\n\n" + contract
        # updating its own PR, or a drift update of code already merged: the summary is there
        updating = existing is not None or bool(ctx.task.update)
        existing_summaries = summary_files(files) if updating else []
        await tracker.show(JobProgress(job.id, Phase.implementing, specs=tuple(specs)))

        await agent_loaded
        impl = await run_job_agent(
            ctx, work, token, message, component, tuple(specs), existing_summaries, traced
        )
        if (stop := keepable(failure_of(impl), impl)) is not None:  # partial work: a draft PR
            return await keep_code_partial(ctx, tracker, wt, impl, stop, pub)
        await stop_on_failure(ctx, tracker, impl, no_change_ok=False)
        stats = impl.stats

        if impl.checks.summary_files:
            pub.summary_file = impl.checks.summary_files[0]
        title = pr_text.commit_message(components, specs, None).rstrip()
        sha = await commit(ctx, wt, f"{title}\n\n{_JOB_LINE.format(job_id=job.id)}")
        await tracker.show(JobProgress(job.id, Phase.opening_pr, specs=tuple(specs), stats=stats))
        try:
            await runtime.workspace.push(wt, info.clone_url, await ctx.api.token(), branch)
        except PushRejected as e:
            raise JobFailed(
                Failure.push_refused, str(e).splitlines()[0][:ERROR_LINE_LIMIT]
            ) from None
        diff = impl.diff[:SAVED_DIFF_LIMIT]
        await ctx.save(pushed_sha=sha, diff=diff, stats=stats_dict(stats), model=impl.model)
        pub.sha, pub.stats, pub.rows, pub.model = (
            sha,
            stats,
            pr_text.file_rows(impl.diff),
            impl.model,
        )
        pub.toolchain = impl.toolchain
        return await publish(ctx, tracker, wt, pub)


async def _checkout(
    ctx: JobContext[Any],
    work: _Work,
    clone_url: str,
    token: str,
    target: _Target,
    branch: str,
    *,
    reuse: bool,
) -> tuple[Path, str, str]:
    ws = ctx.rt.workspace
    update, work.mirror_update = work.mirror_update, None
    try:
        if update is not None:
            await update
        work.worktree = await ws.prepare(
            ctx.job.repo,
            clone_url,
            token,
            target.base_ref,
            branch,
            ctx.job.id,
            reuse,
            fetch=update is None,
        )
    except WorkspaceError as e:
        raise JobFailed(Failure.api_error, f"git: {e}") from None
    return work.worktree, branch, await ws.head(work.worktree)


async def _pushed_diff(ctx: JobContext[Any], wt: Path) -> str:
    """The pushed commit's diff, for a job that pushed before it could save it. HEAD's
    parent must be in the mirror: a new one (another worker's, or after eviction) is
    shallow, and there the branch's tip would diff as if it added every file."""
    try:
        await ctx.rt.workspace.complete_history(wt)
    except WorkspaceError as e:
        raise JobFailed(Failure.api_error, f"git: {e}") from None
    return await _head_diff(wt)


async def _drop_mirror_update(work: _Work) -> None:
    """Cancel a mirror update the job no longer needs and wait until git has stopped
    (a finished fetch is kept: the mirror is a cache)."""
    update, work.mirror_update = work.mirror_update, None
    if update is None:
        return
    update.cancel()
    try:
        await update
    except asyncio.CancelledError:
        if (task := asyncio.current_task()) is not None and task.cancelling():
            raise
    except Exception:
        log.warning("mirror update failed", exc_info=True)


async def _fresh_branch(ctx: JobContext[Any], branch: str) -> str:
    """`branch-2`, `-3`, … : the first name no remote branch has (a stale bot branch, e.g.
    of a closed PR, is left alone)."""
    for n in range(2, MAX_BRANCH_SUFFIX):
        name = f"{branch}-{n}"
        if not await ctx.rt.workspace.remote_branch_exists(ctx.job.repo, name):
            return name
    raise JobFailed(Failure.internal, f"no free branch name after {branch}-{MAX_BRANCH_SUFFIX - 1}")


async def _all(*aws: Awaitable[Any]) -> list[Any]:
    """Run independent steps concurrently; once all are done, raise the first failure in
    argument order (as running them one after another would have reported it)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
