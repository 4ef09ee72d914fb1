"""The few webhook fields pact-bot reads, per event, as lenient pydantic models.

Why not githubkit's webhook models: they reject some of GitHub's own example payloads
(labels without `archived_at`, installations without `app_slug`). These models declare only
what we read, ignore everything else, and make optional whatever GitHub sometimes omits
(`installation` is absent from many public examples; an App's deliveries always carry it).

`parse_json(event, raw)` validates the raw body straight into the event's model: pydantic's
JSON parser builds Python objects only for the fields declared here and skips the rest of
GitHub's ~14 KB, about half the cost of decoding everything and validating the dict.
Integers are bounded to 64 bits: the queue stores them as SQLite/Postgres integers and JSON
through orjson, neither of which takes more (orjson.loads refuses them; pydantic would not).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


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
    id: Int64


class Label(_Model):
    name: str


class Issue(_Model):
    number: Int64
    title: str = ""
    body: str | None = None
    user: Account
    pull_request: dict[str, Any] | None = None  # present when the issue is a PR
    labels: list[Label] = []

    @property
    def is_pr(self) -> bool:
        return self.pull_request is not None


class Comment(_Model):
    id: Int64
    body: str | None = None
    user: Account
    author_association: str | None = None


class RefRepo(_Model):
    id: Int64 | None = None
    name: str | None = None
    full_name: str | None = None


class Ref(_Model):
    ref: str
    sha: str
    repo: RefRepo | None = None  # None when a fork's repository was deleted


class PullRequest(_Model):
    number: Int64
    title: str = ""
    body: str | None = None
    user: Account
    head: Ref
    base: Ref
    mergeable_state: str | None = None  # "dirty": conflicts with the base


class Review(_Model):
    id: Int64
    state: str
    body: str | None = None
    user: Account
    author_association: str | None = None


class CheckRunPull(_Model):
    number: Int64
    head: Ref
    base: Ref


class CheckApp(_Model):
    id: int | None = None
    slug: str | None = None


class CheckRun(_Model):
    id: Int64
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


def parse_json(event: str, raw: bytes) -> WebhookEvent:
    """`parse` from the raw body (no full decode); raises pydantic.ValidationError when it is
    not JSON, not an object, or malformed where we read."""
    return EVENT_MODELS.get(event, WebhookEvent).model_validate_json(raw)
