"""A pull request's own branch, for jobs that add a commit to it (revise, test): a worktree
of the branch, and a push that never forces (one rebase when the branch moved meanwhile)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pact_bot.jobs.model import Job
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.report import Failure
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import ERROR_LINE_LIMIT, JobFailed, ProgressTracker, guarded
from pact_bot.workspace import PushRejected, RebaseConflict, WorkspaceError

CONFLICT_FILES_LISTED = 20
log = logging.getLogger(__name__)


@dataclass
class BranchWork:
    """What a job on a PR's branch holds while it runs, for the clean-up."""

    tracker: ProgressTracker | None = None
    worktree: Path | None = None
    done_text: str = ""


async def run_on_branch(
    runtime: Runtime,
    job: Job,
    control: JobControl,
    what: str,
    body: Callable[[Runtime, Job, JobControl, BranchWork], Awaitable[JobOutcome]],
) -> JobOutcome:
    """Run a job kind's body under `guarded`; whatever happened, its worktree goes and its
    progress comment gets its final state."""
    work = BranchWork()
    try:
        return await guarded(lambda: body(runtime, job, control, work), work, what)
    finally:
        if work.worktree is not None:
            try:
                await runtime.workspace.remove(work.worktree)
            except Exception:
                log.exception("worktree removal failed")
        if work.tracker is not None:
            await work.tracker.close()


async def prepare(ctx: JobContext[Any], clone_url: str, token: str, branch: str) -> Path:
    try:
        return await ctx.rt.workspace.prepare(
            ctx.job.repo, clone_url, token, branch, branch, ctx.job.id, reuse_branch=True
        )
    except WorkspaceError as e:
        raise JobFailed(Failure.api_error, f"git: {e}") from None


async def push(ctx: JobContext[Any], wt: Path, clone_url: str, token: str, branch: str) -> str:
    """Push without force; when the branch moved, rebase our one commit onto it once."""
    ws = ctx.rt.workspace
    for attempt in range(2):
        try:
            await ws.push(wt, clone_url, token, branch)
            return str(await ws.head(wt))
        except PushRejected as e:
            if not e.non_fast_forward or attempt:
                raise JobFailed(
                    Failure.push_refused, str(e).splitlines()[0][:ERROR_LINE_LIMIT]
                ) from None
        try:
            await ws.rebase_onto_remote(wt, branch, clone_url=clone_url, token=token)
        except RebaseConflict as e:
            files = ", ".join(f"`{f}`" for f in e.files[:CONFLICT_FILES_LISTED])
            raise JobFailed(
                Failure.unsupported,
                f"Someone pushed to `{branch}` while pact-bot was working, and those "
                f"changes conflict with the revision in {files}. Nothing was pushed. "
                "Review again (or comment `/pact code <instructions>`) once the branch "
                "is settled.",
            ) from None
    raise JobFailed(Failure.push_refused, "the branch kept moving")


def check_pr(repo: str, *, head_repo: str | None, base_repo: str | None, state: str) -> None:
    """Stop on a PR the bot cannot push to (a fork's branch) or should not (closed)."""
    if not head_repo or head_repo != (base_repo or repo):
        raise JobFailed(
            Failure.unsupported,
            "This pull request's branch lives in a fork, so pact-bot cannot push to it. "
            "Nothing was changed. Move the branch into this repository to have the bot "
            "revise it.",
        )
    if state != "open":
        raise JobFailed(
            Failure.unsupported,
            "This pull request is closed, so pact-bot did not revise it. Reopen it and "
            "review again.",
        )
