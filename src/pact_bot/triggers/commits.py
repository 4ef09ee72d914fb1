"""Commits: pushes to the default branch (drift), the drift check run's "Update code"
button, and failed checks on a pull request (CI fix)."""

from __future__ import annotations

import re
from typing import Any

from pact_bot.ci_triggers import ci_trigger
from pact_bot.drift import range_id
from pact_bot.github import payloads as p
from pact_bot.jobs.model import Job, JobKind
from pact_bot.jobs.tasks import DriftTask, wire
from pact_bot.triggers.decision import BotIdentity, Decision, TriggerConfig, make_job, nothing

_SHA = re.compile(r"[0-9a-f]{40}")
_RANGE = re.compile(range_id(r"([0-9a-f]{40})", r"([0-9a-f]{40})").replace("...", r"\.\.\."))


def _drift_job(ev: p.WebhookEvent, delivery_id: str, task: dict[str, Any]) -> Job:
    """Drift jobs of a repository share one key: one at a time, in push order."""
    return make_job(ev, JobKind.drift, None, delivery_id, task, key_suffix=":drift")


def push(ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str) -> Decision:
    """Only pushes that move the default branch; the bot's own are dropped in `route`, and
    `drift: off` is the worker's to read (ingress does not parse `.github/pact.yml`)."""
    assert isinstance(ev, p.PushEvent) and ev.repository is not None
    default = ev.repository.default_branch
    if not default or ev.ref != f"refs/heads/{default}":
        return nothing("push to another branch")
    if ev.deleted or not _SHA.fullmatch(ev.before) or not _SHA.fullmatch(ev.after):
        return nothing("push without a range")
    if ev.before.strip("0") == "" or ev.after.strip("0") == "":
        return nothing("branch created or deleted")
    task = DriftTask.as_wire(
        trigger="push",
        ref=ev.ref,
        before=ev.before,
        after=ev.after,
        fingerprint=f"drift:{ev.after}",
    )
    return Decision(_drift_job(ev, delivery_id, task), "push to the default branch")


def drift_update(ev: p.CheckRunEvent, delivery_id: str) -> Decision:
    """The "Update code" button of a drift check run; the push's range is in the run's
    external id (which only this App can set on its own runs; checked all the same)."""
    m = _RANGE.fullmatch(ev.check_run.external_id or "")
    if m is None:
        return nothing("update button without a push range")
    task = DriftTask.as_wire(
        trigger="check_run",
        action="update",
        before=m.group(1),
        after=m.group(2),
        check_run_id=ev.check_run.id,
        fingerprint=f"drift-update:{m.group(2)}",
    )
    return Decision(_drift_job(ev, delivery_id, task), "check run: update code")


def ci(ev: p.WebhookEvent, bot: BotIdentity, config: TriggerConfig, delivery_id: str) -> Decision:
    """A failed check on a PR: one CI-fix revise job per head commit (the fingerprint
    coalesces every check of that commit); whether the PR is the bot's is the worker's
    question (the payload does not say who opened it)."""
    found = ci_trigger(ev, bot.slug)
    if isinstance(found, str):
        return nothing(found)
    number, task = found
    job = make_job(ev, JobKind.revise, number, delivery_id, wire(task))
    return Decision(job, "failed check on a PR")
