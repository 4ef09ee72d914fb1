"""Steps job kinds are composed of: permission, 👀, the progress comment, identities, the
commit, the check run, the job a job hands on, the clean-up, and the one place where an
exception becomes a failure the user reads.

Every step takes the job's `JobContext`; none holds state of its own except the
`ProgressTracker`, which owns the job's one progress comment, and `Work`, what a job must
let go of whatever happens.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from githubkit.exception import GitHubException, RequestFailed

from pact_bot.clock import Interval
from pact_bot.github.repo_api import WRITE_PERMISSIONS, best_effort
from pact_bot.jobs.model import ERROR_LIMIT, Job, JobKind, JobState
from pact_bot.jobs.tasks import TaskBase, wire
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.logs import redact
from pact_bot.pipeline import budget, report
from pact_bot.pipeline.context import JobContext, T, open_context
from pact_bot.pipeline.progress import ProgressComment
from pact_bot.pipeline.refusal import refuse_once
from pact_bot.pipeline.report import Failure, JobProgress, Phase, RunStats
from pact_bot.pipeline.runtime import Runtime
from pact_bot.repo_config import RepoConfig, RepoConfigError
from pact_bot.web.links import job_url
from pact_bot.workspace import Workspace

log = logging.getLogger(__name__)

ERROR_LINE_LIMIT = 300  # one line of an unexpected error, in the failure comment
BOT_LOGIN = "pact-bot[bot]"  # when the App's own login cannot be asked
NOREPLY = "users.noreply.github.com"


class JobFailed(Exception):
    """An expected failure: the job stops and the progress comment says `kind`."""

    def __init__(self, kind: Failure, detail: str = "", files: Sequence[str] = ()) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.files = list(files)


def refused(ctx: JobContext[Any]) -> JobOutcome:
    return JobOutcome(JobState.failed, error=f"refused: {ctx.sender} lacks write permission")


async def ensure_allowed(ctx: JobContext[Any], refusal: Callable[[str, str], str]) -> bool:
    """True when the sender may write; otherwise a refusal comment, `refusal(permission,
    command word)`, naming the repository's own command word."""
    perm = await ctx.api.permission(ctx.sender)
    if perm in WRITE_PERMISSIONS:
        return True
    log.info("sender lacks permission", extra={"sender": ctx.sender, "permission": perm})
    await refuse_once(ctx, refusal(perm, await ctx.command_word()))
    return False


async def ensure_budget(ctx: JobContext[Any]) -> JobOutcome | None:
    """None when the monthly caps leave room for this job (noting 80 % reached for its
    progress comment); otherwise one comment saying what was spent, and the failed outcome
    (before any model call: the job spends nothing)."""
    b = await budget.job_budget(ctx)
    if b is None:
        return None
    cap = b.binding
    if cap is not None and cap.reached:
        log.info("monthly budget reached", extra={"scope": cap.scope, "spent": cap.spent})
        marker = f"<!-- pact-bot:budget:{ctx.job.id} -->"
        if marker not in await ctx.api.find_comments(ctx.number, marker, author="Bot"):
            await ctx.api.comment(ctx.number, f"{budget.refusal_text(b, cap)}\n\n{marker}")
        return JobOutcome(
            JobState.failed,
            error=f"monthly budget reached: ${cap.spent:.2f} of ${cap.limit:.2f} ({cap.scope})",
        )
    warned = next((c for c in sorted(b.caps, key=lambda c: c.headroom) if c.warn), None)
    if warned is not None:
        ctx.budget_note = budget.warning_note(b, warned)
    return None


async def react(ctx: JobContext[Any], *, on_issue: bool = False) -> None:
    """👀 on the command comment (or, for a label, on the issue) unless the command's ack
    job reacted already."""
    cid = ctx.task.comment_id
    if cid and ctx.saved.acked:
        return
    with best_effort("react to the trigger"):
        if cid:
            await ctx.api.react(comment_id=cid)
        elif on_issue:
            await ctx.api.react(issue=ctx.number)


