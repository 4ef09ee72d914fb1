"""Routing rules on GitHub's real payloads, edited the way each trigger happens."""

from __future__ import annotations

import copy
import json
import sqlite3
from typing import Any

import pytest
from conftest import load_payload
from pydantic import ValidationError

from pact_bot.github.payloads import parse_json
from pact_bot.jobs.model import Job, JobKind
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.jobs.tasks import CodeTask, wire
from pact_bot.triggers import (
    ROUTED_EVENTS,
    BotIdentity,
    TriggerConfig,
    parse_command,
    route,
    route_event,
)

BOT = BotIdentity("pact-bot")
CFG = TriggerConfig()


def comment(body: str, *, on_bot_pr: bool = False) -> dict[str, Any]:
    p = copy.deepcopy(load_payload("api.github.com/issue_comment/created.payload.json"))
    p["comment"]["body"] = body
    if on_bot_pr:
        p["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
        p["issue"]["user"]["login"] = BOT.login
    return p


def review(state: str, body: str | None, *, bot_pr: bool = True) -> dict[str, Any]:
    p = copy.deepcopy(load_payload("api.github.com/pull_request_review/submitted.payload.json"))
    p["review"]["state"] = state
    p["review"]["body"] = body
    if bot_pr:
        p["pull_request"]["user"]["login"] = BOT.login
    return p


def test_bot_identity_login() -> None:
    assert BOT.login == "pact-bot[bot]"


def test_label_starts_a_code_job_only_for_our_label() -> None:
    p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    assert route("issues", p, BOT, CFG).job is None  # "bug"
    p["label"]["name"] = "pact:code"
    d = route("issues", p, BOT, CFG, delivery_id="d1")
    assert d.job is not None and d.job.kind is JobKind.code
    assert d.job.key == "Codertocat/Hello-World#1"
    assert d.job.delivery_id == "d1" and d.job.sender == "Codertocat"
    assert d.job.task["trigger"] == "label" and d.job.task["is_pr"] is False
    p["label"]["name"] = "ship-it"
    custom = TriggerConfig(label="ship-it")
    assert route("issues", p, BOT, custom).job is not None
    assert route("issues", p, BOT, CFG).job is None


def test_pact_code_command_with_specs_and_instructions() -> None:
    body = "/pact code docs/auth-spec.md docs/db-spec.md\nUse argon2.\n\nKeep it small."
    d = route("issue_comment", comment(body), BOT, CFG, delivery_id="d2")
    assert d.job is not None and d.job.kind is JobKind.code
    t = d.job.task
    assert t["spec_paths"] == ["docs/auth-spec.md", "docs/db-spec.md"]
    assert t["instructions"] == "Use argon2.\n\nKeep it small."
    assert t["comment_id"] == 1 or isinstance(t["comment_id"], int)
    assert t["command"] == "code" and t["is_pr"] is False


def test_pact_code_on_the_bots_pr_is_a_revise_job() -> None:
    d = route("issue_comment", comment("/pact code\nrename foo", on_bot_pr=True), BOT, CFG)
    assert d.job is not None and d.job.kind is JobKind.revise
    assert d.job.task["is_pr"] is True and d.job.task["instructions"] == "rename foo"
    assert d.ack is not None and d.ack.task["for_kind"] == "revise"


def test_pact_code_comes_with_an_ack_reply_job_of_its_own_delivery() -> None:
    d = route("issue_comment", comment("/pact code docs/a-spec.md"), BOT, CFG, delivery_id="d3")
    assert d.job is not None and d.ack is not None
    ack = d.ack
    assert (ack.kind, ack.key, ack.delivery_id) == (JobKind.reply, f"{d.job.key}:reply", "d3:ack")
    assert ack.task["command"] == "ack" and ack.task["comment_id"] == d.job.task["comment_id"]
    assert ack.task["for_key"] == d.job.key
    assert ack.task["for_fingerprint"] == d.job.task["fingerprint"]
    assert ack.sender == d.job.sender and ack.id != d.job.id
    # reply commands are their own acknowledgement; system commands are not for people
    assert route("issue_comment", comment("/pact status"), BOT, CFG).ack is None
    for word in ("lost", "ack"):
        reply = route("issue_comment", comment(f"/pact {word} x"), BOT, CFG).job
        assert reply is not None and reply.task["command"] == "help"


def test_pact_code_on_someone_elses_pr_is_a_code_job() -> None:
    p = comment("/pact code")
    p["issue"]["pull_request"] = {"url": "x"}
    d = route("issue_comment", p, BOT, CFG)
    assert d.job is not None and d.job.kind is JobKind.code and d.job.task["is_pr"] is True


@pytest.mark.parametrize(
    ("body", "command", "unknown"),
    [
        ("/pact help", "help", None),
        ("/pact status", "status", None),
        ("/pact cancel", "cancel", None),
        ("/pact frobnicate now", "help", "frobnicate"),
        ("/pact", "help", ""),
        ("  /pact HELP  \nmore", "help", None),
    ],
)
def test_reply_commands_use_their_own_key(body: str, command: str, unknown: str | None) -> None:
    d = route("issue_comment", comment(body), BOT, CFG)
    assert d.job is not None and d.job.kind is JobKind.reply
    assert d.job.key == "Codertocat/Hello-World#1:reply"
    assert d.job.task["command"] == command
    assert d.job.task.get("unknown_command") == unknown


@pytest.mark.parametrize(
    "body",
    [
        "please /pact code",
        "You are totally right!\n/pact code",
        "/pactcode",
        "`/pact code`",
        "",
    ],
)
def test_not_a_command(body: str) -> None:
    d = route("issue_comment", comment(body), BOT, CFG)
    assert d.job is None and d.reason == "not a command"


def test_custom_command_from_repo_config() -> None:
    cfg = TriggerConfig.from_repo_config({"command": "/bot", "label": ""})
    assert cfg == TriggerConfig(label="pact:code", command="/bot")
    assert route("issue_comment", comment("/bot code"), BOT, cfg).job is not None
    assert route("issue_comment", comment("/pact code"), BOT, cfg).job is None
    assert TriggerConfig.from_repo_config(None) == CFG
    assert TriggerConfig.from_repo_config({"label": 3}) == CFG


@pytest.mark.parametrize(
    ("association", "starts"),
    [
        ("OWNER", True),
        ("MEMBER", True),
        ("COLLABORATOR", True),
        ("CONTRIBUTOR", False),
        ("FIRST_TIME_CONTRIBUTOR", False),
        ("FIRST_TIMER", False),
        ("MANNEQUIN", False),
        ("NONE", False),
        (None, False),  # absent: not trusted either
    ],
)
def test_only_the_repositorys_people_trigger_by_comment_or_review(
    association: str | None, starts: bool
) -> None:
    c = comment("/pact code")
    r = review("changes_requested", "fix it")
    for p, key in ((c, "comment"), (r, "review")):
        if association is None:
            del p[key]["author_association"]
        else:
            p[key]["author_association"] = association
    for event, p in (("issue_comment", c), ("pull_request_review", r)):
        d = route(event, p, BOT, CFG)
        assert (d.job is not None) is starts, (event, association)
        assert d.dropped == (None if starts else "stranger")
        assert d.ack is None or starts
    # not a command at all: just a comment, nothing dropped
    chat = comment("thanks!")
    chat["comment"]["author_association"] = "NONE"
    assert route("issue_comment", chat, BOT, CFG).dropped is None


def test_edited_and_deleted_comments_start_nothing() -> None:
    for action in ("edited", "deleted"):
        p = comment("/pact code")
        p["action"] = action
        assert route("issue_comment", p, BOT, CFG).job is None


def test_bots_start_nothing() -> None:
    p = comment("/pact code")
    p["sender"]["type"] = "Bot"
    assert route("issue_comment", p, BOT, CFG).reason == "sent by a bot"
    p = comment("/pact code")
    p["sender"]["login"] = BOT.login
    assert route("issue_comment", p, BOT, CFG).job is None


def test_pull_request_events_ask_for_a_spec_check() -> None:
    for action in ("opened", "synchronize", "reopened"):
        p = load_payload(f"api.github.com/pull_request/{action}.payload.json")
        d = route("pull_request", p, BOT, CFG)
        assert d.job is not None and d.job.kind is JobKind.spec_check
        assert d.job.key == "Codertocat/Hello-World#2:check"
        assert d.job.task["head_sha"] == p["pull_request"]["head"]["sha"]
    closed = load_payload("api.github.com/pull_request/closed.payload.json")
    assert route("pull_request", closed, BOT, CFG).job is None


def test_pull_request_from_a_fork_is_not_checked() -> None:
    p = copy.deepcopy(load_payload("api.github.com/pull_request/opened.payload.json"))
    p["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    assert route("pull_request", p, BOT, CFG).reason == "pull request from a fork"
    p["pull_request"]["head"]["repo"] = None
    assert route("pull_request", p, BOT, CFG).job is None


def test_implement_button_starts_a_code_job_for_the_checks_pr() -> None:
    p = copy.deepcopy(load_payload("api.github.com/check_run/requested_action.payload.json"))
    assert route("check_run", p, BOT, CFG).job is None  # identifier "lgtm|26764"
    p["requested_action"]["identifier"] = "implement"
    d = route("check_run", p, BOT, CFG)
    assert d.job is not None and d.job.kind is JobKind.code
    assert d.job.key == "electron/electron#26764" and d.job.installation_id == 690857
    assert d.job.task["check_run_id"] == p["check_run"]["id"]
    p["check_run"]["pull_requests"] = []
    assert route("check_run", p, BOT, CFG).job is None


@pytest.mark.parametrize(
    ("state", "body", "starts"),
    [
        ("changes_requested", "Please rename", True),
        ("changes_requested", None, True),
        ("commented", "nit: spacing", True),
        ("commented", None, True),  # line comments only: the worker counts them
        ("approved", "LGTM", False),
    ],
)
def test_reviews_on_bot_prs(state: str, body: str | None, starts: bool) -> None:
    d = route("pull_request_review", review(state, body), BOT, CFG, delivery_id="r")
    assert (d.job is not None) is starts
    if d.job is not None:
        assert d.job.kind is JobKind.revise and d.job.key == "Codertocat/Hello-World#2"
        assert d.job.task["review_id"] > 0 and d.job.task["review_state"] == state
        assert d.job.task["review_body"] == (body or "")


def test_reviews_on_human_prs_start_nothing() -> None:
    d = route("pull_request_review", review("changes_requested", "x", bot_pr=False), BOT, CFG)
    assert d.job is None


def test_installation_id_is_optional_and_carried_when_present() -> None:
    p = copy.deepcopy(
        load_payload("api.github.com/issue_comment/created.with-installation.payload.json")
    )
    p["comment"]["body"] = "/pact code"
    d = route("issue_comment", p, BOT, CFG)
    assert d.job is not None and d.job.installation_id == 1
    d = route("issue_comment", comment("/pact code"), BOT, CFG)
    assert d.job is not None and d.job.installation_id is None


def test_events_we_do_not_route() -> None:
    p = load_payload("api.github.com/installation/created.payload.json")
    assert route("installation", p, BOT, CFG).reason == "event installation starts nothing"


def test_malformed_payload_of_a_routed_event_raises() -> None:
    with pytest.raises(ValidationError):
        route("issue_comment", {"action": "created", "repository": {}}, BOT, CFG)


def test_parse_command_grammar() -> None:
    assert parse_command("/pact code a b\n x \n", "/pact").args == ["a", "b"]
    assert parse_command("/pact code a b\n x \n", "/pact").instructions == "x"
    assert parse_command("/pacts", "/pact") is None
    assert parse_command(None, "/pact") is None


@pytest.mark.parametrize("sub", ["continue", "rebase"])
def test_continue_and_rebase_on_the_bots_pr_are_revise_jobs(sub: str) -> None:
    d = route(
        "issue_comment",
        comment(f"/pact {sub} mind the tests\nand the docs", on_bot_pr=True),
        BOT,
        CFG,
        "d",
    )
    assert d.job is not None and d.job.kind == "revise"
    assert d.job.task["command"] == sub
    assert d.job.task["instructions"] == "mind the tests and the docs"
    assert d.job.task["spec_paths"] == []
    assert d.ack is not None  # 👀 while it waits, as for /pact code


@pytest.mark.parametrize("sub", ["continue", "rebase"])
def test_continue_and_rebase_elsewhere_get_the_help(sub: str) -> None:
    d = route("issue_comment", comment(f"/pact {sub}"), BOT, CFG, "d")
    assert d.job is not None and d.job.kind == "reply"
    assert d.job.task["command"] == "help" and d.job.task["unknown_command"] == sub


def test_skip_pact_in_a_review_starts_nothing() -> None:
    d = route("pull_request_review", review("changes_requested", "no [skip pact]"), BOT, CFG)
    assert d.job is None and "skip pact" in d.reason


def _routed_fixtures() -> list[Any]:
    from conftest import FIXTURES

    out = []
    for event in ROUTED_EVENTS:
        for path in sorted(FIXTURES.glob(f"*/{event}/*.payload.json")):
            out.append(pytest.param(event, path, id=str(path.relative_to(FIXTURES))))
    return out


def _variants(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The fixture, and edits that make it a trigger from a member / on the bot's PR."""
    out = [payload]
    trigger = copy.deepcopy(payload)
    if "comment" in trigger:
        trigger["comment"]["body"] = "/pact code docs/a.md\nplease"
        trigger["comment"]["author_association"] = "MEMBER"
    if "label" in trigger:
        trigger["label"]["name"] = CFG.label
    if "review" in trigger:
        trigger["review"]["author_association"] = "OWNER"
        trigger["review"]["state"] = "changes_requested"
        trigger["pull_request"]["user"]["login"] = BOT.login
    out.append(trigger)
    return out


def _decision(decide: Any) -> Any:
    try:
        d = decide()
    except ValidationError:
        return "invalid"
    strip = {"id", "created_at"}  # fresh per call
    return (
        d.reason,
        d.dropped,
        d.job.model_dump(exclude=strip) if d.job else None,
        d.ack.model_dump(exclude=strip) if d.ack else None,
    )


@pytest.mark.parametrize(("event", "path"), _routed_fixtures())
def test_routing_from_the_raw_body_decides_as_from_the_decoded_payload(
    event: str, path: Any
) -> None:
    """The web process validates the raw bytes straight into the event's model (skipping
    the fields nobody reads); on GitHub's own payloads it must decide exactly what routing
    the fully decoded dict decides: same job, same task, same ack, same refusals."""
    for payload in _variants(json.loads(path.read_text())):
        raw = json.dumps(payload).encode()
        from_dict = _decision(lambda p=payload: route(event, p, BOT, CFG, delivery_id="d1"))
        from_raw = _decision(
            lambda r=raw: route_event(event, parse_json(event, r), BOT, CFG, delivery_id="d1")
        )
        assert from_raw == from_dict


def test_an_id_over_64_bits_is_refused_from_the_raw_body() -> None:
    """The queue stores ids as 64-bit integers (and orjson refused such a body outright):
    the raw-body parser, which takes any size, must refuse it too, not hand it on."""
    payload = comment("/pact code docs/a.md")
    payload["comment"]["author_association"] = "MEMBER"
    payload["comment"]["id"] = 2**64
    with pytest.raises(ValidationError):
        parse_json("issue_comment", json.dumps(payload).encode())
    payload["comment"]["id"] = 2**63 - 1
    assert parse_json("issue_comment", json.dumps(payload).encode()).comment.id == 2**63 - 1


def _as_validated(job: Job) -> Job:
    """`job` as the validating constructor builds it from the same fields (and clock)."""
    built = Job(**{name: getattr(job, name) for name in job.model_fields_set})
    assert built.model_fields_set == job.model_fields_set
    built.created_at = job.created_at
    return built


@pytest.mark.parametrize(("event", "path"), _routed_fixtures())
def test_routed_jobs_are_what_their_validated_models_would_be(event: str, path: Any) -> None:
    """Routing builds its jobs and tasks without validating them (their values come from
    payload models validated already): each must equal what validation builds, and its
    task read back by a worker must give back the very dict that was stored."""
    for payload in _variants(json.loads(path.read_text())):
        d = route(event, payload, BOT, CFG, delivery_id="d1")
        for job in (d.job, d.ack):
            if job is None:
                continue
            assert job == _as_validated(job)
            assert Job.model_validate_json(job.model_dump_json()) == job
            assert wire(job.typed_task()) == job.task


def test_a_task_field_routing_does_not_know_is_an_error() -> None:
    """A model would drop an unknown name silently; the routing shortcut refuses it."""
    assert CodeTask.as_wire(title="t", spec_paths=["a.md"]) == wire(
        CodeTask(title="t", spec_paths=["a.md"])
    )
    with pytest.raises(TypeError, match="specs"):
        CodeTask.as_wire(specs=["a.md"])
    with pytest.raises(TypeError, match="progress"):
        CodeTask.as_wire(progress={})


async def test_a_routed_job_read_back_is_validated_and_a_corrupt_task_still_fails(
    tmp_path: Any,
) -> None:
    """Routing skips validation for what it builds; reading a job back does not: the
    stored job validates into its task model, and a task corrupted in the database fails
    as before (the worker answers `invalid task`)."""
    payload = comment("/pact code docs/a.md")
    payload["comment"]["author_association"] = "MEMBER"
    job = route("issue_comment", payload, BOT, CFG, delivery_id="d1").job
    assert job is not None
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    try:
        await queue.enqueue(job)
        stored = await queue.get(job.id)
        assert stored is not None
        assert stored.task == job.task
        assert wire(stored.typed_task()) == job.task
        with sqlite3.connect(tmp_path / "q.db") as db:
            db.execute("UPDATE jobs SET task = ? WHERE id = ?", ('{"spec_paths": 5}', job.id))
        corrupt = await queue.get(job.id)
        assert corrupt is not None
        with pytest.raises(ValidationError):
            corrupt.typed_task()
    finally:
        await queue.close()
