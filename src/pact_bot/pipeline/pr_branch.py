"""A pull request's own branch, for jobs that add a commit to it (revise, test): a worktree
of the branch, and a push that never forces (one rebase when the branch moved meanwhile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.report import Failure
from pact_bot.pipeline.steps import ERROR_LINE_LIMIT, JobFailed
from pact_bot.workspace import PushRejected, RebaseConflict, WorkspaceError

CONFLICT_FILES_LISTED = 20


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
