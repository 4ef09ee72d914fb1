"""Scale-out on Postgres with real processes: `pact-bot serve` replicas (PACT_WORKERS=0) and
`pact-bot worker` processes sharing one schema.

Workers run `pg_support:sleep_handler` (`python -m pg_support`: the CLI with it injected),
which takes a fixed time and records its start and end, so the tests can check from the
outside that jobs of one key never overlapped, and that none was lost or finished twice
after crashes and dropped connections. procrastinate's own event log
(`procrastinate_events`) is the witness for "finished exactly once".
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import app_credentials
from pg_support import PgSchema, make_schema, read_records, remove_schema
from sim.anthropic import AnthropicSim
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy

import pact_bot
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.postgres import PostgresQueue
from pact_bot.jobs.worker import JobControl, JobOutcome, run_workers
from pact_bot.web.setup_credentials import write_app_credentials

pytestmark = pytest.mark.slow

PACT_BOT = Path(sys.executable).with_name("pact-bot")
TESTS = Path(__file__).resolve().parent
# the replicas import the pact_bot this test imports (a worktree's, not the editable install's)
SRC = Path(pact_bot.__file__).resolve().parents[1]
FIXTURE = "api.github.com/issue_comment/created.payload.json"
SECRET = "scale-out-test-secret"


@pytest.fixture
def pg() -> Iterator[PgSchema]:
    schema = make_schema("scale")
    yield schema
    remove_schema(schema)


class Procs:
    """pact-bot processes of one test; all killed at the end, whatever happened."""

    def __init__(self, tmp: Path, pg: PgSchema) -> None:
        self.tmp = tmp
        self.pg = pg
        self.record = tmp / "records.jsonl"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.app = True  # False: processes start before the App is registered

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PACT_", "GITHUB_"))}
        env.update(self.pg.env())
        env.update(
            GITHUB_WEBHOOK_SECRET=SECRET,
            **(app_credentials() if self.app else {}),
            PACT_DATA_DIR=str(self.tmp / "data"),
            PACT_TEST_RECORD=str(self.record),
            # load, not abuse: one sender's many triggers must all be accepted
            PACT_RATE_LIMIT_SENDER="1000000",
            PACT_RATE_LIMIT_REPO="1000000",
            PYTHONPATH=os.pathsep.join((str(TESTS), str(SRC))),
        )
        env.update(extra)
        return env

    def start(self, *args: str, pipeline: bool = False, **env: str) -> subprocess.Popen[bytes]:
        """`pact-bot <args>`; jobs run `sleep_handler` unless `pipeline` (the real one)."""
        log = self.tmp / f"proc-{len(self.procs)}.log"
        program = [str(PACT_BOT)] if pipeline else [sys.executable, "-m", "pg_support"]
        proc = subprocess.Popen(
            [*program, *args, "--log-format", "json"],
            env=self.env(**env),
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def wait_log(self, proc: subprocess.Popen[bytes], message: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.logs[proc.pid].read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("event") == message:
                    return entry
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {message!r} from {proc.args}: {self.logs[proc.pid].read_text()}")

    def serve(self, pipeline: bool = False, **env: str) -> str:
        proc = self.start("serve", "--port", "0", pipeline=pipeline, PACT_WORKERS="0", **env)
        entry = self.wait_log(proc, "listening")
        return f"http://127.0.0.1:{entry['port']}"

    def worker(
        self, concurrency: int = 2, pipeline: bool = False, **env: str
    ) -> subprocess.Popen[bytes]:
        proc = self.start("worker", "--concurrency", str(concurrency), pipeline=pipeline, **env)
        self.wait_log(proc, "worker started")
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def procs(tmp_path: Path, pg: PgSchema) -> Iterator[Procs]:
    p = Procs(tmp_path, pg)
    yield p
    p.close()


def delivery(base: dict, number: int, step: int) -> tuple[str, bytes]:
    payload = copy.deepcopy(base)
    payload["issue"]["number"] = number
    payload["comment"]["id"] = number * 1000 + step
    payload["comment"]["body"] = f"/pact code\nstep {step} of the plan"
    body = json.dumps(payload).encode()
    return f"d-{number}-{step}", body


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def wait_all_done(pg: PgSchema, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = dict(pg.query("SELECT state, count(*) FROM pact_jobs GROUP BY state"))
        if rows.get("succeeded", 0) + rows.get("failed", 0) + rows.get("cancelled", 0) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"jobs not done after {timeout}s: {rows}")


def assert_no_overlap_per_key(records: list[dict]) -> None:
    by_key: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_key[str(r["key"])].append(r)
    for key, runs in by_key.items():
        runs.sort(key=lambda r: float(r["start"]))
        for a, b in itertools.pairwise(runs):
            assert float(a["end"]) <= float(b["start"]), f"{key}: {a} overlaps {b}"


def succeeded_events(pg: PgSchema) -> Counter[str]:
    rows = pg.query(
        "SELECT p.args->>'job_id' FROM procrastinate_events e JOIN procrastinate_jobs p "
        "ON p.id = e.job_id WHERE e.type = 'succeeded'"
    )
    return Counter(str(r[0]) for r in rows)


def queued_job(i: int, number: int, delivery_id: str) -> Job:
    """A job for issue `number` of octo/repo; `i` tells it from the test's others."""
    return Job(
        kind=JobKind.code,
        key=f"octo/repo#{number}",
        repo="octo/repo",
        number=number,
        delivery_id=delivery_id,
        sender="alice",
        task={"i": i},
    )