class ProgressTracker:
    """The job's progress comment: found again by its marker on a retry, edited as the job
    goes (throttled), and never a reason for the job to fail."""

    def __init__(
        self, ctx: JobContext[Any], render: Callable[[JobProgress], str] = report.progress_body
    ) -> None:
        self.ctx = ctx
        self.render = render
        self.state = JobProgress(ctx.job.id, Phase.preparing)
        self.comment: ProgressComment | None = None
        self.link = job_url(ctx.rt.settings, ctx.job.id)
        self.note: str | None = None  # one line shown under every state (e.g. a setup hint)

    async def start(self) -> None:
        ctx = self.ctx
        cid = ctx.saved.comment_id
        if cid is None:
            want = report.marker(ctx.job.id)
            cid = (await ctx.api.find_comments(ctx.number, want, author="Bot")).get(want)

        async def post(body: str) -> int:
            return await ctx.api.comment(ctx.number, body)

        self.comment = ProgressComment(
            post,
            ctx.api.edit_comment,
            comment_id=cid,
            every=Interval(ctx.rt.progress_interval, ctx.rt.clock),
        )
        await self.show(JobProgress(ctx.job.id, Phase.preparing), force=True)

    async def show(self, state: JobProgress, *, force: bool = False) -> None:
        """Update the comment: at once on a phase change or when forced."""
        phase_changed = state.phase is not self.state.phase
        note = "\n".join(n for n in (self.note, self.ctx.budget_note) if n)
        if note and state.note is None:
            state = dataclasses.replace(state, note=note)
        self.state = state
        if self.comment is None:
            return
        with best_effort("update the progress comment"):
            await self.comment.show(self.body(state), force=force or phase_changed)
        cid = self.comment.comment_id
        if cid is not None and self.ctx.saved.comment_id != cid:
            await self.ctx.save(comment_id=cid)

    def body(self, state: JobProgress) -> str:
        """The rendered state, with the run viewer's link when people can sign in to it."""
        text = self.render(state)
        return f"{text}\n<sub>[Follow this job]({self.link})</sub>" if self.link else text

    async def close(self) -> None:
        if self.comment is not None:
            await self.comment.close()


class HasTracker(Protocol):
    tracker: ProgressTracker | None


@dataclass
class Work:
    """What a job holds that must be let go of whatever happens: its worktree, and its
    progress comment's pending edit (the final state is forced before)."""

    tracker: ProgressTracker | None = None
    worktree: Path | None = None

    def held(self) -> tuple[ProgressTracker, Path]:
        """The progress comment and the worktree, once the job has both."""
        if self.tracker is None or self.worktree is None:
            raise RuntimeError("the job has no progress comment or worktree yet")
        return self.tracker, self.worktree

    async def release(self, workspace: Workspace) -> None:
        if self.worktree is not None:
            try:
                await workspace.remove(self.worktree)
            except Exception:
                log.exception("worktree removal failed")
        if self.tracker is not None:
            await self.tracker.close()


async def guarded(
    body: Callable[[], Awaitable[JobOutcome]], work: HasTracker, what: str
) -> JobOutcome:
    """Run a job's body; every failure ends as one clear final state of its progress
    comment (`work.tracker`, once the job has one) and a failed or cancelled outcome."""
    try:
        return await body()
    except JobFailed as e:
        return await fail(work.tracker, e.kind, e.detail, e.files)
    except RequestFailed as e:
        detail = f"HTTP {e.response.status_code} on {e.request.method} {e.request.url.path}"
        log.warning("github call failed", extra={"detail": detail})
        return await fail(work.tracker, Failure.api_error, detail)
    except GitHubException as e:
        return await fail(work.tracker, Failure.api_error, type(e).__name__)
    except Exception as e:
        log.exception("%s job failed", what)
        text = redact(str(e)).strip()
        first = text.splitlines()[0][:ERROR_LINE_LIMIT] if text else ""
        detail = f"{type(e).__name__}: {first}" if first else type(e).__name__
        return await fail(work.tracker, Failure.internal, detail)


