"""POST /webhook as GitHub calls it: signed real payloads, bad inputs, redeliveries."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FIXTURES, app_credentials, load_payload

from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.settings import Settings
from pact_bot.web.app import create_app
from pact_bot.web.webhook import verify_signature

SECRET = "webhook-secret-for-tests"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
    }


class Client(httpx.AsyncClient):
    queue: SqliteQueue

    async def deliver(
        self, event: str, payload: Any, delivery: str | None = None
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.post("/webhook", content=body, headers=headers(event, body, delivery))


APP = {
    "github_app_id": int(app_credentials()["GITHUB_APP_ID"]),
    "github_private_key": app_credentials()["GITHUB_PRIVATE_KEY"],
}


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        pact_database_url=f"sqlite:///{tmp_path}/q.db",
        pact_data_dir=tmp_path / "data",
        **kw,
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = make_settings(tmp_path, github_webhook_secret=SECRET, **APP)
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    app = create_app(settings, queue)
    async with Client(transport=httpx.ASGITransport(app=app), base_url="http://gh") as c:
        c.queue = queue
        yield c
    await queue.close()


def fixture_files() -> list[str]:
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json"))


SPEC_CHECK = {"opened", "reopened", "synchronize"}


def expected_status(rel: str) -> int:
    event, action = rel.split("/")[1], rel.split("/")[2].split(".")[0]
    if event == "pull_request" and action in SPEC_CHECK:
        return 202  # same-repo PRs: the worker checks them for specs
    if event in ("check_run", "check_suite") and action == "completed":
        check = json.loads((FIXTURES / rel).read_bytes())[event]
        if check["conclusion"] in ("failure", "timed_out") and check["pull_requests"]:
            return 202  # a failed CI check on a PR: the worker sees whether the PR is the bot's
    return 200


def test_githubs_signature_test_vector() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header)
    assert not verify_signature(b"It's a Secret to Everybody", b"Hello, World?", header)
    assert not verify_signature(b"another secret", b"Hello, World!", header)
    assert not verify_signature(b"It's a Secret to Everybody", b"Hello, World!", None)
    assert not verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header[7:])


@pytest.mark.parametrize("rel", fixture_files())
async def test_every_real_payload_is_answered(client: Client, rel: str) -> None:
    event = rel.split("/")[1]
    body = (FIXTURES / rel).read_bytes()  # the bytes as GitHub sent them
    r = await client.post("/webhook", content=body, headers=headers(event, body))
    assert r.status_code == expected_status(rel), r.text
    jobs = await client.queue.list()
    assert len(jobs) == (1 if r.status_code == 202 else 0)
    if jobs:
        assert r.json()["job_id"] == jobs[0].id
        assert jobs[0].kind is (JobKind.revise if event == "check_run" else JobKind.spec_check)


def test_the_fixture_matrix_is_not_empty() -> None:
    files = fixture_files()
    assert len(files) >= 50 and any(f.startswith("ghes-35/") for f in files)


async def test_relabelled_issue_creates_exactly_one_code_job(client: Client) -> None:
    p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    p["label"]["name"] = "pact:code"
    r = await client.deliver("issues", p, delivery="lab-1")
    assert r.status_code == 202
    [job] = await client.queue.list()
    assert (job.kind, job.key, job.delivery_id, job.state) == (
        JobKind.code,
        "Codertocat/Hello-World#1",
        "lab-1",
        JobState.queued,
    )
    assert r.json() == {"ok": True, "job_id": job.id, "kind": "code"}


async def test_pact_code_comment_creates_a_code_job(client: Client) -> None:
    p = copy.deepcopy(load_payload("ghes-35/issue_comment/created.json"))
    p["comment"]["body"] = "/pact code docs/auth-spec.md\nUse argon2"
    r = await client.deliver("issue_comment", p, delivery="cmd-1")
    assert r.status_code == 202
    # the issue has no queued or running job: the job starts at once and reacts 👀 itself
    [job] = await client.queue.list()
    assert job.kind is JobKind.code and job.installation_id == 5
    assert job.task["spec_paths"] == ["docs/auth-spec.md"]
    assert job.task["instructions"] == "Use argon2"
    assert job.task["comment_id"] == p["comment"]["id"]
    # a redelivery records nothing, not even an ack now that the key is busy
    again = await client.deliver("issue_comment", p, delivery="cmd-1")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert await client.queue.list() == [job]


async def test_pact_code_on_a_busy_issue_records_its_ack_first(client: Client) -> None:
    p = copy.deepcopy(load_payload("ghes-35/issue_comment/created.json"))
    p["comment"]["body"] = "/pact code docs/auth-spec.md"
    assert (await client.deliver("issue_comment", p, delivery="cmd-1")).status_code == 202
    [first] = await client.queue.list()

    def comment(cid: int, body: str) -> dict[str, Any]:
        q = copy.deepcopy(p)
        q["comment"]["id"], q["comment"]["body"] = cid, body
        return q

    # queued behind a queued job: a reply job reacts 👀 within seconds, recorded before it
    second = comment(2001, "/pact code docs/auth-spec.md\nUse argon2")
    r = await client.deliver("issue_comment", second, delivery="cmd-2")
    assert r.status_code == 202
    job, ack, older = await client.queue.list()  # newest first: the ack precedes the job
    assert older == first and job.id == r.json()["job_id"]
    assert (ack.kind, ack.task["command"], ack.delivery_id) == (JobKind.reply, "ack", "cmd-2:ack")
    assert ack.key == f"{job.key}:reply" and ack.task["comment_id"] == 2001
    assert (ack.task["for_key"], ack.task["for_kind"]) == (job.key, "code")
    # a redelivery records neither again
    again = await client.deliver("issue_comment", second, delivery="cmd-2")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(await client.queue.list()) == 3
    # a command identical to a queued job coalesces into it and still gets its ack
    same = comment(2002, "/pact code docs/auth-spec.md")
    r = await client.deliver("issue_comment", same, delivery="cmd-3")
    assert r.status_code == 200 and r.json()["coalesced"] is True
    newest = (await client.queue.list())[0]
    assert (newest.delivery_id, newest.task["for_fingerprint"]) == (
        "cmd-3:ack",
        first.task["fingerprint"],
    )
    # behind a running job (nothing queued of the key): the ack too
    claimed = await client.queue.claim("w1")
    assert claimed is not None and claimed.id == first.id
    await client.queue.request_cancel(first.key)  # the second job: cancelled while queued
    r = await client.deliver(
        "issue_comment", comment(2003, "/pact code docs/other-spec.md"), delivery="cmd-4"
    )
    assert r.status_code == 202
    assert [j.delivery_id for j in (await client.queue.list())[:2]] == ["cmd-4", "cmd-4:ack"]
    # once the key is idle again, no ack
    await client.queue.request_cancel(first.key)
    await client.queue.finish(first.id, "w1", JobState.cancelled)
    r = await client.deliver(
        "issue_comment", comment(2004, "/pact code docs/third-spec.md"), delivery="cmd-5"
    )
    assert r.status_code == 202
    assert [j.delivery_id for j in (await client.queue.list())[:2]] == ["cmd-5", "cmd-4"]


async def test_review_on_a_bot_pr_creates_a_revise_job(client: Client) -> None:
    p = copy.deepcopy(load_payload("api.github.com/pull_request_review/submitted.payload.json"))
    p["pull_request"]["user"]["login"] = "pact-bot[bot]"
    p["review"]["state"] = "changes_requested"
    p["review"]["body"] = "Please handle the empty list."
    r = await client.deliver("pull_request_review", p)
    assert r.status_code == 202
    [job] = await client.queue.list()
    assert job.kind is JobKind.revise and job.task["review_id"] == p["review"]["id"]


async def test_identical_trigger_while_queued_is_coalesced(client: Client) -> None:
    p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    p["label"]["name"] = "pact:code"
    assert (await client.deliver("issues", p)).status_code == 202
    p["issue"]["updated_at"] = "2019-05-15T15:21:03Z"  # a second labelling: a new body
    r = await client.deliver("issues", p)
    assert r.status_code == 200 and r.json()["coalesced"] is True
    assert len(await client.queue.list()) == 1


def _comment_body(text: str) -> bytes:
    p = copy.deepcopy(load_payload("api.github.com/issue_comment/created.payload.json"))
    p["comment"]["body"] = text
    return json.dumps(p).encode()


def _bad_requests() -> list[tuple[str, dict[str, str] | None, bytes, int]]:
    good = _comment_body("/pact code")
    h = headers("issue_comment", good)
    sha1 = "sha1=" + hmac.new(SECRET.encode(), good, hashlib.sha1).hexdigest()
    no_sig = {k: v for k, v in h.items() if k != "X-Hub-Signature-256"}
    truncated = good[: len(good) // 2]
    array = b'[{"action": "created"}]'
    mid = _comment_body("I think we should /pact code this")
    return [
        ("wrong signature", {**h, "X-Hub-Signature-256": sign(good, "not-the-secret")}, good, 401),
        ("missing signature", no_sig, good, 401),
        ("sha1 only", {**no_sig, "X-Hub-Signature": sha1}, good, 401),
        ("signature of other body", {**h, "X-Hub-Signature-256": sign(b"{}")}, good, 401),
        ("truncated JSON", headers("issue_comment", truncated), truncated, 400),
        ("JSON array", headers("issue_comment", array), array, 400),
        ("not UTF-8", headers("issue_comment", b"\xff\xfe"), b"\xff\xfe", 400),
        ("missing event", {k: v for k, v in h.items() if k != "X-GitHub-Event"}, good, 400),
        ("missing delivery", {k: v for k, v in h.items() if k != "X-GitHub-Delivery"}, good, 400),
        ("unknown event", headers("sponsorship", good), good, 200),
        ("/pact mid-line", headers("issue_comment", mid), mid, 200),
    ]


@pytest.mark.parametrize(
    ("name", "hdrs", "body", "status"),
    _bad_requests(),
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_bad_input_gets_its_status_and_no_job(
    client: Client, name: str, hdrs: dict[str, str], body: bytes, status: int
) -> None:
    r = await client.post("/webhook", content=body, headers=hdrs)
    assert r.status_code == status, r.text
    assert "error" in r.json() or status == 200
    assert await client.queue.list() == []


async def test_payload_missing_fields_we_read_is_400(client: Client) -> None:
    r = await client.deliver("issue_comment", {"action": "created", "repository": {"x": 1}})
    assert r.status_code == 400 and "malformed" in r.json()["error"]


async def test_body_over_the_limit_is_413_with_or_without_length(client: Client) -> None:
    big = b'{"a": "' + b"x" * (26 * 1024 * 1024) + b'"}'
    r = await client.post("/webhook", content=big, headers=headers("issue_comment", big))
    assert r.status_code == 413
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"x" * (1024 * 1024)
        for _ in range(40):
            sent += len(chunk)
            yield chunk

    h = headers("issue_comment", b"")
    r = await client.post("/webhook", content=stream(), headers=h)
    assert r.status_code == 413
    assert await client.queue.list() == []


async def test_same_delivery_ten_times_concurrently_is_one_job(client: Client) -> None:
    body = _comment_body("/pact code")
    h = headers("issue_comment", body, delivery="same-id")
    answers = await asyncio.gather(
        *(client.post("/webhook", content=body, headers=h) for _ in range(10))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 9 + [202]
    jobs = await client.queue.list()
    assert [str(j.kind) for j in jobs] == ["code"]  # one job; its key was idle: no ack


async def test_redelivery_of_an_ignored_event_is_still_200(client: Client) -> None:
    p = load_payload("api.github.com/issues/opened.payload.json")
    assert (await client.deliver("issues", p, delivery="x1")).json()["reason"]
    r = await client.deliver("issues", p, delivery="x1")
    assert r.status_code == 200 and r.json()["duplicate"] is True


async def test_pact_cancel_queues_a_reply_and_leaves_the_check_to_the_worker(
    client: Client,
) -> None:
    """The web process cannot check the commenter's permission, so it cancels nothing."""
    code = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    code["label"]["name"] = "pact:code"
    assert (await client.deliver("issues", code)).status_code == 202
    running = await client.queue.claim("w1")
    assert running is not None
    p = json.loads(_comment_body("/pact cancel"))
    r = await client.deliver("issue_comment", p)
    assert r.status_code == 202 and r.json()["kind"] == "reply"
    assert not await client.queue.is_cancelled(running.id)
    [reply] = await client.queue.list(key="Codertocat/Hello-World#1:reply")
    assert reply.task["command"] == "cancel"


