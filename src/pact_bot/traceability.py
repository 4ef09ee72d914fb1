"""Which requirement each changed file serves: the agent's table, checked. Pure: no I/O.

    text = instruction([SpecRequirements(spec, summary, reqs)])   # appended to message one
    rows = parse_table(summary_text)                               # the agent's table
    cov = check(reqs, rows, changed_paths, exists)                 # Coverage
    again = followup_message(cov, summary)                         # None when nothing is missing
    body = pr_table(cov); out = check_output(cov); conclusion(cov)   # traceability_text

The agent ends its implementation summary with a `## Traceability` section holding
`| Requirement | Files | Tests | Status |`, one row per requirement id listed in its first
message. Everything in that table is written by the agent, so it is hostile: sizes are
bounded, paths that would leave the repository count as missing, and every cell shown to
people is escaped (no table breaking, no @-mentions, no HTML).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from pact_bot.agent_table import (
    REQUIREMENT,
    Row,
    path_cell,
    requirement_id,
    section,
    status_cell,
    table,
)
from pact_bot.confined import path_problem
from pact_bot.requirements import Requirement, clip, extract_requirements
from pact_bot.specs import component_name, summary_path

MAX_SCAN = 400_000  # characters of a summary looked at
MAX_ROWS = 2000
BODY_BUDGET = 30_000  # of the PR body's 65,536 characters, for the coverage table
_SECTION = re.compile(r"^\s{0,3}(#{1,6})\s+.*\btraceability\b", re.I)
_COLUMNS = (REQUIREMENT, ("file", "code", "implementation"), ("test",), ("status", "state"))


class Status(enum.StrEnum):
    covered = "covered"
    partial = "partial"
    not_implemented = "not implemented"
    unmapped = "unmapped"
    unknown_id = "unknown id"
    missing_file = "missing file"


@dataclass(frozen=True)
class SpecRequirements:
    """One spec of a job: where its summary goes and what it requires."""

    spec: str
    summary: str
    requirements: tuple[Requirement, ...]


@dataclass(frozen=True)
class Entry:
    """A requirement of the spec as checked against the agent's row for it and the tree."""

    requirement: str
    text: str
    status: Status
    files: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    note: str = ""  # the agent's reason, or which paths are missing
    spec: str = ""  # set when a job implements several specs


@dataclass(frozen=True)
class Coverage:
    entries: tuple[Entry, ...]  # spec order, then rows naming unknown ids
    untraced: tuple[str, ...] = ()  # changed paths no row names (summary and tests aside)

    def count(self, status: Status) -> int:
        return sum(1 for e in self.entries if e.status is status)

    @property
    def gaps(self) -> tuple[Entry, ...]:
        """Requirements with no usable mapping: unmapped, or mapped to files that are not there."""
        return tuple(e for e in self.entries if e.status in (Status.unmapped, Status.missing_file))


# --- the instruction ---------------------------------------------------------------


def instruction(specs: Sequence[SpecRequirements], text_limit: int = 60) -> str:
    """The table contract for the first message; short because it is paid on every turn."""
    lines = [
        "## Traceability",
        "End each implementation summary with a `## Traceability` section: a table "
        "`| Requirement | Files | Tests | Status |`, one row per id below. Files, Tests: "
        "comma-separated repository paths. Status: `implemented`, `partial` or "
        "`not implemented: <why>`.",
    ]
    for s in specs:
        if not s.requirements:
            continue
        lines.append(f"{s.spec} → {s.summary}:")
        lines += [f"- {r.id}: {clip(r.text, text_limit)}" for r in s.requirements]
    return "\n".join(lines)


# --- the parser --------------------------------------------------------------------


def parse_table(summary: str) -> list[Row]:
    """Rows of the first table under a heading naming "Traceability" (the last such
    section wins, so a template near the top does not mask the real table)."""
    lines = summary[:MAX_SCAN].splitlines()
    starts = [i for i, line in enumerate(lines) if _SECTION.match(line)]
    for start in reversed(starts):
        rows = [_row(*cells) for cells in table(section(lines, start), _COLUMNS, MAX_ROWS)]
        if rows:
            return rows
    return []


def _row(requirement: str, files: str, tests: str, status: str) -> Row:
    word, reason = status_cell(status, ("not implemented", "implemented", "partial"))
    return Row(requirement_id(requirement), path_cell(files), path_cell(tests), word, reason)


# --- the check ---------------------------------------------------------------------


