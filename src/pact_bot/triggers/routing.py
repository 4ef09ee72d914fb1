"""From an event to its route: one function per event kind, each a pure function of the
event, its payload, our identity and the repository's cached trigger settings."""

from __future__ import annotations

from typing import Any

from pact_bot.ci_triggers import CI_EVENTS
from pact_bot.github import payloads as p
from pact_bot.triggers.commits import ci, push
from pact_bot.triggers.decision import BotIdentity, Decision, TriggerConfig, nothing
from pact_bot.triggers.issues import issue_comment, issues
from pact_bot.triggers.pulls import check_run, pull_request, review


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
        return nothing(f"event {event} starts nothing")
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
        return nothing(f"event {event} starts nothing")
    if ev.repository is None:
        return nothing("no repository in payload")
    if event in CI_EVENTS and ev.action == "completed":
        return ci(ev, bot, config, delivery_id)  # CI apps are bots: their results count
    if ev.sender is not None and (ev.sender.type == "Bot" or ev.sender.login == bot.login):
        return nothing("sent by a bot")
    return handler(ev, bot, config, delivery_id)


_ROUTES = {
    "issues": issues,
    "issue_comment": issue_comment,
    "pull_request": pull_request,
    "pull_request_review": review,
    "check_run": check_run,
    "push": push,
    "check_suite": ci,
}
ROUTED_EVENTS = frozenset(_ROUTES)  # the events that may start a job
