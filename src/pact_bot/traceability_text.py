"""The traceability coverage as people read it: the PR body's table, the counts line, the check
run's conclusion and output.

Every cell comes from the agent's table, so it is hostile: `cell` escapes it (no table
breaking, no @-mentions, no HTML) and the table stays within its share of the PR body.
"""

from __future__ import annotations

from collections.abc import Iterable

from pact_bot.requirements import clip
from pact_bot.traceability import BODY_BUDGET, Coverage, Entry, Status

# --- what people see ---------------------------------------------------------------


def cell(text: str, limit: int = 120) -> str:
    """Agent text made inert inside a Markdown table cell."""
    text = clip(text, limit)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@\u200b")


def _code_list(paths: Iterable[str], limit: int = 5) -> str:
    items = list(paths)
    shown = [f"`{cell(p, 100).replace('`', '')}`" for p in items[:limit]]
    more = f" +{len(items) - limit}" if len(items) > limit else ""
    return ", ".join(shown) + more if shown else "—"


def counts_line(coverage: Coverage) -> str:
    total = sum(1 for e in coverage.entries if e.status is not Status.unknown_id)
    parts = [f"{coverage.count(Status.covered)} of {total} requirements covered"]
    for status in (Status.partial, Status.not_implemented, Status.unmapped, Status.missing_file):
        n = coverage.count(status)
        if n:
            parts.append(f"{n} {status.value}")
    n = coverage.count(Status.unknown_id)
    if n:
        parts.append(f"{n} row{'s' if n != 1 else ''} naming ids not in the spec")
    return ", ".join(parts) + "."


def _table_line(e: Entry) -> str:
    label = f"**{cell(e.requirement, 40)}**"
    if e.text:
        label += f" {cell(e.text, 80)}"
    status = e.status.value + (f": {cell(e.note, 100)}" if e.note else "")
    return f"| {label} | {_code_list(e.files)} | {_code_list(e.tests)} | {status} |"


def pr_table(coverage: Coverage, budget: int = BODY_BUDGET) -> str:
    """The PR body's coverage section; over `budget`, covered rows go first (gaps stay)."""
    head = ["### Requirements", "", counts_line(coverage), ""]
    if not coverage.entries:
        return "\n".join([*head, "The spec lists no requirements pact-bot could find."])
    header = ["| Requirement | Files | Tests | Status |", "| --- | --- | --- | --- |"]
    lines = [(e, _table_line(e)) for e in coverage.entries]
    size = sum(len(s) + 1 for _, s in lines)
    dropped = 0
    if size > budget:
        kept: list[tuple[Entry, str]] = []
        size = 0
        for e, s in lines:  # gaps first claim the budget, then the rest in spec order
            if e.status is not Status.covered and size + len(s) < budget:
                kept.append((e, s))
                size += len(s) + 1
        for e, s in lines:
            if e.status is Status.covered and size + len(s) < budget:
                kept.append((e, s))
                size += len(s) + 1
        order = {id(e): i for i, (e, _) in enumerate(lines)}
        kept.sort(key=lambda es: order[id(es[0])])
        dropped = len(lines) - len(kept)
        lines = kept
    out = list(head)
    spec: str | None = None
    for e, line in lines:
        if e.spec != spec:  # one table per spec when a job implements several
            if spec is not None:
                out.append("")
            if e.spec:
                out += [f"#### `{cell(e.spec, 200)}`", ""]
            out += header
            spec = e.spec
        out.append(line)
    if dropped:
        out += ["", f"… {dropped} more rows left out; the summary's table has them all."]
    if coverage.untraced:
        out += ["", "Changed files no requirement names: " + _code_list(coverage.untraced, 20)]
    return "\n".join(out)


def conclusion(coverage: Coverage) -> str:
    """`neutral` when a requirement is unmapped (or mapped to absent files), else `success`."""
    return "neutral" if coverage.gaps else "success"


def check_output(coverage: Coverage, limit: int = 60_000) -> dict[str, str]:
    """`output` of the traceability check run."""
    gaps = coverage.gaps
    title = (
        f"{len(gaps)} requirement{'s' if len(gaps) != 1 else ''} not traced to code"
        if gaps
        else "Every requirement is traced to code"
    )
    summary = [counts_line(coverage)]
    if gaps:
        summary += ["", "Unmapped:"]
        summary += [
            f"- {cell(e.requirement, 40)}"
            + (f" ({cell(e.text, 80)})" if e.text else "")
            + (f": {cell(e.note, 120)}" if e.note else "")
            for e in gaps[:100]
        ]
        if len(gaps) > 100:
            summary.append(f"- … and {len(gaps) - 100} more")
    return {
        "title": title,
        "summary": "\n".join(summary)[:limit],
        "text": pr_table(coverage, budget=limit - 2000),
    }
