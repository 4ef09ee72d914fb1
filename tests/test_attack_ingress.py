"""Attacks on the front door (issue #10 findings 5, 6, 9a), through the product: signed
deliveries from the GitHub simulator (or its real example payloads) POSTed to the real ASGI
app, jobs run by the real handler against the simulators.

- Strangers (author_association NONE) cannot fill the queue or make the bot spam refusals.
- A collaborator without write is refused once per issue, not once per command.
- What is left is rate limited per sender and per repository.
- A captured signed body replayed under new delivery ids starts one job (both queues).
- No mutated signed payload makes the endpoint answer 5xx.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import random
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FIXTURES, load_payload
from queue_backends import BACKENDS, QueueFactory
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from test_revise import REPO, bot_comments, issue_opened_by
from test_webhook import APP, SECRET, headers, make_settings

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import Job, Pruned, Queue
from pact_bot.jobs.retention import DAY, Retention
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.triggers import BotIdentity
from pact_bot.web.app import create_app
from pact_bot.web.webhook import WebhookEndpoint


def app_client(app: Any) -> httpx.AsyncClient:
    # a crash must show as the 500 uvicorn would send, not as an exception in the test
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://pact")


async def forward(client: httpx.AsyncClient, github: GitHubSim, seen: set[str]) -> list[int]:
    """POST the simulator's new deliveries (its signed bytes and headers) to the app."""
    await github.wait_for_deliveries_async(timeout=30)
    statuses = []
    for d in github.deliveries:
        if d.id in seen:
            continue
        seen.add(d.id)
        r = await client.post("/webhook", content=d.body, headers=d.headers)
        statuses.append(r.status_code)
    return statuses


async def run_all(b: InProcessBot) -> list[Job]:
    """Claim and run every queued job with the real handler, as a worker does."""
    done = []
    while (job := await b.queue.claim("test-worker")) is not None:
        done.append(await b.run_job(job))
    return done


