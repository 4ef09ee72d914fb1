"""Drift jobs: a push to the default branch checked against what the bot implemented, and
the "Update code" button of the check run that reports drift.

What the bot implemented is read from the implementation summaries in the repository as
they were before the push (`docs/implementation-summary-*.md` at `before`, through the
contents API): each names its spec(s), and its `## Traceability` table maps requirement →
files. That is the durable record. It is committed with the code the bot wrote, so it
exists at every commit, moves with renames and reverts, survives a deleted PR or a lost
queue, and a revision keeps it current; a record in the queue DB would need a table in two
backends and be blind to history, and a hidden marker in a PR body would have to be found
again (which PR merged this?) and goes stale after the first revision. The summaries are
agent-written, so they are hostile input: at most `MAX_SUMMARIES` are read, each is parsed
only by the bounded parsers of `drift`/`traceability`, and everything shown is escaped.
Reading them as they were *before* the push means merging a bot PR (code and summary
arriving together) is not drift.

A press of "Update code" opens an issue for the update (the code job needs a place for its
progress comment and its PR's "Closes #") and enqueues a code job on it whose first message
is `drift.update_task`: the changed sections only, and where the implementation is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from githubkit.exception import GitHubException, RequestFailed

from pact_bot import drift
from pact_bot.github.repo_api import WRITE_PERMISSIONS
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.tasks import CodeTask, DriftTask
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline.context import JobContext, open_context
from pact_bot.pipeline.prompts import repository_parts
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import follow_up
from pact_bot.repo_config import RepoConfigError, glob_match
from pact_bot.requirements import clip as clip_line
from pact_bot.traceability import MAX_SCAN
from pact_bot.traceability_text import cell

log = logging.getLogger(__name__)

SUMMARY_DIR = "docs"
SUMMARY_GLOB = "docs/implementation-summary-*.md"
MAX_SUMMARIES = 50
MAX_SPEC_READS = 20  # changed specs whose new text is fetched (sharper sections)
UPDATE_LIMIT = 20_000  # characters of the update task kept in the code job's task
TITLE_LIMIT = 200


async def handle_drift(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    """No conversation to report a failure in: a GitHub error (a force-pushed range that is
    gone, an outage) ends the job failed, with the reason in its record."""
    try:
        return await _drift(runtime, job, control)
    except RequestFailed as e:
        detail = f"HTTP {e.response.status_code} on {e.request.method} {e.request.url.path}"
        log.warning("drift job: github call failed", extra={"detail": detail})
        return JobOutcome(JobState.failed, error=f"api_error: {detail}")
    except GitHubException as e:
        return JobOutcome(JobState.failed, error=f"api_error: {type(e).__name__}")


async def _drift(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    async with open_context(runtime, job, control, DriftTask) as ctx:
        try:
            cfg = await ctx.config()
        except RepoConfigError as e:  # no PR or issue to tell: the log says why
            log.info("drift: invalid repository config", extra={"error": str(e)})
            return JobOutcome(JobState.succeeded)
        if cfg.drift == "off":
            return JobOutcome(JobState.succeeded)
        if ctx.task.action == "update":
            return await _update(ctx, cfg.spec_glob)
        return await _check(ctx, cfg.spec_glob)


async def find_drift(ctx: JobContext[DriftTask], glob: str) -> drift.Drift:
    """The push's drift: its changed files against the implementations before it."""
    before, after = ctx.task.before, ctx.task.after
    files: list[dict[str, Any]] = [
        {
            "filename": f.filename,
            "status": f.status,
            "patch": f.patch or None,
            "previous_filename": f.previous_filename or None,
        }
        for f in await ctx.api.compare(before, after)
    ]
    impls = await implementations(ctx, before, glob)
    specs = {i.spec for i in impls}
    changed = {str(f["filename"]) for f in files}
    fetched = 0
    for f in files:
        named = f["filename"] in specs or f["previous_filename"] in specs
        if named and f["status"] != "removed" and fetched < MAX_SPEC_READS:
            f["contents"] = await ctx.api.file_text(str(f["filename"]), after)
            fetched += 1
    found = drift.detect_drift(impls, files)
    # Code whose summary changed in the same push was updated on purpose (a merged bot PR).
    updated = {i.spec for i in impls if any(s in changed for s in i.summaries)}
    code = tuple(c for c in found.code if not set(c.specs) <= updated)
    return drift.Drift(found.specs, code)


