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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from githubkit_schemas.latest.models import DiffEntry

from pact_bot.confined import NotFound, Refused, read_present, read_text
from pact_bot.jobs.model import Job
from pact_bot.jobs.tasks import CodeTask
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import pr_text, report
from pact_bot.pipeline.agent_run import failure_of, load_agent_soon, run_job_agent
from pact_bot.pipeline.context import JobContext, open_context
from pact_bot.pipeline.partial import keepable
from pact_bot.pipeline.partial_keep import keep_code_partial
from pact_bot.pipeline.post_run import summary_files
from pact_bot.pipeline.prompts import AGENT_DOCS, REQUEST_LIMIT, first_message
from pact_bot.pipeline.publish import Publication, publish
from pact_bot.pipeline.report import Failure, JobProgress, Phase, RunStats
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import (
    ERROR_LINE_LIMIT,
    JobFailed,
    ProgressTracker,
    author,
    co_author,
    config_or_fail,
    ensure_allowed,
    guarded,
    react,
    refused,
    stats_dict,
)
from pact_bot.repo_config import Effective
from pact_bot.specs import (
    branch_name,
    component_name,
    refused_paths_text,
    spec_changes,
    spec_refs,
    specs_from_args,
    summary_path,
)
from pact_bot.workspace import PushRejected, WorkspaceError, default_runner

log = logging.getLogger(__name__)

SAVED_DIFF_LIMIT = 200_000  # characters of the diff kept for a retry's PR body
MAX_BRANCH_SUFFIX = 100
_JOB_LINE = "pact-bot job {job_id}"


@dataclass
class _Target:
    """Where the work goes: base of the worktree, base of the new PR."""

    base_ref: str  # what the worktree starts from
    pr_base: str  # the branch the new PR targets
    pr_files: list[DiffEntry] = field(default_factory=list)
    pr_body: str = ""


@dataclass
class _Work:
    """What the job holds that must be let go of whatever happens."""

    tracker: ProgressTracker | None = None
    worktree: Path | None = None
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
            if work.worktree is not None:
                try:
                    await runtime.workspace.remove(work.worktree)
                except Exception:
                    log.exception("worktree removal failed")
            if work.tracker is not None:
                await work.tracker.close()


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
        )

        if pushed and pushed == head_sha:
            log.info("resuming after push", extra={"sha": pushed})
            summaries = summary_files(runtime.workspace.tracked_files(wt))
            pub.sha = pushed
            pub.stats = RunStats(**ctx.saved.stats) if ctx.saved.stats else RunStats()
            pub.rows = pr_text.file_rows(ctx.saved.diff or await _head_diff(wt))
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
        existing_summaries = summary_files(files) if existing is not None else []
        await tracker.show(JobProgress(job.id, Phase.implementing, specs=tuple(specs)))

        await agent_loaded
        impl = await run_job_agent(
            ctx, tracker, wt, token, message, cfg, eff, component, tuple(specs), existing_summaries
        )
        failed = failure_of(impl)
        if (stop := keepable(failed, impl)) is not None:  # partial work: a draft PR
            return await keep_code_partial(ctx, tracker, wt, impl, stop, pub)
        if failed is not None:
            raise JobFailed(*failed)
        stats = impl.stats
        await tracker.show(JobProgress(job.id, Phase.checking, specs=tuple(specs), stats=stats))
        if await control.cancelled():
            raise JobFailed(Failure.cancelled)

        if impl.checks.summary_files:
            pub.summary_file = impl.checks.summary_files[0]
        helper = await co_author(ctx)
        sha = await runtime.workspace.commit(
            wt,
            pr_text.commit_message(components, specs, None).rstrip()
            + "\n\n"
            + _JOB_LINE.format(job_id=job.id),
            author=await author(ctx),
            co_authors=[helper] if helper else [],
        )
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
        return await publish(ctx, tracker, wt, pub)


