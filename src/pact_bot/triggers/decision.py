"""What routing decides, and the job it builds: shared by the routes of every event kind.

A comment or review whose `author_association` is not OWNER, MEMBER or COLLABORATOR starts
nothing (`Decision.dropped == "stranger"`); the exact permission of everyone else is checked
by the worker, not here (that needs an API call).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pact_bot.github import payloads as p
from pact_bot.jobs.model import Job, JobKind


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


def new_job_id() -> str:
    """16 hex chars, time-ordered (ms clock, then random): new ids land at the end of the
    queue's id index instead of on a random page, so each commit writes fewer pages."""
    return f"{time.time_ns() // 1_000_000:011x}{os.urandom(3).hex()}"[-16:]  # = secrets.token_hex


def nothing(reason: str) -> Decision:
    return Decision(None, reason)


# GitHub's `author_association` values of people the repository trusts; CONTRIBUTOR,
# FIRST_TIMER, FIRST_TIME_CONTRIBUTOR, MANNEQUIN and NONE are anyone with an account.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


def stranger(association: str | None) -> Decision | None:
    """Drop a comment or review trigger from outside the repository's people: each would
    cost a queued job and a public refusal (spam amplification). The worker still checks
    the exact permission of whoever passes."""
    if association in TRUSTED_ASSOCIATIONS:
        return None
    return Decision(None, f"sender is not a collaborator ({association})", dropped="stranger")


def make_job(
    ev: p.WebhookEvent,
    kind: JobKind,
    number: int | None,
    delivery_id: str,
    task: dict[str, Any],
    key_suffix: str = "",
) -> Job:
    """The job of `task` (a `TaskBase.as_wire` dict, completed here with the number and the
    default branch, as its model would have them)."""
    assert ev.repository is not None
    repo = ev.repository.full_name
    task["number"] = number
    task["default_branch"] = ev.repository.default_branch
    return Job.routed(
        id=new_job_id(),
        kind=kind,
        key=Job.key_for(repo, number) + key_suffix,
        repo=repo,
        number=number,
        installation_id=ev.installation_id,
        delivery_id=delivery_id,
        sender=ev.sender.login if ev.sender else "",
        task=task,
    )
