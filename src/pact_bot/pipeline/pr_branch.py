"""A pull request's own branch, for jobs that add a commit to it (revise, test): the PR as
the job finds it (refused when the bot cannot or should not push to it), a worktree of the
branch, and a push that never forces (one rebase when the branch moved meanwhile)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from githubkit_schemas.latest.models import PullRequest

from pact_bot.confined import Refused
from pact_bot.github.repo_api import RepoInfo
from pact_bot.jobs.model import Job
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.report import Failure
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import ERROR_LINE_LIMIT, JobFailed, Work, config_or_fail, guarded
from pact_bot.repo_config import Effective, glob_match
from pact_bot.specs import spec_refs
from pact_bot.workspace import PushRejected, RebaseConflict, WorkspaceError

CONFLICT_FILES_LISTED = 20


@dataclass
class BranchWork(Work):
    """`Work`, and the line the progress comment's final state says was done."""

    done_text: str = ""


@dataclass(frozen=True)
class Pull:
    """The PR a job adds a commit to, as the job found it."""

    info: RepoInfo
    eff: Effective  # `.github/pact.yml` as this job applies it
    pr: PullRequest
    files: list[str]  # the PR's files, removed ones aside

    @property
    def branch(self) -> str:
        return self.pr.head.ref

    def specs(self, refused: list[Refused] | None = None) -> list[str]:
        """The specs the PR's body names, else the spec files it changes."""
        glob = self.eff.spec_glob
        named = spec_refs(self.pr.body or "", glob, refused=refused)
        return named or [f for f in self.files if glob_match(glob, f)]


async def open_pull(ctx: JobContext[Any]) -> Pull:
    """The job's PR, its repository's configuration and files; a fork's branch or a closed
    PR stops the job (`check_pr`)."""
    info = await ctx.info()
    cfg = await config_or_fail(ctx)
    pr = await ctx.api.pull(ctx.number)
    check_pr(
        ctx.job.repo,
        head_repo=pr.head.repo.full_name if pr.head.repo else None,
        base_repo=pr.base.repo.full_name,
        state=pr.state,
    )
    files = [f.filename for f in await ctx.api.pull_files(ctx.number) if f.status != "removed"]
    return Pull(info, cfg.effective(ctx.rt.settings), pr, files)


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
        await work.release(runtime.workspace)


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