async def test_repository_trigger_config_is_used(client: Client) -> None:
    await client.queue.set_repo_config("Codertocat/Hello-World", {"label": "bot:implement"})
    p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    p["label"]["name"] = "pact:code"
    assert (await client.deliver("issues", p)).status_code == 200
    p["label"]["name"] = "bot:implement"
    assert (await client.deliver("issues", p)).status_code == 202


async def test_delivery_log_line_has_the_fields_and_no_secrets(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pact_bot.web.webhook")
    body = _comment_body("/pact code")
    h = headers("issue_comment", body, delivery="log-1")
    await client.post("/webhook", content=body, headers=h)
    [rec] = [r for r in caplog.records if getattr(r, "delivery_id", None) == "log-1"]
    fields = rec.__dict__
    assert fields["event"] == "issue_comment" and fields["action"] == "created"
    assert fields["repo"] == "Codertocat/Hello-World" and fields["outcome"] == "accepted"
    assert fields["job_id"] and fields["latency_ms"] >= 0
    text = json.dumps({k: str(v) for k, v in fields.items()})
    assert h["X-Hub-Signature-256"][7:] not in text and SECRET not in text
    assert "You are totally right" not in text


async def test_healthz_and_metrics(client: Client) -> None:
    p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    p["label"]["name"] = "pact:code"
    await client.deliver("issues", p)
    h = (await client.get("/healthz")).json()
    assert h["status"] == "ok" and h["version"] and h["queue"]["queued"] == 1
    m = await client.get("/metrics")
    assert m.status_code == 200
    assert 'pact_webhook_deliveries_total{event="issues",outcome="accepted"}' in m.text
    assert 'pact_queue_jobs{state="queued"} 1.0' in m.text
    # unsigned requests choose their own headers: they never become a label value
    body = b"{}"
    await client.post(
        "/webhook",
        content=body,
        headers={**headers("x" * 40, body), "X-Hub-Signature-256": "sha256=0"},
    )
    m = await client.get("/metrics")
    assert 'event="unverified",outcome="rejected"' in m.text and "x" * 40 not in m.text


async def test_unconfigured_app_answers_503_and_says_what_is_missing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    queue = SqliteQueue(tmp_path / "q.db")
    app = create_app(settings, queue, open_queue=True)
    from starlette.testclient import TestClient

    with TestClient(app) as c:
        body = b"{}"
        r = c.post("/webhook", content=body, headers=headers("ping", body))
        assert r.status_code == 503 and "GITHUB_WEBHOOK_SECRET" in r.json()["error"]
        home = c.get("/")
        assert home.status_code == 200 and "text/html" in home.headers["content-type"]
        for var in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET"):
            assert var in home.text
        assert c.get("/healthz").json()["status"] == "ok"


async def test_secret_without_app_credentials_is_refused_not_queued(tmp_path: Path) -> None:
    """A job recorded without the App's id and key could never run: GitHub is told 503."""
    settings = make_settings(tmp_path, github_webhook_secret=SECRET)
    queue = SqliteQueue(tmp_path / "q.db")
    app = create_app(settings, queue, open_queue=True)
    from starlette.testclient import TestClient

    with TestClient(app) as c:
        p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
        p["label"]["name"] = "pact:code"
        body = json.dumps(p).encode()
        r = c.post("/webhook", content=body, headers=headers("issues", body))
        assert r.status_code == 503
        assert "GITHUB_APP_ID, GITHUB_PRIVATE_KEY not set" in r.json()["error"]
        assert c.get("/healthz").json()["queue"]["queued"] == 0


async def test_home_page_takes_extra_sections(client: Client) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.home_sections.append(lambda request: "<p id='setup'>Register</p>")
    r = await client.get("/")
    assert "<p id='setup'>Register</p>" in r.text and "configured" in r.text


def test_job_key_helper() -> None:
    assert Job.key_for("o/r", 3) == "o/r#3"


async def test_queue_opened_on_one_loop_serves_a_testclient_on_another(tmp_path: Path) -> None:
    """TestClient runs the app on its own loop and thread; writes must still land."""
    from starlette.testclient import TestClient

    settings = make_settings(tmp_path, github_webhook_secret=SECRET, **APP)
    async with SqliteQueue(tmp_path / "q.db") as queue:
        app = create_app(settings, queue)
        p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
        p["label"]["name"] = "pact:code"
        body = json.dumps(p).encode()
        with TestClient(app) as c:
            r = await asyncio.to_thread(
                c.post, "/webhook", content=body, headers=headers("issues", body)
            )
        assert r.status_code == 202
        [job] = await queue.list()
        assert job.id == r.json()["job_id"]
