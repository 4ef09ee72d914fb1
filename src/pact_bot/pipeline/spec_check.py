"""Spec PRs: a "PACT Code" check run with an "Implement" button, or the code job at once.

On `pull_request.opened|synchronize|reopened` of a PR from this repository, the PR's
files are read (paginated) and the specs it adds or changes found with the spec glob;
`unidiff` on each spec's patch names the sections that changed. Then, per
`.github/pact.yml` `spec_prs`:
- `suggest` (default): a completed, neutral "PACT Code" check run on the head commit
  listing the specs and sections, with the requested action `implement` ("Implement");
  pressing it arrives as `check_run.requested_action` and triggers start a code job;
- `run`: the code job is enqueued right away (same task as the button's), and the check
  run says so;
- `off`: nothing.
PRs without specs, the bot's own PRs and forks get nothing. An invalid `pact.yml` gets
a neutral check run quoting the error, but only on PRs that touch the file or a spec
under the default glob, so unrelated PRs stay quiet.

`check_output(changes, mode, job_id)` is the pure text part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from githubkit.exception import RequestFailed
from githubkit_schemas.latest.models import PullRequest

from pact_bot.jobs.model import Enqueued, Job, JobKind, JobState
from pact_bot.jobs.tasks import CodeTask, SpecCheckTask
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.report import CHECK_NAME
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import answer_in_context, follow_up
from pact_bot.repo_config import CONFIG_PATH, RepoConfigError, glob_match
from pact_bot.specs import DEFAULT_GLOB, SpecChange, spec_changes
from pact_bot.triggers import IMPLEMENT_ACTION

log = logging.getLogger(__name__)

MAX_SPEC_READS = 20
MAX_SECTIONS_LISTED = 20
CHECK_SUMMARY_LIMIT = 60_000  # check-run output fields hold at most 65,535 characters
IMPLEMENT = {
    "label": "Implement",
    "description": "Implement these specs in a pull request",
    "identifier": IMPLEMENT_ACTION,
}


def check_output(changes: Sequence[SpecChange], mode: str, job_id: str = "") -> dict[str, str]:
    n = len(changes)
    specs = f"{n} spec{'s' if n != 1 else ''}"
    if mode == "run":
        title = f"Implementing {specs}"
        lead = f"pact-bot started implementing these specs (job `{job_id}`)."
    else:
        title = f"{specs} ready to implement"
        lead = 'Press "Implement" to have pact-bot implement these specs in a pull request.'
    lines = [lead, ""]
    for c in changes:
        sections = (
            f": sections {', '.join(f'“{s}”' for s in c.sections[:MAX_SECTIONS_LISTED])}"
            if c.sections
            else ""
        )
        lines.append(f"- `{c.path}` ({c.status}){sections}")
    return {"title": title, "summary": "\n".join(lines)[:CHECK_SUMMARY_LIMIT]}


async def handle_spec_check(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await answer_in_context(runtime, job, control, SpecCheckTask, _check, "spec check")


async def _check(ctx: JobContext[SpecCheckTask]) -> JobOutcome:
    api = ctx.api
    pr = await api.pull(ctx.number)
    _, bot_login = await ctx.rt.app.identity()
    if pr.user.login == bot_login or pr.state != "open":
        return JobOutcome(JobState.succeeded)
    head_sha = pr.head.sha
    files = await api.pull_files(ctx.number)
    try:
        cfg = await ctx.config()
    except RepoConfigError as e:
        if any(f.filename == CONFIG_PATH or glob_match(DEFAULT_GLOB, f.filename) for f in files):
            output = {
                "title": f"{CONFIG_PATH} is not valid",
                "summary": f"pact-bot cannot look for specs until it is fixed:\n\n> {e}",
            }
            await _check_run(ctx, head_sha, output, actions=False)
        return JobOutcome(JobState.failed, error=f"invalid_config: {e}")
    if cfg.spec_prs == "off":
        return JobOutcome(JobState.succeeded)
    specs: list[dict[str, Any]] = [
        {"filename": f.filename, "status": f.status, "patch": f.patch or None}
        for f in files
        if f.status != "removed" and glob_match(cfg.spec_glob, f.filename)
    ]
    for f in specs[:MAX_SPEC_READS]:
        f["contents"] = await _text_at(ctx, f["filename"], head_sha)
    changes = spec_changes(specs, cfg.spec_glob)
    if not changes:
        return JobOutcome(JobState.succeeded)
    if cfg.spec_prs == "run":
        code_id = await _start_code_job(ctx, pr)
        await _check_run(ctx, head_sha, check_output(changes, "run", code_id), actions=False)
    else:
        await _check_run(ctx, head_sha, check_output(changes, "suggest"), actions=True)
    return JobOutcome(JobState.succeeded)


async def _text_at(ctx: JobContext[SpecCheckTask], path: str, ref: str) -> str | None:
    """A spec's new text, so each changed line is named by the heading above it even when
    that heading is far outside the patch's context lines."""
    try:
        return await ctx.api.file_text(path, ref)
    except RequestFailed:
        return None


async def _start_code_job(ctx: JobContext[SpecCheckTask], pr: PullRequest) -> str:
    """Enqueue the code job the "Implement" button would start."""
    job = ctx.job
    task = CodeTask(
        trigger="spec_prs",
        is_pr=True,
        number=job.number,
        default_branch=ctx.task.default_branch,
        head_sha=pr.head.sha,
        head_ref=pr.head.ref,
        base_ref=pr.base.ref,
        title=pr.title or "",
        body=pr.body or "",
        spec_paths=[],
        instructions="",
        fingerprint="code::",
    )
    code = follow_up(ctx, JobKind.code, ctx.number, task, "spec_prs-run", sender=pr.user.login)
    result = await ctx.queue.enqueue(code)
    log.info("spec PR: code job enqueued", extra={"result": str(result), "code_job": code.id})
    return code.id if result is Enqueued.created else "already queued"


async def _check_run(
    ctx: JobContext[SpecCheckTask], sha: str, output: dict[str, str], *, actions: bool
) -> None:
    await ctx.api.check_run(
        name=CHECK_NAME,
        head_sha=sha,
        conclusion="neutral",
        external_id=ctx.job.id,
        output=output,
        actions=[IMPLEMENT] if actions else None,
    )
