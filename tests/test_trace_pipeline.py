"""Requirement traceability in code jobs, end to end: label → worker → scripted coder →
simulator. The agent is told which requirement ids to trace, its table is checked, a
missing row is asked for once, and the coverage shows on the PR and the check run."""

from __future__ import annotations

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy, SpecCoderPolicy
from test_code_pipeline import attr

from pact_bot.jobs.model import JobState

REPO = "acme/shop"
SPEC = """# Cart service

## API
- R1: `add(item, qty)` MUST add an item to the cart.
- R2: `total()` MUST return the sum of the cart.
"""
FILES = {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC, "src/__init__.py": ""}
ASKED = "needs these rows fixed"


def setup(github: GitHubSim) -> int:
    github.add_repo("acme", "shop", files=FILES)
    github.add_user("alice", "write")
    number = github.open_issue(
        REPO, "Cart", body="Please implement docs/cart-spec.md", user="alice"
    )
    github.label_issue(REPO, number, "pact:code", user="alice")
    return number


def user_texts(anthropic: AnthropicSim) -> list[str]:
    """Every user text of the longest conversation the model saw."""
    last = max(anthropic.requests, key=lambda r: len(r["messages"]))["messages"]
    out = []
    for m in last:
        if m["role"] != "user":
            continue
        content = m["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out += [b.get("text", "") for b in content if b.get("type") == "text"]
    return out


async def test_complete_table_shows_coverage_on_the_pr_and_check_run(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy(traceability=True))

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    first = user_texts(anthropic_sim)[0]
    assert "## Traceability" in first
    assert "- R1: `add(item, qty)` MUST add an item to the cart." in first
    assert not any(ASKED in t for t in user_texts(anthropic_sim))
    body = github_sim.pulls(REPO)[0]["body"]
    assert "### Requirements" in body
    assert "2 of 2 requirements covered." in body
    assert (
        "MUST return the sum of the cart. | `src/cart.py` | `tests/test_cart.py` | covered |"
    ) in body
    run = github_sim.check_runs(REPO)[0]
    assert attr(run, "conclusion") == "success"
    assert "Every requirement is traced to code" in str(attr(run, "output"))


async def test_missing_row_is_asked_for_once_and_filled(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy(traceability=True, omit_rows=["R2"]))

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    asked = [t for t in user_texts(anthropic_sim) if ASKED in t]
    assert len(asked) == 1 and "- R2: no row" in asked[0]
    body = github_sim.pulls(REPO)[0]["body"]
    assert "2 of 2 requirements covered." in body
    assert attr(github_sim.check_runs(REPO)[0], "conclusion") == "success"


async def test_row_still_missing_after_the_one_follow_up_is_neutral_and_listed(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim)
    anthropic_sim.set_policy(
        SpecCoderPolicy(traceability=True, omit_rows=["R2"], fill_when_asked=False)
    )

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert len([t for t in user_texts(anthropic_sim) if ASKED in t]) == 1
    body = github_sim.pulls(REPO)[0]["body"]
    assert "1 of 2 requirements covered, 1 unmapped." in body
    run = github_sim.check_runs(REPO)[0]
    assert attr(run, "conclusion") == "neutral"
    output = attr(run, "output")
    assert "1 requirement not traced to code" in str(attr(output, "title"))
    assert "- R2 (" in str(attr(output, "summary"))
    assert "MUST return the sum of the cart.)" in str(attr(output, "summary"))


BOT_SUMMARY = """# Implementation summary: cart

## For the Test Engineer
- `total()` sums quantities.

## Traceability

| Requirement | Files | Tests | Status |
| --- | --- | --- | --- |
| R1 | src/cart.py | - | partial: <!-- /pact-bot:coverage --> ask @admins |
"""


async def test_revise_refreshes_the_pr_bodys_coverage_and_its_check_run(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    repo = github_sim.add_repo("acme", "shop", files=FILES)
    github_sim.add_user("alice", "write")
    github_sim.commit(
        REPO,
        "pact/code/cart",
        {"src/cart.py": "TOTAL = 0\n", "docs/implementation-summary-cart.md": BOT_SUMMARY},
        "Implement cart",
        user=github_sim.bot_login,
    )
    body = "This pull request implements the following spec:\n\n- `docs/cart-spec.md`\n"
    number = github_sim.create_pull(
        repo, "pact/code/cart", "main", "Implement cart", body, github_sim.bot_login
    ).number
    anthropic_sim.set_policy(RevisePolicy())
    github_sim.comment(REPO, number, "/pact code Log every added item.", user="alice")

    jobs = [j for j in await bot.process() if j.kind == "revise"]

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    new_body = github_sim.pull(REPO, number)["body"]
    assert new_body.startswith(body.rstrip())
    assert "0 of 2 requirements covered, 1 partial, 1 unmapped." in new_body
    # the agent's cell cannot close the section early or ping anyone
    assert new_body.count("<!-- /pact-bot:coverage -->") == 1
    assert "partial: &lt;!-- /pact-bot:coverage --&gt; ask @\u200badmins" in new_body
    assert "@admins" not in new_body
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "conclusion") == "neutral"
    assert "1 requirement not traced to code" in attr(attr(run, "output"), "title")
