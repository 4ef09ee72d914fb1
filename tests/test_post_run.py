"""Checks before commit: not empty, summary present, protected paths, no secret."""

from __future__ import annotations

from pact_bot.pipeline.post_run import protected_touched, run_checks
from pact_bot.pipeline.report import Failure

SUMMARY = "docs/implementation-summary-auth.md"


def test_good_change_passes() -> None:
    r = run_checks(["src/a.py", SUMMARY], "+code\n", secrets=["s3cr3t-value-123"])
    assert r.ok and r.summary_files == (SUMMARY,)


def test_empty_change_is_no_change() -> None:
    assert run_checks([], "").problems == (Failure.no_change,)


def test_missing_summary() -> None:
    r = run_checks(["src/a.py"], "+x\n")
    assert r.problems == (Failure.no_summary,)
    deleted = run_checks(["src/a.py", SUMMARY], "", deleted=[SUMMARY])
    assert deleted.problems == (Failure.no_summary,)


def test_summary_on_reused_branch_counts() -> None:
    assert run_checks(["src/a.py"], "+x\n", existing_summaries=[SUMMARY]).ok


def test_protected_paths_are_named_and_reported_first() -> None:
    r = run_checks([".github/workflows/x.yml", "src/a.py"], "+x\n")
    assert r.problems == (Failure.protected, Failure.no_summary)
    assert r.protected == (".github/workflows/x.yml",)
    assert protected_touched([".git/config", "sub/.git/hooks/pre-commit", "a.py"], []) == [
        ".git/config",
        "sub/.git/hooks/pre-commit",
    ]
    assert protected_touched(["infra/main.tf"], ["infra/**"]) == ["infra/main.tf"]
    assert protected_touched([".github/dependabot.yml"]) == [".github/dependabot.yml"]
    assert protected_touched(["docs/github.md", "src/.github_x.py"]) == []


def test_secret_in_diff_is_caught_even_one_line_of_a_pem() -> None:
    secret = "ghs_0123456789abcdefghijklmnop"
    assert run_checks([SUMMARY], f"+token = '{secret}'\n", secrets=[secret]).problems == (
        Failure.secret,
    )
    pem = (
        "-----BEGIN KEY-----\n"
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt\n"
        "-----END KEY-----"
    )
    line = pem.splitlines()[1]
    assert Failure.secret in run_checks([SUMMARY], f"+{line}\n", secrets=[pem]).problems
    assert run_checks([SUMMARY], "+short\n", secrets=["short"]).ok
