"""Attacks through the product that need no new machinery: a repository unprotecting its
workflows, escape sequences from model output reaching the operator's terminal, and a
stranger registering their own App into a server that is not set up yet."""

from __future__ import annotations

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import FILES, REPO, label, progress_comment

from pact_bot.jobs.model import JobState


async def test_empty_protected_paths_do_not_unprotect_the_workflows(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    """A workflow on the bot's branch would run the agent's code with the repository's
    secrets; `protected_paths: []` in `.github/pact.yml` must not make that pushable."""
    owner, name = REPO.split("/")
    files = {**FILES, ".github/pact.yml": "protected_paths: []\n"}
    github_sim.add_repo(owner, name, files=files)
    github_sim.add_user("alice", "write")
    before = dict(github_sim.branches(REPO))
    anthropic_sim.set_policy(SpecCoderPolicy(write_paths=[".github/workflows/ci.yml"]))
    number = label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed], [(j.state, j.error) for j in jobs]
    comment = progress_comment(github_sim, number, jobs[0].id)
    assert "protected paths (`.github/workflows/ci.yml`)" in comment
    assert "Nothing was pushed" in comment
    assert github_sim.branches(REPO) == before
    assert github_sim.pulls(REPO) == []
    assert bot.worktrees() == []
