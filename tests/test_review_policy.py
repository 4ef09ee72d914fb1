"""Which reviews start a revision: `reviews:` in `.github/pact.yml` and `[skip pact]`, on the
simulators with the real pipeline."""

from __future__ import annotations

import pytest
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy

from pact_bot.pipeline.review_policy import review_starts_work

REPO = "acme/shop"
BRANCH = "pact/code/cart"
CART = "def total(items):\n    return sum(items)\n"
COMMENT = [{"path": "src/cart.py", "line": 2, "body": "Rename `items` to `values`."}]


def open_bot_pr(github: GitHubSim, pact_yml: str | None) -> int:
    owner, name = REPO.split("/")
    files = {"README.md": "# Shop\n", "docs/cart-spec.md": "# Cart\n"}
    if pact_yml is not None:
        files[".github/pact.yml"] = pact_yml
    repo = github.add_repo(owner, name, files=files)
    github.add_user("alice", "write")
    github.commit(REPO, BRANCH, {"src/cart.py": CART}, "Implement cart", user=github.bot_login)
    body = "This pull request implements the following spec:\n\n- `docs/cart-spec.md`\n"
    return github.create_pull(repo, BRANCH, "main", "Cart", body, github.bot_login).number


@pytest.mark.parametrize(
    ("pact_yml", "state", "body", "revised"),
    [
        ("reviews: changes_requested\n", "COMMENT", "A thought.", False),
        ("reviews: changes_requested\n", "REQUEST_CHANGES", "Please fix.", True),
        ("reviews: command\n", "REQUEST_CHANGES", "Please fix.", False),
        (None, "COMMENT", "A thought.", True),  # default `all`: today's behaviour
        (None, "REQUEST_CHANGES", "Not now [skip pact]", False),
        (None, "COMMENT", "[Skip Pact] just a note", False),
    ],
)
async def test_review_policy_and_skip_marker(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    pact_yml: str | None,
    state: str,
    body: str,
    revised: bool,
) -> None:
    number = open_bot_pr(github_sim, pact_yml)
    before = github_sim.branches(REPO)[BRANCH]
    anthropic_sim.set_policy(RevisePolicy())
    github_sim.submit_review(REPO, number, "alice", state, body=body, comments=COMMENT)

    await bot.process()

    moved = github_sim.branches(REPO)[BRANCH] != before
    said = [c for c in github_sim.issue_comments(REPO, number) if c.author == github_sim.bot_login]
    assert moved is revised
    assert bool(said) is revised  # an ignored review leaves no trace: no 👀, no comment
    assert bool(anthropic_sim.requests) is revised


def test_policy_table() -> None:
    assert review_starts_work("all", "commented")
    assert review_starts_work("changes_requested", "changes_requested")
    assert not review_starts_work("changes_requested", "commented")
    assert not review_starts_work("command", "changes_requested")
