"""bench/job_overhead.py's building blocks on a tiny repository, so the benchmark cannot rot:
the generated history, the floor over the simulator's smart HTTP, and one labelled issue
becoming a PR through a real `pact-bot serve`, with the breakdown read from its log."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("job_overhead", ROOT / "bench/job_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["job_overhead"] = module
    spec.loader.exec_module(module)
    return module


def head(bench: ModuleType, bare: Path) -> str:
    out = bench.subprocess.run(
        ["git", "--git-dir", str(bare), "rev-parse", "main"], capture_output=True
    )
    return str(out.stdout.decode().strip())


def test_generated_repository_is_deterministic_and_cached(bench: ModuleType, tmp_path: Path):
    shape = bench.RepoShape(files=60, commits=5, touched=3, blob_kb=1)
    a = bench.generate_repo(shape, tmp_path / "a")
    b = bench.generate_repo(shape, tmp_path / "b")

    stats = bench.repo_stats(a)
    assert stats["files"] == 60 and stats["commits"] == 6
    assert head(bench, a) == head(bench, b), "the same shape gives the same history"
    assert bench.generate_repo(shape, tmp_path / "a") == a  # served from the cache


def test_floor_and_a_job_on_the_simulators(bench: ModuleType, tmp_path: Path):
    bare = bench.generate_repo(bench.RepoShape(files=60, commits=5, touched=3, blob_kb=1), tmp_path)
    with bench.GitHubSim(tmp_path / "sim") as sim, bench.running_sim() as model:
        model.set_policy(bench.SpecCoderPolicy())
        sim.add_user("alice", "write")
        repo = bench.load_into_sim(sim, bare, "tiny")

        times = bench.floor(sim, repo, tmp_path, 1)
        assert set(times) == {"clone", "worktree", "commit", "push", "total"}
        assert "bench/floor-1" in sim.branches(repo)

        bot = bench.Bot(sim, model, tmp_path / "bot")
        try:
            job = bench.run_job(sim, bot, repo.full_name, "docs/ledger-spec.md", timeout=60)
        finally:
            bot.stop()

    assert job["outcome"] == "succeeded"
    assert job["pr"].endswith("/acme/tiny/pull/2"), job["pr"]
    assert list(job["breakdown"]) == ["claim", "mirror", "worktree", "agent", "push", "pr"]
    assert job["total"] > 0 and all(v >= 0 for v in job["breakdown"].values())
    # The new mirror was shallow: the job completed its history after the PR, then ended.
    assert 0 <= job["after"]["history"] <= job["after"]["finished"]


def test_ingress_cpu_harness_accepts_every_delivery() -> None:
    """bench/ingress_cpu.py (the in-process ingress CPU figure docs/benchmarks.md quotes)
    still drives the real endpoint: it exits non-zero unless every delivery got a 202."""
    import subprocess

    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/ingress_cpu.py"), "--deliveries", "64", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "CPU per delivery" in out.stdout
