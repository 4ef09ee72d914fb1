"""Disk hygiene of the data dir with real mirrors and worktrees: least recently used first,
idle ones regardless, and never what a running job uses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from test_workspace import TOKEN, Upstream

from pact_bot import caches, housekeeping
from pact_bot.jobs import worker
from pact_bot.settings import Settings
from pact_bot.workspace import Workspace

HOUR = 3600.0


def age(path: Path, seconds: float) -> None:
    """Make `path` (and what marks its use) look unused for `seconds`."""
    t = time.time() - seconds
    for p in (path, path / "FETCH_HEAD", path / "HEAD", path / ".git", path / caches.STAMP):
        if p.exists():
            os.utime(p, (t, t), follow_symlinks=False)


async def world(tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """acme/old: a mirror and its spare, unused for a day; acme/live: a mirror unused for
    two days but with a running job's worktree; two caches, the older held by a running job."""
    up = Upstream(tmp_path)
    up.commit({"README.md": "# demo\n", "big.bin": "x" * 100_000}, message="init")
    data = tmp_path / "data"
    ws = Workspace(data)
    wt = await ws.prepare("acme/old", up.url, TOKEN, "main", "pact/code/a", "job-old")
    await ws.remove(wt)  # parked as acme/old's spare
    await ws.prepare("acme/live", up.url, TOKEN, "main", "pact/code/b", "job-live")
    age(ws.mirror_path("acme/old"), 24 * HOUR)
    age(ws.spare_path("acme/old"), 24 * HOUR)
    age(ws.mirror_path("acme/live"), 48 * HOUR)
    old_cache = caches.repo_cache(data, "acme/old", now=time.time() - 24 * HOUR)
    held = caches.repo_cache(data, "acme/held", now=time.time() - 72 * HOUR)
    for c in (old_cache, held):
        (c / "wheel").write_bytes(os.urandom(50_000))
    (data / "jobs" / "job-live").mkdir(parents=True)
    (data / "jobs" / "job-live" / caches.IN_USE).write_text(str(held))
    return ws, data, up.bare


async def test_over_the_cap_the_least_recently_used_go_but_never_a_running_jobs(
    tmp_path: Path,
) -> None:
    ws, data, _ = await world(tmp_path)
    before = housekeeping.usage(data)
    assert all(before.by_kind[kind] for kind in ("mirror", "spare", "worktree", "cache"))

    removed = await housekeeping.evict(data, 1, workspace=ws)

    assert sorted((i.kind, i.repo) for i in removed) == [
        ("cache", "acme/old"),
        ("mirror", "acme/old"),
        ("spare", "acme/old"),
    ]
    assert not ws.mirror_path("acme/old").exists() and not ws.spare_path("acme/old").exists()
    assert ws.mirror_path("acme/live").exists()  # oldest, but a live job's worktree is on it
    assert (data / "caches" / "acme" / "held" / "wheel").exists()  # held by a running job
    assert housekeeping.usage(data).total < before.total


async def test_under_the_cap_only_what_sat_idle_too_long_goes(tmp_path: Path) -> None:
    ws, data, _ = await world(tmp_path)

    removed = await housekeeping.evict(data, 10**12, workspace=ws, max_idle=36 * HOUR)

    # acme/old is a day old: kept; the held cache is three days old but in use: kept.
    assert removed == []
    removed = await housekeeping.evict(data, 10**12, workspace=ws, max_idle=12 * HOUR)
    assert sorted(i.kind for i in removed) == ["cache", "mirror", "spare"]


async def test_a_mirror_is_removed_only_under_its_lock_and_comes_back_when_needed(
    tmp_path: Path,
) -> None:
    ws, data, bare = await world(tmp_path)
    other = Workspace(data)  # another process's view: the lock is an flock on a file
    async with other.mirrors.lock("acme/old"):
        task = asyncio.create_task(housekeeping.evict(data, 1, workspace=ws))
        await asyncio.sleep(0.5)
        assert not task.done() and ws.mirror_path("acme/old").exists()
    await task
    assert not ws.mirror_path("acme/old").exists()
    # The next job of the repository clones it again.
    wt = await ws.prepare("acme/old", bare.as_uri(), TOKEN, "main", "pact/code/c", "job-new")
    assert (wt / "README.md").read_text() == "# demo\n"


async def test_a_worker_starts_though_a_mirror_stays_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed bot's helper git can hold a mirror's lock for as long as its connection
    hangs: the start-up sweep gives up on that mirror and the worker starts."""
    _, data, _ = await world(tmp_path)
    monkeypatch.setattr(worker, "SWEEP_LOCK_WAIT", 0.2)
    settings = Settings(_env_file=None, pact_data_dir=data)  # type: ignore[call-arg]
    other = Workspace(data)  # the lock is an flock: held as by another process
    async with other.mirrors.lock("acme/old"):
        await asyncio.wait_for(worker.sweep_worktrees(settings), 30)
    assert "could not sweep dead jobs' worktrees" in caplog.messages


async def test_worker_start_removes_homes_dead_jobs_left(tmp_path: Path) -> None:
    ws, data, _ = await world(tmp_path)
    dead = data / "jobs" / "job-killed"
    dead.mkdir()
    (dead / caches.IN_USE).write_text(str(data / "caches" / "acme" / "old"))

    assert housekeeping.remove_dead_job_dirs(data, ws) == ["job-killed"]
    assert (data / "jobs" / "job-live").exists()
