"""Which jobs are live on this machine: `worktrees/<job_id>.lock`, flocked while the job
runs, so a free lock means a dead job (a killed worker's) whose worktree can go."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from pact_bot.workspace.errors import WorkspaceBusy


class JobLocks:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._fds: dict[str, int] = {}

    def hold(self, job_id: str) -> None:
        """Mark the job as live until `release`; refuse a live duplicate."""
        if job_id in self._fds:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkspaceBusy(f"job {job_id} is already running on this machine") from None
        self._fds[job_id] = fd

    def release(self, job_id: str) -> None:
        fd = self._fds.pop(job_id, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                (self.dir / f"{job_id}.lock").unlink()
            os.close(fd)

    def is_live(self, job_id: str) -> bool:
        if job_id in self._fds:
            return True
        path = self.dir / f"{job_id}.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
