"""Code and spec drifting apart on the default branch. Pure: no I/O.

    impls = merge(recorded, implementations_from_summary(path, text))
    drift = detect_drift(impls, compare_files)          # GitHub compare API "files" items
    out = check_output(drift); conclusion(drift); actions(drift)
    first_message = update_task(drift.specs)

An implementation is what the bot knows about a spec it implemented: the summaries written
for it and the files its traceability table names per requirement. It comes from what the
bot recorded when it opened the PR and from the summaries themselves (a summary names its
spec; its table names the files), so a repository that was implemented before the bot kept
records, or whose PR record is gone, still has one.

A push drifts when a spec with an implementation changes (the code may no longer match it),
or when a file an implementation names changes while its spec does not (the spec may no
longer describe the code). Changing both in one push is an update, not drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pact_bot.requirements import clip, extract_requirements
from pact_bot.specs import DEFAULT_GLOB, changed_sections, spec_refs
from pact_bot.traceability import parse_table
from pact_bot.traceability_text import cell

CHECK_NAME = "PACT Drift"
UPDATE_ACTION = "pact-update"
UPDATE = {
    "label": "Update code",
    "description": "Update the code to the changed spec",
    "identifier": UPDATE_ACTION,
}
_WORKSPACE = "/workspace/"
MAX_LISTED = 50


def range_id(before: str, after: str) -> str:
    """The drift check run's `external_id`: the push's range, for its "Update code" button."""
    return f"drift:{before}...{after}"


@dataclass(frozen=True)
class Implementation:
    spec: str
    summaries: tuple[str, ...] = ()
    requirements: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (requirement id, files)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for _, files in self.requirements for f in files))

    def requirements_of(self, path: str) -> tuple[str, ...]:
        return tuple(rid for rid, files in self.requirements if path in files)


@dataclass(frozen=True)
class SpecDrift:
    """A spec that changed while an implementation of it exists."""

    spec: str
    sections: tuple[str, ...]  # empty when the patch is missing (too big) or the spec removed
    requirements: tuple[str, ...]  # ids in those sections, when the new text was given
    summaries: tuple[str, ...]
    files: tuple[str, ...]
    previous: str | None = None  # the spec's old path when it was renamed
    removed: bool = False


@dataclass(frozen=True)
class CodeDrift:
    """A file an implementation names that changed while its spec did not."""

    path: str
    status: str
    specs: tuple[str, ...]
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Drift:
    specs: tuple[SpecDrift, ...] = ()
    code: tuple[CodeDrift, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.specs or self.code)


def summary_specs(summary: str, glob: str = DEFAULT_GLOB) -> list[str]:
    """Spec paths a summary mentions (the agent writes `/workspace/` paths too)."""
    return spec_refs(summary.replace(_WORKSPACE, " "), glob)


def implementations_from_summary(
    summary_path: str, summary: str, glob: str = DEFAULT_GLOB
) -> list[Implementation]:
    """One implementation per spec the summary names, with its table's files."""
    rows = tuple((r.requirement, r.files) for r in parse_table(summary) if r.files)
    return [Implementation(spec, (summary_path,), rows) for spec in summary_specs(summary, glob)]


def merge(*sources: Iterable[Implementation]) -> list[Implementation]:
    """One implementation per spec: summaries joined, a requirement's files joined."""
    out: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    for source in sources:
        for impl in source:
            summaries, reqs = out.setdefault(impl.spec, ([], {}))
            summaries.extend(s for s in impl.summaries if s not in summaries)
            for rid, files in impl.requirements:
                known = reqs.setdefault(rid, [])
                known.extend(f for f in files if f not in known)
    return [
        Implementation(spec, tuple(s), tuple((rid, tuple(f)) for rid, f in reqs.items()))
        for spec, (s, reqs) in out.items()
    ]


def detect_drift(
    implementations: Sequence[Implementation], files: Iterable[Mapping[str, Any]]
) -> Drift:
    """`files`: the push's changed files (`filename`, `status`, `patch`,
    `previous_filename`, optionally `contents` = the new text, which sharpens sections and
    names the requirements in them)."""
    items = list(files)
    by_spec: dict[str, Implementation] = {i.spec: i for i in implementations}
    spec_drift: list[SpecDrift] = []
    changed_specs: set[str] = set()
    for f in items:
        path = str(f.get("filename", ""))
        previous = f.get("previous_filename")
        impl = by_spec.get(path) or (by_spec.get(str(previous)) if previous else None)
        if impl is None:
            continue
        changed_specs.add(impl.spec)
        status = str(f.get("status", "modified"))
        contents = f.get("contents")
        removed = status == "removed"
        sections: tuple[str, ...] = ()
        rids: tuple[str, ...] = ()
        if not removed:
            sections = tuple(changed_sections(f.get("patch"), contents, path))
            if isinstance(contents, str) and sections:
                rids = tuple(r.id for r in extract_requirements(contents) if r.section in sections)
        spec_drift.append(
            SpecDrift(
                spec=path,
                sections=sections,
                requirements=rids,
                summaries=impl.summaries,
                files=impl.files,
                previous=impl.spec if impl.spec != path else None,
                removed=removed,
            )
        )
    summaries = {s for i in implementations for s in i.summaries}
    code: list[CodeDrift] = []
    for f in items:
        path = str(f.get("filename", ""))
        if path in by_spec or path in summaries:
            continue
        owners = [i for i in implementations if i.spec not in changed_specs and path in i.files]
        if owners:
            code.append(
                CodeDrift(
                    path=path,
                    status=str(f.get("status", "modified")),
                    specs=tuple(i.spec for i in owners),
                    requirements=tuple(r for i in owners for r in i.requirements_of(path)),
                )
            )
    return Drift(tuple(spec_drift), tuple(code))