async def _target(ctx: JobContext[CodeTask], default_branch: str) -> _Target:
    if not ctx.task.is_pr:
        return _Target(base_ref=default_branch, pr_base=default_branch)
    pr = await ctx.api.pull(ctx.number)
    head_repo = pr.head.repo.full_name if pr.head.repo else None
    if head_repo and head_repo != (pr.base.repo.full_name or ctx.job.repo):
        raise JobFailed(
            Failure.unsupported,
            "This pull request comes from a fork: pact-bot implements specs from branches "
            "of this repository only. Push the spec branch here, or merge the spec and "
            "label an issue that names it.",
        )
    return _Target(
        base_ref=pr.head.ref,
        pr_base=pr.head.ref,
        pr_files=await ctx.api.pull_files(ctx.number),
        pr_body=pr.body or "",
    )


def _find_specs(
    ctx: JobContext[CodeTask], eff: Effective, target: _Target
) -> tuple[list[str], dict[str, list[str]]]:
    refused: list[Refused] = []
    specs, _ = specs_from_args(ctx.task.spec_paths, eff.spec_glob, refused=refused)
    sections: dict[str, list[str]] = {}
    if target.pr_files:
        files = [
            {"filename": f.filename, "status": f.status, "patch": f.patch or None}
            for f in target.pr_files
        ]
        changes = spec_changes(files, eff.spec_glob)
        sections = {c.path: list(c.sections) for c in changes}
        if not specs:
            specs = [c.path for c in changes]
    if not specs:
        text = f"{ctx.task.title}\n{ctx.task.body}"
        specs = spec_refs(text + "\n" + target.pr_body, eff.spec_glob, refused=refused)
    if refused:  # never implement part of what was asked, silently
        raise JobFailed(
            Failure.no_specs,
            refused_paths_text(refused)
            + " "
            + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
        )
    return specs, sections


def _read_specs(
    wt: Path, specs: list[str], target: _Target, eff: Effective
) -> list[tuple[str, str]]:
    texts, missing = [], []
    refused: list[Refused] = []
    for s in specs:
        try:
            texts.append((s, read_text(wt, s)))
        except NotFound:
            missing.append(s)
        except Refused as e:
            refused.append(e)
    if refused:  # never implement part of what was asked, silently
        raise JobFailed(
            Failure.no_specs,
            refused_paths_text(refused)
            + " "
            + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
        )
    if missing:
        raise JobFailed(
            Failure.no_specs,
            "These specs do not exist on "
            f"`{target.base_ref}`: {', '.join(f'`{m}`' for m in missing)}. "
            + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
        )
    return texts


def _context(ctx: JobContext[CodeTask], target: _Target) -> str:
    kind = "pull request" if ctx.task.is_pr else "issue"
    body = ctx.task.body or target.pr_body
    lines = [f"Requested by @{ctx.sender} on {kind} #{ctx.number}: {ctx.task.title}"]
    if body.strip():
        lines.append("")
        lines.append(body.strip()[:REQUEST_LIMIT])
    return "\n".join(lines)


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


# --- read-only git in the job's worktree (no network, no token) ------------------------


async def _base_sha(worktree: Path, target: _Target) -> str | None:
    return await _git_out(worktree, "rev-parse", f"refs/remotes/origin/{target.base_ref}")


async def _git_out(worktree: Path, *args: str) -> str | None:
    """Read-only git in the job's worktree (no network, no token), hardened."""
    code, out, _ = await default_runner().run(args, worktree, check=False)
    return out.strip() if code == 0 else None


async def _head_message(worktree: Path) -> str:
    return await _git_out(worktree, "log", "-1", "--format=%B") or ""


async def _head_diff(worktree: Path) -> str:
    args = ("show", "--format=", "--no-color", "--no-renames", "--no-ext-diff", "--no-textconv")
    return await _git_out(worktree, *args, "HEAD") or ""


async def _all(*aws: Awaitable[Any]) -> list[Any]:
    """Run independent steps concurrently; once all are done, raise the first failure in
    argument order (as running them one after another would have reported it)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