def enqueue(pg: PgSchema, jobs: list[Job]) -> list[str]:
    """Queue `jobs` (in order) as a web process would; their ids."""

    async def go() -> None:
        async with PostgresQueue(pg.dsn, schema=pg.name) as q:
            for job in jobs:
                await q.enqueue(job)

    asyncio.run(go())
    return [j.id for j in jobs]


def kill_a_worker_holding_jobs(
    pg: PgSchema, workers: list[subprocess.Popen[bytes]], rng: random.Random
) -> bool:
    """SIGKILL one of `workers` that is running a job, and take it off the list; False when
    none is running one."""
    holders = {
        int(str(w).split(":")[1])
        for (w,) in pg.query("SELECT worker_id FROM pact_jobs WHERE state = 'running'")
    }
    victims = [w for w in workers if w.pid in holders and w.poll() is None]
    if not victims:
        return False
    victim = rng.choice(victims)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    workers.remove(victim)
    return True


def test_two_replicas_three_workers_200_deliveries_each_twice(
    procs: Procs, pg: PgSchema, webhook_fixtures: Path
) -> None:
    replicas = [procs.serve(), procs.serve()]
    for _ in range(3):
        procs.worker(concurrency=2, PACT_TEST_SLEEP="0.05")
    base = json.loads((webhook_fixtures / FIXTURE).read_text())
    deliveries = [delivery(base, n, s) for n in range(1, 21) for s in range(10)]
    sends = [d for d in deliveries for _ in range(2)]
    random.Random(6).shuffle(sends)

    async def send_all() -> list[tuple[str, int, dict, float, float]]:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=30) as client:

            async def one(delivery_id: str, body: bytes) -> tuple[str, int, dict, float, float]:
                async with limit:
                    sent = time.time()
                    r = await client.post(
                        random.choice(replicas) + "/webhook",
                        content=body,
                        headers={
                            "X-GitHub-Event": "issue_comment",
                            "X-GitHub-Delivery": delivery_id,
                            "X-Hub-Signature-256": sign(body),
                            "Content-Type": "application/json",
                        },
                    )
                    return delivery_id, r.status_code, r.json(), sent, time.time()

            return await asyncio.gather(*(one(d, b) for d, b in sends))

    answers = asyncio.run(send_all())
    by_delivery: dict[str, list[int]] = defaultdict(list)
    window: dict[str, tuple[float, float]] = {}  # delivery -> (sent, 202 answered)
    for delivery_id, status, body, sent, answered in answers:
        by_delivery[delivery_id].append(status)
        if status == 202:
            window[delivery_id] = (sent, answered)
        if status == 200:
            assert body.get("duplicate") is True, body
    assert len(by_delivery) == 200
    assert all(sorted(s) == [200, 202] for s in by_delivery.values()), by_delivery

    # Every 202 is on disk, and with it the 👀 reply job recorded in its transaction when its
    # key was busy (a queued or running job): the total is known now.
    [(total,)] = pg.query("SELECT count(*) FROM pact_jobs")
    wait_all_done(pg, total, timeout=120)
    every = pg.query("SELECT id, key, delivery_id, state, seq FROM pact_jobs ORDER BY seq")
    jobs = [j for j in every if not str(j[2]).endswith(":ack")]
    assert len(jobs) == 200
    assert {j[2] for j in jobs} == set(by_delivery)
    acked = {str(j[2]).removesuffix(":ack") for j in every if str(j[2]).endswith(":ack")}
    assert acked <= set(by_delivery) and len(every) == 200 + len(acked)
    # the first job of each key found it idle: no ack; each ack precedes its job
    seq = {str(j[2]): j[4] for j in every}
    firsts = {
        min((j for j in jobs if j[1] == k), key=lambda j: j[4])[2] for k in {j[1] for j in jobs}
    }
    assert not acked & firsts
    assert all(seq[f"{d}:ack"] < seq[d] for d in acked)
    assert {j[3] for j in every} == {"succeeded"}

    records = read_records(procs.record)
    assert sorted(str(r["job_id"]) for r in records) == sorted(str(j[0]) for j in every)
    assert_no_overlap_per_key(records)
    # Arrival order per key: a job answered 202 before another delivery of its key was even
    # sent must run first (deliveries in flight together have no order to keep).
    started = {str(r["delivery_id"]): float(r["start"]) for r in records}
    by_key: dict[str, list[str]] = defaultdict(list)
    for j in jobs:
        by_key[str(j[1])].append(str(j[2]))
    checked = 0
    for ds in by_key.values():
        for a, b in itertools.permutations(ds, 2):
            if window[a][1] < window[b][0]:
                assert started[a] < started[b], f"{b} ran before {a}, which arrived first"
                checked += 1
    assert checked > 0
    assert len({r["pid"] for r in records}) == 3  # all three workers took work
    assert set(succeeded_events(pg).values()) == {1}


