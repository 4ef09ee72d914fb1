"""`.github/pact.yml` end to end: an invalid file stops the job with the error quoted, and
its values (command word, limits, protected paths) reach revise and reply jobs."""

from __future__ import annotations

from typing import Any

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from test_revise import BRANCH, REPO, SPEC, THREE, bot_comments, issue_opened_by, reviewed_bot_pr

from pact_bot.jobs.model import JobState
from pact_bot.repo_config import parse_repo_config


def with_config(text: str) -> dict[str, str]:
    return {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC, ".github/pact.yml": text}


async def failed_review(
    bot: InProcessBot,  # noqa: F811
    github: GitHubSim,
    anthropic: AnthropicSim,
    config: str,
    comments: list[dict[str, Any]],
) -> tuple[int, str, str]:
    """Alice reviews a bot PR in a repository whose `.github/pact.yml` is `config`, and the
    revise job fails: the PR's number, its head before the review, the bot's one comment."""
    files = with_config(config)
    number, before = reviewed_bot_pr(github, anthropic, files=files, comments=comments)
    jobs = await bot.process()
    assert [j.state for j in jobs] == [JobState.failed]
    [comment] = bot_comments(github, number)
    return number, before, comment


async def test_invalid_config_stops_a_review_job_and_quotes_the_error(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    config = "model: sonnet\npr:\n  draft: maybe\n"

    _, before, comment = await failed_review(bot, github_sim, anthropic_sim, config, THREE[:1])

    assert "`.github/pact.yml` is not valid" in comment
    assert "> .github/pact.yml, line 3: pr.draft: Input should be a valid boolean" in comment
    assert anthropic_sim.requests == []
    assert github_sim.branches(REPO)[BRANCH] == before
    assert bot.worktrees() == []


async def test_command_word_from_the_config_is_used_once_known(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    number = issue_opened_by(github_sim, "alice", "write", pact_yml="command: bot\n")
    github_sim.comment(REPO, number, "/pact help", user="alice")  # before the cache: default
    await bot.process()
    github_sim.comment(REPO, number, "/pact help", user="alice")  # now not a command here
    github_sim.comment(REPO, number, "/bot status", user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.task.get("command")) for j in jobs] == [("reply", "status")]
    first, second = bot_comments(github_sim, number)
    assert "`/bot code [spec paths]`" in first and "command: /bot" in first
    assert second == (
        "No pact-bot job is queued or running for #1.\n\nThis month: $0.00 (no monthly budget set)."
    )


async def test_limits_from_the_config_bound_a_revise_job(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    config = "limits:\n  max_turns: 2\n"

    _, before, comment = await failed_review(bot, github_sim, anthropic_sim, config, THREE)

    assert len(anthropic_sim.requests) == 2
    assert "reached its budget (2 turns)" in comment
    # what the agent changed within its two turns is kept as a partial commit (issue #14)
    assert "pushed its partial work" in comment and "continue [instructions]" in comment
    commits = github_sim.commits(REPO, BRANCH)
    assert commits[1].sha == before
    assert commits[0].message.startswith("WIP: revision (partial: it reached its budget")


async def test_protected_paths_from_the_config_apply_to_revisions(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    config = "protected_paths:\n  - src/**\n"

    number, before, comment = await failed_review(bot, github_sim, anthropic_sim, config, THREE[:1])

    assert "protected paths (`src/cart.py`)" in comment
    assert github_sim.branches(REPO)[BRANCH] == before
    assert github_sim.review_replies(REPO, number) == []


def test_bare_off_in_yaml_means_off() -> None:
    assert parse_repo_config("spec_prs: off\n").spec_prs == "off"
