"""The Test phase (`/pact test`): the test engineer's task and its report. Pure: no I/O.

    definition = load_definition(worktree, None, name=TEST_AGENT_NAME)
    system = system_prompt(definition, bash_available=True)
    first = task_text(specs=..., summary_path=..., handoff=..., rows=parse_table(summary))
    report = parse_report(final_message)          # None when the agent wrote none
    body = report_comment(report, web_url=..., repo=..., sha=...)

The seed coder ends by saying an orchestrator should now direct the test engineer; this is
that step. The test engineer writes tests but never changes implementation code; the bugs it
finds come back as `path:line` and are linked to the commit it tested. Its report is agent
text, so it is parsed with bounds and shown escaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from pact_bot.agent.definition import AgentDefinition
from pact_bot.agent_table import (
    ANY_HEADING,
    REQUIREMENT,
    Row,
    normalise_path,
    path_cell,
    requirement_id,
    section,
    status_cell,
    table,
)
from pact_bot.confined import path_problem
from pact_bot.requirements import clip
from pact_bot.traceability_text import cell

MAX_SCAN = 400_000
MAX_ROWS = 1000
MAX_BUGS = 200
_COMMENT_MAX = 60_000
_REPORT = re.compile(r"^\s{0,3}(#{1,6})\s+.*\btest report\b", re.I)
_BUGS = re.compile(r"^\s{0,3}(#{1,6})\s+.*\bbugs?\b", re.I)
_RESULTS = ("not tested", "passed", "failed", "pass", "fail")
_COLUMNS = (REQUIREMENT, ("test",), ("result", "status", "outcome", "test result", "test status"))
_BUG = re.compile(
    r"^\s*(?:[-*+]|\d+[.)])\s+\[?`?(?:/workspace/)?([^\s`:\]]+?):(\d{1,7})(?:-\d+)?`?\]?"
    r"(?:\([^)]*\))?\s*[—–:-]*\s*(.*)$"
)


@dataclass(frozen=True)
class Bug:
    """A bug the report names at `path:line`; the comment links it to the tested commit."""

    path: str
    line: int
    why: str


@dataclass(frozen=True)
class TestReport:
    __test__ = False
    results: tuple[Row, ...]  # a test report has no files column: files are ()
    bugs: tuple[Bug, ...]

    def count(self, result: str) -> int:
        return sum(1 for r in self.results if r.status == result)


def operating_section(bash_available: bool) -> str:
    lines = [
        "## Operating notes (pact-bot)",
        "",
        "- This is a non-interactive run inside a GitHub App: nobody will answer questions. "
        "Decide, and say what you assumed in the report.",
        "- The repository is checked out at /workspace. Use paths under /workspace with the tools.",
        "- Change only test files and test fixtures; implementation code changes are discarded.",
        "- Do not run git commands that change history or refs; pact-bot commits your tests.",
    ]
    if bash_available:
        lines.append(
            "- The bash tool runs each command in a fresh shell inside a sandbox at /workspace "
            "with no network access: chain commands with `&&`; packages cannot be downloaded."
        )
    else:
        lines.append(
            "- There is no shell in this run: tests cannot be run, so every result is "
            "`not tested: no shell`."
        )
    lines.append("- End your final message with the `## Test report` section.")
    return "\n".join(lines)


def system_prompt(definition: AgentDefinition, *, bash_available: bool = True) -> str:
    return f"{definition.body.strip()}\n\n{operating_section(bash_available)}\n"


def task_text(
    *,
    specs: Sequence[str],
    summary_path: str,
    handoff: str | None,
    rows: Sequence[Row],
    limit: int = 12_000,
) -> str:
    """The test engineer's first message: what to test and the coder's table."""
    lines = [
        f"Test the implementation of {', '.join(specs) or 'the spec'}. "
        f"Its implementation summary is {summary_path}.",
        "",
    ]
    if handoff:
        lines += ["## For the Test Engineer (from the summary)", "", clip_block(handoff, limit), ""]
    else:
        lines += ['The summary has no "For the Test Engineer" section; read it all.', ""]
    if rows:
        lines += [
            "## Traceability (from the summary)",
            "",
            "| Requirement | Files | Tests | Status |",
            "| --- | --- | --- | --- |",
        ]
        for r in rows[:300]:
            status = r.status + (f": {r.reason}" if r.reason else "")
            lines.append(
                f"| {r.requirement} | {', '.join(r.files[:10])} | {', '.join(r.tests[:10])} "
                f"| {clip(status, 120)} |"
            )
        lines.append("")
    else:
        lines += ["The summary has no Traceability table: test the spec's requirements.", ""]
    lines.append("Write and run tests per requirement, then end with the `## Test report`.")
    return "\n".join(lines)


def clip_block(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- the report --------------------------------------------------------------------


def parse_report(text: str) -> TestReport | None:
    """The last `Test report` section of the agent's text, or None when there is none."""
    lines = text[-MAX_SCAN:].splitlines()
    starts = [i for i, line in enumerate(lines) if _REPORT.match(line)]
    if not starts:
        return None
    body = section(lines, starts[-1], within=_BUGS)
    return TestReport(tuple(_results(body)), tuple(_bugs(body)))


