"""Setup with a cold and a warm package cache: ~20 packages through the sandbox proxy.

Two code jobs of one repository run the same `sandbox.setup` (a virtualenv, then `pip
install` of N packages from a PEP 503 index on loopback over HTTPS, through the bot's
allowlist proxy and the socat forwarder inside bubblewrap). The first job starts with an
empty cache for the repository; the second has the first one's cache. Each round uses a new
data directory. Target: warm ≤ 0.2× cold.

The floor printed beside them is the same install on the host with no sandbox and no proxy
and a cold cache: what the proxy and the sandbox add to a cold setup.

Run: `.venv/bin/python bench/setup_cache.py [--packages 20] [--rounds 3] [--latency-ms 0]`;
`--latency-ms 100` stands for an index across the internet (each request waits that long).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sim.pypi import simple_index  # noqa: E402

from pact_bot.agent.tools.bash import BashTool  # noqa: E402
from pact_bot.agent.tools.bwrap import sandbox_available  # noqa: E402
from pact_bot.jobsandbox import JobSandbox  # noqa: E402


def packages(n: int) -> list[tuple[str, str, str]]:
    # ~200 KB modules, so a download is not nothing next to pip's own start-up.
    body = "DATA = " + repr("x" * 200_000) + "\n"
    return [(f"pactbench{i:02d}", "1.0", body) for i in range(n)]


async def job(data: Path, name: str, url: str, port: int, cert: bytes, names: list[str]) -> float:
    wt = data / "wt" / name
    wt.mkdir(parents=True)
    box = await JobSandbox.open(data, name, "bench/repo", [f"127.0.0.1:{port}"])
    try:
        (box.env.home / "ca.pem").write_bytes(cert)
        bash = BashTool(wt, env=box.agent_env)
        start = time.perf_counter()
        result = await box.setup(
            bash,
            [
                "python3 -m venv ~/venv",
                f"~/venv/bin/pip install -q --no-input --cert ~/ca.pem --index-url {url} "
                + " ".join(names),
            ],
            timeout=900,
        )
        elapsed = time.perf_counter() - start
        if result.failed is not None:
            raise SystemExit(f"setup failed: {result.failed.tail}")
        return elapsed
    finally:
        await box.close()


def floor(url: str, cert: bytes, names: list[str]) -> float:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "ca.pem").write_bytes(cert)
        env = {"PATH": "/usr/bin:/bin", "HOME": d, "PIP_CACHE_DIR": f"{d}/cache"}
        start = time.perf_counter()
        subprocess.run(["/usr/bin/python3", "-m", "venv", f"{d}/venv"], check=True, env=env)
        subprocess.run(
            [f"{d}/venv/bin/pip", "install", "-q", "--no-input", "--cert", f"{d}/ca.pem",
             "--index-url", url, *names],
            check=True,
            env=env,
        )  # fmt: skip
        return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay per index request (remote index)"
    )
    args = parser.parse_args()
    ok, reason = sandbox_available()
    if not ok:
        raise SystemExit(f"bubblewrap unusable: {reason}")
    pkgs = packages(args.packages)
    names = [p[0] for p in pkgs]
    cold, warm, floors, downloads = [], [], [], []
    with simple_index(pkgs, latency=args.latency_ms / 1000) as index:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as d:
                data = Path(d)
                floors.append(floor(index.url, index.cert_pem, names))
                before = len(index.downloads())
                cold.append(await job(data, "cold", index.url, index.port, index.cert_pem, names))
                mid = len(index.downloads())
                warm.append(await job(data, "warm", index.url, index.port, index.cert_pem, names))
                downloads.append((mid - before, len(index.downloads()) - mid))
    c, w, f = (statistics.median(x) for x in (cold, warm, floors))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(
        f"packages: {args.packages}, rounds: {args.rounds}, wheel downloads cold/warm: {downloads}"
    )
    print(f"host floor (no sandbox, cold): {f:.2f} s")
    print(f"cold setup: {c:.2f} s ({c / f:.2f}x floor)")
    print(f"warm setup: {w:.2f} s ({w / c:.2f}x cold; target <= 0.2x)")


if __name__ == "__main__":
    asyncio.run(main())
