"""The Test phase: the test engineer agent, its task text, its report and the PR comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pact_bot.agent.definition import (
    AGENT_NAME,
    TEST_AGENT_NAME,
    DefinitionError,
    load_definition,
    packaged_definition_text,
)
from pact_bot.test_phase import (
    Bug,
    TestReport,
    parse_report,
    report_comment,
    system_prompt,
    task_text,
)
from pact_bot.traceability import Row

AGENT = Path(__file__).resolve().parents[1] / "src/pact_bot/agent/agents/pact-test-engineer.md"
URL = {"web_url": "https://github.example", "repo": "acme/shop", "sha": "0123abcd"}


def documented_example() -> str:
    text = AGENT.read_text(encoding="utf-8")
    m = re.search(r"```markdown\n(.*?)```", text, re.S)
    assert m
    return m.group(1)


def test_the_test_engineer_is_packaged_and_loads_by_name() -> None:
    assert packaged_definition_text(TEST_AGENT_NAME) == AGENT.read_text(encoding="utf-8")
    d = load_definition(None, name=TEST_AGENT_NAME)
    assert (d.name, d.model, d.color, d.source) == (
        "pact-test-engineer",
        "sonnet",
        "green",
        "package",
    )
    assert d.tools == ["Read", "Write", "Edit", "Bash", "Grep", "Glob"]
    assert d.description.startswith("Use this agent for the Test phase")
    assert d.body.startswith("You are 🧪 PACT Test Engineer")
    assert "Do not change implementation code" in d.body
    assert load_definition(None).name == AGENT_NAME  # the coder stays the default
    with pytest.raises(DefinitionError, match="no such packaged agent"):
        load_definition(None, name="../../etc/passwd")


def test_repository_override_of_the_test_engineer(tmp_path: Path) -> None:
    agents = tmp_path / ".claude/agents"
    agents.mkdir(parents=True)
    (agents / "pact-backend-coder.md").write_text("---\nname: coder\n---\nCoder.\n")
    assert load_definition(tmp_path, name=TEST_AGENT_NAME).source == "package"
    (agents / "pact-test-engineer.md").write_text("---\nname: tester\n---\nWe use Go tests.\n")
    d = load_definition(tmp_path, name=TEST_AGENT_NAME)
    assert (d.name, d.body, d.source) == (
        "tester",
        "We use Go tests.",
        ".claude/agents/pact-test-engineer.md",
    )
    assert load_definition(tmp_path).name == "coder"


def test_override_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".claude/agents").mkdir(parents=True)
    secret = tmp_path / "other-install.md"
    secret.write_text("---\nname: stolen\n---\nHost file.\n")
    (repo / ".claude/agents/pact-test-engineer.md").symlink_to(secret)
    with pytest.raises(DefinitionError, match="outside the repository"):
        load_definition(repo, name=TEST_AGENT_NAME)


def test_system_prompt_says_tests_only() -> None:
    d = load_definition(None, name=TEST_AGENT_NAME)
    prompt = system_prompt(d, bash_available=False)
    assert prompt.startswith("You are 🧪 PACT Test Engineer")
    assert "implementation code changes are discarded" in prompt
    assert "every result is `not tested: no shell`" in prompt
    assert "implementation-summary" not in prompt.split("## Operating notes")[1]


def test_task_text_carries_the_handoff_and_the_table() -> None:
    rows = [
        Row("R1", ("src/bucket.py",), ("tests/test_bucket.py",), "implemented"),
        Row("R2", (), (), "not implemented", "later"),
    ]
    assert task_text(
        specs=["docs/limiter-spec.md"],
        summary_path="docs/implementation-summary-limiter.md",
        handoff="Run `make test`.",
        rows=rows,
    ) == (
        "Test the implementation of docs/limiter-spec.md. Its implementation summary is "
        "docs/implementation-summary-limiter.md.\n\n"
        "## For the Test Engineer (from the summary)\n\nRun `make test`.\n\n"
        "## Traceability (from the summary)\n\n"
        "| Requirement | Files | Tests | Status |\n| --- | --- | --- | --- |\n"
        "| R1 | src/bucket.py | tests/test_bucket.py | implemented |\n"
        "| R2 |  |  | not implemented: later |\n\n"
        "Write and run tests per requirement, then end with the `## Test report`."
    )
    bare = task_text(specs=[], summary_path="s.md", handoff=None, rows=[])
    assert 'The summary has no "For the Test Engineer" section' in bare
    assert "has no Traceability table" in bare


def test_the_documented_report_format_parses() -> None:
    assert parse_report("All done, tests pass.") is None
    assert parse_report("I did things.\n\n" + documented_example()) == TestReport(
        results=(
            Row("R1", (), ("tests/test_bucket.py::test_r1_bucket_per_key",), "passed"),
            Row(
                "R3",
                (),
                (
                    "tests/test_http.py::test_r3_over_limit_returns_429",
                    "tests/test_http.py::test_r3_retry_after",
                ),
                "failed",
            ),
            Row("R2", (), (), "not tested", "not implemented"),
        ),
        bugs=(Bug("src/http.py", 42, "the 429 response has no Retry-After header (R3)"),),
    )


def test_report_parser_tolerates_variants_and_is_bounded() -> None:
    text = (
        "# Test Report\n\n"
        "Req | Result | Tests\n---|---|---\n"
        "**R1** | PASS | `/workspace/tests/a_test.go`\n"
        "R2 | Failed (2 of 5) | tests/b.py\n\n"
        "# Bugs\n\n"
        "1. `/workspace/src/a.go:17` - off by one\n"
        "- [src/b.py:3-9](x) — wrong default\n"
        "- None found elsewhere.\n\n"
        "# Unrelated\n- src/c.py:1 — not a bug line\n"
    )
    report = parse_report(text)
    assert report == TestReport(
        results=(
            Row("R1", (), ("tests/a_test.go",), "passed"),
            Row("R2", (), ("tests/b.py",), "failed", "2 of 5"),
        ),
        bugs=(Bug("src/a.go", 17, "off by one"), Bug("src/b.py", 3, "wrong default")),
    )
    huge = (
        "## Test report\n"
        + "| R1 | t.py | passed |\n" * 5000
        + "### Bugs\n"
        + "- a.py:1 — x\n" * 5000
    )
    big = parse_report(huge)
    assert big is not None and len(big.results) == 1000 and len(big.bugs) == 200


@pytest.mark.parametrize(
    ("table", "rows"),
    [
        pytest.param(
            "| Requirement | Result |\n|-|-|\n| R1 | passed |",
            [Row("R1", (), (), "passed")],
            id="a header without a tests column names no tests",
        ),
        pytest.param(
            "| Requirement | Tests | Test result |\n|-|-|-|\n| R1 | t.py | FAIL: boom |",
            [Row("R1", (), ("t.py",), "failed", "boom")],
            id="a test result column is the result",
        ),
        pytest.param(
            "| Requirement | Tests | Result |\n|-|-|-|\n"
            "| **R1**: buckets | `./tests/a.py::test_x` and [tests/b.py](tests/b.py) | passed |",
            [Row("R1", (), ("tests/a.py::test_x", "tests/b.py"), "passed")],
            id="the id and paths as the traceability table reads them, test names kept",
        ),
        pytest.param(
            "| REQ-1 | (none) | not tested: no shell |",
            [Row("REQ-1", (), (), "not tested", "no shell")],
            id="a headless table",
        ),
        pytest.param(
            "| R1 | t.py | passed |\n\nSee the CI log | it has the rest.",
            [Row("R1", (), ("t.py",), "passed")],
            id="prose after the table is not a result",
        ),
    ],
)
def test_report_tables_are_read_as_agents_write_them(table: str, rows: list[Row]) -> None:
    report = parse_report(f"## Test report\n\n{table}\n")
    assert report is not None and list(report.results) == rows


def test_report_comment_links_bugs_to_the_tested_commit() -> None:
    report = TestReport(
        results=(
            Row("R1", (), ("tests/test_a.py::test_r1",), "passed"),
            Row("R2|x", (), ("tests/test_b.py",), "failed", "ping @admins <b>"),
            Row("R3", (), (), "not tested", "not implemented"),
        ),
        bugs=(
            Bug("src/a b.py", 42, "wrong | status"),
            Bug("../../etc/passwd", 1, "escape"),
        ),
    )
    assert report_comment(report, **URL) == (
        "### Test report\n\n"
        "2 requirements tested: 1 passed, 1 failed; 1 not tested.\n\n"
        "| Requirement | Tests | Result |\n| --- | --- | --- |\n"
        "| R1 | `tests/test_a.py::test_r1` | ✅ passed |\n"
        "| R2\\|x | `tests/test_b.py` | ❌ failed: ping @\u200badmins &lt;b&gt; |\n"
        "| R3 | — | not tested: not implemented |\n\n"
        "### Bugs found\n\n"
        "- [`src/a b.py:42`](https://github.example/acme/shop/blob/0123abcd/src/a%20b.py#L42)"
        " — wrong \\| status\n"
        "- `../../etc/passwd:1` — escape"
    )
    empty = report_comment(TestReport((), ()), **URL)
    assert empty == (
        "### Test report\n\n0 requirements tested: 0 passed, 0 failed.\n\n"
        "### Bugs found\n\nNone reported."
    )
