"""Drift: a spec with an implementation changed, or its code changed without it."""

from __future__ import annotations

import difflib
from pathlib import Path

from pact_bot.drift import (
    CHECK_NAME,
    UPDATE,
    CodeDrift,
    Drift,
    Implementation,
    SpecDrift,
    actions,
    check_output,
    conclusion,
    detect_drift,
    implementations_from_summary,
    merge,
    summary_specs,
    update_task,
)

SPEC = "docs/limiter-spec.md"
OLD = (Path(__file__).parent / "fixtures/specs/rfc-style-spec.md").read_text()
NEW = OLD.replace("carry a `Retry-After` header", "carry `Retry-After` and `X-Limit` headers")
SUMMARY_PATH = "docs/implementation-summary-limiter.md"
SUMMARY = f"""# Limiter

Implements `/workspace/{SPEC}` (see also docs/other.md and ../../etc/x-spec.md).

## Traceability

| Requirement | Files | Tests | Status |
|---|---|---|---|
| R1 | src/bucket.py | tests/test_bucket.py | implemented |
| R3 | src/http.py, src/bucket.py | | implemented |
| R4 | src/http.py | | partial: header only |
| R2 | — | | not implemented: later |
"""


def patch(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3)
    return "\n".join(list(lines)[2:]) + "\n"  # GitHub's `patch`: hunks only


def impl() -> Implementation:
    (found,) = implementations_from_summary(SUMMARY_PATH, SUMMARY)
    return found


def test_a_summary_names_its_spec_and_its_files() -> None:
    assert summary_specs(SUMMARY) == [SPEC]
    assert impl() == Implementation(
        SPEC,
        (SUMMARY_PATH,),
        (
            ("R1", ("src/bucket.py",)),
            ("R3", ("src/http.py", "src/bucket.py")),
            ("R4", ("src/http.py",)),
        ),
    )
    assert impl().files == ("src/bucket.py", "src/http.py")


def test_recorded_and_found_implementations_merge_per_spec() -> None:
    recorded = [Implementation(SPEC, ("docs/old-summary.md",), (("R1", ("src/legacy.py",)),))]
    (merged,) = merge(recorded, [impl()])
    assert merged.summaries == ("docs/old-summary.md", SUMMARY_PATH)
    assert merged.requirements_of("src/bucket.py") == ("R1", "R3")
    assert merged.files == ("src/legacy.py", "src/bucket.py", "src/http.py")


def test_a_changed_spec_names_its_sections_requirements_and_implementation() -> None:
    files = [
        {"filename": SPEC, "status": "modified", "patch": patch(OLD, NEW), "contents": NEW},
        {"filename": "src/bucket.py", "status": "modified", "patch": "@@ -1 +1 @@\n-a\n+b"},
        {"filename": "README.md", "status": "modified"},
    ]
    drift = detect_drift([impl()], files)
    # the code changed together with its spec: an update, not code drift
    assert drift == Drift(
        specs=(
            SpecDrift(
                spec=SPEC,
                sections=("3. Responses",),
                requirements=("R3", "R4", "S-e3fc30", "S-0c3286"),
                summaries=(SUMMARY_PATH,),
                files=("src/bucket.py", "src/http.py"),
            ),
        )
    )
    assert conclusion(drift) == "neutral" and actions(drift) == [UPDATE]
    # without the new text, sections come from the hunk alone and no ids are named
    (bare,) = detect_drift([impl()], [{"filename": SPEC, "patch": patch(OLD, NEW)}]).specs
    assert (bare.sections, bare.requirements) == (("3. Responses",), ())


def test_code_changed_without_its_spec_is_drift() -> None:
    files = [
        {"filename": "src/http.py", "status": "modified"},
        {"filename": "src/unrelated.py", "status": "added"},
        {"filename": SUMMARY_PATH, "status": "modified"},
    ]
    drift = detect_drift([impl()], files)
    assert drift == Drift(code=(CodeDrift("src/http.py", "modified", (SPEC,), ("R3", "R4")),))
    assert conclusion(drift) == "neutral" and actions(drift) == []
    assert detect_drift([impl()], [{"filename": "src/unrelated.py"}]) == Drift()
    assert not detect_drift([impl()], [])


def test_renamed_and_removed_specs() -> None:
    renamed = detect_drift(
        [impl()],
        [{"filename": "docs/rate-spec.md", "status": "renamed", "previous_filename": SPEC}],
    )
    assert [(d.spec, d.previous, d.sections, d.removed) for d in renamed.specs] == [
        ("docs/rate-spec.md", SPEC, (), False)
    ]
    removed = detect_drift([impl()], [{"filename": SPEC, "status": "removed", "patch": "@@"}])
    assert [(d.spec, d.removed) for d in removed.specs] == [(SPEC, True)]
    assert actions(removed) == []  # nothing to implement against
    assert check_output(removed)["summary"] == (
        f"- `{SPEC}` was removed; its implementation is still there."
    )


def test_check_output_and_action_fit_githubs_limits() -> None:
    assert CHECK_NAME == "PACT Drift"
    assert len(UPDATE["label"]) <= 20
    assert len(UPDATE["description"]) <= 40
    assert len(UPDATE["identifier"]) <= 20
    files = [
        {"filename": SPEC, "status": "modified", "patch": patch(OLD, NEW), "contents": NEW},
    ]
    drift = Drift(
        specs=detect_drift([impl()], files).specs,
        code=(CodeDrift("src/x|y.py", "modified", ("docs/b-spec.md",), ("FR-1",)),),
    )
    out = check_output(drift)
    assert out == {
        "title": "1 spec changed · 1 implementing file changed alone",
        "summary": f"- `{SPEC}`: sections “3. Responses”\n\n"
        'Press "Update code" to have pact-bot update the implementation.',
        "text": f"### `{SPEC}`\n\n"
        "Requirements in the changed sections: R3, R4, S-e3fc30, S-0c3286\n"
        "Implemented in: `src/bucket.py`, `src/http.py`\n"
        f"Summary: `{SUMMARY_PATH}`\n\n"
        "### Files changed without their spec\n\n"
        "- `src/x\\|y.py` modified: implements `docs/b-spec.md` (FR-1)\n\n"
        "Update the spec if the change is intended, or the code if it is not.",
    }
    assert check_output(Drift())["title"] == "Specs and code agree"
    assert conclusion(Drift()) == "success"


def test_update_task_is_limited_to_the_changed_sections() -> None:
    files = [{"filename": SPEC, "patch": patch(OLD, NEW), "contents": NEW}]
    drift = detect_drift([impl()], files)
    assert update_task(drift.specs) == (
        f"The spec {SPEC} changed. These sections changed: “3. Responses”.\n"
        "Requirements in them: R3, R4, S-e3fc30, S-0c3286.\n"
        "The existing implementation is in: src/bucket.py, src/http.py.\n"
        f"Its implementation summary: {SUMMARY_PATH}.\n\n"
        "Update the implementation for the changed sections only and keep the rest as it is. "
        "Update the summary, including its `## Traceability` rows for the requirements you "
        "touch."
    )
    assert update_task([SpecDrift(SPEC, (), (), (), (), removed=True)]) == ""
