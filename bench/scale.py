"""Scale-out benchmark: 3 `pact-bot worker` processes against 1, on the Postgres queue.

60 jobs (distinct keys, so nothing serialises them) of a handler with a fixed 1 s latency
(`bench/scale.py:fixed_latency`, injected into pact-bot's CLI by `bench/scale.py worker`; it
sleeps, it does not run the pipeline) are queued in a fresh schema, then W worker processes
(concurrency 1 each) are started; the run ends when every job has succeeded. Printed:

- wall time per run (first handler start → last handler end) and the speed-up, 3 vs 1
  (ideal 3.0×, target ≥ 2.7×);
- the queue's own overhead per job: claim → handler start (the claim's commit to the code
  running) and, per worker, the gap between one job's end and the next job's start
  (finish + claim + start: everything that is not the handler).

Then the claim latency of an idle worker: one `pact-bot worker` waits with nothing to do, a job
is enqueued from another connection at a random moment, and the time from the enqueue call to
the handler's start is measured (median and p95 of `--samples`), once with the LISTEN wake-up
(`jobs/pg_listen.py`) and once with it switched off (the old 1 s poll).

Run: `.venv/bin/python bench/scale.py [--jobs 60] [--latency 1.0] [--samples 40]
[--only-claim-latency] [--dsn postgresql://…]`
(default DSN: PACT_TEST_POSTGRES_DSN, else postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def fixed_latency(job: Any, control: Any) -> Any:
    """The benchmark's job: PACT_BENCH_LATENCY seconds of waiting, start/end recorded."""
    from pact_bot.jobs.model import JobState
    from pact_bot.jobs.worker import JobOutcome

    start = time.time()
    await asyncio.sleep(float(os.environ.get("PACT_BENCH_LATENCY", "1.0")))
    end = time.time()
    with open(os.environ["PACT_BENCH_RECORD"], "a") as f:
        f.write(json.dumps({"job_id": job.id, "pid": os.getpid(), "start": start, "end": end}))
        f.write("\n")
    return JobOutcome(JobState.succeeded)


async def enqueue(dsn: str, schema: str, n: int) -> None:
    from pact_bot.jobs.model import Job, JobKind
    from pact_bot.jobs.pg_schema import apply_schema
    from pact_bot.jobs.postgres import PostgresQueue

    await apply_schema(dsn, schema)
    async with PostgresQueue(dsn, schema=schema) as q:
        for i in range(n):
            await q.enqueue(
                Job(
                    kind=JobKind.code,
                    key=f"bench/repo#{i}",
                    repo="bench/repo",
                    number=i,
                    delivery_id=f"bench-{i}",
                    sender="bench",
                    task={"i": i},
                )
            )


async def started_at(dsn: str, schema: str) -> tuple[dict[str, float], int]:
    from pact_bot.jobs.model import JobState
    from pact_bot.jobs.postgres import PostgresQueue

    async with PostgresQueue(dsn, schema=schema) as q:
        jobs = await q.list(limit=100_000)
        ok = sum(1 for j in jobs if j.state is JobState.succeeded)
        return {j.id: float(j.started_at or 0) for j in jobs}, ok


async def count_succeeded(dsn: str, schema: str) -> int:
    from pact_bot.jobs.postgres import PostgresQueue

    async with PostgresQueue(dsn, schema=schema) as q:
        return (await q.depth())["succeeded"]


def run(dsn: str, workers: int, jobs: int, latency: float, work: Path) -> dict[str, Any]:
    from pact_bot.jobs.pg_schema import drop_schema

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    record = work / f"records-{workers}.jsonl"
    asyncio.run(enqueue(dsn, schema, jobs))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACT_", "GITHUB_"))}
    env.update(
        PACT_DATABASE_URL=dsn,
        PACT_DATABASE_SCHEMA=schema,
        PACT_DATA_DIR=str(work / "data"),
        PACT_BENCH_LATENCY=str(latency),
        PACT_BENCH_RECORD=str(record),
        PYTHONPATH=str(ROOT / "bench"),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "scale.py"), "worker", "--concurrency", "1"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=(work / f"worker-{workers}-{i}.log").open("w"),
        )
        for i in range(workers)
    ]
    try:
        deadline = time.monotonic() + jobs * latency * 2 + 60
        while asyncio.run(count_succeeded(dsn, schema)) < jobs:
            if time.monotonic() > deadline:
                raise SystemExit(f"{workers} workers: jobs not done in time")
            time.sleep(0.25)
        claims, ok = asyncio.run(started_at(dsn, schema))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        asyncio.run(drop_schema(dsn, schema))
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    claim_to_start = [r["start"] - claims[r["job_id"]] for r in runs if claims.get(r["job_id"])]
    gaps = []
    for pid in {r["pid"] for r in runs}:
        mine = sorted((r for r in runs if r["pid"] == pid), key=lambda r: r["start"])
        gaps += [b["start"] - a["end"] for a, b in itertools.pairwise(mine)]
    return {
        "workers": workers,
        "jobs": jobs,
        "succeeded": ok,
        "runs": len(runs),
        "wall_s": wall,
        "claim_to_start_ms_p50": statistics.median(claim_to_start) * 1000,
        "claim_to_start_ms_max": max(claim_to_start) * 1000,
        "gap_ms_p50": statistics.median(gaps) * 1000 if gaps else 0.0,
        "gap_ms_mean": statistics.fmean(gaps) * 1000 if gaps else 0.0,
    }


