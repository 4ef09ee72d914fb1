"""Reply jobs: `/pact help`, `/pact status`, `/pact cancel`, answered in one comment.

    outcome = await handle_reply(runtime, job, control)     # JobOutcome

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

Shared with revise jobs: `permission_of(api, repo_path, login)`, `refusal_text(...)`.
Texts are pure functions (`help_text`, `status_text`, `cancel_text`, `lost_text`,
`queued_text`).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from githubkit.exception import GitHubException, RequestFailed

from pact_bot.jobs.model import TERMINAL, Job, JobKind, JobState
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import report
from pact_bot.pipeline.base import RepoJob
from pact_bot.pipeline.code import WRITE_PERMISSIONS
from pact_bot.pipeline.refusal import refuse_once
from pact_bot.pipeline.runtime import Runtime
from pact_bot.repo_config import CONFIG_PATH, Effective, RepoConfigError, parse_repo_config

log = logging.getLogger(__name__)

Api = Callable[..., Awaitable[Any]]


async def permission_of(api: Api, repo_path: str, login: str) -> str:
    """The user's permission on the repository (admin, maintain, write, …, or none).

    GitHub reports custom and `maintain` roles in `role_name`, with `permission` holding
    the classic level they include; either one being a write level grants write.
    """
    if not login:
        return "none"
    try:
        data = await api("GET", f"{repo_path}/collaborators/{login}/permission")
    except RequestFailed as e:
        if e.response.status_code not in (403, 404):
            raise
        return "none"
    role = str(data.get("role_name") or "")
    perm = str(data.get("permission") or "none")
    if role in WRITE_PERMISSIONS:
        return role
    return perm if perm in WRITE_PERMISSIONS else (role or perm)


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
            f"- `{c} status` — queued and running pact-bot jobs of this issue or pull request.",
            f"- `{c} cancel` — stop them; the running job stops at its next safe point and "
            "pushes nothing.",
            f"- `{c} help` — this text.",
            f"- Label an issue `{label}` to implement the specs it names.",
            "- Review a pact-bot pull request (comments or “Request changes”) to have it push "
            "a follow-up commit and reply in each thread.",
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


def status_text(jobs: Sequence[Job], number: int | None, now: float | None = None) -> str:
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
        lines.append(f"| `{j.id}` | {j.kind} | {state} | {j.turns} | ${j.cost_usd:.2f} | {since} |")
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
    behind = ", ".join(f"`{j.id}` ({j.kind}, {j.state})" for j in (running or ahead)[:3])
    return (
        f"{ack_marker(job.id)}\nQueued: job `{job.id}` is number {len(ahead) + 1} in line "
        f"here; it starts when {behind}"
        + (f" and {len(ahead) - 3} more" if len(ahead) > 3 else "")
        + f" finish{'es' if len(ahead) == 1 else ''}. `{command} status` shows them."
    )


def lost_text(job: Job, attempts: int, command: str = "/pact") -> str:
    """Why a job stopped when its workers kept vanishing, and how to try again."""
    progress = job.task.get("progress") or {}
    pushed = str(progress.get("pushed_sha") or "")
    kept = (
        f"Its last attempt had already pushed commit `{pushed[:7]}`"
        + (f" ({job.pr_url})" if job.pr_url else "")
        + "; nothing more was pushed."
        if pushed
        else "Nothing was pushed by the unfinished attempt."
    )
    again = (
        f"comment `{command} code <what to change>` on this pull request"
        if job.kind is JobKind.revise
        else f"comment `{command} code`"
    )
    return (
        f"Job `{job.id}` stopped: the worker running it was lost {attempts} "
        f"time{'s' if attempts != 1 else ''} (crash or restart), so pact-bot gave up on it. "
        f"{kept} To try again, {again}."
    )


class ReplyJob(RepoJob):
    async def run(self) -> JobOutcome:
        try:
            return await self._run()
        except (RequestFailed, GitHubException) as e:
            log.warning("reply job failed", exc_info=True)
            return JobOutcome(JobState.failed, error=f"GitHub API: {type(e).__name__}")

    async def _run(self) -> JobOutcome:
        job = self.job
        inst = job.installation_id or await self.rt.app.installation_id(job.repo)
        async with await self.rt.app.repo_client(job.repo, inst) as rc:
            self.gh = rc.gh
            return await self._answer(rc)

    async def _answer(self, rc: Any) -> JobOutcome:
        job = self.job
        name = str(self.task.get("command") or "help")
        if name == "lost":  # from the queue, not a person: no 👀, no permission check
            return await self._lost(rc)
        await self._react()
        if name == "ack":
            return await self._ack(rc)
        perm = await permission_of(self.api, self.repo_path(), job.sender)
        if perm not in WRITE_PERMISSIONS:
            command = await self._command_word(rc)
            await refuse_once(self, refusal_text(job.sender, perm, name, command))
            return JobOutcome(
                JobState.failed, error=f"refused: {job.sender} lacks write permission"
            )
        if name == "status":
            await self.comment(await self._status())
        elif name == "cancel":
            await self.comment(await self._cancel())
        else:
            await self.comment(await self._help(rc))
        return JobOutcome(JobState.succeeded)

    # -- system replies ----------------------------------------------------------------

    async def _find_comments(self, *needles: str) -> dict[str, int]:
        """Comment ids of this issue/PR holding each hidden marker (first 10 pages)."""
        found: dict[str, int] = {}
        for page in range(1, 11):
            items = await self.api(
                "GET",
                self.repo_path(f"/issues/{self.job.number}/comments"),
                params={"per_page": 100, "page": page},
            )
            for c in items or []:
                for n in needles:
                    if n not in found and n in (c.get("body") or ""):
                        found[n] = int(c["id"])
            if not items or len(items) < 100 or len(found) == len(needles):
                break
        return found

    async def _ack(self, rc: Any) -> JobOutcome:
        """👀 is on the command already; say where its job is in line when it waits."""
        if self.queue is None:
            return JobOutcome(JobState.succeeded)
        key = str(self.task.get("for_key") or Job.key_for(self.job.repo, self.job.number))
        live = [j for j in reversed(await self.queue.list(key=key)) if j.state not in TERMINAL]
        cid = self.task.get("comment_id")
        mine = next((j for j in live if cid and j.task.get("comment_id") == cid), None)
        if mine is None:  # coalesced into an identical queued job
            fp = self.task.get("for_fingerprint")
            mine = next(
                (
                    j
                    for j in live
                    if j.state is JobState.queued
                    and str(j.kind) == self.task.get("for_kind")
                    and j.task.get("fingerprint") == fp
                ),
                None,
            )
        if mine is None:  # finished already, or never recorded
            return JobOutcome(JobState.succeeded)
        await self.queue.update(mine.id, acked=True)
        ahead = live[: live.index(mine)]
        waiting = mine.state is JobState.queued and any(j.state is JobState.running for j in ahead)
        if not waiting:
            return JobOutcome(JobState.succeeded)
        perm = await permission_of(self.api, self.repo_path(), self.job.sender)
        if perm not in WRITE_PERMISSIONS:  # the job itself refuses when it starts
            return JobOutcome(JobState.succeeded)
        if not await self._find_comments(ack_marker(mine.id)):
            await self.comment(queued_text(mine, ahead, await self._command_word(rc)))
        return JobOutcome(JobState.succeeded)

    async def _lost(self, rc: Any) -> JobOutcome:
        lost_id = str(self.task.get("lost_job_id") or "")
        lost = await self.queue.get(lost_id) if self.queue is not None and lost_id else None
        if (
            lost is None
            or lost.state is not JobState.failed
            or self.job.delivery_id != f"lost:{lost_id}"
        ):
            return JobOutcome(JobState.failed, error=f"no lost job {lost_id!r} to report")
        attempts = int(self.task.get("attempts") or lost.attempts)
        text = lost_text(lost, attempts, await self._command_word(rc))
        progress_marker, notice_marker = report.marker(lost.id), lost_marker(lost.id)
        found = await self._find_comments(progress_marker, notice_marker)
        progress_id = (lost.task.get("progress") or {}).get("comment_id") or found.get(
            progress_marker
        )
        if progress_id:
            body = report.progress_body(report.Progress(lost.id, report.Phase.failed, failure=text))
            try:
                await self.api(
                    "PATCH", self.repo_path(f"/issues/comments/{progress_id}"), json={"body": body}
                )
            except RequestFailed:
                log.warning("could not finalise the lost job's progress comment", exc_info=True)
        if notice_marker not in found:
            await self.comment(f"{notice_marker}\n{text}")
        return JobOutcome(JobState.succeeded)

    async def _react(self) -> None:
        cid = self.task.get("comment_id")
        if not cid:
            return
        try:
            await self.api(
                "POST",
                self.repo_path(f"/issues/comments/{cid}/reactions"),
                json={"content": "eyes"},
            )
        except RequestFailed:
            log.warning("could not react to the command", exc_info=True)

    async def _config_text(self, rc: Any) -> str | None:
        repo = await rc.repository()
        branch = str(repo.get("default_branch") or self.task.get("default_branch") or "main")
        try:
            data = await self.api(
                "GET", self.repo_path(f"/contents/{CONFIG_PATH}"), params={"ref": branch}
            )
        except RequestFailed as e:
            if e.response.status_code != 404:
                raise
            return None
        return base64.b64decode(data.get("content", "")).decode("utf-8", "replace")

    async def _command_word(self, rc: Any) -> str:
        try:
            return parse_repo_config(await self._config_text(rc)).command
        except (RepoConfigError, RequestFailed):
            return "/pact"

    async def _help(self, rc: Any) -> str:
        text = await self._config_text(rc)
        unknown = self.task.get("unknown_command")
        unknown = str(unknown) if unknown is not None else None
        try:
            cfg = parse_repo_config(text)
        except RepoConfigError as e:
            return help_text(None, unknown=unknown, config_error=str(e))
        eff = cfg.effective(self.rt.settings)
        setter = getattr(self.queue, "set_repo_config", None)
        if setter is not None:
            try:
                await setter(self.job.repo, cfg.trigger_fields())
            except Exception:
                log.warning("could not cache the repository's trigger config", exc_info=True)
        return help_text(eff, unknown=unknown, config_found=text is not None)

    def _keys(self) -> list[str]:
        base = Job.key_for(self.job.repo, self.job.number)
        return [base, f"{base}:check"]

    async def _live(self) -> list[Job]:
        out: list[Job] = []
        if self.queue is None:
            return out
        for key in self._keys():
            out += [
                j
                for j in await self.queue.list(key=key)
                if j.state not in TERMINAL and j.id != self.job.id
            ]
        return out

    async def _status(self) -> str:
        return status_text(await self._live(), self.job.number)

    async def _cancel(self) -> str:
        if self.queue is None:
            return "pact-bot could not reach its queue to cancel; try again."
        before = {j.id: j for j in await self._live()}
        ids: list[str] = []
        for key in self._keys():
            ids += await self.queue.request_cancel(key)
        # Ingress has usually cancelled already: report what it stopped, by job id.
        stopped = {j.id: j for j in before.values()}
        for job_id in ids:
            if job_id not in stopped and (j := await self.queue.get(job_id)) is not None:
                stopped[job_id] = j
        for j in await self._recently_cancelled():
            stopped.setdefault(j.id, j)
        return cancel_text(list(stopped.values()), self.job.number)

    async def _recently_cancelled(self) -> list[Job]:
        """Jobs ingress cancelled for this command (queued ones are already terminal)."""
        out: list[Job] = []
        if self.queue is None:
            return out
        since = self.job.created_at - 5
        for key in self._keys():
            for j in await self.queue.list(key=key):
                if j.id == self.job.id:
                    continue
                if j.state is JobState.cancelled and (j.finished_at or 0) >= since:
                    out.append(j.model_copy(update={"state": JobState.queued}))
                elif j.cancel_requested and j.state is JobState.running:
                    out.append(j)
        return out


async def handle_reply(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await ReplyJob(runtime, job, control).run()


__all__ = [
    "ReplyJob",
    "ack_marker",
    "cancel_text",
    "handle_reply",
    "help_text",
    "lost_marker",
    "lost_text",
    "permission_of",
    "queued_text",
    "refusal_text",
    "status_text",
    "usage",
]
