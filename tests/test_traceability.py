"""The traceability table: the instruction, the parser, the check and what people see."""

from __future__ import annotations

from pathlib import Path

from sim.anthropic import estimate_tokens

from pact_bot.requirements import Requirement, extract_requirements
from pact_bot.traceability import (
    Coverage,
    Entry,
    Row,
    SpecRequirements,
    Status,
    check,
    check_job,
    followup_message,
    for_spec,
    instruction,
    parse_table,
)
from pact_bot.traceability_text import check_output, conclusion, pr_table

SUMMARY = "docs/implementation-summary-cart.md"


def req(rid: str, text: str = "") -> Requirement:
    return Requirement(rid, text or f"text of {rid}", "S", 1, True)


REQS = [req("R1", "Buckets per key"), req("R2", "Refill"), req("R3", "429 over the limit")]


def test_instruction_lists_ids_compactly_and_stays_small() -> None:
    text = instruction(
        [
            SpecRequirements("docs/a-spec.md", "docs/implementation-summary-a.md", tuple(REQS)),
            SpecRequirements("docs/empty-spec.md", "docs/implementation-summary-e.md", ()),
        ]
    )
    assert text == (
        "## Traceability\n"
        "End each implementation summary with a `## Traceability` section: a table "
        "`| Requirement | Files | Tests | Status |`, one row per id below. Files, Tests: "
        "comma-separated repository paths. Status: `implemented`, `partial` or "
        "`not implemented: <why>`.\n"
        "docs/a-spec.md → docs/implementation-summary-a.md:\n"
        "- R1: Buckets per key\n- R2: Refill\n- R3: 429 over the limit"
    )
    twenty = tuple(
        req(f"FR-{i}", f"The service handles case {i} of the checkout flow with retries and more")
        for i in range(1, 21)
    )
    big = instruction([SpecRequirements("docs/cart-spec.md", SUMMARY, twenty)])
    assert "- FR-20: The service handles case 20 of the checkout flow with retri…" in big
    # paid on every turn: a 20-requirement spec costs about 430 tokens
    assert estimate_tokens(big) == 429


def test_parser_is_tolerant_of_how_agents_write_tables() -> None:
    summary = """# Summary

## Traceability (template)

| Requirement | Files | Tests | Status |

## Traceability

Requirement | Files | Tests | Status | Notes
:--|---|---|---|---
**R1**: Buckets | `src/b.py`, `/workspace/src/s.py` | tests/test_b.py::t | Implemented | x
R2 |  ./src/refill.py:12 ; [src/clock.py](src/clock.py) | — | partial: no jitter
| `R3` | src/limit.py<br>src/limit.py | n/a | not implemented: needs HTTP layer |
| R9 | src/x.py | | implemented |

Text after the table | with a pipe.
"""
    assert parse_table(summary) == [
        Row("R1", ("src/b.py", "src/s.py"), ("tests/test_b.py",), "implemented"),
        Row("R2", ("src/refill.py", "src/clock.py"), (), "partial", "no jitter"),
        Row("R3", ("src/limit.py",), (), "not implemented", "needs HTTP layer"),
        Row("R9", ("src/x.py",), (), "implemented"),
    ]


def test_parser_reorders_columns_by_header_and_falls_back_to_position() -> None:
    by_header = (
        "### Traceability\n| Status | Tests | Files | ID |\n|-|-|-|-|\n"
        "| implemented | t.py | a.py | R1 |\n"
    )
    assert parse_table(by_header) == [Row("R1", ("a.py",), ("t.py",), "implemented")]
    headless = "## Traceability\n| R1 | a.py | t.py | implemented |\n"
    assert parse_table(headless) == [Row("R1", ("a.py",), ("t.py",), "implemented")]
    # an id is data, never a column's name: `REQ-1` starts a headless table's first row
    reqs_first = "## Traceability\n| REQ-1 | src/requests.py | | implemented |\n"
    assert parse_table(reqs_first) == [Row("REQ-1", ("src/requests.py",), (), "implemented")]
    # a name is a whole word: a path starting with one (`requests.py`, `identity.py`) is data
    for path in ("requests.py", "identity.py", "tests.py"):
        paths_first = f"## Traceability\n| R1 | {path} | | implemented |\n"
        assert parse_table(paths_first) == [Row("R1", (path,), (), "implemented")]
    assert parse_table("# Summary\n| R1 | a.py | t.py | implemented |\n") == []
    # a fenced example outside the section does not count; the section ends at a heading
    ends = "## Traceability\n\nNone yet.\n\n## Next\n| R1 | a.py | | implemented |\n"
    assert parse_table(ends) == []


