"""Reply jobs: `/pact help`, `/pact status`, `/pact cancel`, answered in one comment.

Every accepted command gets 👀 first, then the sender's permission is checked (write,
maintain or admin; anything else gets a polite refusal and nothing else happens):
- `help` (and any unknown sub-command): usage plus the repository's effective
  configuration from `.github/pact.yml` (an invalid file is quoted with its line);
- `status`: the queued and running jobs of this issue or PR, with state, turn and cost,
  read from the queue;
- `cancel`: asks the queue to cancel them (ingress already did when it routed the
  command; asking again is harmless) and says which jobs stop. A running job stops at
  its next safe point: between agent turns, before commit and before push.

Two commands come from pact-bot itself, never from a comment (triggers answer unknown
words with help), and skip the permission check:
- `ack` (recorded by ingress next to a comment-triggered code or revise job when its key
  already has a queued or running job): 👀 on the command within seconds while its job
  waits; when it waits behind a running job, one short comment says where it is in line
  (marked `<!-- pact-bot:ack:<job id> -->`, so a retry or a coalesced duplicate does not say
  it twice). The job is told (`acked` in its
  progress) so it does not react again.
- `lost` (enqueued by the queue when a job failed because its worker vanished
  `max_attempts` times): a comment saying so (marked `<!-- pact-bot:lost:<job id> -->`,
  posted once) and the job's progress comment finalised as failed. It acts only on a job
  the queue really failed that way.

Shared with revise jobs: `refusal_text(...)`. Texts are pure functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from pact_bot.github.repo_api import WRITE_PERMISSIONS, best_effort
from pact_bot.jobs.model import TERMINAL, Job, JobKind, JobState
from pact_bot.jobs.tasks import ReplyTask, Saved
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import budget, report
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.refusal import refuse_once
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.steps import answer_in_context, react, refused
from pact_bot.repo_config import CONFIG_PATH, Effective, RepoConfigError
from pact_bot.web.links import job_url

log = logging.getLogger(__name__)

AHEAD_LISTED = 3  # jobs named in a "queued behind" note
INGRESS_CANCEL_WINDOW = 5.0  # seconds before the command in which ingress cancelled its jobs


def refusal_text(user: str, permission: str | None, what: str, command: str = "/pact") -> str:
    """A polite no: who may ask, what the user has, what to do instead."""
    asks = {
        "review": "answers reviews",
        "command": f"takes `{command}` commands",
    }.get(what, f"takes `{command} {what}`")
    return (
        f"@{user} thanks — pact-bot only {asks} from people with write, maintain or admin "
        f"permission on this repository (yours: {permission or 'none'}), so it did nothing. "
        "Ask a maintainer to trigger it."
    )


def usage(command: str = "/pact", label: str = "pact:code") -> str:
    c = command
    return "\n".join(
        [
            f"- `{c} code [spec paths]` — implement the specs (named, added in this pull "
            "request, or referenced in the issue) and open a pull request; on a pact-bot pull "
            f"request, `{c} code <instructions>` revises it instead.",
            f"- `{c} test [instructions]` — on a pull request with an implementation summary, "
            "the test engineer writes and runs tests per requirement, pushes them in one "
            "commit and reports the results and bugs in a comment.",
            f"- `{c} continue [instructions]` — on a partial pact-bot pull request (a job "
            "stopped early and kept its work as a draft): resume on its branch with a fresh "
            "budget, then mark it ready for review.",
            f"- `{c} rebase` — on a pact-bot pull request that conflicts with its base: merge "
            "the base in (a merge commit, never a force-push) and resolve the conflicts.",
            f"- `{c} status` — queued and running pact-bot jobs of this issue or pull request.",
            f"- `{c} cancel` — stop them; the running job stops at its next safe point and "
            "keeps what the agent wrote as a draft pull request marked partial.",
            f"- `{c} help` — this text.",
            f"- Label an issue `{label}` to implement the specs it names.",
            "- Review a pact-bot pull request (comments or “Request changes”) to have it push "
            "a follow-up commit and reply in each thread (`[skip pact]` in the review: "
            "ignored).",
            "- When CI fails on a pact-bot pull request, it pushes a fix (`ci:` in "
            "`.github/pact.yml`).",
            "",
            "Lines after the command are instructions for the agent.",
        ]
    )


def help_text(
    effective: Effective | None,
    *,
    command: str = "/pact",
    unknown: str | None = None,
    config_error: str | None = None,
    config_found: bool = True,
) -> str:
    label = effective.label if effective else "pact:code"
    command = effective.command if effective else command
    parts = []
    if unknown is not None:
        parts.append(f"`{command} {unknown}` is not a pact-bot command. Here is what is:")
    parts += ["### pact-bot commands", "", usage(command, label), "", "### Configuration"]
    if config_error:
        parts += [
            "",
            f"`{CONFIG_PATH}` is not valid, so jobs on this repository stop until it is fixed:",
            "",
            f"> {config_error}",
        ]
    if effective is not None:
        source = f"`{CONFIG_PATH}` on the default branch" if config_found else "defaults (no file)"
        parts += [
            "",
            f"Effective values ({source}, capped by the server's limits):",
            "",
            "```yaml",
            effective.as_text(),
            "```",
        ]
    return "\n".join(parts)


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return ""
    s = max(0, round(now - ts))
    return f"{s}s" if s < 120 else f"{s // 60}m"


def status_text(
    jobs: Sequence[Job],
    number: int | None,
    now: float | None = None,
    link: Callable[[str], str | None] = lambda _id: None,
) -> str:
    now = now or time.time()
    live = [j for j in jobs if j.state not in TERMINAL]
    where = f"#{number}" if number is not None else "this repository"
    if not live:
        return f"No pact-bot job is queued or running for {where}."
    lines = [
        f"pact-bot jobs for {where}:",
        "",
        "| job | kind | state | turn | cost | since |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for j in sorted(live, key=lambda j: j.created_at):
        state = str(j.state) + (" (cancelling)" if j.cancel_requested else "")
        since = _ago(j.started_at or j.created_at, now)
        url = link(j.id)
        job = f"[`{j.id}`]({url})" if url else f"`{j.id}`"
        lines.append(f"| {job} | {j.kind} | {state} | {j.turns} | ${j.cost_usd:.2f} | {since} |")
    return "\n".join(lines)


def cancel_text(jobs: Sequence[Job], number: int | None) -> str:
    where = f"#{number}" if number is not None else "this repository"
    if not jobs:
        return f"There was no queued or running pact-bot job for {where}; nothing to cancel."
    lines = [f"Cancelling pact-bot jobs for {where}:", ""]
    for j in jobs:
        if j.state is JobState.running:
            lines.append(
                f"- `{j.id}` ({j.kind}, running): stops at its next safe point; nothing "
                "will be pushed and its progress comment will say cancelled."
            )
        else:
            lines.append(f"- `{j.id}` ({j.kind}, {j.state}): cancelled before it started.")
    return "\n".join(lines)


def ack_marker(job_id: str) -> str:
    return f"<!-- pact-bot:ack:{job_id} -->"


def lost_marker(job_id: str) -> str:
    return f"<!-- pact-bot:lost:{job_id} -->"


def queued_text(job: Job, ahead: Sequence[Job], command: str = "/pact") -> str:
    """One line: the command's job waits, behind what, and where it is in line."""
    running = [j for j in ahead if j.state is JobState.running]
    shown = (running or ahead)[:AHEAD_LISTED]
    behind = ", ".join(f"`{j.id}` ({j.kind}, {j.state})" for j in shown)
    return (
        f"{ack_marker(job.id)}\nQueued: job `{job.id}` is number {len(ahead) + 1} in line "
        f"here; it starts when {behind}"
        + (f" and {len(ahead) - AHEAD_LISTED} more" if len(ahead) > AHEAD_LISTED else "")
        + f" finish{'es' if len(ahead) == 1 else ''}. `{command} status` shows them."
    )