async def enqueue_one_at_a_time(dsn: str, schema: str, samples: int, record: Path) -> list[float]:
    """Enqueue → handler start of `samples` jobs, each enqueued at a random moment while the
    worker is idle (the previous job finished), so polls are hit at every phase."""
    from pact_bot.jobs.model import Job, JobKind
    from pact_bot.jobs.postgres import PostgresQueue

    def started(job_id: str) -> float | None:
        if not record.exists():
            return None
        for line in record.read_text().splitlines():
            r = json.loads(line)
            if r["job_id"] == job_id:
                return float(r["start"])
        return None

    out: list[float] = []
    async with PostgresQueue(dsn, schema=schema) as q:
        for i in range(samples + 1):  # the first job warms the worker up, unmeasured
            await asyncio.sleep(random.uniform(0.1, 1.1))
            job = Job(
                kind=JobKind.code,
                key=f"bench/repo#{i}",
                repo="bench/repo",
                number=i,
                delivery_id=f"lat-{i}",
                sender="bench",
                task={"i": i},
            )
            sent = time.time()
            await q.enqueue(job)
            deadline = time.monotonic() + 30
            while (start := started(job.id)) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {i} did not start within 30 s")
                await asyncio.sleep(0.005)
            if i:
                out.append(start - sent)
    return out


def claim_latency(dsn: str, listen: bool, samples: int, work: Path) -> dict[str, Any]:
    from pact_bot.jobs.pg_schema import apply_schema, drop_schema

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    record = work / f"latency-{listen}.jsonl"
    asyncio.run(apply_schema(dsn, schema))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACT_", "GITHUB_"))}
    env.update(
        PACT_DATABASE_URL=dsn,
        PACT_DATABASE_SCHEMA=schema,
        PACT_DATA_DIR=str(work / "data"),
        PACT_BENCH_LATENCY="0",
        PACT_BENCH_RECORD=str(record),
        PYTHONPATH=str(ROOT / "bench"),
    )
    if not listen:
        env["PACT_BENCH_POLL_ONLY"] = "1"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "worker", "--concurrency", "1"],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / f"worker-latency-{listen}.log").open("w"),
    )
    try:
        lat = sorted(asyncio.run(enqueue_one_at_a_time(dsn, schema, samples, record)))
    finally:
        proc.terminate()
        proc.wait(30)
        asyncio.run(drop_schema(dsn, schema))
    return {
        "listen": listen,
        "samples": len(lat),
        "ms_p50": statistics.median(lat) * 1000,
        "ms_p95": lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] * 1000,
        "ms_max": lat[-1] * 1000,
    }


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"nproc {os.cpu_count()}, {cpu}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {pg or 'psql not found'}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per job")
    ap.add_argument(
        "--dsn", default=os.environ.get("PACT_TEST_POSTGRES_DSN", DEFAULT_DSN), help="Postgres"
    )
    ap.add_argument("--samples", type=int, default=40, help="claim-latency samples per mode")
    ap.add_argument("--only-claim-latency", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    print(machine())
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pact-scale-") as tmp:
        latency = [claim_latency(args.dsn, mode, args.samples, Path(tmp)) for mode in (True, False)]
    for r in latency:
        print(
            f"claim latency, idle worker, {'LISTEN' if r['listen'] else 'poll only (1 s)'}: "
            f"enqueue → handler start p50 {r['ms_p50']:.1f} ms, p95 {r['ms_p95']:.1f} ms, "
            f"max {r['ms_max']:.1f} ms ({r['samples']} jobs)"
        )
    fast = latency[0]["ms_p50"] <= 50
    print(f"LISTEN p50 target <= 50 ms -> {'OK' if fast else 'ABOVE TARGET'}")
    if args.only_claim_latency:
        print("RESULTS " + json.dumps({"claim_latency": latency}))
        return 0 if fast else 1

    results = {}
    with tempfile.TemporaryDirectory(prefix="pact-scale-") as tmp:
        for workers in (1, 3):
            r = run(args.dsn, workers, args.jobs, args.latency, Path(tmp))
            results[workers] = r
            print(
                f"{workers} worker(s): {r['jobs']} jobs of {args.latency:.1f} s in "
                f"{r['wall_s']:.2f} s ({r['succeeded']} succeeded, {r['runs']} handler runs); "
                f"claim→start p50 {r['claim_to_start_ms_p50']:.1f} ms "
                f"(max {r['claim_to_start_ms_max']:.1f}); gap between jobs on a worker "
                f"p50 {r['gap_ms_p50']:.1f} ms (mean {r['gap_ms_mean']:.1f})"
            )
    speedup = results[1]["wall_s"] / results[3]["wall_s"]
    ok = fast and speedup >= 2.7 and all(r["succeeded"] == args.jobs for r in results.values())
    print(
        f"speed-up 3 vs 1 workers: {speedup:.2f}x (ideal 3.00x, target >= 2.70x) -> "
        f"{'OK' if speedup >= 2.7 else 'BELOW TARGET'}"
    )
    print("RESULTS " + json.dumps({"speedup": speedup, "runs": results, "claim_latency": latency}))
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:  # a worker process: pact-bot's CLI running fixed_latency
        from pact_bot.cli import main as pact_bot

        if os.environ.get("PACT_BENCH_POLL_ONLY"):  # the old behaviour: no LISTEN, poll only
            from pact_bot.jobs.model import Queue
            from pact_bot.jobs.pg_connection import PostgresConnection

            PostgresConnection.wait_for_work = Queue.wait_for_work  # type: ignore[method-assign]

        pact_bot(obj={"handler_factory": lambda settings: fixed_latency})
    sys.exit(main())
