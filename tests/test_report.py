"""The texts people read: progress comment, PR body, handoff, check run, failures."""

from __future__ import annotations

from pact_bot.pipeline.pr_text import (
    Summary,
    check_run_output,
    commit_message,
    file_rows,
    file_table,
    handoff_comment,
    parse_summary,
    pr_body,
    pr_title,
)
from pact_bot.pipeline.report import (
    Failure,
    JobProgress,
    Phase,
    RunStats,
    failure_text,
    job_of,
    no_specs_comment,
    progress_body,
    refusal_comment,
)

DIFF = """diff --git a/src/auth.py b/src/auth.py
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/src/auth.py
@@ -0,0 +1,3 @@
+def login():
+    return True
+
diff --git a/README.md b/README.md
index 1111111..2222222 100644
--- a/README.md
+++ b/README.md
@@ -1,2 +1,2 @@
 # Demo
-old line
+new line
"""

SUMMARY = """# Implementation summary: auth-service

## Summary
Login endpoint.

## Assumptions
- Passwords are hashed with argon2
  because the spec says "modern hashing".
- Tokens live one hour.

## Testing Recommendations
Unit tests.

## For the Test Engineer

This implementation is ready for the Test phase.

**Testing Priority:**
1. Login failures

### Known Areas Requiring Extra Attention
- Token expiry

## Appendix
Not part of the handoff.

Assumption: the clock is UTC.
"""


def test_summary_parser_extracts_handoff_and_assumptions() -> None:
    s = parse_summary(SUMMARY)
    assert s.test_engineer is not None
    assert s.test_engineer.startswith("This implementation is ready")
    assert "### Known Areas Requiring Extra Attention" in s.test_engineer
    assert "Token expiry" in s.test_engineer
    assert "Appendix" not in s.test_engineer
    assert s.assumptions == (
        'Passwords are hashed with argon2 because the spec says "modern hashing".',
        "Tokens live one hour.",
        "the clock is UTC.",
    )


def test_summary_parser_ignores_headings_inside_code_fences() -> None:
    text = "## For the Test Engineer\n```markdown\n## Not a heading\n```\nRun it.\n## Next\nx\n"
    s = parse_summary(text)
    assert s.test_engineer == "```markdown\n## Not a heading\n```\nRun it."
    assert parse_summary("no sections").test_engineer is None
    assert parse_summary("no sections").assumptions == ()


def test_file_rows_from_unified_diff() -> None:
    rows = file_rows(DIFF)
    assert [(r.path, r.status, r.added, r.removed) for r in rows] == [
        ("src/auth.py", "added", 3, 0),
        ("README.md", "modified", 1, 1),
    ]
    table = file_table(rows)
    assert "| `src/auth.py` | added | 3 | 0 |" in table
    assert "| **2 files** | | **4** | **1** |" in table
    assert file_rows("") == []


def test_progress_comment_shows_phase_turn_and_cost_with_marker() -> None:
    body = progress_body(
        JobProgress(
            "job1",
            Phase.implementing,
            specs=("docs/a-spec.md",),
            turn=4,
            cost_usd=0.123,
            tool="str_replace_based_edit_tool create src/a.py",
        )
    )
    assert job_of(body) == "job1"
    assert "- [x] Preparing" in body and "- [x] Reading specs" in body
    assert "- [ ] Implementing — turn 4, $0.12 so far" in body
    assert "`str_replace_based_edit_tool create src/a.py`" in body
    assert "`docs/a-spec.md`" in body


def test_final_progress_states() -> None:
    stats = RunStats(
        turns=3,
        cost_usd=0.5,
        input_tokens=1000,
        cache_read_tokens=3000,
        output_tokens=200,
        duration_s=125,
    )
    done = progress_body(JobProgress("j", Phase.done, pr_url="http://x/pull/2", stats=stats))
    assert "opened http://x/pull/2" in done
    assert "$0.50 · 3 turns · 2m 05s · 4k tokens in (75% cached), 200 out" in done
    failed = progress_body(
        JobProgress("j", Phase.failed, failure=failure_text(Failure.push_refused, "protected"))
    )
    assert "could not finish" in failed and "refused the push (protected)" in failed
    assert "job `j`" in failed
    assert "cancelled" in progress_body(JobProgress("j", Phase.cancelled))


