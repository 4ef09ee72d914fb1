"""The symbolic links a commit would hold, read from git's index, never from the tree.

A link the agent made is committed as its target text. One pointing out of the repository
(`x -> /etc/passwd`) is harmless on GitHub but a trap for whoever or whatever later reads
the checkout (a developer's tools, CI, a host-side read that forgot to confine itself), and
a summary that is a link is no summary at all. The index says exactly what would be
committed, so nothing here follows a link or walks the tree.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from pact_bot.workspace.git import GitRunner, default_runner

_LINK_MODE = "120000"


async def staged_links(worktree: Path, git: GitRunner | None = None) -> dict[str, str]:
    """Links added or changed in the index against HEAD: path -> target text."""
    runner = git or default_runner()
    args = ["diff", "--cached", "--raw", "-z", "--no-abbrev", "--no-renames", "HEAD"]
    _, out, _ = await runner.run(args, worktree)
    parts = out.split("\0")
    links: dict[str, str] = {}
    for meta, path in zip(parts[::2], parts[1::2], strict=False):
        fields = meta.lstrip(":").split(" ")
        if len(fields) == 5 and fields[1] == _LINK_MODE and fields[4] != "D":
            links[path] = fields[3]
    for path, sha in links.items():
        _, links[path], _ = await runner.run(["cat-file", "blob", sha], worktree)
    return links


def leaves_repository(path: str, target: str) -> bool:
    """Whether the link at `path` points outside the repository (absolute, or `..` past
    its root); judged on the text alone, as a later reader would resolve it."""
    if target.startswith("/") or not target:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined == ".." or joined.startswith("../")