def test_kill_9_a_worker_mid_jobs_each_job_succeeds_exactly_once(
    procs: Procs, pg: PgSchema
) -> None:
    # Real processes on the real clock: a lease long enough that a loaded runner's late
    # heartbeat (every 2 s) never hands a live worker's job to another; the killed worker's
    # jobs come back 6 s after its last beat.
    env = {"PACT_TEST_SLEEP": "0.8", "PACT_LEASE_SECONDS": "6"}
    workers = [procs.worker(concurrency=2, **env) for _ in range(3)]

    ids = enqueue(pg, [queued_job(i, i % 8, f"k-{i}") for i in range(20)])
    rng = random.Random(9)
    killed = 0
    for _ in range(2):  # two crashes, at random points, each of a worker holding jobs
        time.sleep(rng.uniform(0.3, 1.2))
        if not kill_a_worker_holding_jobs(pg, workers, rng):
            continue
        killed += 1
        workers.append(procs.worker(concurrency=2, **env))
    assert killed >= 1

    wait_all_done(pg, 20, timeout=90)
    states = dict(pg.query("SELECT id, state FROM pact_jobs"))
    assert set(states) == set(ids)
    assert set(states.values()) == {"succeeded"}
    assert succeeded_events(pg) == Counter(dict.fromkeys(ids, 1))
    retried = pg.query("SELECT count(*) FROM pact_jobs WHERE attempts > 1")[0][0]
    assert retried >= 1  # the killed worker's jobs ran again elsewhere
    records = read_records(procs.record)
    assert {r["job_id"] for r in records} == set(ids)
    assert_no_overlap_per_key(records)


def test_workers_reconnect_after_their_connections_are_terminated(
    procs: Procs, pg: PgSchema
) -> None:
    # the heartbeat's reconnect backoff (up to ~4 s) must fit inside the lease
    env = {"PACT_TEST_SLEEP": "0.2", "PACT_LEASE_SECONDS": "10"}
    for _ in range(3):
        procs.worker(concurrency=2, **env)

    ids = enqueue(pg, [queued_job(i, i % 6, f"t-{i}") for i in range(30)])
    terminated = 0
    for _ in range(6):
        time.sleep(0.4)
        terminated += pg.terminate_connections()
    assert terminated >= 3

    wait_all_done(pg, 30, timeout=90)
    assert set(dict(pg.query("SELECT id, state FROM pact_jobs")).values()) == {"succeeded"}
    assert succeeded_events(pg) == Counter(dict.fromkeys(ids, 1))
    assert_no_overlap_per_key(read_records(procs.record))


def test_a_worker_started_before_the_app_was_registered_uses_it_without_a_restart(
    procs: Procs, pg: PgSchema, tmp_path: Path
) -> None:
    """The setup flow (in `serve`) writes the App to PACT_ENV_FILE; a separate worker process
    notices the file changed (checked at most every 3 s) and runs its next job with it."""
    env_file = tmp_path / "pact.env"
    procs.app = False
    procs.worker(concurrency=1, PACT_ENV_FILE=str(env_file))

    [before] = enqueue(pg, [queued_job(1, 1, "app-1")])
    wait_all_done(pg, 1, timeout=20)
    pem = app_credentials()["GITHUB_PRIVATE_KEY"]
    write_app_credentials(
        env_file, {"GITHUB_APP_ID": "4242", "GITHUB_PRIVATE_KEY": pem}, "registered by a test"
    )
    time.sleep(3.2)  # past the watch's throttle, whenever it last looked
    [after] = enqueue(pg, [queued_job(2, 2, "app-2")])
    wait_all_done(pg, 2, timeout=20)
    app_ids = {r["job_id"]: r["app_id"] for r in read_records(procs.record)}
    assert app_ids == {before: None, after: 4242}


