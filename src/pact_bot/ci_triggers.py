"""Which completed check starts a CI-fix job: a pure function of the payload.

A `check_run.completed` or `check_suite.completed` whose conclusion is a failure, on a
commit that heads a pull request, by an app other than pact-bot. The payload does not say
who opened the pull request, so the worker checks that (and `.github/pact.yml`'s `ci:`)
before any work and ends quietly otherwise. Every failed check of one head commit gives
the same fingerprint (`ci:<sha>`), so the queue keeps one job for them.
"""

from __future__ import annotations

from pact_bot.github import payloads as p
from pact_bot.jobs.tasks import ReviseTask

CI_EVENTS = ("check_run", "check_suite")
FAILED = ("failure", "timed_out")
CI_TRIGGER = "ci"


def ci_fingerprint(sha: str) -> str:
    return f"{CI_TRIGGER}:{sha}"


def ci_trigger(ev: p.WebhookEvent, bot_slug: str) -> tuple[int, ReviseTask] | str:
    """(PR number, task), or the reason nothing starts."""
    if isinstance(ev, p.CheckRunEvent):
        check: p.CheckRun | p.CheckSuite = ev.check_run
    elif isinstance(ev, p.CheckSuiteEvent):
        check = ev.check_suite
    else:
        return "not a check event"
    if check.conclusion not in FAILED:
        return f"check concluded {check.conclusion}"
    if check.app is not None and check.app.slug == bot_slug:
        return "pact-bot's own check"
    if not check.pull_requests:
        return "check without a pull request"
    pull = check.pull_requests[0]
    if pull.head.sha and pull.head.sha != check.head_sha:
        return "check on an older commit of the pull request"
    return pull.number, ReviseTask(
        trigger=CI_TRIGGER,
        is_pr=True,
        head_sha=check.head_sha,
        head_ref=pull.head.ref,
        base_ref=pull.base.ref,
        fingerprint=ci_fingerprint(check.head_sha),
    )
