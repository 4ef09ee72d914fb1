"""Which webhook starts which job: a pure function of the event, its payload and our identity.

Public API:
- `route(event, payload, bot, config, delivery_id="") -> Decision`; `route_event(event, ev,
  …)` for a payload already validated (`github.payloads.parse_json`).
- `Decision(job, reason, make_ack=None)`: `job` is None when nothing starts; `reason` is a
  short phrase for the log; `ack` (built on first use by `make_ack`) is a reply job
  (command `ack`, delivery id `<delivery>:ack`, key `…:reply`) made for every
  comment-triggered code or revise job: the web process records it before the job only
  when the job's key already has a queued or running job (the queue's `enqueue_with_ack`),
  so the comment gets 👀 (and a "queued behind" note) within seconds while the job waits;
  a job that starts at once reacts itself. `/pact cancel` is a reply job like help and
  status: the worker checks the commenter's permission before it cancels anything (the web
  process cannot, without an API call), and reply jobs have their own key so they never
  wait behind the running job.
- `BotIdentity(slug)` with `.login` (`<slug>[bot]`); `TriggerConfig(label, command)` and
  `TriggerConfig.from_repo_config(dict | None)` (keys `label`, `command`, as cached by
  workers from `.github/pact.yml`).
- `parse_command(body, command) -> Command | None`.
- `new_job_id() -> str`: the ids of jobs made here (16 hex chars, time-ordered).

Keys: code and revise jobs use `owner/repo#N` (one at a time per issue/PR). Reply jobs use
`owner/repo#N:reply` and spec checks `owner/repo#N:check`: they are quick, and must not sit
behind a 30-minute code job of the same issue.

Tasks are the typed models of `pact_bot.jobs.tasks` (one per job kind), stored as the
fields each trigger sets. A comment or review whose `author_association` is not OWNER,
MEMBER or COLLABORATOR starts nothing (`Decision.dropped == "stranger"`); the exact
permission of everyone else is checked by the worker, not here.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pact_bot.ci_triggers import CI_EVENTS, ci_trigger
from pact_bot.drift import UPDATE_ACTION, range_id
from pact_bot.github import payloads as p
from pact_bot.jobs.model import Job, JobKind
from pact_bot.jobs.tasks import (
    CodeTask,
    DriftTask,
    ReplyTask,
    ReviseTask,
    SpecCheckTask,
    TaskBase,
    TestTask,
    wire,
)

REPLY_COMMANDS = ("help", "status", "cancel")
PR_COMMANDS = ("continue", "rebase")  # only on the bot's own pull requests
SKIP_MARKER = "[skip pact]"  # in a review body: the bot ignores that review
SPEC_CHECK_ACTIONS = ("opened", "synchronize", "reopened")
IMPLEMENT_ACTION = "implement"
_SHA = re.compile(r"[0-9a-f]{40}")
_RANGE = re.compile(range_id(r"([0-9a-f]{40})", r"([0-9a-f]{40})").replace("...", r"\.\.\."))


@dataclass(frozen=True)
class BotIdentity:
    slug: str = "pact-bot"

    @property
    def login(self) -> str:
        return f"{self.slug}[bot]"


@dataclass(frozen=True)
class TriggerConfig:
    label: str = "pact:code"
    command: str = "/pact"
    auto_rebase: bool = False

    @classmethod
    def from_repo_config(cls, config: dict[str, Any] | None) -> TriggerConfig:
        """Per-repository overrides; anything missing or malformed keeps the default."""
        base = cls()
        if not config:
            return base
        label = config.get("label")
        command = config.get("command")
        return cls(
            auto_rebase=config.get("auto_rebase") is True,
            label=label if isinstance(label, str) and label.strip() else base.label,
            command=command.strip()
            if isinstance(command, str) and command.strip()
            else base.command,
        )


@dataclass(frozen=True)
class Decision:
    job: Job | None
    reason: str
    # builds the ack, recorded first when the job would wait (👀 while it waits); a
    # function because most jobs start at once and never need theirs
    make_ack: Callable[[], Job] | None = None
    # why a would-be trigger was dropped ("stranger"), for the web's labelled counter
    dropped: str | None = None

    @functools.cached_property
    def ack(self) -> Job | None:
        return self.make_ack() if self.make_ack is not None else None

    @property
    def starts_job(self) -> bool:
        return self.job is not None


@dataclass(frozen=True)
class Command:
    name: str  # code, help, status, cancel, or "" for a bare command
    args: list[str] = field(default_factory=list)
    instructions: str = ""
    sub: str = ""  # continue | rebase: a `code` job on the bot's PR with this command


def parse_command(body: str | None, command: str = "/pact") -> Command | None:
    """`/pact <sub> [args…]` on the first line, free text below; None when not a command."""
    if not body:
        return None
    first, _, rest = body.strip().partition("\n")
    tokens = first.split()
    if not tokens or tokens[0] != command:
        return None
    name = tokens[1].lower() if len(tokens) > 1 else ""
    return Command(name=name, args=tokens[2:], instructions=rest.strip())


def new_job_id() -> str:
    """16 hex chars, time-ordered (ms clock, then random): new ids land at the end of the
    queue's id index instead of on a random page, so each commit writes fewer pages."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(3)}"[-16:]


