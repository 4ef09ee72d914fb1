"""`grep` and `glob`: bounded searches over the repository's files.

Both see the files git would: tracked files plus untracked files that are not ignored
(`git ls-files --cached --others --exclude-standard`), so `node_modules/` or build output
never floods the model's context. Outside a git repository they fall back to a walk that skips
hidden directories. Results are capped and say how much was left out.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pact_bot import confined
from pact_bot.workspace import WorkspaceError, default_runner

MAX_GREP_LINES = 200
MAX_GLOB_FILES = 500
MAX_LINE_CHARS = 300
MAX_FILE_BYTES = 2 * 1024 * 1024

# Descriptions are kept short: they are part of every request's cached prefix.
GREP_DEFINITION: dict[str, Any] = {
    "name": "grep",
    "description": (
        "Search tracked and unignored files (not binary or huge ones) for a Python regex. "
        f"Prints `path:line:text`, paths relative to /workspace; at most {MAX_GREP_LINES} lines."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "pattern": {"type": "string"},
            "path": {
                "type": "string",
                "description": "Glob or directory to search: `src/**/*.py`, `*.md` (any "
                "directory), `src/`.",
            },
            "case_insensitive": {"type": "boolean"},
        },
        "required": ["pattern"],
    },
}

GLOB_DEFINITION: dict[str, Any] = {
    "name": "glob",
    "description": (
        "List tracked and unignored files matching a glob relative to /workspace, e.g. "
        f"`src/**/*.py`; at most {MAX_GLOB_FILES}."
    ),
    "input_schema": {
        "type": "object",
        "properties": {"pattern": {"type": "string"}},
        "required": ["pattern"],
    },
}


class SearchError(Exception):
    """Bad input (an invalid regex or glob); shown to the model as an error result."""


def list_files(worktree: Path) -> list[str]:
    """Repository-relative paths of the files git would consider, sorted."""
    try:
        _, out, _ = default_runner().run_sync(
            ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], worktree, timeout=60
        )
        names = {n for n in out.split("\0") if n}
    except (OSError, WorkspaceError):
        names = set()
        for dirpath, dirnames, filenames in os.walk(worktree):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(worktree).as_posix()
            for f in filenames:
                names.add(f if rel == "." else f"{rel}/{f}")
    return sorted(n for n in names if ".git" not in n.split("/"))


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`**` spans directories, `*` and `?` stay within one, `[...]` is a class."""
    pattern = pattern.strip().lstrip("/")
    pattern = pattern.removeprefix("workspace/")
    i, out = 0, []
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as e:
        raise SearchError(f"Invalid glob {pattern!r}: {e}") from None


@lru_cache(maxsize=64)
def _matcher(pattern: str) -> tuple[re.Pattern[str], bool]:
    return glob_to_regex(pattern), "/" not in pattern.strip().strip("/")


def matches(pattern: str, rel: str) -> bool:
    """A glob without `/` matches the file name in any directory; a plain directory matches
    everything under it."""
    p = pattern.strip()
    if not any(ch in p for ch in "*?[") and (p.endswith("/") or "." not in p.rsplit("/", 1)[-1]):
        prefix = p.strip("/").removeprefix("workspace/")
        if prefix in ("", "workspace", "."):
            return True
        if rel == prefix or rel.startswith(prefix + "/"):
            return True
    rx, basename_only = _matcher(p)
    target = rel.rsplit("/", 1)[-1] if basename_only else rel
    return rx.match(target) is not None


def glob(worktree: Path, tool_input: dict[str, Any]) -> str:
    pattern = tool_input.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise SearchError("Parameter `pattern` is required.")
    hits = [f for f in list_files(worktree) if matches(pattern, f)]
    if not hits:
        return f"No files match {pattern}."
    shown = hits[:MAX_GLOB_FILES]
    text = "\n".join(shown)
    if len(hits) > len(shown):
        text += f"\n… {len(hits) - len(shown)} more files not shown; use a narrower pattern."
    return text


def grep(worktree: Path, tool_input: dict[str, Any]) -> str:
    pattern = tool_input.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise SearchError("Parameter `pattern` is required.")
    flags = re.IGNORECASE if tool_input.get("case_insensitive") else 0
    try:
        rx = re.compile(pattern, flags)
    except re.error as e:
        raise SearchError(f"Invalid regex {pattern!r}: {e}") from None
    where = tool_input.get("path")
    files = list_files(worktree)
    if isinstance(where, str) and where.strip():
        files = [f for f in files if matches(where, f)]
    out: list[str] = []
    total = 0
    for rel in files:
        for lineno, line in _lines(worktree, rel):
            if rx.search(line):
                total += 1
                if len(out) < MAX_GREP_LINES:
                    if len(line) > MAX_LINE_CHARS:
                        line = line[:MAX_LINE_CHARS] + " …[line truncated]"
                    out.append(f"{rel}:{lineno}:{line}")
    if not out:
        return f"No matches for {pattern}" + (f" in {where}." if where else ".")
    text = "\n".join(out)
    if total > len(out):
        text += f"\n… {total - len(out)} more matching lines not shown; narrow the pattern or path."
    return text


def _lines(worktree: Path, rel: str) -> list[tuple[int, str]]:
    """A file's lines; never through a symlink (git lists `src/a.py` even after the agent
    swapped `src` for a link to a host directory), never from `.git`."""
    try:
        if (worktree / rel).is_symlink():
            return []
        data = confined.read_bytes(worktree, rel, MAX_FILE_BYTES)
    except (OSError, confined.Refused):
        return []
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", "replace")
    return list(enumerate(text.splitlines(), start=1))