def test_parser_bounds_hostile_tables() -> None:
    rows = "\n".join(
        f"| R{i} | {'a/' * 500}x.py, "
        + ", ".join(f"f{j}.py" for j in range(200))
        + " | | implemented |"
        for i in range(3000)
    )
    out = parse_table(
        "## Traceability\n| Requirement | Files | Tests | Status |\n|-|-|-|-|\n" + rows
    )
    assert 0 < len(out) <= 2000
    assert all(len(r.files) <= 50 and all(len(p) <= 400 for p in r.files) for r in out)
    (only,) = parse_table("## Traceability\n" + "| R1 | " + "a," * 1_000_000 + " |")
    assert only.requirement == "R1" and only.files == ("a",)


def test_check_gives_each_requirement_a_status() -> None:
    reqs = [*REQS, req("R4"), req("R5"), req("R6"), req("R7")]
    rows = [
        Row("R1", ("src/bucket.py",), ("tests/test_bucket.py",), "implemented"),
        Row("R2", ("src/refill.py",), (), "partial", "no jitter"),
        Row("r3", (), (), "not implemented", "needs HTTP layer"),
        Row("R4", ("src/gone.py", "src/bucket.py"), (), "implemented"),
        Row("R5", (), ("tests/test_bucket.py",), "implemented"),
        Row("R6", ("../../etc/passwd",), (), "implemented"),
        Row("R7", ("src/bucket.py",), (), "done"),
        Row("R42", ("src/x.py",), (), "implemented"),
    ]
    repo = {"src/bucket.py", "src/refill.py", "tests/test_bucket.py", "README.md"}
    changed = {"src/bucket.py", "src/refill.py", "src/extra.py", "tests/test_bucket.py", SUMMARY}
    cov = check(reqs, rows, changed, repo.__contains__, ignore={SUMMARY})
    assert [(e.requirement, e.status, e.note) for e in cov.entries] == [
        ("R1", Status.covered, ""),
        ("R2", Status.partial, "no jitter"),
        ("R3", Status.not_implemented, "needs HTTP layer"),
        ("R4", Status.missing_file, "not in the repository: src/gone.py"),
        ("R5", Status.unmapped, "no files listed"),
        ("R6", Status.missing_file, "not in the repository: ../../etc/passwd"),
        ("R7", Status.partial, "status: done"),
        ("R42", Status.unknown_id, "implemented"),
    ]
    assert cov.untraced == ("src/extra.py",)
    assert [e.requirement for e in cov.gaps] == ["R4", "R5", "R6"]
    assert conclusion(cov) == "neutral"
    # with a set for `exists`, changed paths count as present
    full = check(REQS[:1], rows[:1], {"src/bucket.py", "tests/test_bucket.py"}, set())
    assert [e.status for e in full.entries] == [Status.covered] and conclusion(full) == "success"


def test_unmapped_requirements_are_asked_for_once_more() -> None:
    cov = check(
        REQS,
        [Row("R1", ("a.py",), (), "implemented"), Row("R2", ("b.py",), (), "implemented")],
        {"a.py"},
        {"a.py"},
    )
    assert followup_message(cov, [SUMMARY]) == (
        f"The `## Traceability` table in {SUMMARY} needs these rows fixed:\n"
        "- R2: not in the repository: b.py\n"
        "- R3: no row\n"
        "Add or correct one row per id (| Requirement | Files | Tests | Status |), naming "
        "files that exist, or status `not implemented: <why>`. Change nothing else."
    )
    done = check(REQS[:1], [Row("R1", ("a.py",), (), "implemented")], {"a.py"}, {"a.py"})
    assert followup_message(done, [SUMMARY]) is None


def test_pr_table_escapes_agent_text() -> None:
    cov = Coverage(
        (
            Entry("R1", "Buckets | per key", Status.covered, ("src/a|b.py",), ("t`x.py",)),
            Entry("R2", "Refill", Status.not_implemented, note="ping @org/team <img src=x>"),
        ),
        untraced=("src/extra.py",),
    )
    assert pr_table(cov) == (
        "### Requirements\n\n"
        "1 of 2 requirements covered, 1 not implemented.\n\n"
        "| Requirement | Files | Tests | Status |\n"
        "| --- | --- | --- | --- |\n"
        "| **R1** Buckets \\| per key | `src/a\\|b.py` | `t'x.py` | covered |\n"
        "| **R2** Refill | — | — | not implemented: ping @\u200borg/team &lt;img src=x&gt; |\n\n"
        "Changed files no requirement names: `src/extra.py`"
    )