def _nothing(reason: str) -> Decision:
    return Decision(None, reason)


# GitHub's `author_association` values of people the repository trusts; CONTRIBUTOR,
# FIRST_TIMER, FIRST_TIME_CONTRIBUTOR, MANNEQUIN and NONE are anyone with an account.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


def _stranger(association: str | None) -> Decision | None:
    """Drop a comment or review trigger from outside the repository's people: each would
    cost a queued job and a public refusal (spam amplification). The worker still checks
    the exact permission of whoever passes."""
    if association in TRUSTED_ASSOCIATIONS:
        return None
    return Decision(None, f"sender is not a collaborator ({association})", dropped="stranger")


def route(
    event: str,
    payload: dict[str, Any],
    bot: BotIdentity,
    config: TriggerConfig,
    delivery_id: str = "",
) -> Decision:
    """Decide what a delivery starts. Raises pydantic.ValidationError on a malformed payload
    of an event we route (the web answers 400)."""
    if event not in _ROUTES:
        return _nothing(f"event {event} starts nothing")
    return route_event(event, p.parse(event, payload), bot, config, delivery_id)


def route_event(
    event: str,
    ev: p.WebhookEvent,
    bot: BotIdentity,
    config: TriggerConfig,
    delivery_id: str = "",
) -> Decision:
    """`route` for a payload already validated as `event`'s model (`payloads.parse_json`,
    which the web process uses: it skips decoding the fields nobody reads)."""
    handler = _ROUTES.get(event)
    if handler is None:
        return _nothing(f"event {event} starts nothing")
    if ev.repository is None:
        return _nothing("no repository in payload")
    if event in CI_EVENTS and ev.action == "completed":
        return _ci(ev, bot, config, delivery_id)  # CI apps are bots: their results count
    if ev.sender is not None and (ev.sender.type == "Bot" or ev.sender.login == bot.login):
        return _nothing("sent by a bot")
    return handler(ev, bot, config, delivery_id)


def _job(
    ev: p.WebhookEvent,
    kind: JobKind,
    number: int | None,
    delivery_id: str,
    task: TaskBase,
    key_suffix: str = "",
) -> Job:
    assert ev.repository is not None
    repo = ev.repository.full_name
    # Set as if passed to the constructor (wire() keeps set fields only): no second model.
    task.number = number
    task.default_branch = ev.repository.default_branch
    return Job(
        id=new_job_id(),
        kind=kind,
        key=Job.key_for(repo, number) + key_suffix,
        repo=repo,
        number=number,
        installation_id=ev.installation_id,
        delivery_id=delivery_id,
        sender=ev.sender.login if ev.sender else "",
        task=wire(task),
    )


