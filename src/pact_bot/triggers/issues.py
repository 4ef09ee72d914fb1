"""Issues and their comments: the trigger label, and `/pact` commands.

Comment-triggered code, revise and test jobs come with an ack (`Decision.make_ack`): a reply
job (command `ack`, delivery id `<delivery>:ack`, key `…:reply`) that the web process
records before the job only when the job's key already has a queued or running job, so the
comment gets 👀 (and a "queued behind" note) within seconds while the job waits; a job that
starts at once reacts itself. `/pact cancel` is a reply job like help and status: the
worker checks the commenter's permission before it cancels anything (the web process
cannot, without an API call), and reply jobs have their own key so they never wait behind
the running job.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from pact_bot.github import payloads as p
from pact_bot.jobs.model import Job, JobKind
from pact_bot.jobs.tasks import CodeTask, ReplyTask, ReviseTask, TestTask
from pact_bot.triggers.commands import PR_COMMANDS, REPLY_COMMANDS, Command, parse_command
from pact_bot.triggers.decision import Decision, make_job, nothing, stranger

if TYPE_CHECKING:
    from pact_bot.triggers.decision import BotIdentity, TriggerConfig


def issues(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    """The configured label on an issue (or a PR): a code job on its specs."""
    assert isinstance(ev, p.IssuesEvent)
    if ev.action != "labeled":
        return nothing(f"issues.{ev.action} starts nothing")
    if ev.label is None or ev.label.name != config.label:
        return nothing("another label")
    issue = ev.issue
    task = CodeTask.as_wire(
        trigger="label",
        is_pr=issue.is_pr,
        spec_paths=[],
        instructions="",
        title=issue.title,
        body=issue.body or "",
        fingerprint="code::",
    )
    return Decision(
        make_job(ev, JobKind.code, issue.number, delivery_id, task), f"label {config.label}"
    )


def issue_comment(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    """A `/pact` command from one of the repository's people: code (revise on the bot's PR),
    test, or a reply (help, status, cancel; help for a word it does not know)."""
    assert isinstance(ev, p.IssueCommentEvent)
    if ev.action != "created":
        return nothing(f"issue_comment.{ev.action} starts nothing")
    cmd = parse_command(ev.comment.body, config.command)
    if cmd is None:
        return nothing("not a command")
    if (dropped := stranger(ev.comment.author_association)) is not None:
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
        task = model.as_wire(
            **common,
            command=cmd.sub or "code",
            spec_paths=[] if cmd.sub else cmd.args,
            instructions=" ".join([*cmd.args, cmd.instructions]).strip()
            if cmd.sub
            else cmd.instructions,
            body=issue.body or "",
            fingerprint=f"{cmd.sub or 'code'}:{' '.join(cmd.args)}:{cmd.instructions}",
        )
        return _acked(ev, kind, task, common, delivery_id, f"{config.command} {cmd.sub or 'code'}")
    if cmd.name == "test":  # `/pact test [instructions]`: the first line's words count too
        said = "\n".join(t for t in (" ".join(cmd.args), cmd.instructions) if t)
        task = TestTask.as_wire(**common, instructions=said, fingerprint=f"test:{said}")
        return _acked(ev, JobKind.test, task, common, delivery_id, f"{config.command} test")
    name = cmd.name if cmd.name in REPLY_COMMANDS else "help"
    reply = ReplyTask.as_wire(**common, command=name, fingerprint=f"{name}:{ev.comment.id}")
    if cmd.name not in REPLY_COMMANDS:
        reply["unknown_command"] = cmd.name
    job = make_job(ev, JobKind.reply, issue.number, delivery_id, reply, key_suffix=":reply")
    return Decision(job, f"{config.command} {cmd.name or '(bare)'}")


def _acked(
    ev: p.IssueCommentEvent,
    kind: JobKind,
    task: dict[str, Any],
    common: dict[str, Any],
    delivery_id: str,
    reason: str,
) -> Decision:
    """A command's job, with the ack recorded first should it have to wait."""
    job = make_job(ev, kind, ev.issue.number, delivery_id, task)
    return Decision(job, reason, make_ack=functools.partial(_ack, ev, job, common, delivery_id))


def _ack(ev: p.IssueCommentEvent, job: Job, common: dict[str, Any], delivery_id: str) -> Job:
    """The 👀 reply recorded first when `job` would wait behind its key's running job."""
    return make_job(
        ev,
        JobKind.reply,
        ev.issue.number,
        f"{delivery_id}:ack",
        ReplyTask.as_wire(
            **common,
            command="ack",
            for_kind=str(job.kind),
            for_key=job.key,
            for_fingerprint=job.task["fingerprint"],
            fingerprint=f"ack:{ev.comment.id}",
        ),
        key_suffix=":reply",
    )
