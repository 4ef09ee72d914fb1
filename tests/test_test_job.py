"""`/pact test` end to end: comment → worker → scripted test engineer → simulator: one commit
of tests on the PR branch and one report comment."""

from __future__ import annotations

from typing import Any

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot, without_acks  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy, TestEngineerPolicy
from test_code_pipeline import bot_comments

from pact_bot.jobs.model import JobKind, JobState

REPO = "acme/shop"
BRANCH = "pact/code/cart"
SPEC = """# Cart service

## API
- R1: `add(item, qty)` MUST add an item to the cart.
- R2: `total()` MUST return the sum of the cart.
"""
SUMMARY = """# Implementation Summary: Cart

Implemented `docs/cart-spec.md`.

## For the Test Engineer

- `total()` sums quantities; check an empty cart.

## Traceability

| Requirement | Files | Tests | Status |
| --- | --- | --- | --- |
| R1 | src/cart.py | - | implemented |
| R2 | src/cart.py | - | implemented |
"""
OVERRIDE = """---
name: pact-test-engineer
description: The shop's own test engineer.
model: sonnet
---

OVERRIDE-MARKER: you test the shop's cart with property-based tests.
"""


def open_bot_pr(github: GitHubSim, files: dict[str, str] | None = None) -> int:
    repo = github.add_repo(
        "acme", "shop", files={"README.md": "# Shop\n", "docs/cart-spec.md": SPEC, **(files or {})}
    )
    github.add_user("alice", "write")
    github.add_user("rita", "read")
    github.commit(
        REPO,
        BRANCH,
        {"src/cart.py": "TOTAL = 0\n", "docs/implementation-summary-cart.md": SUMMARY},
        "Implement cart",
        user=github.bot_login,
    )
    body = "This pull request implements the following spec:\n\n- `docs/cart-spec.md`\n"
    return github.create_pull(repo, BRANCH, "main", "Implement cart", body, github.bot_login).number


def first_text(request: dict[str, Any]) -> str:
    content = request["messages"][0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def system_text(request: dict[str, Any]) -> str:
    system = request.get("system")
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system)
    return str(system or "")


async def test_pact_test_pushes_one_commit_of_tests_and_posts_the_report(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    pr = open_bot_pr(github_sim)
    anthropic_sim.set_policy(
        TestEngineerPolicy(
            touch_path="src/fix.py", failing=["R2"], bugs=["src/cart.py:1 — total ignores qty"]
        )
    )
    before = github_sim.branches(REPO)[BRANCH]
    github_sim.comment(REPO, pr, "/pact test\nCheck an empty cart too.", user="alice")

    jobs = without_acks(await bot.process())

    assert [(j.kind, j.state) for j in jobs] == [(JobKind.test, JobState.succeeded)], jobs
    commits = github_sim.commits(REPO, BRANCH)
    assert commits[1].sha == before  # exactly one new commit
    assert commits[0].message.startswith("Add tests for docs/cart-spec.md")
    tests = github_sim.read_file(REPO, BRANCH, "tests/test_engineer_checks.py")
    assert tests and "def test_r1()" in tests and "def test_r2()" in tests
    assert github_sim.read_file(REPO, BRANCH, "src/fix.py") is None  # not pushed
    request = anthropic_sim.requests[0]
    first = first_text(request)
    assert "- `total()` sums quantities; check an empty cart." in first
    assert "| R2 | src/cart.py |" in first
    assert "Check an empty cart too." in first
    assert "PACT Test Engineer" in system_text(request)
    report = [b for b in bot_comments(github_sim, pr) if "### Test report" in b]
    assert len(report) == 1
    text = report[0]
    assert text.startswith(f"@alice the test engineer pushed its tests in `{commits[0].sha[:7]}`")
    assert "2 requirements tested: 1 passed, 1 failed." in text
    assert "| R2 | `tests/test_engineer_checks.py::test_r2` | ❌ failed: wrong total |" in text
    assert f"/acme/shop/blob/{commits[0].sha}/src/cart.py#L1) — total ignores qty" in text
    assert "Changed outside tests (not pushed): `src/fix.py`." in text
    assert bot.worktrees() == []


async def test_the_repositorys_own_test_engineer_is_used_when_present(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    pr = open_bot_pr(github_sim, {".claude/agents/pact-test-engineer.md": OVERRIDE})
    anthropic_sim.set_policy(TestEngineerPolicy())
    github_sim.comment(REPO, pr, "/pact test", user="alice")

    jobs = without_acks(await bot.process())

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    system = system_text(anthropic_sim.requests[0])
    assert "OVERRIDE-MARKER: you test the shop's cart" in system
    assert "PACT Test Engineer" not in system


async def test_read_only_users_pact_test_is_refused_once(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    pr = open_bot_pr(github_sim)
    anthropic_sim.set_policy(TestEngineerPolicy())
    before = github_sim.branches(REPO)[BRANCH]
    github_sim.comment(REPO, pr, "/pact test", user="rita")
    github_sim.comment(REPO, pr, "/pact test please", user="rita")

    jobs = without_acks(await bot.process())

    assert [j.state for j in jobs] == [JobState.failed, JobState.failed]
    refusals = [b for b in bot_comments(github_sim, pr) if b.startswith("@rita thanks")]
    assert len(refusals) == 1 and "(yours: read)" in refusals[0]
    assert "only takes `/pact test` from people with write" in refusals[0]
    assert anthropic_sim.requests == []
    assert github_sim.branches(REPO)[BRANCH] == before


async def test_pact_test_on_a_pr_without_a_summary_says_so(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    github_sim.add_repo("acme", "shop", files={"README.md": "# Shop\n"})
    github_sim.add_user("alice", "write")
    pr = github_sim.open_pr(REPO, "feature", {"src/x.py": "x = 1\n"}, "X", user="alice")
    github_sim.comment(REPO, pr, "/pact test", user="alice")

    jobs = [j for j in await bot.process() if j.kind is JobKind.test]

    assert [j.state for j in jobs] == [JobState.failed]
    assert any("has no implementation summary" in b for b in bot_comments(github_sim, pr))
    assert anthropic_sim.requests == []


async def test_phases_code_and_test_run_the_test_engineer_after_the_pr_opens(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    github_sim.add_repo(
        "acme",
        "shop",
        files={
            "README.md": "# Shop\n",
            "docs/cart-spec.md": SPEC,
            ".github/pact.yml": "phases: [code, test]\n",
        },
    )
    github_sim.add_user("alice", "write")
    coder, tester = SpecCoderPolicy(traceability=True), TestEngineerPolicy()
    anthropic_sim.set_policy(
        lambda req: tester(req) if "Test Engineer" in system_text(req)[:200] else coder(req)
    )
    number = github_sim.open_issue(REPO, "Cart", body="Implement docs/cart-spec.md", user="alice")
    github_sim.label_issue(REPO, number, "pact:code", user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [
        (JobKind.code, JobState.succeeded),
        (JobKind.test, JobState.succeeded),
    ], [j.error for j in jobs]
    [pr] = github_sim.pulls(REPO)
    handoff = [b for b in bot_comments(github_sim, pr["number"]) if "Handoff" in b]
    assert "Comment `/pact test` to have the test engineer" in handoff[0]
    assert github_sim.read_file(REPO, pr["head"]["ref"], "tests/test_engineer_checks.py")
    assert any("### Test report" in b for b in bot_comments(github_sim, pr["number"]))
