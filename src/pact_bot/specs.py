"""Which specs a job implements, and the names derived from them. Pure: no I/O.

Sources, in order of precedence:
- paths named in the command (`/pact code docs/a-spec.md`),
- for a PR, the files it adds or changes that match the spec glob (`spec_changes`,
  with the headings of the sections its diff touches),
- for an issue, `docs/...-spec.md` paths referenced in its body (`spec_refs`).

Paths from commands and issue bodies are normalised here, at their source: one that would
leave the repository or reach into `.git` is never returned, and lands in `refused` (when
the caller passes a list) so the job can say which and why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from pact_bot.confined import Refused, path_problem
from pact_bot.repo_config import glob_match

DEFAULT_GLOB = "docs/**/*-spec.md"
_REF = re.compile(r"(?<![\w/.-])\.?/?((?:[\w.-]+/)*[\w.-]+\.md)\b")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_MAX_SLUG = 60


@dataclass(frozen=True)
class SpecChange:
    """A spec file a PR adds or changes, with the headings of the sections touched."""

    path: str
    status: str  # added | modified | renamed
    sections: tuple[str, ...] = field(default=())


def _norm(path: str) -> str:
    """Repository-relative form: quotes, `./`, empty and `.` parts gone (a leading `/`
    means the repository's root, as in GitHub's links); `..` is kept for `_keep` to refuse."""
    path = path.strip().strip("`'\"<>()[],;")
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def _keep(path: str, out: list[str], refused: list[Refused] | None) -> None:
    problem = path_problem(path)
    if problem is not None:
        if refused is not None and path not in [r.path for r in refused]:
            refused.append(Refused(path, problem))
    elif path not in out:
        out.append(path)


def spec_refs(
    text: str | None, glob: str = DEFAULT_GLOB, *, refused: list[Refused] | None = None
) -> list[str]:
    """Spec paths mentioned in free text (an issue body), in order, without repeats."""
    out: list[str] = []
    for m in _REF.finditer(text or ""):
        path = _norm(m.group(1))
        if glob_match(glob, path):
            _keep(path, out, refused)
    return out


def specs_from_args(
    args: Iterable[str], glob: str = DEFAULT_GLOB, *, refused: list[Refused] | None = None
) -> tuple[list[str], list[str]]:
    """Split command arguments into spec paths and the rest (the instructions' words).

    An argument counts as a spec when it matches the glob or at least ends in `.md`
    and names a path; other words are left to the instructions.
    """
    specs: list[str] = []
    rest: list[str] = []
    for arg in args:
        path = _norm(arg)
        if path.endswith(".md") and (glob_match(glob, path) or "/" in path):
            _keep(path, specs, refused)
        else:
            rest.append(arg)
    return specs, rest


def spec_changes(files: Iterable[Mapping[str, Any]], glob: str = DEFAULT_GLOB) -> list[SpecChange]:
    """Specs among a PR's files (GitHub's "list pull request files" items).

    Removed specs are not implemented; a renamed spec counts under its new name.
    `contents` (optional, the new file text keyed by the item) sharpens section names.
    """
    out: list[SpecChange] = []
    for f in files:
        path = str(f.get("filename", ""))
        status = str(f.get("status", "modified"))
        if status == "removed" or not glob_match(glob, path):
            continue
        sections = changed_sections(f.get("patch"), f.get("contents"), path)
        out.append(SpecChange(path=path, status=status, sections=tuple(sections)))
    return out


def changed_sections(patch: str | None, content: str | None = None, path: str = "x") -> list[str]:
    """Headings of the sections whose lines a unified-diff patch adds or removes.

    `patch` is GitHub's per-file patch (hunks only); with the new file's `content`
    each changed line is mapped to the heading above it; without it, headings seen
    in the hunk (or in the hunk header's context) are used.
    """
    if not patch:
        return []
    text = patch if patch.startswith("---") else f"--- a/{path}\n+++ b/{path}\n{patch}"
    if not text.endswith("\n"):
        text += "\n"
    try:
        patched = PatchSet(text)
    except UnidiffParseError:
        return []
    heading_at = _heading_index(content) if content is not None else None
    out: list[str] = []

    def add(title: str | None) -> None:
        if title and title not in out:
            out.append(title)

    for pf in patched:
        for hunk in pf:
            current = _heading(hunk.section_header)
            for line in hunk:
                h = _heading(line.value)
                if h and not line.is_removed:
                    current = h
                if not (line.is_added or line.is_removed):
                    continue
                if heading_at is not None:
                    n = line.target_line_no if line.is_added else _near_target(hunk, line)
                    add(heading_at(n) if n else current)
                else:
                    add(current or (h if line.is_removed else None))
    return out


def _near_target(hunk: Any, removed: Any) -> int | None:
    """The new-file line where a removed line used to sit (the next kept/added line)."""
    seen = False
    for line in hunk:
        if line is removed:
            seen = True
            continue
        if seen and line.target_line_no:
            return int(line.target_line_no)
    return int(hunk.target_start + hunk.target_length - 1) if hunk.target_length else None


def _heading(line: str | None) -> str | None:
    if not line:
        return None
    m = _HEADING.match(line.rstrip("\n"))
    return m.group(2) if m else None


def _heading_index(content: str) -> Any:
    headings: list[tuple[int, str]] = []
    fence = False
    for i, line in enumerate(content.splitlines(), start=1):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        h = None if fence else _heading(line)
        if h:
            headings.append((i, h))

    def at(n: int) -> str | None:
        found = None
        for line_no, title in headings:
            if line_no > n:
                break
            found = title
        return found

    return at


def component_name(path: str) -> str:
    """`docs/auth-service-spec.md` → `auth-service` (lowercase, dashes)."""
    stem = PurePosixPath(path).name
    stem = re.sub(r"\.md$", "", stem, flags=re.I)
    stem = re.sub(r"[-_.]?spec$", "", stem, flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return slug or "spec"


def spec_slug(paths: Iterable[str]) -> str:
    """A branch-safe name for a set of specs (order does not matter)."""
    names = sorted(dict.fromkeys(component_name(p) for p in paths))
    if not names:
        return "spec"
    slug = "+".join(names)
    if len(slug) > _MAX_SLUG:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        slug = f"{slug[: _MAX_SLUG - 9].rstrip('+-')}-{digest}"
    return slug


def branch_name(prefix: str, paths: Iterable[str]) -> str:
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    return f"{prefix}{spec_slug(paths)}"


def summary_path(component: str) -> str:
    """Where the agent writes its summary for `component`."""
    return f"docs/implementation-summary-{component}.md"


def refused_paths_text(refused: Iterable[Refused]) -> str:
    """One sentence naming refused spec paths and why, safe inside a Markdown comment."""
    items = [f"`{_shown(r.path)}` ({r.reason})" for r in refused]
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    return (
        f"These spec paths were refused: {', '.join(items[:10])}{more}. "
        "A spec must be a file inside this repository."
    )


def _shown(path: str) -> str:
    path = path.replace("`", "'").replace("\n", " ")
    return path if len(path) <= 120 else path[:119] + "…"