async def fail(
    tracker: ProgressTracker | None, kind: Failure, detail: str = "", files: Sequence[str] = ()
) -> JobOutcome:
    if kind is Failure.cancelled:
        if tracker is not None:
            await tracker.show(JobProgress(tracker.ctx.job.id, Phase.cancelled), force=True)
        return JobOutcome(JobState.cancelled, error="cancelled")
    text = report.failure_text(kind, detail, files=files)
    if tracker is not None:
        state = JobProgress(
            tracker.ctx.job.id, Phase.failed, failure=text, stats=tracker.state.stats
        )
        await tracker.show(state, force=True)
    error = f"{kind.value}: {detail or text}"
    return JobOutcome(JobState.failed, error=error[:ERROR_LIMIT])


async def config_or_fail(ctx: JobContext[Any]) -> RepoConfig:
    """The repository's configuration; an invalid file fails the job saying why."""
    try:
        return await ctx.config()
    except RepoConfigError as e:
        raise JobFailed(Failure.invalid_config, str(e)) from None


async def author(ctx: JobContext[Any]) -> tuple[str, str]:
    """The commit author: the App's bot user, with its noreply address."""
    try:
        _, login = await ctx.rt.app.identity()
    except Exception:
        login = BOT_LOGIN
    try:
        uid, _ = await ctx.api.user(login)
        return login, f"{uid}+{login}@{NOREPLY}"
    except GitHubException:
        return login, f"{login}@{NOREPLY}"


async def commit(ctx: JobContext[Any], wt: Path, message: str, *, credit: bool = True) -> str:
    """Commit everything in `wt` as the App's bot user, Co-authored-by the person who asked
    (`credit=False` where nobody asked: a CI fix); the new sha."""
    helper = await co_author(ctx) if credit else None
    return await ctx.rt.workspace.commit(
        wt, message, author=await author(ctx), co_authors=[helper] if helper else []
    )


async def co_author(ctx: JobContext[Any]) -> str | None:
    """`Name <noreply>` of the person who asked, for the commit's Co-authored-by."""
    sender = ctx.sender
    if not sender:
        return None
    try:
        uid, name = await ctx.api.user(sender)
    except RequestFailed:
        uid, name = None, None
    email = f"{uid}+{sender}@{NOREPLY}" if uid else f"{sender}@{NOREPLY}"
    return f"{name or sender} <{email}>"


async def post_check_run(
    ctx: JobContext[Any], sha: str, output: dict[str, Any], conclusion: str = "success"
) -> None:
    """The "PACT Code" run's record on the commit; a failure here never fails the job."""
    with best_effort("create the check run"):
        await ctx.api.check_run(
            name=report.CHECK_NAME,
            head_sha=sha,
            conclusion=conclusion,
            external_id=ctx.job.id,
            output=output,
            details_url=job_url(ctx.rt.settings, ctx.job.id),
        )


def follow_up(
    ctx: JobContext[Any],
    kind: JobKind,
    number: int,
    task: TaskBase,
    step: str,
    *,
    sender: str | None = None,
) -> Job:
    """A job this one hands on, on issue or PR `number` (the Test phase after a code job,
    the code job of a drift update or of a spec PR). Its delivery id is this job's plus
    `step`, so a retry of this job records it once (`Enqueued.duplicate_delivery`)."""
    job = ctx.job
    return Job(
        kind=kind,
        key=Job.key_for(job.repo, number),
        repo=job.repo,
        number=number,
        installation_id=job.installation_id,
        delivery_id=f"{job.delivery_id}:{step}",
        sender=sender or job.sender,
        task=wire(task),
    )


def stats_dict(stats: RunStats) -> dict[str, Any]:
    d = asdict(stats)
    d["files_touched"] = list(stats.files_touched)
    return d


async def answer_in_context(
    runtime: Runtime,
    job: Job,
    control: JobControl,
    model: type[T],
    answer: Callable[[JobContext[T]], Awaitable[JobOutcome]],
    what: str,
) -> JobOutcome:
    """A job without a progress comment (a reply, a spec check): when GitHub does not answer,
    the job fails with `GitHub API: <error>` and the log says `what` failed."""
    try:
        async with open_context(runtime, job, control, model) as ctx:
            return await answer(ctx)
    except GitHubException as e:
        log.warning("%s failed", what, exc_info=True)
        return JobOutcome(JobState.failed, error=f"GitHub API: {type(e).__name__}")