async def dropped(client: httpx.AsyncClient, reason: str) -> float:
    text = (await client.get("/metrics")).text
    m = re.search(rf'^pact_webhook_triggers_dropped_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


# -- finding 5: strangers --------------------------------------------------------------------


async def test_three_hundred_stranger_commands_start_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    number = issue_opened_by(github_sim, "alice", "write")
    for i in range(30):
        github_sim.add_user(f"drive-by-{i}", "none")
    commands = ["/pact code", "/pact help", "/pact status", "/pact code docs/x.md", "/pact"]
    for n in range(300):
        github_sim.comment(REPO, number, commands[n % 5], user=f"drive-by-{n % 30}")
    app = create_app(bot.settings, bot.queue)
    async with app_client(app) as client:
        before = await dropped(client, "stranger")
        seen: set[str] = set()
        statuses = await forward(client, github_sim, seen)
        after = await dropped(client, "stranger")

    assert statuses.count(200) == 301 and len(statuses) == 301  # the issue, 300 comments
    assert await bot.queue.list(limit=1000) == []
    assert after - before == 300
    assert await run_all(bot) == []
    assert bot_comments(github_sim, number) == []  # no refusal spam


async def test_a_strangers_review_on_a_bot_pr_starts_nothing(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    p = copy.deepcopy(load_payload("api.github.com/pull_request_review/submitted.payload.json"))
    p["pull_request"]["user"]["login"] = "pact-bot[bot]"
    p["review"]["state"] = "changes_requested"
    settings = make_settings(tmp_path, github_webhook_secret=SECRET, **APP)
    async with app_client(create_app(settings, queue)) as client:
        for association, status in (("NONE", 200), ("CONTRIBUTOR", 200), ("COLLABORATOR", 202)):
            p["review"]["author_association"] = association
            p["review"]["id"] += 1
            body = json.dumps(p).encode()
            r = await client.post(
                "/webhook", content=body, headers=headers("pull_request_review", body)
            )
            assert r.status_code == status, association
    assert [j.sender for j in await queue.list()] == [p["sender"]["login"]]
    await queue.close()


async def test_a_collaborator_without_write_is_refused_once_per_issue(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    github_sim.add_repo("acme", "shop", files={"README.md": "x\n"})
    github_sim.add_user("alice", "write")
    github_sim.add_user("mallory", "read")  # a collaborator: passes ingress, lacks write
    first = github_sim.open_issue(REPO, "Cart", user="alice")
    second = github_sim.open_issue(REPO, "Checkout", user="alice")
    for body in ("/pact status", "/pact code", "/pact help", "/pact code again", "/pact cancel"):
        github_sim.comment(REPO, first, body, user="mallory")
    github_sim.comment(REPO, second, "/pact status", user="mallory")
    github_sim.comment(REPO, first, "/pact help", user="alice")
    app = create_app(bot.settings, bot.queue)
    async with app_client(app) as client:
        seen: set[str] = set()
        statuses = await forward(client, github_sim, seen)
        assert all(s in (200, 202) for s in statuses)
        jobs = await run_all(bot)
        # later commands, after the refusal is on the issue
        github_sim.comment(REPO, first, "/pact status", user="mallory")
        assert (await forward(client, github_sim, seen)).count(202) == 1  # + the bot's own
        jobs += await run_all(bot)

    refused = [j for j in jobs if (j.error or "").startswith("refused: mallory")]
    assert len(refused) == 7  # every one of mallory's triggers was refused by the worker
    to_mallory = [c for c in bot_comments(github_sim, first) if "@mallory" in c]
    assert len(to_mallory) == 1 and "(yours: read)" in to_mallory[0]
    assert len([c for c in bot_comments(github_sim, second) if "@mallory" in c]) == 1
    assert any("`/pact status`" in c for c in bot_comments(github_sim, first))  # alice's help


async def test_a_pasted_refusal_marker_does_not_silence_the_bot(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    number = issue_opened_by(github_sim, "mallory", "read")
    github_sim.comment(REPO, number, "hi <!-- pact-bot:refused:mallory -->", user="mallory")
    github_sim.comment(REPO, number, "/pact status", user="mallory")
    async with app_client(create_app(bot.settings, bot.queue)) as client:
        await forward(client, github_sim, set())
    await run_all(bot)
    [refusal] = bot_comments(github_sim, number)
    assert refusal.startswith("@mallory thanks")


# -- finding 5: rate limits ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def label_body(number: int, sender: str, repo: str = "Codertocat/Hello-World") -> bytes:
    p = copy.deepcopy(load_payload("api.github.com/issues/labeled.payload.json"))
    p["label"]["name"] = "pact:code"
    p["issue"]["number"] = number
    p["sender"]["login"] = sender
    p["repository"]["full_name"] = repo
    return json.dumps(p).encode()


async def test_triggers_over_the_window_are_answered_200_and_start_nothing(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path,
        github_webhook_secret=SECRET,
        pact_rate_limit_sender=3,
        pact_rate_limit_repo=5,
        pact_rate_window_seconds=60,
        **APP,
    )
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    clock = Clock()
    app = create_app(settings, queue)
    app.state.webhook = WebhookEndpoint(settings, queue, BotIdentity(), clock=clock)

    async def label(number: int, sender: str, repo: str = "Codertocat/Hello-World") -> Any:
        body = label_body(number, sender, repo)
        return await client.post("/webhook", content=body, headers=headers("issues", body))

    async with app_client(app) as client:
        by_sender = await dropped(client, "rate_limited_sender")
        by_repo = await dropped(client, "rate_limited_repo")
        assert [(await label(n, "alice")).status_code for n in range(1, 6)] == [202] * 3 + [200] * 2
        r = await label(6, "alice")
        assert r.json() == {"ok": True, "reason": "rate limited"}
        assert (await label(7, "bob")).status_code == 202  # another sender has room
        assert (await label(8, "bob")).status_code == 202  # the repository's 5th
        assert (await label(9, "carol")).status_code == 200  # the repository is full
        assert (await label(10, "carol", "acme/other")).status_code == 202  # not another one
        clock.now += 61  # the window slides
        assert (await label(11, "alice")).status_code == 202
        # a concurrent burst gets no more than a slow trickle
        burst = await asyncio.gather(*(label(100 + n, "dave", "acme/burst") for n in range(10)))
        assert sorted(r.status_code for r in burst) == [200] * 7 + [202] * 3
        assert await dropped(client, "rate_limited_sender") - by_sender == 3 + 7
        assert await dropped(client, "rate_limited_repo") - by_repo == 1
    assert len(await queue.list()) == 7 + 3
    await queue.close()


# -- finding 6: replay under a new delivery id -----------------------------------------------


@pytest.fixture(params=BACKENDS)
async def backend_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Queue]:
    factory = QueueFactory(request.param, tmp_path)
    yield await factory()
    await factory.close_all()


async def test_a_replayed_body_under_new_delivery_ids_starts_one_job(
    backend_queue: Queue, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, github_webhook_secret=SECRET, **APP)
    app = create_app(settings, backend_queue)
    label = label_body(1, "alice")
    p = copy.deepcopy(load_payload("api.github.com/issue_comment/created.payload.json"))
    p["comment"]["body"] = "/pact code docs/a-spec.md"
    comment = json.dumps(p).encode()
    async with app_client(app) as client:
        first = await client.post("/webhook", content=label, headers=headers("issues", label, "d1"))
        assert first.status_code == 202
        for delivery in ("d2", "d3", "d4"):  # the captured body, freshly "delivered"
            r = await client.post("/webhook", content=label, headers=headers("issues", label))
            assert (r.status_code, r.json()) == (200, {"ok": True, "duplicate": True}), delivery
        # GitHub's own redelivery (same id) is a duplicate, as before
        again = await client.post("/webhook", content=label, headers=headers("issues", label, "d1"))
        assert again.json() == {"ok": True, "duplicate": True}
        # a command on the now busy issue: its ack is not replayed either
        statuses = [
            (
                await client.post(
                    "/webhook", content=comment, headers=headers("issue_comment", comment)
                )
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [202, 200, 200]
    jobs = await backend_queue.list()
    assert sorted(str(j.task.get("command") or j.task["trigger"]) for j in jobs) == [
        "ack",
        "code",
        "label",
    ]


# -- finding 9a: no 5xx for any signed payload -----------------------------------------------

ROUTED = ["issues", "issue_comment", "pull_request", "pull_request_review", "check_run"]
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x" * 300,
    "\u0000\ud7ff💥",
    [],
    {},
    [1, "a", None],
    {"login": 1},
    {"full_name": ["a", "b"]},
    "/pact code",
    "OWNER",
]
# fields routing reads: mutated often so the fuzz reaches deep into `route`
HOT_PATHS = [
    ("repository", "full_name"),
    ("repository",),
    ("repository", "owner"),
    ("sender",),
    ("sender", "login"),
    ("sender", "type"),
    ("installation",),
    ("installation", "id"),
    ("action",),
    ("label",),
    ("label", "name"),
    ("comment", "body"),
    ("comment", "id"),
    ("comment", "author_association"),
    ("issue", "number"),
    ("issue", "pull_request"),
    ("issue", "user"),
    ("review", "state"),
    ("review", "author_association"),
    ("pull_request", "user", "login"),
    ("pull_request", "head"),
    ("pull_request", "head", "repo"),
    ("check_run", "pull_requests"),
    ("requested_action",),
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        try:
            doc = doc[step]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    parent = _parent(doc, path)
    key = path[-1]
    in_list = isinstance(parent, list) and isinstance(key, int) and key < len(parent)
    if isinstance(parent, dict) or in_list:
        parent[key] = value


def mutate(rng: random.Random, doc: dict[str, Any]) -> Any:
    """One to four type, value, key or nesting changes; sometimes a trigger is armed first so
    routing goes past its first checks."""
    if rng.random() < 0.5:
        _set(doc, ("comment", "body"), rng.choice(["/pact code", "/pact help x", "/pact"]))
        _set(doc, ("label", "name"), "pact:code")
        _set(doc, ("pull_request", "user", "login"), "pact-bot[bot]")
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(HOT_PATHS) if rng.random() < 0.5 else None
        if path is None:
            paths = _paths(doc)
            if not paths:
                break
            path = rng.choice(paths)
        parent = _parent(doc, path)
        if not isinstance(parent, dict | list):
            continue
        key = path[-1]
        if isinstance(parent, dict):
            here = parent.get(key)
        else:
            here = parent[key] if isinstance(key, int) and key < len(parent) else None
        kind = rng.randrange(6)
        if kind == 0:
            _set(doc, path, copy.deepcopy(rng.choice(ODD_VALUES)))
        elif kind == 1 and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif kind == 2 and isinstance(parent, dict):
            parent[rng.choice(["extra", "__proto__", "", "🔑"])] = rng.choice(ODD_VALUES)
        elif kind == 3:
            _set(doc, path, [here])
        elif kind == 4:
            _set(doc, path, {"nested": here})
        else:
            _set(doc, path, str(here) if not isinstance(here, str) else rng.randint(0, 9))
    if rng.random() < 0.01:
        return rng.choice([[doc], "a string", 42, None])
    return doc


def fuzz_cases(n: int, seed: int = 20261204) -> list[tuple[str, bytes]]:
    files = sorted(FIXTURES.rglob("*.json"))
    originals = [(f.parent.name, json.loads(f.read_text())) for f in files]
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        event, doc = rng.choice(originals)
        if rng.random() < 0.2:
            event = rng.choice(ROUTED)
        cases.append((event, json.dumps(mutate(rng, copy.deepcopy(doc))).encode()))
    return cases


def _signed(event: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


async def _post_all(
    client: httpx.AsyncClient, cases: list[tuple[str, bytes]]
) -> list[tuple[int, str, bytes]]:
    answers: list[tuple[int, str, bytes]] = []

    async def one(event: str, body: bytes) -> None:
        r = await client.post("/webhook", content=body, headers=_signed(event, body))
        answers.append((r.status_code, event, body))

    for start in range(0, len(cases), 250):  # concurrent: the queue's group commit batches
        await asyncio.gather(*(one(e, b) for e, b in cases[start : start + 250]))
    return answers


@pytest.fixture
async def fuzz_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Queue]]:
    settings = make_settings(tmp_path, github_webhook_secret=SECRET, **APP)
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    async with app_client(create_app(settings, queue)) as client:
        yield client, queue
    await queue.close()


@pytest.mark.parametrize("bad", [["a", "b"], {"owner": "x"}, 7, None])
async def test_a_repository_name_of_the_wrong_type_is_a_4xx_or_200(
    fuzz_client: tuple[httpx.AsyncClient, Queue], bad: Any
) -> None:
    client, queue = fuzz_client
    for fixture, event in (
        ("api.github.com/issue_comment/created.payload.json", "issue_comment"),
        ("api.github.com/issues/labeled.payload.json", "issues"),
    ):
        p = copy.deepcopy(load_payload(fixture))
        p["repository"]["full_name"] = bad
        body = json.dumps(p).encode()
        r = await client.post("/webhook", content=body, headers=_signed(event, body))
        assert r.status_code in (200, 400), (event, bad, r.status_code)
    assert await queue.list() == []


async def test_ten_thousand_mutated_signed_payloads_never_get_a_5xx(
    fuzz_client: tuple[httpx.AsyncClient, Queue],
) -> None:
    client, _ = fuzz_client
    cases = fuzz_cases(10_000)
    assert len({b for _, b in cases}) > 9_000  # really mutated, not one body many times
    answers = await _post_all(client, cases)
    errors = [(s, e, b[:300]) for s, e, b in answers if s >= 500]
    assert errors == [], f"{len(errors)} answers were 5xx, first: {errors[:3]}"
    statuses = {s for s, _, _ in answers}
    assert statuses <= {200, 202, 400}
    assert {200, 202, 400} <= statuses  # the mutations reach every outcome
    ok = await client.get("/healthz")
    assert ok.status_code == 200


# -- finding 9c: retention runs by itself ----------------------------------------------------


class _PruneOnce:
    """A queue whose prune fails once, then records the cut-offs and stops the loop."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.calls: list[tuple[float, float]] = []

    async def prune(self, now: float, jobs_before: float, deliveries_before: float) -> Pruned:
        self.calls.append((now - jobs_before, now - deliveries_before))
        if len(self.calls) == 1:
            raise OSError("disk hiccup")
        self.stop.set()
        return Pruned(jobs=2, deliveries=5)


async def test_the_retention_loop_survives_a_failed_pass_and_uses_the_settings(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, pact_retention_jobs_days=2, pact_retention_deliveries_days=0.5
    )
    stop = asyncio.Event()
    queue = _PruneOnce(stop)
    clock = FakeClock(start=1000.0)
    retention = Retention.from_settings(settings, queue, clock=clock)
    assert await retention.prune_if_due() is None  # failed: logged, not raised
    await clock.advance(3600)  # due again

    await asyncio.wait_for(retention.run(stop, poll=3600), timeout=5)

    assert queue.calls == [(2 * DAY, 0.5 * DAY)] * 2