def test_pr_table_for_a_big_spec_keeps_the_gaps_within_budget() -> None:
    reqs = [req(f"R{i}", "x" * 150) for i in range(2000)]
    rows = [Row(f"R{i}", (f"src/m{i}.py",), (), "implemented") for i in range(2000) if i % 200]
    cov = check(reqs, rows, {f"src/m{i}.py" for i in range(2000)})
    text = pr_table(cov)
    assert len(text) < 32_000
    assert "1990 of 2000 requirements covered, 10 unmapped." in text
    assert all(f"| **R{i}** " in text for i in range(0, 2000, 200))  # every gap is shown
    assert "| **R1999** " not in text  # covered rows past the budget are left out
    assert "more rows left out; the summary's table has them all." in text
    assert text.index("| **R0** ") < text.index("| **R1** ") < text.index("| **R200** ")


def test_check_run_output_lists_unmapped() -> None:
    cov = check(REQS, [Row("R1", ("a.py",), (), "implemented")], {"a.py"})
    out = check_output(cov)
    assert out["title"] == "2 requirements not traced to code"
    assert out["summary"] == (
        "1 of 3 requirements covered, 2 unmapped.\n\n"
        "Unmapped:\n- R2 (Refill)\n- R3 (429 over the limit)"
    )
    assert out["text"].startswith("### Requirements\n")
    assert conclusion(cov) == "neutral"
    ok = check_output(check(REQS[:1], [Row("R1", ("a.py",), (), "implemented")], {"a.py"}))
    assert ok["title"] == "Every requirement is traced to code"
    assert ok["summary"] == "1 of 1 requirements covered."


def test_end_to_end_over_a_fixture_spec() -> None:
    spec = (Path(__file__).parent / "fixtures/specs/plain-must-spec.md").read_text()
    reqs = extract_requirements(spec)
    first, second = reqs[0].id, reqs[1].id
    summary = (
        "## Traceability\n\n| Requirement | Files | Tests | Status |\n|---|---|---|---|\n"
        f"| {first} | src/send.py | tests/test_send.py | implemented |\n"
        f"| {second} | src/retry.py | | partial: no backoff cap |\n"
    )
    cov = check(reqs, parse_table(summary), {"src/send.py", "src/retry.py", "tests/test_send.py"})
    assert [e.status for e in cov.entries] == [
        Status.covered,
        Status.partial,
        Status.unmapped,
        Status.unmapped,
        Status.unmapped,
    ]


def test_a_job_with_two_specs_checks_each_against_its_own_summary() -> None:
    a = for_spec("docs/cart-spec.md", "- R1: Cart total\n- R2: Taxes\n")
    b = for_spec("docs/pay-spec.md", "- R1: Charge the card\n")
    assert (a.summary, [r.id for r in a.requirements]) == (
        "docs/implementation-summary-cart.md",
        ["R1", "R2"],
    )
    table = "## Traceability\n| Requirement | Files | Tests | Status |\n|-|-|-|-|\n"
    texts = {
        a.summary: table
        + "| R1 | src/cart.py | | implemented |\n| R2 | src/tax.py | | partial |\n",
        # the pay summary is missing
    }
    changed = {"src/cart.py", "src/tax.py", "src/pay.py", a.summary}
    cov = check_job([a, b], texts.get, changed, changed)
    assert [(e.spec, e.requirement, e.status) for e in cov.entries] == [
        ("docs/cart-spec.md", "R1", Status.covered),
        ("docs/cart-spec.md", "R2", Status.partial),
        ("docs/pay-spec.md", "R1", Status.unmapped),
    ]
    assert cov.untraced == ("src/pay.py",)
    assert followup_message(cov, [a.summary, b.summary]) == (
        "The `## Traceability` table in docs/implementation-summary-cart.md, "
        "docs/implementation-summary-pay.md needs these rows fixed:\n"
        "- R1 (of docs/pay-spec.md): no row\n"
        "Add or correct one row per id (| Requirement | Files | Tests | Status |), naming "
        "files that exist, or status `not implemented: <why>`. Change nothing else."
    )
    body = pr_table(cov)
    assert body.count("| Requirement | Files | Tests | Status |") == 2
    assert "#### `docs/cart-spec.md`\n\n| Requirement" in body
    assert "| **R1** Charge the card | — | — | unmapped |" in body
    # one spec: no per-spec headings, ids as the spec writes them
    single = check_job([a], texts.get, changed, changed)
    assert [e.spec for e in single.entries] == ["", ""] and "####" not in pr_table(single)
