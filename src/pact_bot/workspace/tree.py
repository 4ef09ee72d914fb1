"""Host-side looks at a tree the agent has written: what changed, and putting paths back.

The agent can create a nested repository anywhere in the tree (`git init` inside the
sandbox), including at a path the repository records as a submodule. Its `.git` holds
config the agent wrote (fsmonitor, hooks, filters), and host git would enter it for a
gitlink. So every nested `.git` is removed before host git looks at the tree: git cannot
track a `.git` path, nothing of the repository is lost, and the agent's files in that
directory stay as ordinary files. The walk never follows a symlink. `keep` names nested
repositories that were there before the agent ran (a user's own, in local mode); the
hardened runner never enters them either.

Paths are put back with git for tracked files and with `dir_fd` walking for the rest,
so a directory the agent swapped for a symlink never leads outside the tree.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from pact_bot.workspace.git import GitRunner, default_runner


def _is_dot_git(name: str) -> bool:
    return name.lower() == ".git"


def nested_repos(root: Path) -> frozenset[str]:
    """Repository-relative paths of every `.git` entry below the top level.

    A directory the walk cannot read (the agent made it 000) is made readable and walked
    again: git as root would read it, so a nested repository must not hide there."""
    for _ in range(8):
        blocked: list[OSError] = []
        found: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root, onerror=blocked.append):
            rel = Path(dirpath).relative_to(root)
            for name in [*dirnames, *filenames]:
                if _is_dot_git(name) and rel != Path("."):
                    found.add((rel / name).as_posix())
            dirnames[:] = [d for d in dirnames if not _is_dot_git(d)]
        # Gone since the walk listed it (or never there): nothing can hide in it.
        blocked = [e for e in blocked if not isinstance(e, FileNotFoundError)]
        if not blocked:
            return frozenset(found)
        for err in blocked:
            if err.filename and not os.path.islink(err.filename):
                os.chmod(err.filename, stat.S_IMODE(os.lstat(err.filename).st_mode) | 0o700)
    raise OSError(f"cannot read every directory of {root}")


def remove_nested_repos(root: Path, keep: Iterable[str] = ()) -> list[str]:
    """Delete nested `.git` entries not in `keep`; returns what was removed."""
    removed = []
    kept = set(keep)
    for rel in sorted(nested_repos(root) - kept):
        path = root / rel
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        # rmtree is fd-based on Linux: it never follows a symlink inside. Modes the agent
        # set (a 000 directory) are undone on the way rather than stopping the removal.
        if stat.S_ISDIR(mode):
            shutil.rmtree(path, onerror=_writable_and_retry)
        else:
            try:
                path.unlink()
            except PermissionError:
                _writable_and_retry(None, str(path), None)
        removed.append(rel)
    return removed


def _writable_and_retry(func: object, path: str, _exc: object) -> None:
    parent = os.path.dirname(path)
    if not os.path.islink(parent):
        os.chmod(parent, 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=_writable_and_retry)
    elif os.path.lexists(path):
        os.unlink(path)


def changed_paths(
    root: Path, *, keep: Iterable[str] = (), git: GitRunner | None = None
) -> set[str]:
    """Paths that differ from the index or are untracked, after nested repos are gone."""
    remove_nested_repos(root, keep)
    _, out, _ = (git or default_runner()).run_sync(
        [
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=all",
            "--no-renames",
        ],
        root,
        timeout=60,
    )
    return {e[3:] for e in out.split("\0") if len(e) > 3}


def restore(
    root: Path, paths: Iterable[str], *, keep: Iterable[str] = (), git: GitRunner | None = None
) -> None:
    """Put `paths` back as HEAD has them: tracked ones from git, untracked ones removed."""
    paths = sorted(set(paths))
    if not paths:
        return
    runner = git or default_runner()
    remove_nested_repos(root, keep)
    literal = ["--literal-pathspecs"]
    _, out, _ = runner.run_sync([*literal, "ls-files", "-z", "--", *paths], root, check=False)
    tracked = {p for p in out.split("\0") if p}
    for rel in paths:
        if rel in tracked:
            # git refuses to write through a symlinked directory (it replaces the link).
            runner.run_sync([*literal, "checkout", "--", rel], root, check=False)
        else:
            unlink_beneath(root, rel)


def unlink_beneath(root: Path, rel: str) -> bool:
    """Remove the file or symlink `rel` under `root` without following any symlink on the
    way; False when a component is missing, a symlink or not a directory."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return False
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return False
            os.close(fd)
            fd = nxt
        try:
            mode = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode):
            return False
        os.unlink(parts[-1], dir_fd=fd)
        return True
    finally:
        os.close(fd)
