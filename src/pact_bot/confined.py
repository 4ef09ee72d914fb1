"""Host-side reads of repository content that cannot leave the repository.

    text = read_text(worktree, "docs/cart-spec.md")   # Refused (with a reason) or the text
    docs = read_present(worktree, ["CLAUDE.md"])      # [(path, text)]: refused ones logged
    why = path_problem("../x/docs/a-spec.md")          # a reason, or None; no I/O

Everything a repository holds is hostile: a spec path, a committed symlink or a file the
agent wrote may point at another installation's checkout or at a host file. The reader
walks the path one component at a time with `openat` and `O_NOFOLLOW` from a descriptor
of the root, so no symlink is ever followed by the kernel: a symlink found on the way is
read with `readlinkat` and its target walked the same way, and only while it stays inside
the root. A symlink swapped in between steps makes the next `openat` fail instead of
escaping (a check on the resolved path and a later `open` would race). Symlinks inside the
repository are allowed (`CLAUDE.md -> AGENTS.md` is common); anything under `.git` (any
case, any depth) and anything but a regular file is refused.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_BYTES = 1_000_000
MAX_LINKS = 40
_LINK_OUT = "a symlink on the way points outside the repository"


class Refused(Exception):
    """A repository path the host will not read; `reason` says why, for the user."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NotFound(Refused):
    """The path names nothing (or not a file) in the repository."""


def is_git_name(name: str) -> bool:
    """`.git`, in any case: git's own data, never repository content."""
    return name.lower() == ".git"


def path_problem(path: str) -> str | None:
    """Why a repository-relative path may not be used (no I/O), or None when it may."""
    if not path or not path.strip():
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith("/"):
        return "absolute paths are not allowed"
    parts = path.split("/")
    if ".." in parts:
        return "points outside the repository"
    if any(is_git_name(p) for p in parts):
        return "inside .git"
    return None


def read_bytes(root: Path, path: str, limit: int = MAX_BYTES) -> bytes:
    """The file at repository-relative `path` under `root`; `Refused`/`NotFound` otherwise."""
    problem = path_problem(path)
    if problem:
        raise Refused(path, problem)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fd = -1
    try:
        fd = _walk(root_fd, path)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(path, "not a regular file")
        if st.st_size > limit:
            raise Refused(path, f"larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Refused(path, f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(root_fd)


def read_text(root: Path, path: str, limit: int = MAX_BYTES) -> str:
    return read_bytes(root, path, limit).decode("utf-8", errors="replace")


def _walk(root_fd: int, path: str) -> int:
    """openat + O_NOFOLLOW per component, links resolved by hand: a link swapped in mid-walk
    fails the next open instead of being followed (a resolved-path check, then open, races)."""
    dirs = [root_fd]  # dirs[0] is the root (owned by the caller); the rest are ours
    pending = path.split("/")
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if len(dirs) == 1:
                    raise Refused(path, _LINK_OUT)
                os.close(dirs.pop())
                continue
            if is_git_name(name):
                raise Refused(path, "inside .git")
            last = not any(p not in ("", ".") for p in pending)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_NONBLOCK if last else os.O_DIRECTORY  # a FIFO must not block us
            try:
                fd = os.open(name, flags, dir_fd=dirs[-1])
            except OSError as e:
                target = _link_target(name, dirs[-1], e, path)
                links += 1
                if links > MAX_LINKS:
                    raise Refused(path, "too many symlinks") from None
                if target.startswith("/"):
                    raise Refused(
                        path, "a symlink on the way points outside the repository"
                    ) from None
                pending[:0] = target.split("/")
                continue
            if last:
                return fd
            dirs.append(fd)
        raise NotFound(path, "not a file")
    finally:
        for fd in dirs[1:]:
            os.close(fd)


def _link_target(name: str, dir_fd: int, error: OSError, path: str) -> str:
    """The symlink `name` the open refused to follow; else the open's error, told plainly."""
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError:
            pass
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        raise NotFound(path, "does not exist") from None
    raise Refused(path, f"cannot be read ({os.strerror(error.errno or 0)})") from None


def read_present(
    root: Path,
    paths: Iterable[str],
    limit: int = MAX_BYTES,
    *,
    refused: list[Refused] | None = None,
) -> list[tuple[str, str]]:
    """The files among `paths` that exist (e.g. `CLAUDE.md`), missing ones skipped. A refused
    one (a symlink out, too large) is skipped with a warning in the job's log, and added to
    `refused` when the caller passes a list to tell the user."""
    out: list[tuple[str, str]] = []
    for path in paths:
        try:
            out.append((path, read_text(root, path, limit)))
        except NotFound:
            continue
        except Refused as e:
            log.warning("repository file skipped", extra={"path": path, "reason": e.reason})
            if refused is not None:
                refused.append(e)
    return out
