"""The trigger → job contract: one typed task per job kind, and what a job saves as it goes.

The queue stores `Job.task` as JSON (both backends, unchanged); `triggers.route` builds
these models and the worker validates the stored dict back into them (`task_of`) before a
job kind runs, so a field written by one side and read by the other has one name and one
type. Every field has a default: a task written by an older version still reads.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Saved(BaseModel):
    """What a running job records in `task["progress"]` (via `JobControl.progress`), so a
    retry resumes instead of repeating work, and `pact-bot jobs show` can tell."""

    model_config = ConfigDict(extra="ignore")

    comment_id: int | None = None  # the progress comment
    turns: int = 0
    cost_usd: float = 0.0
    pushed_sha: str | None = None  # pushed already: a retry only finishes the PR / replies
    diff: str | None = None
    stats: dict[str, Any] | None = None
    model: str | None = None
    pr_url: str | None = None
    pr_number: int | None = None
    handoff_sha: str | None = None
    check_sha: str | None = None
    acked: bool = False  # the command's ack reply job reacted 👀 already
    replies: dict[str, str] = Field(default_factory=dict)  # revise: comment id → reply
    final: str = ""  # revise: the agent's last message without its REPLY lines
    replied: list[int] = Field(default_factory=list)  # revise: threads answered
    pr_comment: bool = False  # revise: the PR comment was posted
    issue_number: int | None = None  # drift update: the issue the code job works on
    test_enqueued: bool = False  # code: the Test phase's job was enqueued


class TaskBase(BaseModel):
    model_config = ConfigDict(extra="ignore")

    trigger: str = ""  # label | command | check_run | review | pull_request | spec_prs | system
    number: int | None = None
    is_pr: bool = False
    default_branch: str | None = None
    fingerprint: str | None = None  # what makes a second trigger identical (coalescing)
    comment_id: int | None = None  # the command comment (👀 target)
    title: str = ""
    progress: Saved = Field(default_factory=Saved)

    @classmethod
    def as_wire(cls, **fields: Any) -> dict[str, Any]:
        """`wire(cls(**fields))` without building the model, for routing: on every delivery,
        from values the payload models validated already (str, int, bool, None, list[str]:
        JSON as they are), building, validating and dumping the model (its `Saved` too) was
        about half of routing's cost. The names are checked (the model would drop a wrong one
        silently); the worker validates the stored dict into `cls` as before, and
        tests/test_triggers.py checks `wire(job.typed_task()) == job.task` on every fixture."""
        if not fields.keys() <= _wire_names(cls):
            raise TypeError(
                f"{cls.__name__} has no field {sorted(fields.keys() - _wire_names(cls))}"
            )
        return fields


class CodeTask(TaskBase):
    command: str | None = None  # "code" for `/pact code`
    spec_paths: list[str] = Field(default_factory=list)
    instructions: str = ""  # comment lines after the command
    body: str = ""  # the issue's or PR's body
    update: str = ""  # drift: the first message's task (drift.update_task), not the specs'
    check_run_id: int | None = None
    head_sha: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None


class ReviseTask(CodeTask):
    review_id: int | None = None
    review_state: str | None = None
    review_body: str = ""


class ReplyTask(TaskBase):
    command: str = "help"  # help | status | cancel | ack | lost
    unknown_command: str | None = None
    for_kind: str | None = None  # ack: the job it acknowledges
    for_key: str | None = None
    for_fingerprint: str | None = None
    lost_job_id: str | None = None  # lost: the job the queue gave up on
    lost_kind: str | None = None
    attempts: int | None = None
    original: dict[str, Any] = Field(default_factory=dict)


class SpecCheckTask(TaskBase):
    head_sha: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None


class DriftTask(TaskBase):
    """A push to the default branch (`check`), or its "Update code" button (`update`)."""

    action: str = "check"  # check | update
    ref: str = ""
    before: str = ""
    after: str = ""
    check_run_id: int | None = None


class TestTask(TaskBase):
    """The test engineer on a pull request's branch."""

    __test__ = False  # not a pytest class
    instructions: str = ""  # comment lines after `/pact test`
    head_ref: str | None = None


Task = CodeTask | ReviseTask | ReplyTask | SpecCheckTask | DriftTask | TestTask

# keyed by `JobKind` value (a StrEnum); `Job.typed_task()` looks its kind up here
TASK_MODELS: dict[str, type[TaskBase]] = {
    "code": CodeTask,
    "revise": ReviseTask,
    "reply": ReplyTask,
    "spec_check": SpecCheckTask,
    "drift": DriftTask,
    "test": TestTask,
}


@functools.cache
def _wire_names(model: type[TaskBase]) -> frozenset[str]:
    return frozenset(model.model_fields) - {"progress"}


def wire(task: TaskBase) -> dict[str, Any]:
    """The dict the queue stores: the fields the trigger set (no defaults, no progress)."""
    return task.model_dump(mode="json", exclude_unset=True, exclude={"progress"})