def test_sigterm_lets_the_running_job_finish_and_claims_nothing_new(
    procs: Procs, pg: PgSchema
) -> None:
    worker = procs.worker(concurrency=1, PACT_TEST_SLEEP="1.5")

    enqueue(pg, [queued_job(i, i, f"s-{i}") for i in range(2)])
    deadline = time.monotonic() + 10
    while not pg.query("SELECT 1 FROM pact_jobs WHERE state = 'running'"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    states = sorted(s for (s,) in pg.query("SELECT state FROM pact_jobs"))
    assert states == ["queued", "succeeded"]
    assert pg.query("SELECT count(*) FROM procrastinate_workers") == [(0,)]


async def test_shutdown_hands_back_a_job_that_outlives_the_grace_period(pg: PgSchema) -> None:
    started = asyncio.Event()

    async def slow(job: Job, control: JobControl) -> JobOutcome:
        started.set()
        await asyncio.sleep(30)
        return JobOutcome(JobState.succeeded)

    async with PostgresQueue(pg.dsn, lease_seconds=10, schema=pg.name) as q:
        job = queued_job(1, 1, "g-1")
        await q.enqueue(job)
        stop = asyncio.Event()
        running = asyncio.create_task(
            run_workers(q, slow, 1, stop, poll_interval=0.05, grace_seconds=0.3)
        )
        await asyncio.wait_for(started.wait(), 10)
        stop.set()
        await asyncio.wait_for(running, 10)
        back = await q.get(job.id)
        assert back is not None and back.state is JobState.queued and back.attempts == 0
        assert pg.query("SELECT status::text FROM procrastinate_jobs") == [("todo",)]
        again = await q.claim("next")
        assert again is not None and again.id == job.id


SPEC = """# Part {i}

## Purpose
Part {i} of the shop.

## API
- `part{i}()` returns {i}.
"""


def test_kill_9_mid_pipeline_each_issue_gets_exactly_one_pr(
    procs: Procs, pg: PgSchema, github_sim: GitHubSim, anthropic_sim: AnthropicSim
) -> None:
    """The real pipeline on the simulators: workers die mid-job, retries find their branch,
    PR and progress comment again instead of making new ones."""
    n = 6
    files = {"README.md": "# Shop\n", "src/__init__.py": ""}
    files.update({f"docs/part{i}-spec.md": SPEC.format(i=i) for i in range(n)})
    github_sim.add_repo("acme", "shop", files=files)
    github_sim.add_user("alice", "write")
    anthropic_sim.set_policy(SpecCoderPolicy(turn_latency=0.3))
    env = {
        **github_sim.env(),
        "ANTHROPIC_BASE_URL": anthropic_sim.base_url,
        "ANTHROPIC_API_KEY": anthropic_sim.api_key,
        "PACT_LEASE_SECONDS": "6",  # heartbeats every 2 s, even on a loaded CI machine
        "PACT_MAX_ATTEMPTS": "5",
    }
    github_sim.set_webhook_url(procs.serve(pipeline=True, **env) + "/webhook")
    workers = [
        procs.worker(
            concurrency=2, pipeline=True, PACT_DATA_DIR=str(procs.tmp / f"data-{i}"), **env
        )
        for i in range(3)
    ]
    numbers = []
    for i in range(n):
        number = github_sim.open_issue(
            "acme/shop", f"Part {i}", body=f"Please implement docs/part{i}-spec.md", user="alice"
        )
        github_sim.label_issue("acme/shop", number, "pact:code", user="alice")
        numbers.append(number)

    rng = random.Random(4)
    killed = 0
    deadline = time.monotonic() + 60
    while killed < 2 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 1.5))
        if not kill_a_worker_holding_jobs(pg, workers, rng):
            continue
        killed += 1
        workers.append(
            procs.worker(
                concurrency=2,
                pipeline=True,
                PACT_DATA_DIR=str(procs.tmp / f"data-r{killed}"),
                **env,
            )
        )
    assert killed >= 1

    wait_all_done(pg, n, timeout=150)
    jobs = pg.query("SELECT id, number, state, attempts, error FROM pact_jobs")
    assert len(jobs) == n
    assert {j[2] for j in jobs} == {"succeeded"}, jobs
    assert succeeded_events(pg) == Counter({str(j[0]): 1 for j in jobs})
    assert any(int(str(j[3])) > 1 for j in jobs)  # some job was retried after a crash
    pulls = github_sim.pulls("acme/shop")
    heads = sorted(p["head"]["ref"] for p in pulls)
    assert heads == sorted(f"pact/code/part{i}" for i in range(n)), heads  # one PR each
    assert sorted(github_sim.branches("acme/shop")) == sorted(["main", *heads])  # no orphans
    for job_id, number, *_ in jobs:  # one progress comment per job, updated, never re-posted
        marked = [
            c
            for c in github_sim.issue_comments("acme/shop", int(str(number)))
            if c.author == github_sim.bot_login and f"pact-bot:job:{job_id}" in c.body
        ]
        assert len(marked) == 1, [c.body[:80] for c in marked]
