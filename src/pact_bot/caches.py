"""Per-repository package caches: kept across jobs, bounded, least recently used goes first.

A cache is shared only by jobs of one repository (`caches/<owner>/<name>`), so a hostile
repository can fill or poison only its own. Use is stamped when a job takes the cache, not
when files change, so a cache read by every job but rarely written is still "recent".
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from pathlib import Path

STAMP = ".pact-last-used"
IN_USE = "cache-in-use"  # in a running job's directory: the cache it holds


def in_use(data_dir: Path) -> list[Path]:
    """Caches that running jobs hold (their job directories name them)."""
    held = []
    for marker in (data_dir / "jobs").glob(f"*/{IN_USE}"):
        try:
            held.append(Path(marker.read_text().strip()))
        except OSError:
            continue
    return held


def repo_cache(data_dir: Path, repo: str, now: float | None = None) -> Path:
    """The repository's cache directory, created 0700 and stamped as used now."""
    owner, name = repo.split("/", 1)
    path = data_dir / "caches" / owner / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = path / STAMP
    stamp.touch(mode=0o600)
    t = time.time() if now is None else now
    os.utime(stamp, (t, t))
    return path


def tree_size(path: Path) -> int:
    """Bytes under `path`, counting links as themselves and never following them."""
    total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _last_used(path: Path) -> float:
    try:
        return (path / STAMP).stat().st_mtime
    except OSError:
        return 0.0


def evict(data_dir: Path, max_bytes: int, keep: Collection[Path] = ()) -> list[Path]:
    """Remove whole repository caches, least recently used first, until the caches fit in
    `max_bytes`; caches in `keep` (those of running jobs) are never removed."""
    root = data_dir / "caches"
    if not root.is_dir():
        return []
    caches = [
        c for owner in root.iterdir() if owner.is_dir() for c in owner.iterdir() if c.is_dir()
    ]
    sizes = {c: tree_size(c) for c in caches}
    total = sum(sizes.values())
    kept = {k.resolve() for k in keep}
    removed = []
    for cache in sorted(caches, key=_last_used):
        if total <= max_bytes:
            break
        if cache.resolve() in kept:
            continue
        shutil.rmtree(cache, ignore_errors=True)
        total -= sizes[cache]
        removed.append(cache)
    return removed
