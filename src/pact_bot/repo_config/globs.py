"""Git-style globs on repository paths, the syntax of `spec_glob` and `protected_paths`."""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def glob_match(pattern: str, path: str) -> bool:
    """Git-style glob on a repository path: `**/` spans directories, `*` stays in one.

    A pattern ending in `/` matches everything under that directory.
    """
    path = path.lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    return _glob_regex(pattern).fullmatch(path) is not None