def _issues(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    assert isinstance(ev, p.IssuesEvent)
    if ev.action != "labeled":
        return _nothing(f"issues.{ev.action} starts nothing")
    if ev.label is None or ev.label.name != config.label:
        return _nothing("another label")
    issue = ev.issue
    job = _job(
        ev,
        JobKind.code,
        issue.number,
        delivery_id,
        CodeTask(
            trigger="label",
            is_pr=issue.is_pr,
            spec_paths=[],
            instructions="",
            title=issue.title,
            body=issue.body or "",
            fingerprint="code::",
        ),
    )
    return Decision(job, f"label {config.label}")


def _issue_comment(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    assert isinstance(ev, p.IssueCommentEvent)
    if ev.action != "created":
        return _nothing(f"issue_comment.{ev.action} starts nothing")
    cmd = parse_command(ev.comment.body, config.command)
    if cmd is None:
        return _nothing("not a command")
    if (dropped := _stranger(ev.comment.author_association)) is not None:
        return dropped
    issue = ev.issue
    common: dict[str, Any] = {
        "trigger": "command",
        "is_pr": issue.is_pr,
        "comment_id": ev.comment.id,
        "title": issue.title,
    }
    bot_pr = issue.is_pr and issue.user.login == bot.login
    if cmd.name in PR_COMMANDS and bot_pr:  # `/pact continue|rebase`: work on the bot's PR
        cmd = Command("code", cmd.args, cmd.instructions, sub=cmd.name)
    if cmd.name == "code":
        kind = JobKind.revise if bot_pr else JobKind.code
        model = ReviseTask if bot_pr else CodeTask
        job = _job(
            ev,
            kind,
            issue.number,
            delivery_id,
            model(
                **common,
                command=cmd.sub or "code",
                spec_paths=[] if cmd.sub else cmd.args,
                instructions=" ".join([*cmd.args, cmd.instructions]).strip()
                if cmd.sub
                else cmd.instructions,
                body=issue.body or "",
                fingerprint=f"{cmd.sub or 'code'}:{' '.join(cmd.args)}:{cmd.instructions}",
            ),
        )
        reason = f"{config.command} {cmd.sub or 'code'}"
        return Decision(job, reason, make_ack=functools.partial(_ack, ev, job, common, delivery_id))
    if cmd.name == "test":  # `/pact test [instructions]`: the first line's words count too
        said = "\n".join(t for t in (" ".join(cmd.args), cmd.instructions) if t)
        job = _job(
            ev,
            JobKind.test,
            issue.number,
            delivery_id,
            TestTask(
                **common,
                instructions=said,
                fingerprint=f"test:{said}",
            ),
        )
        return Decision(
            job,
            f"{config.command} test",
            make_ack=functools.partial(_ack, ev, job, common, delivery_id),
        )
    name = cmd.name if cmd.name in REPLY_COMMANDS else "help"
    task = ReplyTask(**common, command=name, fingerprint=f"{name}:{ev.comment.id}")
    if cmd.name not in REPLY_COMMANDS:
        task.unknown_command = cmd.name
    job = _job(ev, JobKind.reply, issue.number, delivery_id, task, key_suffix=":reply")
    return Decision(job, f"{config.command} {cmd.name or '(bare)'}")


def _ack(ev: p.IssueCommentEvent, job: Job, common: dict[str, Any], delivery_id: str) -> Job:
    """The 👀 reply recorded first when `job` would wait behind its key's running job."""
    return _job(
        ev,
        JobKind.reply,
        ev.issue.number,
        f"{delivery_id}:ack",
        ReplyTask(
            **common,
            command="ack",
            for_kind=str(job.kind),
            for_key=job.key,
            for_fingerprint=job.task["fingerprint"],
            fingerprint=f"ack:{ev.comment.id}",
        ),
        key_suffix=":reply",
    )


def _same_repo(pr: p.PullRequest) -> bool:
    head, base = pr.head.repo, pr.base.repo
    if head is None or base is None:
        return False
    if head.full_name and base.full_name:
        return head.full_name == base.full_name
    return head.id is not None and head.id == base.id


def _pull_request(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    assert isinstance(ev, p.PullRequestEvent)
    if (rebase := _auto_rebase(ev, bot, config, delivery_id)) is not None:
        return rebase
    if ev.action not in SPEC_CHECK_ACTIONS:
        return _nothing(f"pull_request.{ev.action} starts nothing")
    pr = ev.pull_request
    if not _same_repo(pr):
        return _nothing("pull request from a fork")
    job = _job(
        ev,
        JobKind.spec_check,
        pr.number,
        delivery_id,
        SpecCheckTask(
            trigger="pull_request",
            is_pr=True,
            head_sha=pr.head.sha,
            head_ref=pr.head.ref,
            base_ref=pr.base.ref,
            title=pr.title,
            fingerprint=f"spec_check:{pr.head.sha}",
        ),
        key_suffix=":check",
    )
    return Decision(job, f"pull_request.{ev.action}: check for specs")


def _auto_rebase(
    ev: p.PullRequestEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision | None:
    """A bot PR that no longer merges (`mergeable_state: dirty`) with `auto_rebase: true`:
    the rebase job, once per head and base commit (the worker reads the setting again)."""
    pr = ev.pull_request
    if not config.auto_rebase or pr.mergeable_state != "dirty" or pr.user.login != bot.login:
        return None
    if not _same_repo(pr):
        return None
    job = _job(
        ev,
        JobKind.revise,
        pr.number,
        delivery_id,
        ReviseTask(
            trigger="auto_rebase",
            command="rebase",
            is_pr=True,
            head_sha=pr.head.sha,
            head_ref=pr.head.ref,
            base_ref=pr.base.ref,
            title=pr.title,
            fingerprint=f"rebase:{pr.head.sha}:{pr.base.sha}",
        ),
    )
    return Decision(job, "bot PR conflicts with its base: auto_rebase")


def _review(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    assert isinstance(ev, p.PullRequestReviewEvent)
    if ev.action != "submitted":
        return _nothing(f"pull_request_review.{ev.action} starts nothing")
    pr, review = ev.pull_request, ev.review
    if pr.user.login != bot.login:
        return _nothing("review on a PR that is not the bot's")
    state = review.state.lower()
    if state not in ("changes_requested", "commented"):
        return _nothing(f"review {state} starts nothing")
    if SKIP_MARKER in (review.body or "").lower():
        return _nothing(f"review says {SKIP_MARKER}")
    if (dropped := _stranger(review.author_association)) is not None:
        return dropped
    job = _job(
        ev,
        JobKind.revise,
        pr.number,
        delivery_id,
        ReviseTask(
            trigger="review",
            is_pr=True,
            review_id=review.id,
            review_state=state,
            review_body=review.body or "",
            head_sha=pr.head.sha,
            head_ref=pr.head.ref,
            base_ref=pr.base.ref,
            title=pr.title,
            fingerprint=f"review:{review.id}",
        ),
    )
    return Decision(job, f"review {state} on a bot PR")


def _check_run(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    assert isinstance(ev, p.CheckRunEvent)
    if ev.action == "completed":
        return _ci(ev, bot, config, delivery_id)
    if ev.action != "requested_action":
        return _nothing(f"check_run.{ev.action} starts nothing")
    if ev.requested_action is not None and ev.requested_action.identifier == UPDATE_ACTION:
        return _drift_update(ev, delivery_id)
    if ev.requested_action is None or ev.requested_action.identifier != IMPLEMENT_ACTION:
        return _nothing("another check run action")
    if not ev.check_run.pull_requests:
        return _nothing("check run without a pull request")
    pull = ev.check_run.pull_requests[0]
    job = _job(
        ev,
        JobKind.code,
        pull.number,
        delivery_id,
        CodeTask(
            trigger="check_run",
            is_pr=True,
            check_run_id=ev.check_run.id,
            head_sha=ev.check_run.head_sha,
            head_ref=pull.head.ref,
            base_ref=pull.base.ref,
            spec_paths=[],
            instructions="",
            fingerprint="code::",
        ),
    )
    return Decision(job, "check run: implement")


def _drift_job(ev: p.WebhookEvent, delivery_id: str, task: DriftTask) -> Job:
    """Drift jobs of a repository share one key: one at a time, in push order."""
    return _job(ev, JobKind.drift, None, delivery_id, task, key_suffix=":drift")


def _push(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    """Only pushes that move the default branch; the bot's own are dropped in `route`, and
    `drift: off` is the worker's to read (ingress does not parse `.github/pact.yml`)."""
    assert isinstance(ev, p.PushEvent) and ev.repository is not None
    default = ev.repository.default_branch
    if not default or ev.ref != f"refs/heads/{default}":
        return _nothing("push to another branch")
    if ev.deleted or not _SHA.fullmatch(ev.before) or not _SHA.fullmatch(ev.after):
        return _nothing("push without a range")
    if ev.before.strip("0") == "" or ev.after.strip("0") == "":
        return _nothing("branch created or deleted")
    task = DriftTask(
        trigger="push",
        ref=ev.ref,
        before=ev.before,
        after=ev.after,
        fingerprint=f"drift:{ev.after}",
    )
    return Decision(_drift_job(ev, delivery_id, task), "push to the default branch")


def _drift_update(ev: p.CheckRunEvent, delivery_id: str) -> Decision:
    """The "Update code" button of a drift check run; the push's range is in the run's
    external id (which only this App can set on its own runs; checked all the same)."""
    m = _RANGE.fullmatch(ev.check_run.external_id or "")
    if m is None:
        return _nothing("update button without a push range")
    task = DriftTask(
        trigger="check_run",
        action="update",
        before=m.group(1),
        after=m.group(2),
        check_run_id=ev.check_run.id,
        fingerprint=f"drift-update:{m.group(2)}",
    )
    return Decision(_drift_job(ev, delivery_id, task), "check run: update code")


def _ci(ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str) -> Decision:
    """A failed check on a PR: one CI-fix revise job per head commit (the fingerprint
    coalesces every check of that commit); whether the PR is the bot's is the worker's
    question (the payload does not say who opened it)."""
    found = ci_trigger(ev, bot.slug)
    if isinstance(found, str):
        return _nothing(found)
    number, task = found
    return Decision(_job(ev, JobKind.revise, number, delivery_id, task), "failed check on a PR")


_ROUTES = {
    "issues": _issues,
    "issue_comment": _issue_comment,
    "pull_request": _pull_request,
    "pull_request_review": _review,
    "check_run": _check_run,
    "push": _push,
    "check_suite": _ci,
}
ROUTED_EVENTS = frozenset(_ROUTES)  # the events that may start a job

__all__ = [
    "ROUTED_EVENTS",
    "BotIdentity",
    "Command",
    "Decision",
    "TriggerConfig",
    "ValidationError",
    "parse_command",
    "route",
    "route_event",
]
