"""Ingress benchmark: signed deliveries per second into `pact-bot serve`, against two peers.

Each server gets the same N distinct `issue_comment.created` deliveries (GitHub's real ~15 KB
example payload, comment `/pact code docs/bench-spec.md`, a new issue number and delivery id
each, signed in advance) from wrk (1 thread, 32 connections by default, loopback):

- pact-bot: `pact-bot serve`, PACT_WORKERS=0, SQLite (WAL, synchronous=FULL). After the run
  the server is SIGKILLed and the database is read: every 202 must be a job on disk.
- probot: bench/peers/probot (npm `probot`): verify + dispatch to an empty handler.
- floor: bench/peers/floor/app.py, bare starlette + uvicorn: verify the HMAC, parse JSON.

Run: `.venv/bin/python bench/ingress.py [--requests 25000] [--skip-probot]`; add
`--postgres postgresql://…` to measure pact-bot on the Postgres backend instead of SQLite.
Prints accepted/s, p50/p99 per server, and pact-bot's ratios to each peer.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests/fixtures/github-webhooks"
FIXTURE = FIXTURES / "api.github.com/issue_comment/created.payload.json"
SECRET = "bench-webhook-secret-0123456789"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def build_requests(path: Path, n: int) -> list[str]:
    base = json.loads(FIXTURE.read_text())
    key = SECRET.encode()
    ids = []
    with path.open("w") as f:
        for i in range(n):
            base["issue"]["number"] = 100_000 + i
            base["comment"]["id"] = 900_000_000 + i
            base["comment"]["body"] = "/pact code docs/bench-spec.md"
            body = json.dumps(base, separators=(", ", ": "))
            sig = "sha256=" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
            delivery = str(uuid.uuid4())
            ids.append(delivery)
            f.write(f"{delivery}\t{sig}\tissue_comment\t{body}\n")
    return ids


def warm_up(port: int, count: int = 300) -> None:
    """Signed pings: exercise the code paths without creating jobs."""
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    for _ in range(count):
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhook",
            data=body,
            headers={
                "X-Hub-Signature-256": sig,
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(req) as r:
            r.read()


def cpu_seconds(pid: int) -> float:
    """User + system CPU the server process and its children (`--web-processes`) have used
    (immune to other load on the box)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return own + sum(cpu_seconds(int(k)) for k in kids)


def wait_listening(log: Path, processes: int, timeout: float = 30.0) -> None:
    """Every web process listens (else wrk's connections all land on the first)."""
    deadline = time.time() + timeout
    while sum('"listening"' in line for line in log.read_text().splitlines()) < processes:
        if time.time() > deadline:
            raise SystemExit(f"fewer than {processes} web processes listening:\n{log.read_text()}")
        time.sleep(0.05)


def run_wrk(port: int, reqfile: Path, args: argparse.Namespace, pid: int) -> dict:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench/ingress.lua"),
        f"http://127.0.0.1:{port}/webhook",
        "--",
        str(reqfile),
    ]
    if args.pin:
        cmd = ["taskset", "-c", "0", *cmd]
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    for line in out.splitlines():
        if line.startswith("WRK_RESULT "):
            res = json.loads(line.removeprefix("WRK_RESULT "))
            res["rate"] = res["accepted"] / (res["duration_us"] / 1e6)
            res["cpu_us"] = cpu * 1e6 / max(res["answered"], 1)
            if res["wrapped"]:
                print(
                    f"warning: all {args.requests} deliveries were sent before the end; "
                    "raise --requests (later answers were redeliveries)"
                )
            return res
    raise SystemExit(f"wrk printed no result:\n{out}")


def server_cmd(cmd: list[str], args: argparse.Namespace) -> list[str]:
    return ["taskset", "-c", "1", *cmd] if args.pin else cmd


