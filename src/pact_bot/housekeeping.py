"""Disk hygiene for the data directory: mirrors, parked checkouts (spares) and package caches
are kept while they pay off, and removed least recently used first when they are old or the
whole outgrows `PACT_DATA_MAX_GB`.

Never what a running job uses: a mirror is removed only under its repository's mirror lock
(the one every fetch and checkout takes) and only when no live job's worktree belongs to it;
a cache only when no running job's sandbox holds it. A job that finds its mirror gone clones
it again, so eviction costs time, never correctness. The walk that measures is bounded
(`MAX_ENTRIES`), so it stays cheap enough to run after every job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pact_bot import caches
from pact_bot.settings import Settings
from pact_bot.workspace import Workspace
from pact_bot.workspace.mirror import Mirrors

log = logging.getLogger(__name__)

GIB = 1024**3
MAX_IDLE_DAYS = 30.0  # unused this long: removed whatever the total
MAX_ENTRIES = 200_000  # files counted per item before its size is taken as "at least"


@dataclass(frozen=True)
class Item:
    kind: str  # mirror, spare, cache
    path: Path
    repo: str
    size: int
    last_used: float


# What `Usage.line` calls each kind: an `Item.kind`, or a job's worktree.
KIND_NAMES = {
    "mirror": "mirrors",
    "spare": "spare checkouts",
    "worktree": "job worktrees",
    "cache": "caches",
}


@dataclass(frozen=True)
class Usage:
    """Bytes under the data directory by kind (the keys of KIND_NAMES)."""

    by_kind: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def line(self) -> str:
        kinds = ", ".join(
            f"{name} {gib(self.by_kind.get(kind, 0))}" for kind, name in KIND_NAMES.items()
        )
        return f"{gib(self.total)} in all: {kinds}"


def gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 100 else f"{n / 1024**2:.1f} MiB"


def size_of(path: Path, max_entries: int = MAX_ENTRIES) -> int:
    """Bytes under `path` (links counted as themselves, never followed), counting at most
    `max_entries` entries: a lower bound for a huge tree, and a bounded cost."""
    total = seen = 0
    stack = [str(path)]
    while stack and seen < max_entries:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    seen += 1
                    try:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _mtime(*paths: Path) -> float:
    times = []
    for p in paths:
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            continue
    return max(times, default=0.0)


def items(data_dir: Path) -> list[Item]:
    """Every evictable thing under the data directory, with its size and last use."""
    found: list[Item] = []
    mirrors = data_dir / "mirrors"
    for mirror in sorted(mirrors.glob("*/*.git")):
        repo = Mirrors.repo_of(mirror)
        used = _mtime(mirror, mirror / "FETCH_HEAD", mirror / "HEAD")
        found.append(Item("mirror", mirror, repo, size_of(mirror), used))
        spare = mirror.with_suffix(".spare")
        if spare.is_dir():
            found.append(Item("spare", spare, repo, size_of(spare), _mtime(spare, spare / ".git")))
    root = data_dir / "caches"
    for cache in sorted(root.glob("*/*")):
        if cache.is_dir():
            repo = f"{cache.parent.name}/{cache.name}"
            found.append(Item("cache", cache, repo, size_of(cache), _mtime(cache / caches.STAMP)))
    return found


def usage(data_dir: Path) -> Usage:
    kinds = dict.fromkeys(KIND_NAMES, 0)
    for item in items(data_dir):
        kinds[item.kind] += item.size
    worktrees = data_dir / "worktrees"
    if worktrees.is_dir():
        kinds["worktree"] = sum(size_of(p) for p in worktrees.iterdir() if p.is_dir())
    return Usage(kinds)


def _live_mirrors(ws: Workspace) -> set[Path]:
    """Mirrors a live job's worktree belongs to."""
    held: set[Path] = set()
    if not ws.worktrees_dir.is_dir():
        return held
    for wt in ws.worktrees_dir.iterdir():
        if wt.is_dir() and not wt.is_symlink() and ws.jobs.is_live(wt.name):
            mirror = ws._mirror_of(wt)
            if mirror is not None:
                held.add(mirror.resolve())
    return held


def remove_dead_job_dirs(data_dir: Path, ws: Workspace) -> list[str]:
    """Job homes (`jobs/<id>`) a killed worker left: no live job holds their lock."""
    removed = []
    root = data_dir / "jobs"
    if root.is_dir():
        for job in root.iterdir():
            if job.is_dir() and not ws.jobs.is_live(job.name):
                shutil.rmtree(job, ignore_errors=True)
                removed.append(job.name)
    return removed


async def evict(
    data_dir: Path,
    max_bytes: int,
    *,
    workspace: Workspace | None = None,
    max_idle: float = MAX_IDLE_DAYS * 86400,
    now: float | None = None,
) -> list[Item]:
    """Remove mirrors, spares and caches, least recently used first, until the data
    directory fits in `max_bytes`; anything idle longer than `max_idle` goes regardless.
    Returns what was removed."""
    data_dir = Path(data_dir).resolve()
    ws = workspace or Workspace(data_dir)
    now = time.time() if now is None else now
    found = await asyncio.to_thread(items, data_dir)
    worktrees = data_dir / "worktrees"
    total = sum(i.size for i in found)
    if worktrees.is_dir():
        total += await asyncio.to_thread(
            lambda: sum(size_of(p) for p in worktrees.iterdir() if p.is_dir())
        )
    removed: list[Item] = []
    for item in sorted(found, key=lambda i: i.last_used):
        if total <= max_bytes and now - item.last_used <= max_idle:
            break
        if await _remove(item, data_dir, ws):
            total -= item.size
            removed.append(item)
    if removed:
        log.info(
            "data dir evicted",
            extra={"removed": [f"{i.kind} {i.repo}" for i in removed], "bytes": total},
        )
    return removed


async def _remove(item: Item, data_dir: Path, ws: Workspace) -> bool:
    if item.kind == "cache":
        if item.path.resolve() in {p.resolve() for p in caches.in_use(data_dir)}:
            return False
        await asyncio.to_thread(shutil.rmtree, item.path, True)
        return True
    async with ws.mirrors.lock(item.repo) as lock:  # no fetch, checkout or parking meanwhile
        mirror = ws.mirror_path(item.repo)
        if item.kind == "spare":
            await asyncio.to_thread(shutil.rmtree, item.path, True)
            if mirror.exists():
                await lock.git(["worktree", "prune"], mirror, check=False)
            return True
        if mirror.resolve() in _live_mirrors(ws):
            return False
        spare = mirror.with_suffix(".spare")
        for path in (spare, mirror):
            await asyncio.to_thread(shutil.rmtree, path, True)
        return True


async def tidy(
    settings: Settings, *, dead_jobs: bool = False, workspace: Workspace | None = None
) -> None:
    """The hook workers call: at start (`dead_jobs`: also the homes killed jobs left) and
    after each job. Never raises: a failed clean-up must not fail a job or a start."""
    data_dir = Path(settings.pact_data_dir)
    max_gb = settings.pact_data_max_gb
    try:
        ws = workspace or Workspace(data_dir)
        if dead_jobs:
            await asyncio.to_thread(remove_dead_job_dirs, data_dir, ws)
        await evict(data_dir, int(max_gb * GIB), workspace=ws)
    except Exception:
        log.warning("data dir clean-up failed", exc_info=True)
