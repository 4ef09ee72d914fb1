"""Ingress CPU per delivery, in process: where `/webhook`'s own time goes, without HTTP or wrk.

The wall-clock benchmark (`bench/ingress.py`) is at the mercy of whatever else runs on a
shared machine; this one counts the process's CPU time (`time.process_time`) for N signed
`issue_comment.created` deliveries (the same 14 KB payload) sent straight to the ASGI
endpoint, 32 at a time, into a SQLite queue (WAL, synchronous=FULL, group commit), the JSON
log line going to /dev/null, on uvloop with the startup objects frozen (as `serve` does; code
without `_freeze_startup_objects` runs without). It prints the cyclic collector's share too.
It leaves out what the floor also pays (HTTP parsing), so it shows what pact-bot adds and
each change's effect on it.

Run: `.venv/bin/python bench/ingress_cpu.py [--deliveries 6000] [--repeat 3] [--profile]`.
`--profile` prints cProfile's top functions by own time. Under valgrind, `--callgrind` counts
the instructions of the measured deliveries only: the loop starts with `os.times()` and
ends with `os.getloadavg()`, which nothing else here calls, so callgrind can zero its counts
before the one and dump them before the other:

    valgrind --tool=callgrind --zero-before=times --dump-before=getloadavg \
        --callgrind-out-file=cg.out .venv/bin/python bench/ingress_cpu.py --callgrind \
        --repeat 1 --deliveries 1000
    grep summary cg.out.1   # instructions of 1,000 deliveries
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import hmac
import json
import logging
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/github-webhooks/api.github.com/issue_comment/created.payload.json"
SECRET = "bench-webhook-secret-0123456789"


def deliveries(n: int, start: int) -> list[tuple[list[tuple[bytes, bytes]], bytes]]:
    base = json.loads(FIXTURE.read_text())
    out = []
    for i in range(start, start + n):
        base["issue"]["number"] = 100_000 + i
        base["comment"]["id"] = 900_000_000 + i
        base["comment"]["body"] = "/pact code docs/bench-spec.md"
        body = json.dumps(base, separators=(", ", ": ")).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-github-event", b"issue_comment"),
            (b"x-github-delivery", str(uuid.uuid4()).encode()),
            (b"x-hub-signature-256", sig.encode()),
            (b"user-agent", b"GitHub-Hookshot/bench"),
        ]
        out.append((headers, body))
    return out


async def run(
    n: int, repeat: int, concurrency: int, profile: bool, callgrind: bool = False
) -> list[float]:
    from pact_bot.jobs.sqlite import SqliteQueue
    from pact_bot.logs import setup_logging
    from pact_bot.settings import Settings
    from pact_bot.web import server
    from pact_bot.web.app import create_app
    from pact_bot.web.server import _lean_log_records

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import app_credentials

    setup_logging("json")
    _lean_log_records()  # as `pact-bot serve` does
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the run
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.StreamHandler):
            h.setStream(devnull)
    creds = app_credentials()
    results = []
    with tempfile.TemporaryDirectory(prefix="pact-ingress-cpu-") as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            pact_database_url=f"sqlite:///{tmp}/q.db",
            pact_data_dir=Path(tmp) / "data",
            github_webhook_secret=SECRET,
            github_app_id=int(creds["GITHUB_APP_ID"]),
            github_private_key=creds["GITHUB_PRIVATE_KEY"],
            pact_rate_limit_sender=10**9,
            pact_rate_limit_repo=10**9,
        )
        queue = SqliteQueue(Path(tmp) / "q.db")
        await queue.open()
        app = create_app(settings, queue)
        statuses: dict[int, int] = {}

        async def one(headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1

            scope = {"type": "http", "method": "POST", "path": "/webhook", "headers": headers}
            await app(scope, receive, send)

        warm = deliveries(300, 0)
        for h, b in warm:
            await one(h, b)
        gc_time = [0.0, 0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                gc_time[1] = time.process_time()
            else:
                gc_time[0] += time.process_time() - gc_time[1]

        freeze = getattr(server, "_freeze_startup_objects", None)
        if freeze is not None:  # as `pact-bot serve` does once listening (base code: not)
            freeze()
        gc.callbacks.append(on_gc)
        prof = cProfile.Profile() if profile else None
        for r in range(repeat):
            batch = deliveries(n, 1000 + r * n)
            t0 = time.process_time()
            if prof:
                prof.enable()
            if callgrind:
                os.times()  # callgrind: --zero-before=times
            for i in range(0, n, concurrency):
                await asyncio.gather(*(one(h, b) for h, b in batch[i : i + concurrency]))
            if callgrind:
                os.getloadavg()  # callgrind: --dump-before=getloadavg
            if prof:
                prof.disable()
            results.append((time.process_time() - t0) / n * 1e6)
        gc.callbacks.remove(on_gc)
        print(f"gc: {gc_time[0] / (n * repeat) * 1e6:.1f} µs per delivery")
        await queue.close()
    if statuses.keys() != {202}:
        raise SystemExit(f"unexpected statuses: {statuses}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deliveries", type=int, default=6000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--callgrind", action="store_true", help="under valgrind: see above")
    args = ap.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as serve does
        res = runner.run(
            run(args.deliveries, args.repeat, args.concurrency, args.profile, args.callgrind)
        )
    print(
        "CPU per delivery (µs): "
        + ", ".join(f"{x:.1f}" for x in res)
        + f"  min {min(res):.1f}  load {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