async def implementations(
    ctx: JobContext[DriftTask], ref: str, glob: str
) -> list[drift.Implementation]:
    names = [n for n in await ctx.api.file_names(SUMMARY_DIR, ref) if glob_match(SUMMARY_GLOB, n)]
    found: list[list[drift.Implementation]] = []
    for path in sorted(names)[:MAX_SUMMARIES]:
        text = await ctx.api.file_text(path, ref)
        if text:
            found.append(drift.implementations_from_summary(path, text[:MAX_SCAN], glob))
    return drift.merge(*found)


async def _check(ctx: JobContext[DriftTask], glob: str) -> JobOutcome:
    found = await find_drift(ctx, glob)
    if not found:
        return JobOutcome(JobState.succeeded)
    await ctx.api.check_run(
        name=drift.CHECK_NAME,
        head_sha=ctx.task.after,
        conclusion=drift.conclusion(found),
        external_id=drift.range_id(ctx.task.before, ctx.task.after),
        output=drift.check_output(found),
        actions=drift.actions(found) or None,
    )
    return JobOutcome(JobState.succeeded)


async def _update(ctx: JobContext[DriftTask], glob: str) -> JobOutcome:
    perm = await ctx.api.permission(ctx.sender)
    if perm not in WRITE_PERMISSIONS:  # the button has no conversation to answer in
        log.info("drift update refused", extra={"sender": ctx.sender, "permission": perm})
        return JobOutcome(JobState.failed, error=f"refused: {ctx.sender} lacks write permission")
    number = ctx.saved.issue_number
    found = await find_drift(ctx, glob)
    changed = [d for d in found.specs if not d.removed]
    task = drift.update_task(changed)
    if not task:
        return JobOutcome(JobState.succeeded)
    if number is None:
        number = await ctx.api.create_issue(_title(changed), _issue_body(ctx, changed))
        await ctx.save(issue_number=number)
    code = CodeTask(
        trigger="drift",
        number=number,
        default_branch=ctx.task.default_branch,
        title=_title(changed),
        spec_paths=[d.spec for d in changed],
        update=task[:UPDATE_LIMIT],
        fingerprint=f"drift-update:{ctx.task.after}",
    )
    result = await ctx.queue.enqueue(follow_up(ctx, JobKind.code, number, code, "update"))
    # a retry finds its code job already recorded (duplicate delivery): nothing lost
    log.info("drift update: code job enqueued", extra={"result": str(result)})
    return JobOutcome(JobState.succeeded)


def _title(changed: Sequence[drift.SpecDrift]) -> str:
    names = ", ".join(d.spec for d in changed[:3]) + (" …" if len(changed) > 3 else "")
    return clip_line(f"Update the code for {names}", TITLE_LIMIT)


def _issue_body(ctx: JobContext[DriftTask], changed: Sequence[drift.SpecDrift]) -> str:
    lines = [
        f'@{ctx.sender} pressed "Update code" on the {drift.CHECK_NAME} check of '
        f"{ctx.task.after[:7]}. pact-bot updates the implementation for the sections "
        "that changed:",
        "",
    ]
    for d in changed[: drift.MAX_LISTED]:
        where = "; ".join(f"“{cell(s, 80)}”" for s in d.sections[:10]) or "(sections unknown)"
        lines.append(f"- `{cell(d.spec, 120)}`: {where}")
    return "\n".join(lines)


def update_message(
    task: str, files: Sequence[str], agent_docs: Sequence[tuple[str, str]], summary_file: str
) -> str:
    """The code job's first message for a drift update: what changed (not the whole spec:
    the agent reads it in the worktree when it needs more), the map and the instructions."""
    parts = [f"<update>\n{task.strip()}\n</update>", *repository_parts(files, agent_docs)]
    parts.append(
        f"The specs are in the repository under /workspace. When done, update the "
        f"implementation summary at `/workspace/{summary_file}` (keep its `## Assumptions` "
        "and `## For the Test Engineer` sections current)."
    )
    return "\n\n".join(parts)