def write_app_key(path: Path) -> Path:
    """An App private key: both servers must count as configured to accept deliveries."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def bench_pact_bot(work: Path, reqfile: Path, ids: list[str], args: argparse.Namespace) -> dict:
    db = work / "pact-bot.db"
    port = free_port()
    env = {
        **os.environ,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY_PATH": str(write_app_key(work / "pact-bot-key.pem")),
        "PACT_DATABASE_URL": f"sqlite:///{db}",
        "PACT_WORKERS": "0",
        "PACT_DATA_DIR": str(work / "data"),
        # throughput, not abuse: one sender's many triggers must all be accepted
        "PACT_RATE_LIMIT_SENDER": "1000000000",
        "PACT_RATE_LIMIT_REPO": "1000000000",
    }
    schema = None
    if args.postgres:  # a fresh schema in the given database; dropped after counting
        import asyncio

        from pact_bot.jobs.pg_schema import apply_schema

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(apply_schema(args.postgres, schema))
        env.update(PACT_DATABASE_URL=args.postgres, PACT_DATABASE_SCHEMA=schema)
    log = (work / "pact-bot.log").open("w")
    cmd = [str(VENV_BIN / "pact-bot"), "serve", "--port", str(port)]
    cmd += ["--web-processes", str(args.web_processes)]
    proc = subprocess.Popen(server_cmd(cmd, args), env=env, stdout=log, stderr=log, cwd=work)
    try:
        wait_ready(port, proc)
        wait_listening(work / "pact-bot.log", args.web_processes)
        warm_up(port)
        res = run_wrk(port, reqfile, args, proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)  # durability: nothing gets a chance to flush
        proc.wait()
    if schema is not None:
        return _count_postgres_jobs(args.postgres, schema, ids, res)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TEMP TABLE sent(id TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO sent VALUES (?)", [(i,) for i in ids])
    jobs = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT j.delivery_id) FROM jobs j "
        "JOIN sent s ON s.id = j.delivery_id"
    ).fetchone()
    conn.close()
    res["jobs_in_db"] = jobs[0]
    res["durable"] = jobs[0] >= res["created"] and jobs[0] == jobs[1]
    return res


def _count_postgres_jobs(dsn: str, schema: str, ids: list[str], res: dict) -> dict:
    import asyncio

    import psycopg

    from pact_bot.jobs.pg_schema import drop_schema

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        n, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT delivery_id) FROM pact_jobs "
            "WHERE delivery_id = ANY(%s)",
            (ids,),
        ).fetchone()
    asyncio.run(drop_schema(dsn, schema))
    res["jobs_in_db"] = n
    res["durable"] = n >= res["created"] and n == distinct
    return res


def bench_floor(reqfile: Path, args: argparse.Namespace) -> dict:
    port = free_port()
    env = {**os.environ, "WEBHOOK_SECRET": SECRET}
    cmd = [sys.executable, str(ROOT / "bench/peers/floor/app.py"), str(port)]
    proc = subprocess.Popen(server_cmd(cmd, args), env=env)
    try:
        wait_ready(port, proc)
        warm_up(port)
        return run_wrk(port, reqfile, args, proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def bench_probot(work: Path, reqfile: Path, args: argparse.Namespace) -> dict | None:
    peer = ROOT / "bench/peers/probot"
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("probot: skipped (node/npm not installed)")
        return None
    if not (peer / "node_modules/probot").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=peer, check=True)
    pem = write_app_key(work / "probot-key.pem")
    port = free_port()
    env = {
        **os.environ,
        "WEBHOOK_SECRET": SECRET,
        "PRIVATE_KEY_PATH": str(pem),
        "PORT": str(port),
        "NODE_ENV": "production",
        "LOG_LEVEL": "warn",
    }
    proc = subprocess.Popen(server_cmd(["node", "server.mjs"], args), cwd=peer, env=env)
    try:
        wait_ready(port, proc)
        warm_up(port)
        return run_wrk(port, reqfile, args, proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, {wrk}"
    )


def line(name: str, r: dict) -> str:
    return (
        f"{name:<9} {r['rate']:>8.0f} accepted/s   p50 {r['p50_us'] / 1000:6.2f} ms   "
        f"p99 {r['p99_us'] / 1000:6.2f} ms   server CPU {r['cpu_us']:5.0f} us/delivery   "
        f"({r['accepted']} of {r['answered']} answered 2xx, "
        f"errors: status {r['errors_status']}, timeout {r['errors_timeout']})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=40_000, help="distinct deliveries per server")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=6, help="wrk -d")
    ap.add_argument("--skip-probot", action="store_true")
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--pin", action="store_true", help="wrk on CPU 0, the server on CPU 1")
    ap.add_argument("--web-processes", type=int, default=1, help="pact-bot serve --web-processes N")
    ap.add_argument(
        "--postgres",
        metavar="DSN",
        default=None,
        help="run pact-bot on the Postgres backend (postgresql://…; a fresh schema) "
        "instead of SQLite",
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    print(machine())
    with tempfile.TemporaryDirectory(prefix="pact-bench-") as tmp:
        work = Path(tmp)
        reqfile = work / "requests.tsv"
        ids = build_requests(reqfile, args.requests)
        print(
            f"{args.requests} signed deliveries of {reqfile.stat().st_size // args.requests} "
            f"bytes; wrk -t{args.threads} -c{args.connections}"
        )
        results: dict[str, dict] = {}
        results["pact-bot"] = bench_pact_bot(work, reqfile, ids, args)
        print(line("pact-bot", results["pact-bot"]))
        pb = results["pact-bot"]
        print(
            f"          durable: {pb['jobs_in_db']} jobs on disk after SIGKILL for "
            f"{pb['created']} answers 202 -> {'OK' if pb['durable'] else 'FAIL'}"
        )
        if not args.skip_probot:
            probot = bench_probot(work, reqfile, args)
            if probot:
                results["probot"] = probot
                print(line("probot", probot))
        if not args.skip_floor:
            results["floor"] = bench_floor(reqfile, args)
            print(line("floor", results["floor"]))
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.2f} on {os.cpu_count()} CPUs")
    for peer in ("probot", "floor"):
        if peer in results:
            ratio = results["pact-bot"]["rate"] / results[peer]["rate"]
            cpu_ratio = results[peer]["cpu_us"] / results["pact-bot"]["cpu_us"]
            print(
                f"pact-bot / {peer}: {ratio:.2f}x accepted/s, "
                f"{cpu_ratio:.2f}x by server CPU per delivery"
            )
    print("RESULTS " + json.dumps(results))
    return 0 if results["pact-bot"]["durable"] else 1


if __name__ == "__main__":
    sys.exit(main())
