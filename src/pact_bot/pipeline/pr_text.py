"""The pull request's texts: title, body (files table, the summary's assumptions), the
handoff comment, the "PACT Code" check run's output and the commit message. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from pact_bot.pipeline.report import RunStats, duration

GH_TEXT_MAX = 65_000  # check-run output fields are limited to 65,535 characters
COMMENT_MAX = 60_000  # issue comments and PR bodies: 65,536
CHECK_TITLE_MAX = 1_000
FILES_IN_TABLE = 100
ASSUMPTIONS_LISTED = 30
COMPONENTS_IN_TITLE = 3

# --- files table --------------------------------------------------------------------


@dataclass(frozen=True)
class FileRow:
    path: str
    status: str  # added | modified | removed | renamed
    added: int
    removed: int


def file_rows(diff: str) -> list[FileRow]:
    """Per-file counts from a unified diff (`git diff` output)."""
    if not diff.strip():
        return []
    try:
        patched = PatchSet(diff)
    except UnidiffParseError:
        return []
    rows = []
    for pf in patched:
        if pf.is_added_file:
            status = "added"
        elif pf.is_removed_file:
            status = "removed"
        elif pf.is_rename:
            status = "renamed"
        else:
            status = "modified"
        rows.append(FileRow(pf.path, status, pf.added, pf.removed))
    return rows


def file_table(rows: Sequence[FileRow], limit: int = FILES_IN_TABLE) -> str:
    lines = ["| file | change | + | − |", "| --- | --- | ---: | ---: |"]
    for r in rows[:limit]:
        lines.append(f"| `{r.path}` | {r.status} | {r.added} | {r.removed} |")
    if len(rows) > limit:
        lines.append(f"| … {len(rows) - limit} more | | | |")
    total_a = sum(r.added for r in rows)
    total_r = sum(r.removed for r in rows)
    lines.append(f"| **{len(rows)} files** | | **{total_a}** | **{total_r}** |")
    return "\n".join(lines)


# --- summary parser ----------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    test_engineer: str | None
    assumptions: tuple[str, ...]


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _sections(text: str) -> list[tuple[int, str, list[str]]]:
    """(level, title, body lines) per heading; fenced code is not split on."""
    out: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        m = _MD_HEADING.match(line) if fence is None else None
        if m:
            out.append((len(m.group(1)), m.group(2).strip("*_ "), []))
        else:
            out[-1][2].append(line)
    return out


def _section(text: str, pattern: re.Pattern[str]) -> str | None:
    secs = _sections(text)
    for i, (level, title, body) in enumerate(secs):
        if level and pattern.search(title):
            lines = list(body)
            for lvl, t, b in secs[i + 1 :]:
                if lvl <= level:
                    break
                lines.append(f"{'#' * lvl} {t}")
                lines.extend(b)
            return "\n".join(lines).strip() or None
    return None


_TEST_ENGINEER = re.compile(r"for the test engineer", re.I)
_ASSUMPTIONS = re.compile(r"\bassumptions?\b", re.I)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")


def parse_summary(text: str) -> Summary:
    """The "For the Test Engineer" section and the assumptions the agent recorded.

    Assumptions come from a section whose heading says "Assumption(s)" (its bullets,
    or its paragraphs when it has none), plus lines elsewhere starting "Assumption:".
    """
    handoff = _section(text, _TEST_ENGINEER)
    assumptions: list[str] = []
    body = _section(text, _ASSUMPTIONS)
    if body:
        bullets = []
        for line in body.splitlines():
            m = _BULLET.match(line)
            if m:
                bullets.append(m.group(1).strip())
            elif bullets and line.startswith((" ", "\t")) and line.strip():
                bullets[-1] += " " + line.strip()
        if not bullets:
            bullets = [p.strip().replace("\n", " ") for p in body.split("\n\n") if p.strip()]
        assumptions.extend(bullets)
    for line in text.splitlines():
        m = re.match(r"^\s*(?:[-*]\s*)?\**assumption\**\s*:\s*\**\s*(.+)$", line, re.I)
        if m and m.group(1).strip() not in assumptions:
            assumptions.append(m.group(1).strip())
    return Summary(test_engineer=handoff, assumptions=tuple(a for a in assumptions if a))


# --- pull request ------------------------------------------------------------------


def pr_title(components: Sequence[str]) -> str:
    if not components:
        return "Implement specs"
    if len(components) <= COMPONENTS_IN_TITLE:
        return "Implement " + ", ".join(components)
    shown, more = components[:COMPONENTS_IN_TITLE], len(components) - COMPONENTS_IN_TITLE
    return f"Implement {', '.join(shown)} and {more} more"


def pr_body(
    *,
    job_id: str,
    specs: Sequence[str],
    rows: Sequence[FileRow],
    summary_file: str | None,
    summary: Summary,
    stats: RunStats,
    model: str,
    issue_number: int | None = None,
    trigger: str = "",
    spec_url: str | None = None,
    tests: str = "",
) -> str:
    spec_lines = [f"- [`{s}`]({spec_url}/{s})" if spec_url else f"- `{s}`" for s in specs]
    parts = [
        "This pull request implements the following spec"
        + ("s" if len(specs) != 1 else "")
        + (f" ({trigger})" if trigger else "")
        + ":",
        "",
        *spec_lines,
        "",
    ]
    if issue_number is not None:
        parts += [f"Closes #{issue_number}", ""]
    parts += ["### Files", "", file_table(rows), ""]
    if summary_file:
        parts += [f"The implementation summary is in `{summary_file}`.", ""]
    parts += ["### Assumptions the agent recorded", ""]
    if summary.assumptions:
        parts += [f"- {a}" for a in summary.assumptions[:ASSUMPTIONS_LISTED]]
    else:
        parts.append("None recorded.")
    parts += [
        "",
        "### Run",
        "",
        f"{stats.line()} · model `{model}`",
        *(["", tests] if tests else []),
        "",
        "Review it like any other pull request: a review with comments or "
        '"Request changes" makes pact-bot push a follow-up commit.',
        "",
        f"<sub>pact-bot job `{job_id}`</sub>",
    ]
    return _clip("\n".join(parts), COMMENT_MAX)


def handoff_comment(
    summary: Summary,
    summary_file: str,
    summary_url: str,
    tests: str = "",
    command: str | None = None,
) -> str:
    head = (
        "### Handoff to the Test phase\n\n"
        f"Implementation summary: [`{summary_file}`]({summary_url})"
    ) + (f"\n\n{tests}" if tests else "")
    if summary.test_engineer:
        body = f"{head}\n\n## For the Test Engineer\n\n{summary.test_engineer}"
    else:
        body = (
            f'{head}\n\nThe summary has no "For the Test Engineer" section; read the whole '
            "file before testing."
        )
    if command:
        body += f"\n\nComment `{command} test` to have the test engineer write and run the tests."
    return _clip(body, COMMENT_MAX)


def check_run_output(
    *,
    specs: Sequence[str],
    stats: RunStats,
    rows: Sequence[FileRow],
    model: str,
    job_id: str,
    summary_file: str | None,
    tests: str = "",
) -> dict[str, str]:
    """`output` of the "PACT Code" check run: title, summary and the run's record."""
    title = f"Implemented {len(specs)} spec{'s' if len(specs) != 1 else ''} · {stats.line()}"
    summary_lines = [
        f"Specs: {', '.join(f'`{s}`' for s in specs)}",
        f"Model: `{model}` · stop: {stats.stop or 'end of turn'} · job `{job_id}`",
        f"Cost: ${stats.cost_usd:.4f} · {stats.turns} turns · {duration(stats.duration_s)}",
        f"Tokens: {stats.input_tokens} input, {stats.cache_read_tokens} cache read, "
        f"{stats.cache_write_tokens} cache write, {stats.output_tokens} output",
    ]
    if summary_file:
        summary_lines.append(f"Summary: `{summary_file}`")
    text = ["### Tests", "", tests, ""] if tests else []
    text += ["### Tools called", "", "| tool | calls |", "| --- | ---: |"]
    for name, n in sorted(stats.tool_calls.items(), key=lambda kv: (-kv[1], kv[0])):
        text.append(f"| `{name}` | {n} |")
    if not stats.tool_calls:
        text.append("| (none) | 0 |")
    text += ["", "### Files touched by the agent", ""]
    text += [f"- `{f}`" for f in stats.files_touched] or ["(none)"]
    text += ["", "### Files in the commit", "", file_table(rows)]
    return {
        "title": _clip(title, CHECK_TITLE_MAX),
        "summary": _clip("\n".join(summary_lines), GH_TEXT_MAX),
        "text": _clip("\n".join(text), GH_TEXT_MAX),
    }


def commit_message(components: Sequence[str], specs: Iterable[str], co_author: str | None) -> str:
    lines = [pr_title(list(components)), "", "Specs:"]
    lines += [f"- {s}" for s in specs]
    if co_author:
        lines += ["", f"Co-authored-by: {co_author}"]
    return "\n".join(lines) + "\n"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40] + "\n\n… (truncated by pact-bot)"
