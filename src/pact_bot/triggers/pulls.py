"""Pull requests, their reviews and check runs: spec checks, revisions, auto-rebase and the
"Implement" button."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pact_bot.drift import UPDATE_ACTION
from pact_bot.github import payloads as p
from pact_bot.jobs.model import JobKind
from pact_bot.jobs.tasks import CodeTask, ReviseTask, SpecCheckTask
from pact_bot.triggers.commits import ci, drift_update
from pact_bot.triggers.decision import Decision, make_job, nothing, stranger

if TYPE_CHECKING:
    from pact_bot.triggers.decision import BotIdentity, TriggerConfig

SKIP_MARKER = "[skip pact]"  # in a review body: the bot ignores that review
SPEC_CHECK_ACTIONS = ("opened", "synchronize", "reopened")
IMPLEMENT_ACTION = "implement"


def _same_repo(pr: p.PullRequest) -> bool:
    head, base = pr.head.repo, pr.base.repo
    if head is None or base is None:
        return False
    if head.full_name and base.full_name:
        return head.full_name == base.full_name
    return head.id is not None and head.id == base.id


def _on_pr(pr: p.PullRequest) -> dict[str, Any]:
    """The task fields every job on an existing pull request sets from its payload."""
    return {
        "is_pr": True,
        "head_sha": pr.head.sha,
        "head_ref": pr.head.ref,
        "base_ref": pr.base.ref,
        "title": pr.title,
    }


def pull_request(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    """A PR opened or pushed to: the spec check (same-repository PRs only), or the rebase
    of a conflicting bot PR."""
    assert isinstance(ev, p.PullRequestEvent)
    if (rebase := _auto_rebase(ev, bot, config, delivery_id)) is not None:
        return rebase
    if ev.action not in SPEC_CHECK_ACTIONS:
        return nothing(f"pull_request.{ev.action} starts nothing")
    pr = ev.pull_request
    if not _same_repo(pr):
        return nothing("pull request from a fork")
    task = SpecCheckTask.as_wire(
        trigger="pull_request", **_on_pr(pr), fingerprint=f"spec_check:{pr.head.sha}"
    )
    job = make_job(ev, JobKind.spec_check, pr.number, delivery_id, task, key_suffix=":check")
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
    task = ReviseTask.as_wire(
        trigger="auto_rebase",
        command="rebase",
        **_on_pr(pr),
        fingerprint=f"rebase:{pr.head.sha}:{pr.base.sha}",
    )
    job = make_job(ev, JobKind.revise, pr.number, delivery_id, task)
    return Decision(job, "bot PR conflicts with its base: auto_rebase")


def review(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    """A review on the bot's PR that asks for changes or comments: a revise job (unless
    its body says `[skip pact]`; `reviews:` is the worker's to read)."""
    assert isinstance(ev, p.PullRequestReviewEvent)
    if ev.action != "submitted":
        return nothing(f"pull_request_review.{ev.action} starts nothing")
    pr, rev = ev.pull_request, ev.review
    if pr.user.login != bot.login:
        return nothing("review on a PR that is not the bot's")
    state = rev.state.lower()
    if state not in ("changes_requested", "commented"):
        return nothing(f"review {state} starts nothing")
    if SKIP_MARKER in (rev.body or "").lower():
        return nothing(f"review says {SKIP_MARKER}")
    if (dropped := stranger(rev.author_association)) is not None:
        return dropped
    task = ReviseTask.as_wire(
        trigger="review",
        review_id=rev.id,
        review_state=state,
        review_body=rev.body or "",
        **_on_pr(pr),
        fingerprint=f"review:{rev.id}",
    )
    job = make_job(ev, JobKind.revise, pr.number, delivery_id, task)
    return Decision(job, f"review {state} on a bot PR")


def check_run(
    ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str
) -> Decision:
    """A finished check (CI fix), or a button of one of our check runs: "Implement" on a
    spec PR, "Update code" on a drift run."""
    assert isinstance(ev, p.CheckRunEvent)
    if ev.action == "completed":
        return ci(ev, bot, config, delivery_id)
    if ev.action != "requested_action":
        return nothing(f"check_run.{ev.action} starts nothing")
    if ev.requested_action is not None and ev.requested_action.identifier == UPDATE_ACTION:
        return drift_update(ev, delivery_id)
    if ev.requested_action is None or ev.requested_action.identifier != IMPLEMENT_ACTION:
        return nothing("another check run action")
    if not ev.check_run.pull_requests:
        return nothing("check run without a pull request")
    pull = ev.check_run.pull_requests[0]
    task = CodeTask.as_wire(
        trigger="check_run",
        is_pr=True,
        check_run_id=ev.check_run.id,
        head_sha=ev.check_run.head_sha,
        head_ref=pull.head.ref,
        base_ref=pull.base.ref,
        spec_paths=[],
        instructions="",
        fingerprint="code::",
    )
    return Decision(
        make_job(ev, JobKind.code, pull.number, delivery_id, task), "check run: implement"
    )
