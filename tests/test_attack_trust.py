"""Attacks on what configures the agent, and on what the bot commits (issue #10, round 2).

The agent writes its PR branch; a later job on that branch (a revision) must not take its
instructions or capabilities from it. And what the bot commits must not hold a link that
leads a later reader out of the repository, or a "summary" that is only a link. Each test
runs whole jobs on the simulators: real git, real bubblewrap, a scripted model.
"""

from __future__ import annotations

import pytest
from bwrap_support import needs_bwrap
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot, without_acks  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy, SpecCoderPolicy
from test_code_pipeline import REPO, progress_comment, scripted_issue
from test_revise import BRANCH, open_bot_pr

from pact_bot.jobs.model import JobState

AGENT = ".claude/agents/pact-backend-coder.md"
SUMMARY = "docs/implementation-summary-cart.md"


def _agent(marker: str, model: str = "haiku") -> str:
    return (
        f"---\nname: pact-backend-coder\ndescription: x\nmodel: {model}\n---\n"
        f"You are the coder. {marker}\n"
    )


def _system(anthropic_sim: AnthropicSim) -> str:
    system = anthropic_sim.requests[0]["system"]
    return system if isinstance(system, str) else "".join(b["text"] for b in system)


async def test_a_revision_takes_the_agent_definition_from_the_default_branch_not_the_pr(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    """An earlier job's agent rewrote `.claude/agents/pact-backend-coder.md` on its branch
    (system prompt and model); the revision must run with the one people merged."""
    number = open_bot_pr(
        github_sim,
        {
            "README.md": "# Shop\n",
            "docs/cart-spec.md": "# Cart\n\n- `add(item, qty)`\n",
            AGENT: _agent("MERGED-BY-PEOPLE", "sonnet"),
        },
    )
    github_sim.commit(
        REPO,
        BRANCH,
        {AGENT: _agent("WRITTEN-BY-THE-AGENT", "opus")},
        "Tune myself",
        user=github_sim.bot_login,
    )
    anthropic_sim.set_policy(RevisePolicy())
    github_sim.comment(REPO, number, "/pact code Log every added item.", user="alice")

    jobs = without_acks(await bot.process())

    assert [(j.kind, j.state) for j in jobs] == [("revise", JobState.succeeded)], jobs
    system = _system(anthropic_sim)
    assert "MERGED-BY-PEOPLE" in system  # the default branch's override is honoured
    assert "WRITTEN-BY-THE-AGENT" not in system  # old: the PR branch's text was the prompt
    assert "opus" not in anthropic_sim.requests[0]["model"]


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        pytest.param(
            SpecCoderPolicy(write_paths=[AGENT, ".claude/settings.json"]),
            [f"protected paths (`{AGENT}`, `.claude/settings.json`)"],
            id="its_own_definition",
        ),
        pytest.param(
            SpecCoderPolicy(bash_commands=["ln -s /etc/passwd docs/passwd"]),
            [
                "symbolic links that point out of the repository",
                "`docs/passwd`",
                "Nothing was pushed",
            ],
            id="a_link_out_of_the_repository",
            marks=needs_bwrap,
        ),
        pytest.param(
            SpecCoderPolicy(
                bash_commands=["mkdir -p src/deep && ln -s ../../../../etc src/deep/etc"]
            ),
            [
                "symbolic links that point out of the repository",
                "`src/deep/etc`",
                "Nothing was pushed",
            ],
            id="a_deeper_link_out_of_the_repository",
            marks=needs_bwrap,
        ),
        pytest.param(
            SpecCoderPolicy(bash_commands=[f"ln -s ../README.md {SUMMARY}"], skip_summary=True),
            [
                f"stand in for the implementation summary (`{SUMMARY}`)",
                "must be a regular file",
            ],
            id="a_summary_that_is_a_link_inside_the_repository",
            marks=needs_bwrap,
        ),
    ],
)
async def test_what_the_agent_must_not_commit_fails_the_job(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    policy: SpecCoderPolicy,
    says: list[str],
) -> None:
    """The job fails, says why, and pushes nothing. A link out of the checkout is harmless on
    GitHub, but whoever later reads the checkout (a developer's tools, CI, a host-side read)
    would be led out of it."""
    number = scripted_issue(github_sim, anthropic_sim, policy)
    before = dict(github_sim.branches(REPO))

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed], [(j.state, j.error) for j in jobs]
    comment = progress_comment(github_sim, number, jobs[0].id)
    for text in says:
        assert text in comment
    assert github_sim.branches(REPO) == before and github_sim.pulls(REPO) == []


@needs_bwrap
async def test_a_link_inside_the_repository_is_committed_as_before(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    link = SpecCoderPolicy(bash_commands=["ln -s ../README.md docs/readme"])
    scripted_issue(github_sim, anthropic_sim, link)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [(j.state, j.error) for j in jobs]
    [pr] = github_sim.pulls(REPO)
    assert github_sim.read_file(REPO, pr["head"]["ref"], "docs/readme") == "../README.md"