def lost_text(job: Job, attempts: int, command: str = "/pact") -> str:
    """Why a job stopped when its workers kept vanishing, and how to try again."""
    pushed = Saved.model_validate(job.task.get("progress") or {}).pushed_sha or ""
    kept = (
        f"Its last attempt had already pushed commit `{pushed[: report.SHA_SHORT]}`"
        + (f" ({job.pr_url})" if job.pr_url else "")
        + "; nothing more was pushed."
        if pushed
        else "Nothing was pushed by the unfinished attempt."
    )
    again = {
        JobKind.revise: f"comment `{command} code <what to change>` on this pull request",
        JobKind.test: f"comment `{command} test`",
    }.get(job.kind, f"comment `{command} code`")
    return (
        f"Job `{job.id}` stopped: the worker running it was lost {attempts} "
        f"time{'s' if attempts != 1 else ''} (crash or restart), so pact-bot gave up on it. "
        f"{kept} To try again, {again}."
    )


async def handle_reply(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await answer_in_context(runtime, job, control, ReplyTask, _answer, "reply job")


async def _answer(ctx: JobContext[ReplyTask]) -> JobOutcome:
    name = ctx.task.command
    if name == "lost":  # from the queue, not a person: no 👀, no permission check
        return await _lost(ctx)
    await react(ctx)
    if name == "ack":
        return await _ack(ctx)
    perm = await ctx.api.permission(ctx.sender)
    if perm not in WRITE_PERMISSIONS:
        text = refusal_text(ctx.sender, perm, name, await ctx.command_word())
        await refuse_once(ctx, text)
        return refused(ctx)
    if name == "status":
        text = status_text(
            await _live(ctx), ctx.job.number, link=lambda i: job_url(ctx.rt.settings, i)
        )
        text += "\n\n" + await budget.month_status(ctx)
    elif name == "cancel":
        text = await _cancel(ctx)
    else:
        text = await _help(ctx)
    await ctx.api.comment(ctx.number, text)
    return JobOutcome(JobState.succeeded)


# -- system replies --------------------------------------------------------------------


async def _ack(ctx: JobContext[ReplyTask]) -> JobOutcome:
    """👀 is on the command already; say where its job is in line when it waits."""
    task, queue = ctx.task, ctx.queue
    key = task.for_key or Job.key_for(ctx.job.repo, ctx.job.number)
    live = [j for j in reversed(await queue.list(key=key)) if j.state not in TERMINAL]
    cid = task.comment_id
    mine = next((j for j in live if cid and j.task.get("comment_id") == cid), None)
    if mine is None:  # coalesced into an identical queued job
        mine = next(
            (
                j
                for j in live
                if j.state is JobState.queued
                and str(j.kind) == task.for_kind
                and j.task.get("fingerprint") == task.for_fingerprint
            ),
            None,
        )
    if mine is None:  # finished already, or never recorded
        return JobOutcome(JobState.succeeded)
    await queue.update(mine.id, acked=True)
    ahead = live[: live.index(mine)]
    waiting = mine.state is JobState.queued and any(j.state is JobState.running for j in ahead)
    if not waiting:
        return JobOutcome(JobState.succeeded)
    if await ctx.api.permission(ctx.sender) not in WRITE_PERMISSIONS:
        return JobOutcome(JobState.succeeded)  # the job itself refuses when it starts
    if not await ctx.api.find_comments(ctx.number, ack_marker(mine.id)):
        await ctx.api.comment(ctx.number, queued_text(mine, ahead, await ctx.command_word()))
    return JobOutcome(JobState.succeeded)


async def _lost(ctx: JobContext[ReplyTask]) -> JobOutcome:
    lost_id = ctx.task.lost_job_id or ""
    lost = await ctx.queue.get(lost_id) if lost_id else None
    if (
        lost is None
        or lost.state is not JobState.failed
        or ctx.job.delivery_id != f"lost:{lost_id}"
    ):
        return JobOutcome(JobState.failed, error=f"no lost job {lost_id!r} to report")
    attempts = ctx.task.attempts or lost.attempts
    text = lost_text(lost, attempts, await ctx.command_word())
    progress_marker, notice_marker = report.marker(lost.id), lost_marker(lost.id)
    found = await ctx.api.find_comments(ctx.number, progress_marker, notice_marker)
    saved = Saved.model_validate(lost.task.get("progress") or {})
    progress_id = saved.comment_id or found.get(progress_marker)
    if progress_id:
        body = report.progress_body(report.JobProgress(lost.id, report.Phase.failed, failure=text))
        with best_effort("finalise the lost job's progress comment"):
            await ctx.api.edit_comment(progress_id, body)
    if notice_marker not in found:
        await ctx.api.comment(ctx.number, f"{notice_marker}\n{text}")
    return JobOutcome(JobState.succeeded)


async def _help(ctx: JobContext[ReplyTask]) -> str:
    text = await ctx.config_text()
    unknown = ctx.task.unknown_command
    try:
        cfg = await ctx.config()
    except RepoConfigError as e:
        return help_text(None, unknown=unknown, config_error=str(e))
    eff = cfg.effective(ctx.rt.settings)
    return help_text(eff, unknown=unknown, config_found=text is not None)


def _keys(ctx: JobContext[ReplyTask]) -> list[str]:
    base = Job.key_for(ctx.job.repo, ctx.job.number)
    return [base, f"{base}:check"]


async def _live(ctx: JobContext[ReplyTask]) -> list[Job]:
    out: list[Job] = []
    for key in _keys(ctx):
        out += [
            j
            for j in await ctx.queue.list(key=key)
            if j.state not in TERMINAL and j.id != ctx.job.id
        ]
    return out


async def _cancel(ctx: JobContext[ReplyTask]) -> str:
    queue = ctx.queue
    before = {j.id: j for j in await _live(ctx)}
    ids: list[str] = []
    for key in _keys(ctx):
        ids += await queue.request_cancel(key)
    # Ingress has usually cancelled already: report what it stopped, by job id.
    stopped = dict(before)
    for job_id in ids:
        if job_id not in stopped and (j := await queue.get(job_id)) is not None:
            stopped[job_id] = j
    for j in await _recently_cancelled(ctx):
        stopped.setdefault(j.id, j)
    return cancel_text(list(stopped.values()), ctx.job.number)


async def _recently_cancelled(ctx: JobContext[ReplyTask]) -> list[Job]:
    """Jobs ingress cancelled for this command (queued ones are already terminal)."""
    out = []
    since = ctx.job.created_at - INGRESS_CANCEL_WINDOW
    for key in _keys(ctx):
        for j in await ctx.queue.list(key=key):
            if j.id == ctx.job.id:
                continue
            if j.state is JobState.cancelled and (j.finished_at or 0) >= since:
                out.append(j.model_copy(update={"state": JobState.queued}))
            elif j.cancel_requested and j.state is JobState.running:
                out.append(j)
    return out
