"""What workspace operations raise; every message is safe to show to users."""

from __future__ import annotations

from collections.abc import Sequence


class WorkspaceError(Exception):
    """A workspace operation failed; the message is safe to show to users."""


class GitError(WorkspaceError):
    """A git command failed. `cmd` and `stderr` are scrubbed of secrets."""

    def __init__(self, cmd: Sequence[str], stderr: str, returncode: int | None = None) -> None:
        self.cmd = list(cmd)
        self.stderr = stderr
        self.returncode = returncode
        sub = next((a for a in self.cmd[1:] if not a.startswith("-") and "=" not in a), "")
        detail = stderr.strip() or "no output"
        super().__init__(f"git {sub} failed (exit {returncode}): {detail}")


class PushRejected(WorkspaceError):
    """The remote refused the push (non-fast-forward, protected branch, hook declined)."""

    def __init__(self, reason: str, *, non_fast_forward: bool = False) -> None:
        self.reason = reason
        self.non_fast_forward = non_fast_forward
        super().__init__(f"push rejected: {reason}")


class RebaseConflict(WorkspaceError):
    """Rebasing onto the remote branch conflicted; the rebase was aborted."""

    def __init__(self, files: list[str]) -> None:
        self.files = files
        super().__init__("rebase onto the remote branch conflicted in: " + ", ".join(files))


class WorkspaceBusy(WorkspaceError):
    """Another live job holds the job id or the branch on this machine."""
