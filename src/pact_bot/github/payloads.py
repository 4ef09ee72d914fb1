"""The few webhook fields pact-bot reads, per event, as lenient pydantic models.

Why not githubkit's webhook models: they reject some of GitHub's own example payloads
(labels without `archived_at`, installations without `app_slug`). These models declare only
what we read, ignore everything else, and make optional whatever GitHub sometimes omits
(`installation` is absent from many public examples; an App's deliveries always carry it).

Public API: `parse(event, payload) -> WebhookEvent` (the event's model, or the base model for
events we do not route), and the models themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Model):
    login: str
    type: str | None = None


class Repository(_Model):
    full_name: str
    name: str
    owner: Account
    default_branch: str | None = None
    clone_url: str | None = None


class Installation(_Model):
    id: int


class Label(_Model):
    name: str


class Issue(_Model):
    number: int
    title: str = ""
    body: str | None = None
    user: Account
    pull_request: dict[str, Any] | None = None  # present when the issue is a PR
    labels: list[Label] = []

    @property
    def is_pr(self) -> bool:
        return self.pull_request is not None


class Comment(_Model):
    id: int
    body: str | None = None
    user: Account
    author_association: str | None = None


class RefRepo(_Model):
    id: int | None = None
    name: str | None = None
    full_name: str | None = None


class Ref(_Model):
    ref: str
    sha: str
    repo: RefRepo | None = None  # None when a fork's repository was deleted


class PullRequest(_Model):
    number: int
    title: str = ""
    body: str | None = None
    user: Account
    head: Ref
    base: Ref
    mergeable_state: str | None = None  # "dirty": conflicts with the base


class Review(_Model):
    id: int
    state: str
    body: str | None = None
    user: Account
    author_association: str | None = None


class CheckRunPull(_Model):
    number: int
    head: Ref
    base: Ref


class CheckApp(_Model):
    id: int | None = None
    slug: str | None = None


class CheckRun(_Model):
    id: int
    head_sha: str
    external_id: str | None = None
    name: str = ""
    conclusion: str | None = None
    app: CheckApp | None = None
    pull_requests: list[CheckRunPull] = []


class CheckSuite(_Model):
    id: int
    head_sha: str
    conclusion: str | None = None
    app: CheckApp | None = None
    pull_requests: list[CheckRunPull] = []


class RequestedAction(_Model):
    identifier: str


class WebhookEvent(_Model):
    action: str | None = None
    repository: Repository | None = None
    installation: Installation | None = None
    sender: Account | None = None

    @property
    def installation_id(self) -> int | None:
        return self.installation.id if self.installation else None


class IssuesEvent(WebhookEvent):
    issue: Issue
    label: Label | None = None


class IssueCommentEvent(WebhookEvent):
    issue: Issue
    comment: Comment


class PullRequestEvent(WebhookEvent):
    pull_request: PullRequest


class PullRequestReviewEvent(WebhookEvent):
    review: Review
    pull_request: PullRequest


class CheckRunEvent(WebhookEvent):
    check_run: CheckRun
    requested_action: RequestedAction | None = None


class PushEvent(WebhookEvent):
    ref: str
    before: str
    after: str
    deleted: bool = False


class CheckSuiteEvent(WebhookEvent):
    check_suite: CheckSuite


EVENT_MODELS: dict[str, type[WebhookEvent]] = {
    "issues": IssuesEvent,
    "issue_comment": IssueCommentEvent,
    "pull_request": PullRequestEvent,
    "pull_request_review": PullRequestReviewEvent,
    "check_run": CheckRunEvent,
    "push": PushEvent,
    "check_suite": CheckSuiteEvent,
}


def parse(event: str, payload: dict[str, Any]) -> WebhookEvent:
    """Validate the fields we read; raises pydantic.ValidationError on a malformed payload."""
    return EVENT_MODELS.get(event, WebhookEvent).model_validate(payload)
