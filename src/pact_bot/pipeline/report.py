"""Every text a job shows people: progress comment, PR title/body, handoff, check run.

Pure functions of their inputs (no I/O), so each wording is tested without a server.
The hidden marker `<!-- pact-bot:job:<id> -->` in a progress comment lets a
retried job find and keep editing the same comment.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

MARKER_RE = re.compile(r"<!-- pact-bot:job:([A-Za-z0-9_-]+) -->")
CHECK_NAME = "PACT Code"
_GH_TEXT_MAX = 65_000  # check-run output fields are limited to 65,535 characters
_COMMENT_MAX = 60_000  # issue comments: 65,536


def marker(job_id: str) -> str:
    return f"<!-- pact-bot:job:{job_id} -->"


def job_of(body: str | None) -> str | None:
    """The job id a comment was written for, from its hidden marker."""
    m = MARKER_RE.search(body or "")
    return m.group(1) if m else None


class Phase(enum.StrEnum):
    preparing = "preparing"
    reading_specs = "reading specs"
    implementing = "implementing"
    checking = "checking the result"
    opening_pr = "opening the pull request"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


PHASES = (
    Phase.preparing,
    Phase.reading_specs,
    Phase.implementing,
    Phase.checking,
    Phase.opening_pr,
)


class Failure(enum.StrEnum):
    budget = "budget"
    no_change = "no_change"
    no_summary = "no_summary"
    protected = "protected"
    secret = "secret"
    push_refused = "push_refused"
    api_error = "api_error"
    model_error = "model_error"
    invalid_config = "invalid_config"
    no_specs = "no_specs"
    unsupported = "unsupported"
    cancelled = "cancelled"
    internal = "internal"


@dataclass(frozen=True)
class RunStats:
    """What a run cost; built from the agent's RunResult."""

    turns: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    duration_s: float = 0.0
    stop: str = ""
    tool_calls: dict[str, int] = field(default_factory=dict)
    files_touched: tuple[str, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def cached_share(self) -> float:
        return self.cache_read_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def line(self) -> str:
        """`$0.42 · 12 turns · 3m 05s · 210k tokens in (81% cached), 9.1k out`"""
        return (
            f"${self.cost_usd:.2f} · {self.turns} turn{'s' if self.turns != 1 else ''} · "
            f"{duration(self.duration_s)} · {tokens(self.prompt_tokens)} tokens in "
            f"({self.cached_share:.0%} cached), {tokens(self.output_tokens)} out"
        )


def duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.2f}M"


# --- progress comment -------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    """One state of the progress comment."""

    job_id: str
    phase: Phase
    specs: tuple[str, ...] = ()
    turn: int = 0
    cost_usd: float = 0.0
    tool: str | None = None
    pr_url: str | None = None
    failure: str | None = None  # the paragraph explaining a failure
    stats: RunStats | None = None
    updated_pr: bool = False


def progress_body(p: JobProgress) -> str:
    lines = [marker(p.job_id)]
    if p.phase is Phase.done:
        verb = "updated" if p.updated_pr else "opened"
        lines.append(f"✅ **pact-bot** {verb} {p.pr_url}")
        if p.stats:
            lines.append("")
            lines.append(p.stats.line())
    elif p.phase is Phase.failed:
        lines.append("❌ **pact-bot** could not finish this job.")
        lines.append("")
        lines.append(p.failure or "The job failed.")
        if p.stats and p.stats.turns:
            lines.append("")
            lines.append(p.stats.line())
    elif p.phase is Phase.cancelled:
        lines.append("⏹️ **pact-bot**: cancelled. Nothing was pushed.")
    else:
        lines.append(f"⏳ **pact-bot** is working on this: **{p.phase.value}**")
        lines.append("")
        for ph in PHASES:
            mark = "x" if PHASES.index(ph) < PHASES.index(p.phase) else " "
            label = ph.value[0].upper() + ph.value[1:]
            if ph is p.phase and ph is Phase.implementing and p.turn:
                label += f" — turn {p.turn}, ${p.cost_usd:.2f} so far"
                if p.tool:
                    label += f" (`{_inline(p.tool)}`)"
            lines.append(f"- [{mark}] {label}")
        if p.specs:
            lines.append("")
            lines.append("Specs: " + ", ".join(f"`{s}`" for s in p.specs))
    lines.append("")
    lines.append(f"<sub>job `{p.job_id}`</sub>")
    return "\n".join(lines)