# --- what people and the agent see ---------------------------------------------------


def _paths(paths: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(f"`{cell(p, 120)}`" for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def conclusion(drift: Drift) -> str:
    return "neutral" if drift else "success"


def actions(drift: Drift) -> list[dict[str, str]]:
    """The "Update code" button, when a spec (not just code) changed and still exists."""
    return [dict(UPDATE)] if any(not d.removed for d in drift.specs) else []


def check_output(drift: Drift) -> dict[str, str]:
    """`output` of the "PACT Drift" check run on the pushed commit."""
    n_specs, n_code = len(drift.specs), len(drift.code)
    if not drift:
        return {
            "title": "Specs and code agree",
            "summary": "No implemented spec and no implementing file changed alone.",
            "text": "",
        }
    parts = []
    if n_specs:
        parts.append(f"{n_specs} spec{'s' if n_specs != 1 else ''} changed")
    if n_code:
        parts.append(f"{n_code} implementing file{'s' if n_code != 1 else ''} changed alone")
    title = " · ".join(parts)
    summary: list[str] = []
    for d in drift.specs[:MAX_LISTED]:
        name = f"`{cell(d.spec, 120)}`"
        if d.removed:
            summary.append(f"- {name} was removed; its implementation is still there.")
            continue
        was = f" (renamed from `{cell(d.previous, 120)}`)" if d.previous else ""
        where = (
            "sections " + "; ".join(f"“{cell(s, 80)}”" for s in d.sections[:10])
            if d.sections
            else "sections unknown (no patch)"
        )
        summary.append(f"- {name}{was}: {where}")
    if drift.specs and any(not d.removed for d in drift.specs):
        summary += ["", 'Press "Update code" to have pact-bot update the implementation.']
    text: list[str] = []
    for d in drift.specs[:MAX_LISTED]:
        text += [f"### `{cell(d.spec, 120)}`", ""]
        if d.requirements:
            text.append("Requirements in the changed sections: " + ", ".join(d.requirements[:50]))
        text.append("Implemented in: " + (_paths(d.files) if d.files else "(no files recorded)"))
        if d.summaries:
            text.append("Summary: " + _paths(d.summaries))
        text.append("")
    if drift.code:
        text += ["### Files changed without their spec", ""]
        for c in drift.code[:MAX_LISTED]:
            reqs = f" ({', '.join(c.requirements[:10])})" if c.requirements else ""
            text.append(f"- `{cell(c.path, 120)}` {c.status}: implements {_paths(c.specs)}{reqs}")
        if len(drift.code) > MAX_LISTED:
            text.append(f"- … and {len(drift.code) - MAX_LISTED} more")
        text += ["", "Update the spec if the change is intended, or the code if it is not."]
    return {
        "title": title,
        "summary": "\n".join(summary)[:60_000],
        "text": "\n".join(text).strip()[:60_000],
    }


def update_task(specs: Sequence[SpecDrift]) -> str:
    """The code job's first-message text, limited to what changed."""
    lines = []
    for d in specs:
        if d.removed:
            continue
        if d.sections:
            changed = "; ".join(f"“{clip(s, 100)}”" for s in d.sections[:30])
            lines.append(f"The spec {d.spec} changed. These sections changed: {changed}.")
        else:
            lines.append(f"The spec {d.spec} changed (which sections is unknown).")
        if d.requirements:
            lines.append("Requirements in them: " + ", ".join(d.requirements[:50]) + ".")
        if d.files:
            lines.append(
                "The existing implementation is in: " + ", ".join(d.files[:MAX_LISTED]) + "."
            )
        if d.summaries:
            lines.append("Its implementation summary: " + ", ".join(d.summaries) + ".")
        lines.append("")
    if not lines:
        return ""
    lines.append(
        "Update the implementation for the changed sections only and keep the rest as it is. "
        "Update the summary, including its `## Traceability` rows for the requirements you touch."
    )
    return "\n".join(lines)
