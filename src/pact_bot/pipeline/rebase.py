"""`/pact rebase` on a bot PR: bring the base branch in with a merge commit (published
history is never rewritten, nothing is force-pushed), let the agent resolve the conflicts in
the sandbox, check, push one commit.

The merge is left uncommitted in the worktree with git's conflict markers; the agent's task
names the conflicted files. The post-run checks look at what the agent decided, not at what
the base brought in: a path whose content equals the base branch's came from the base (a
person merged it there), so the protected-path check skips it; the conflicted files and any
other file the agent changed are checked as usual, and no conflict marker may remain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pact_bot.confined import NotFound, Refused, read_text
from pact_bot.jobs.model import JobState
from pact_bot.jobs.worker import JobOutcome
from pact_bot.pipeline.agent_run import failure_of, run_job_agent
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.post_run import leaked_secrets, protected_touched
from pact_bot.pipeline.pr_branch import Pull
from pact_bot.pipeline.report import SHA_SHORT, Failure, JobProgress, Phase
from pact_bot.pipeline.steps import ERROR_LINE_LIMIT, JobFailed, Work, commit
from pact_bot.workspace import PushRejected, WorkspaceError

log = logging.getLogger(__name__)

MARKERS = ("<<<<<<< ", "\n=======\n", ">>>>>>> ")
FILES_LISTED = 30


def rebase_task(base: str, branch: str, conflicted: Sequence[str], instructions: str) -> str:
    files = "\n".join(f"- `{f}`" for f in conflicted[:FILES_LISTED])
    more = f"\n- … and {len(conflicted) - FILES_LISTED} more" if len(conflicted) > 30 else ""
    text = (
        f"The base branch `{base}` moved, and pact-bot merged it into this pull request's "
        f"branch `{branch}` (checked out at `/workspace`). The merge conflicts in these "
        f"files, which hold git's conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`):\n\n"
        f"{files}{more}\n\n"
        "Resolve every conflict: keep what both sides meant (the base's new behaviour and "
        "this pull request's change), remove every marker, and change nothing else. Do not "
        "run git: pact-bot commits the merge. End with one line per file saying how you "
        "resolved it."
    )
    if instructions.strip():
        text += (
            "\n\nThe person asking adds:\n\n"
            f"<instructions>\n{instructions.strip()}\n</instructions>"
        )
    return text


def _has_markers(text: str) -> bool:
    return any(m in text for m in MARKERS) or text.startswith("=======\n")


def leftover_markers(wt: Path, files: Sequence[str]) -> list[str]:
    out = []
    for f in files:
        try:
            if _has_markers(read_text(wt, f)):
                out.append(f)
        except (NotFound, Refused):
            continue
    return out


def _from_base(wt: Path, base_files: dict[str, str | None], path: str) -> bool:
    """True when the worktree's file is exactly the base branch's (the base brought it)."""
    if path not in base_files:
        return False
    try:
        now: str | None = read_text(wt, path)
    except NotFound:
        now = None
    except Refused:
        return False
    return now == base_files[path]


async def rebase_pr(
    ctx: JobContext[Any], work: Work, pull: Pull, token: str, existing_summaries: list[str]
) -> JobOutcome:
    ws = ctx.rt.workspace
    job = ctx.job
    tracker, wt = work.held()
    clone_url, branch, base, eff = pull.info.clone_url, pull.branch, pull.pr.base.ref, pull.eff
    try:
        conflicted = await ws.merge_remote(wt, base, clone_url, token)
    except WorkspaceError as e:
        raise JobFailed(Failure.api_error, f"git: {e}") from None
    pr_url = f"{ctx.rt.settings.web_url.rstrip('/')}/{job.repo}/pull/{job.number}"
    if conflicted is None:
        await ctx.api.comment(
            ctx.number, f"`{branch}` has every commit of `{base}` already: nothing to merge."
        )
        await tracker.show(JobProgress(job.id, Phase.done), force=True)
        return JobOutcome(JobState.succeeded, pr_url=pr_url)
    resolved_by_agent = ""
    stats = None
    if conflicted:
        impl = await run_job_agent(
            ctx,
            work,
            token,
            rebase_task(base, branch, conflicted, ctx.task.instructions),
            "merge",
            (),
            existing_summaries or ["docs/implementation-summary-merge.md"],
        )
        stats = impl.stats
        failed = failure_of(impl)
        if failed is not None and failed[0] not in (
            Failure.no_change,
            Failure.protected,
            Failure.secret,
        ):
            raise JobFailed(failed[0], failed[1] + " The merge was not pushed.")
        resolved_by_agent = impl.final_text.strip()
        changes = await ws.changes(wt)
        base_files = {p: await _base_text(ctx, base, p) for p in changes.paths}
        mine = [p for p in changes.paths if not _from_base(wt, base_files, p)]
        bad = protected_touched(mine, eff.protected_paths)
        if bad:
            raise JobFailed(Failure.protected, "", bad)
        texts = []
        for p in mine:
            try:
                texts.append(read_text(wt, p))
            except (NotFound, Refused):
                continue
        if leaked_secrets("\n".join(texts), [*ctx.rt.settings.secrets(), token]):
            raise JobFailed(Failure.secret)
        if left := leftover_markers(wt, conflicted):
            raise JobFailed(
                Failure.unsupported,
                "The agent left conflict markers in "
                + ", ".join(f"`{f}`" for f in left[:FILES_LISTED])
                + f". Nothing was pushed. Merge `{base}` into `{branch}` by hand.",
            )
    if await ctx.control.cancelled():
        raise JobFailed(Failure.cancelled)
    await tracker.show(JobProgress(job.id, Phase.opening_pr, stats=stats))
    sha = await commit(ctx, wt, f"Merge branch '{base}' into {branch}", credit=False)
    try:
        await ws.push(wt, clone_url, await ctx.api.token(), branch)  # never forced
    except PushRejected as e:
        raise JobFailed(Failure.push_refused, str(e).splitlines()[0][:ERROR_LINE_LIMIT]) from None
    cite = f"[`{sha[:SHA_SHORT]}`]({pr_url}/commits/{sha})"
    if conflicted:
        files = ", ".join(f"`{f}`" for f in conflicted[:FILES_LISTED])
        said = resolved_by_agent or "(the agent said nothing more)"
        text = (
            f"pact-bot merged `{base}` into `{branch}` in {cite}; the agent resolved the "
            f"conflicts in {files}.\n\n{said}"
        )
    else:
        text = f"pact-bot merged `{base}` into `{branch}` in {cite} (no conflicts)."
    await ctx.api.comment(ctx.number, text)
    await tracker.show(JobProgress(job.id, Phase.done, stats=stats), force=True)
    return JobOutcome(JobState.succeeded, pr_url=pr_url)


async def _base_text(ctx: JobContext[Any], base: str, path: str) -> str | None:
    """The file on the base branch (None: not there), through the API: the worktree is
    mid-merge and git is the workspace's alone."""
    return await ctx.api.file_text(path, base)