def _results(body: list[str]) -> list[Row]:
    """The table before the bugs; a row naming no requirement reports on nothing."""
    end = next((i for i, line in enumerate(body) if _BUGS.match(line)), len(body))
    out: list[Row] = []
    for cell_id, tests, result in table(body[:end], _COLUMNS, MAX_ROWS):
        rid = requirement_id(cell_id)
        if rid:
            word, reason = _result(result)
            out.append(Row(rid, (), path_cell(tests, node_ids=True), word, reason))
    return out


def _result(text: str) -> tuple[str, str]:
    word, reason = status_cell(text, _RESULTS)
    if word not in _RESULTS:
        return clip(word, 40), ""
    return {"pass": "passed", "fail": "failed"}.get(word, word), reason


def _bugs(body: list[str]) -> list[Bug]:
    out: list[Bug] = []
    in_bugs = False
    level = 6
    for line in body:
        b = _BUGS.match(line)
        if b:
            in_bugs, level = True, len(b.group(1))
            continue
        h = ANY_HEADING.match(line)
        if h and len(h.group(1)) <= level:
            in_bugs = False
        if not in_bugs:
            continue
        m = _BUG.match(line)
        if m:
            path = normalise_path(m.group(1))
            out.append(Bug(path, int(m.group(2)), clip(m.group(3) or "", 300)))
        if len(out) >= MAX_BUGS:
            break
    return out


_MARK = {"passed": "✅ passed", "failed": "❌ failed"}


def report_comment(report: TestReport, *, web_url: str, repo: str, sha: str) -> str:
    """The PR comment: tests per requirement and the bugs, linked to the tested commit."""
    tested = report.count("passed") + report.count("failed")
    not_tested = len(report.results) - tested
    head = (
        f"{tested} requirement{'s' if tested != 1 else ''} tested: "
        f"{report.count('passed')} passed, {report.count('failed')} failed"
        + (f"; {not_tested} not tested" if not_tested else "")
        + "."
    )
    lines = ["### Test report", "", head, ""]
    if report.results:
        lines += ["| Requirement | Tests | Result |", "| --- | --- | --- |"]
        for r in report.results[:300]:
            tests = ", ".join(f"`{cell(t, 120).replace('`', '')}`" for t in r.tests[:10]) or "—"
            if len(r.tests) > 10:
                tests += f" +{len(r.tests) - 10}"
            result = _MARK.get(r.status, cell(r.status, 40))
            if r.reason:
                result += f": {cell(r.reason, 150)}"
            lines.append(f"| {cell(r.requirement, 40)} | {tests} | {result} |")
        if len(report.results) > 300:
            lines.append(f"| … {len(report.results) - 300} more | | |")
        lines.append("")
    lines += ["### Bugs found", ""]
    if not report.bugs:
        lines.append("None reported.")
    for bug in report.bugs:
        where = f"{bug.path}:{bug.line}"
        label = f"`{cell(where, 150).replace('`', '')}`"
        if path_problem(bug.path) is None:
            url = f"{web_url.rstrip('/')}/{repo}/blob/{sha}/{quote(bug.path)}#L{bug.line}"
            label = f"[{label}]({url})"
        lines.append(f"- {label} — {cell(bug.why, 300)}" if bug.why else f"- {label}")
    text = "\n".join(lines)
    return text if len(text) <= _COMMENT_MAX else text[: _COMMENT_MAX - 40] + "\n\n… (truncated)"