def check(
    requirements: Sequence[Requirement],
    rows: Sequence[Row],
    changed: Collection[str] = (),
    exists: Callable[[str], bool] | Collection[str] = (),
    *,
    ignore: Collection[str] = (),
    spec: str = "",
) -> Coverage:
    """Each requirement's status from its row; files and tests must exist in the result.

    `exists` answers for the repository after the change (a set of paths or a callable);
    a changed path counts as existing unless `exists` says otherwise. `ignore` (the
    summaries) is left out of `untraced`.
    """

    def there(path: str) -> bool:
        if path_problem(path) is not None:
            return False
        return exists(path) if callable(exists) else (path in exists or path in changed)

    by_id: dict[str, Row] = {}
    for r in rows:
        by_id.setdefault(r.requirement.upper(), r)
    known = {r.id.upper() for r in requirements}
    entries: list[Entry] = []
    for req in requirements:
        row = by_id.get(req.id.upper())
        entries.append(_entry(req, row, there))
    for row in rows:
        if row.requirement.upper() not in known and row.requirement:
            if any(e.requirement == row.requirement for e in entries):
                continue
            entries.append(
                Entry(row.requirement, "", Status.unknown_id, row.files, row.tests, row.status)
            )
    named = {p for r in rows for p in (*r.files, *r.tests)}
    untraced = tuple(
        p for p in sorted(changed) if p not in named and p not in ignore and not is_test_path(p)
    )
    if spec:
        entries = [replace(e, spec=spec) for e in entries]
    return Coverage(tuple(entries), untraced)


def for_spec(spec: str, text: str) -> SpecRequirements:
    """A spec's requirements and where its summary goes (`docs/implementation-summary-…`)."""
    return SpecRequirements(
        spec, summary_path(component_name(spec)), tuple(extract_requirements(text))
    )


def check_job(
    specs: Sequence[SpecRequirements],
    summaries: Callable[[str], str | None],
    changed: Collection[str],
    exists: Callable[[str], bool] | Collection[str],
) -> Coverage:
    """Every spec of a job against the table in its own summary (`summaries(path)` reads
    it, None when absent); ids are per spec, so `R1` of two specs are two requirements."""
    entries: list[Entry] = []
    named: set[str] = set()
    summary_paths = {s.summary for s in specs}
    for s in specs:
        rows = parse_table(summaries(s.summary) or "")
        named.update(p for r in rows for p in (*r.files, *r.tests))
        tag = s.spec if len(specs) > 1 else ""
        entries += check(s.requirements, rows, changed, exists, spec=tag).entries
    untraced = tuple(
        p
        for p in sorted(changed)
        if p not in named and p not in summary_paths and not is_test_path(p)
    )
    return Coverage(tuple(entries), untraced)


def is_test_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return (
        path.startswith(("tests/", "test/"))
        or "/tests/" in path
        or name.startswith("test_")
        or bool(re.search(r"[._-](test|spec)\.\w+$", name))
    )


def _entry(req: Requirement, row: Row | None, there: Callable[[str], bool]) -> Entry:
    if row is None:
        return Entry(req.id, req.text, Status.unmapped)
    if row.status == "not implemented":
        return Entry(req.id, req.text, Status.not_implemented, row.files, row.tests, row.reason)
    missing = [p for p in (*row.files, *row.tests) if not there(p)]
    if missing:
        note = "not in the repository: " + ", ".join(missing[:5])
        return Entry(req.id, req.text, Status.missing_file, row.files, row.tests, note)
    if not row.files:
        return Entry(req.id, req.text, Status.unmapped, (), row.tests, "no files listed")
    if row.status == "implemented":
        return Entry(req.id, req.text, Status.covered, row.files, row.tests)
    note = row.reason if row.status == "partial" else f"status: {row.status or 'none'}"
    return Entry(req.id, req.text, Status.partial, row.files, row.tests, note)


def followup_message(coverage: Coverage, summaries: Sequence[str], limit: int = 60) -> str | None:
    """Asking once more for the rows that are missing or name absent files."""
    gaps = coverage.gaps
    if not gaps:
        return None
    where = ", ".join(summaries) or "the implementation summary"
    lines = [f"The `## Traceability` table in {where} needs these rows fixed:"]
    for e in gaps[:limit]:
        why = "no row" if e.status is Status.unmapped and not e.note else e.note
        of = f" (of {e.spec})" if e.spec else ""
        lines.append(f"- {e.requirement}{of}: {why}")
    if len(gaps) > limit:
        lines.append(f"- … and {len(gaps) - limit} more")
    lines.append(
        "Add or correct one row per id (| Requirement | Files | Tests | Status |), naming "
        "files that exist, or status `not implemented: <why>`. Change nothing else."
    )
    return "\n".join(lines)
