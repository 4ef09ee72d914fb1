"""What must hold before the agent's work is committed. Pure: paths and diff in, problems out.

Order matters for the message people see: a protected path, a leaked secret or a link
out of the repository is reported before "no summary", because those are never fixed by
asking again. A summary that is a symbolic link is not a summary: what the PR body quotes
and reviewers read must be a file of the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pact_bot.pipeline.report import Failure
from pact_bot.repo_config import glob_match, protected_patterns
from pact_bot.workspace.links import leaves_repository

SUMMARY_GLOB = "docs/implementation-summary-*.md"
_MIN_SECRET = 8


@dataclass(frozen=True)
class CheckResult:
    problems: tuple[Failure, ...] = ()
    protected: tuple[str, ...] = ()
    summary_files: tuple[str, ...] = ()
    links: tuple[str, ...] = ()  # links refused: out of the repository, or the summary

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Failure | None:
        return self.problems[0] if self.problems else None


def protected_touched(paths: Iterable[str], patterns: Sequence[str] = ()) -> list[str]:
    """Changed paths that match a protected pattern; the built-ins (`.github/**`, any
    `.git/`) always count, whatever `patterns` holds."""
    pats = protected_patterns(patterns)
    out = []
    for p in paths:
        norm = p.lstrip("/").removeprefix("./")
        parts = norm.split("/")
        if ".git" in parts or any(glob_match(pat, norm) for pat in pats):
            out.append(p)
    return out


def summary_files(paths: Iterable[str], deleted: Iterable[str] = ()) -> list[str]:
    gone = set(deleted)
    return [p for p in paths if glob_match(SUMMARY_GLOB, p) and p not in gone]


def leaked_secrets(diff: str, secrets: Iterable[str]) -> bool:
    """True when any of our secret values (or a line of a multi-line one) is in the diff."""
    for s in secrets:
        if not s or len(s) < _MIN_SECRET:
            continue
        if s in diff:
            return True
        for line in s.splitlines():
            line = line.strip()
            if len(line) >= 24 and "-----" not in line and line in diff:
                return True
    return False


def run_checks(
    paths: Sequence[str],
    diff: str,
    *,
    protected: Sequence[str] = (),
    secrets: Iterable[str] = (),
    deleted: Iterable[str] = (),
    existing_summaries: Sequence[str] = (),
    links: Mapping[str, str] | None = None,
) -> CheckResult:
    """All checks at once; `problems` is ordered most-serious first.

    The summary must be among the changed paths, except when the job updates its own
    earlier PR branch, whose summary (`existing_summaries`) may still hold. `links`: the
    symbolic links among the changed paths, path -> target.
    """
    problems: list[Failure] = []
    if not paths:
        return CheckResult(problems=(Failure.no_change,))
    bad = protected_touched(paths, protected)
    if bad:
        problems.append(Failure.protected)
    if leaked_secrets(diff, secrets):
        problems.append(Failure.secret)
    links = links or {}
    bad_links = [p for p, target in links.items() if leaves_repository(p, target)]
    bad_links += [p for p in summary_files(links) if p not in bad_links]
    if bad_links:
        problems.append(Failure.symlink)
    changed = [p for p in paths if p not in links]
    summaries = summary_files(changed, deleted) or summary_files(existing_summaries, deleted)
    if not summaries and not bad_links:
        problems.append(Failure.no_summary)
    return CheckResult(
        problems=tuple(problems),
        protected=tuple(bad),
        summary_files=tuple(summaries),
        links=tuple(bad_links),
    )