def test_every_failure_kind_has_a_paragraph() -> None:
    for kind in Failure:
        text = failure_text(kind, "detail", files=[".github/workflows/x.yml"])
        quotes = kind in (Failure.invalid_config, Failure.setup_failed)  # a quoted block
        assert (text and "\n\n" not in text.strip()) or quotes
    assert "`.github/workflows/x.yml`" in failure_text(
        Failure.protected, files=[".github/workflows/x.yml"]
    )
    assert "budget (12 turns)" in failure_text(Failure.budget, "12 turns")


def test_pr_title_body_and_commit_message() -> None:
    assert pr_title(["auth-service"]) == "Implement auth-service"
    assert pr_title(["a", "b", "c", "d"]) == "Implement a, b, c and 1 more"
    body = pr_body(
        job_id="j1",
        specs=["docs/auth-service-spec.md"],
        rows=file_rows(DIFF),
        summary_file="docs/implementation-summary-auth-service.md",
        summary=parse_summary(SUMMARY),
        stats=RunStats(turns=2, cost_usd=0.01),
        model="claude-sonnet-5-5",
        issue_number=7,
    )
    assert "Closes #7" in body
    assert "- `docs/auth-service-spec.md`" in body
    assert "| `src/auth.py` | added | 3 | 0 |" in body
    assert "- Tokens live one hour." in body
    assert "model `claude-sonnet-5-5`" in body
    no_issue = pr_body(
        job_id="j1",
        specs=["docs/a-spec.md"],
        rows=[],
        summary_file=None,
        summary=Summary(None, ()),
        stats=RunStats(),
        model="m",
    )
    assert "Closes" not in no_issue and "None recorded." in no_issue
    msg = commit_message(["auth"], ["docs/auth-spec.md"], "Ann <1+ann@users.noreply.github.com>")
    assert msg.endswith("\n\nCo-authored-by: Ann <1+ann@users.noreply.github.com>\n")


def test_handoff_comment_links_the_summary() -> None:
    s = parse_summary(SUMMARY)
    text = handoff_comment(s, "docs/implementation-summary-a.md", "http://web/o/r/blob/b/x.md")
    assert "[`docs/implementation-summary-a.md`](http://web/o/r/blob/b/x.md)" in text
    assert "## For the Test Engineer" in text and "Login failures" in text
    assert 'no "For the Test Engineer" section' in handoff_comment(Summary(None, ()), "x.md", "u")


def test_check_run_output_records_tools_files_and_cost() -> None:
    out = check_run_output(
        specs=["docs/a-spec.md"],
        stats=RunStats(
            turns=5, cost_usd=0.25, tool_calls={"bash": 2, "grep": 1}, files_touched=("src/a.py",)
        ),
        rows=file_rows(DIFF),
        model="claude-sonnet-5-5",
        job_id="j9",
        summary_file="docs/implementation-summary-a.md",
    )
    assert set(out) == {"title", "summary", "text"}
    assert "$0.25" in out["title"]
    assert "| `bash` | 2 |" in out["text"] and "- `src/a.py`" in out["text"]
    assert "job `j9`" in out["summary"]


def test_refusal_and_no_specs_comments_say_why() -> None:
    assert "(yours: read)" in refusal_comment("eve", "read")
    text = no_specs_comment("docs/**/*-spec.md", "pact:code", "/pact")
    assert "`docs/**/*-spec.md`" in text and "/pact code docs/payments-spec.md" in text


def test_setup_failure_names_the_command_its_output_and_where_to_fix_it() -> None:
    from pact_bot.jobsandbox import SetupStep
    from pact_bot.pipeline.toolchain_run import setup_failure

    step = SetupStep("pip install -r requirements.txt", False, 2.0, "ERROR: no such package\n")
    text = failure_text(Failure.setup_failed, setup_failure(step))
    assert "`pip install -r requirements.txt` failed" in text
    assert "```\nERROR: no such package\n```" in text
    assert "`sandbox.setup` in `.github/pact.yml` on the default branch" in text
    assert "nothing was pushed" in text