def _inline(text: str, limit: int = 80) -> str:
    text = text.replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_text(kind: Failure | str, detail: str = "", *, files: Sequence[str] = ()) -> str:
    """One paragraph: what happened, what was kept, what to do next."""
    kind = Failure(kind)
    listed = ", ".join(f"`{f}`" for f in files[:20]) + (" …" if len(files) > 20 else "")
    detail = detail.strip()
    texts = {
        Failure.budget: (
            f"The agent reached its budget ({detail or 'limit reached'}) before finishing. "
            "Nothing was pushed. Raise `limits` in `.github/pact.yml` (within the server's "
            "maximums) or narrow the spec, then trigger again."
        ),
        Failure.no_change: (
            "The agent finished without changing any file, so there is nothing to open a "
            "pull request with. Check that the spec describes code to write, or add "
            "instructions after the command, then trigger again."
            + (f" The agent's last words: {_quote(detail)}" if detail else "")
        ),
        Failure.no_summary: (
            "The agent did not write the implementation summary "
            "(`docs/implementation-summary-<component>.md`) even when asked again, so the "
            "work was not pushed."
        ),
        Failure.protected: (
            f"The agent changed protected paths ({listed}); pact-bot never pushes changes "
            "there. Nothing was pushed. Adjust the spec or `protected_paths` in "
            "`.github/pact.yml` if the change is intended and made by a person."
        ),
        Failure.secret: (
            "The diff contained a secret value of the bot's own configuration; the work was "
            "discarded and nothing was pushed."
        ),
        Failure.push_refused: (
            f"GitHub refused the push ({detail or 'rejected'}). The branch may be protected "
            "or have moved; nothing was changed on it."
        ),
        Failure.api_error: (
            f"A GitHub API call failed ({detail or 'error'}). The job stopped; trigger it "
            "again when GitHub is reachable."
        ),
        Failure.model_error: (
            f"The model service failed after retries ({detail or 'error'}). Nothing was "
            "pushed; trigger again later."
        ),
        Failure.invalid_config: f"`.github/pact.yml` is not valid:\n\n> {detail}",
        Failure.no_specs: detail or "No spec was found for this job.",
        Failure.unsupported: detail or "pact-bot cannot do this job.",
        Failure.cancelled: "The job was cancelled. Nothing was pushed.",
        Failure.internal: (
            f"pact-bot hit an internal error ({detail or 'unexpected'}). Nothing was pushed; "
            "the operator can look the job up with `pact-bot jobs show`."
        ),
    }
    return texts[kind]


def _quote(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return f"“{text[: limit - 1]}…”" if len(text) > limit else f"“{text}”"


def refusal_comment(user: str, permission: str | None, command: str = "/pact") -> str:
    have = permission or "none"
    return (
        f"@{user} pact-bot only takes `{command} code` from people with write, maintain or "
        f"admin permission on this repository (yours: {have}). Ask a maintainer to trigger "
        "it."
    )


def no_specs_comment(glob: str, label: str, command: str) -> str:
    return (
        "pact-bot found no spec to implement. Specs are files matching "
        f"`{glob}` (for example `docs/payments-spec.md`). Name them in the issue body, add "
        f"them in the pull request, or list them in the command: `{command} code "
        f"docs/payments-spec.md`. Then trigger again (label `{label}` or `{command} code`)."
    )


def invalid_config_comment(error: str, job_id: str) -> str:
    return (
        f"{marker(job_id)}\n❌ **pact-bot** did not start: "
        f"{failure_text(Failure.invalid_config, error)}\n\n<sub>job `{job_id}`</sub>"
    )


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


def file_table(rows: Sequence[FileRow], limit: int = 100) -> str:
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
    if len(components) <= 3:
        return "Implement " + ", ".join(components)
    return f"Implement {', '.join(components[:3])} and {len(components) - 3} more"


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
        parts += [f"- {a}" for a in summary.assumptions[:30]]
    else:
        parts.append("None recorded.")
    parts += [
        "",
        "### Run",
        "",
        f"{stats.line()} · model `{model}`",
        "",
        "Review it like any other pull request: a review with comments or "
        '"Request changes" makes pact-bot push a follow-up commit.',
        "",
        f"<sub>pact-bot job `{job_id}`</sub>",
    ]
    return _clip("\n".join(parts), _COMMENT_MAX)


def handoff_comment(summary: Summary, summary_file: str, summary_url: str) -> str:
    head = (
        "### Handoff to the Test phase\n\n"
        f"Implementation summary: [`{summary_file}`]({summary_url})"
    )
    if summary.test_engineer:
        body = f"{head}\n\n## For the Test Engineer\n\n{summary.test_engineer}"
    else:
        body = (
            f'{head}\n\nThe summary has no "For the Test Engineer" section; read the whole '
            "file before testing."
        )
    return _clip(body, _COMMENT_MAX)


def check_run_output(
    *,
    specs: Sequence[str],
    stats: RunStats,
    rows: Sequence[FileRow],
    model: str,
    job_id: str,
    summary_file: str | None,
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
    text = ["### Tools called", "", "| tool | calls |", "| --- | ---: |"]
    for name, n in sorted(stats.tool_calls.items(), key=lambda kv: (-kv[1], kv[0])):
        text.append(f"| `{name}` | {n} |")
    if not stats.tool_calls:
        text.append("| (none) | 0 |")
    text += ["", "### Files touched by the agent", ""]
    text += [f"- `{f}`" for f in stats.files_touched] or ["(none)"]
    text += ["", "### Files in the commit", "", file_table(rows)]
    return {
        "title": _clip(title, 1000),
        "summary": _clip("\n".join(summary_lines), _GH_TEXT_MAX),
        "text": _clip("\n".join(text), _GH_TEXT_MAX),
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
