"""Monthly spend caps through the product: the in-process bot, the simulators, a clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot, without_acks  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy, SpecCoderPolicy, TestEngineerPolicy
from test_code_pipeline import FILES, REPO, bot_comments, label, progress_comment, setup_repo
from test_revise import REPO as REVISE_REPO
from test_revise import open_bot_pr as open_revisable_pr
from test_test_job import REPO as TEST_REPO
from test_test_job import open_bot_pr as open_testable_pr

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.spend import month_start
from pact_bot.web.app import create_app

# The 15th of a month, noon UTC: every job the webhooks record is stamped by the bot's clock.
NOW = month_start(1_780_000_000.0) + 14 * 86_400 + 12 * 3600


async def spent_before(
    bot: InProcessBot,  # noqa: F811
    cost: float,
    *,
    repo: str = REPO,
    created_at: float = NOW - 3600,
) -> None:
    """A finished job of earlier this month (or `created_at`) that cost `cost` dollars, in
    the simulated GitHub's one installation."""
    j = Job(
        kind=JobKind.code,
        key=Job.key_for(repo, 999),
        repo=repo,
        number=999,
        installation_id=bot.github.installation_id,
        delivery_id=str(uuid.uuid4()),
        sender="alice",
        created_at=created_at,
        task={"fingerprint": str(uuid.uuid4())},
    )
    await bot.queue.enqueue(j)
    claimed = await bot.queue.claim("earlier")
    assert claimed is not None and claimed.id == j.id
    await bot.queue.update(j.id, cost_usd=cost)
    await bot.queue.finish(j.id, "earlier", JobState.succeeded)


def at_now(bot: InProcessBot) -> None:  # noqa: F811
    bot.runtime.clock = FakeClock(NOW)


async def capped_at_100_after_spending(
    bot: InProcessBot,  # noqa: F811
    spent: float,
    repo: str = REPO,
) -> None:
    """Now, in an installation capped at $100 a month that has spent `spent` (on `repo`)
    earlier this month."""
    at_now(bot)
    bot.configure(pact_monthly_budget_usd=100.0)
    await spent_before(bot, spent, repo=repo)


async def metrics(bot: InProcessBot) -> str:  # noqa: F811
    app = create_app(bot.settings, bot.queue, clock=FakeClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        return (await c.get("/metrics")).text


async def test_a_job_past_the_installation_cap_is_refused_with_one_comment_and_no_model_call(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy())
    at_now(bot)
    bot.configure(pact_monthly_budget_usd=10.0)
    await spent_before(bot, 6.0)
    await spent_before(bot, 4.5, repo="acme/other")  # another repository, same installation
    await spent_before(bot, 50.0, created_at=month_start(NOW) - 1)
    number = label(github_sim)

    [job] = without_acks(await bot.process())

    assert job.state is JobState.failed
    assert job.error is not None and "monthly budget reached" in job.error
    assert anthropic_sim.requests == []
    [comment] = bot_comments(github_sim, number)
    assert "monthly budget (`PACT_MONTHLY_BUDGET_USD`) of $10.00 is reached" in comment
    assert "$10.50 spent this month" in comment  # last month's $50 does not count
    assert "resets on 2026-06-01 00:00 UTC" in comment
    assert github_sim.pulls(REPO) == []


async def labelled_after_spending(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    spent: float,
    files: dict[str, str] | None = None,
) -> int:
    """An issue labelled for a code job in an installation capped at $100 a month that has
    spent `spent` earlier this month; its number."""
    setup_repo(github_sim, files)
    anthropic_sim.set_policy(SpecCoderPolicy())
    await capped_at_100_after_spending(bot, spent)
    return label(github_sim)


async def progress_after_spending(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    spent: float,
) -> str:
    """The progress comment of a code job that ran to its PR after `spent` of the $100 cap."""
    number = await labelled_after_spending(bot, github_sim, anthropic_sim, spent)
    [job] = without_acks(await bot.process())
    assert job.state is JobState.succeeded, job.error
    return progress_comment(github_sim, number, job.id)


async def test_the_repository_cap_wins_when_its_headroom_is_lower(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = await labelled_after_spending(
        bot,
        github_sim,
        anthropic_sim,
        3.0,
        files={**FILES, ".github/pact.yml": "budget:\n  monthly_usd: 3\n"},
    )

    [job] = without_acks(await bot.process())

    assert job.state is JobState.failed and "monthly budget reached" in (job.error or "")
    assert anthropic_sim.requests == []
    [comment] = bot_comments(github_sim, number)
    assert "this repository's monthly budget (`budget.monthly_usd`) of $3.00" in comment
    assert "$3.00 spent this month" in comment


async def test_past_80_percent_the_progress_comment_says_so_once(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    body = await progress_after_spending(bot, github_sim, anthropic_sim, 85.0)

    assert anthropic_sim.requests
    assert body.count("85% of this installation's monthly budget") == 1, body
    assert len(github_sim.pulls(REPO)) == 1


@pytest.mark.parametrize(
    ("repo", "open_pr", "policy", "command", "kind"),
    [
        (REVISE_REPO, open_revisable_pr, RevisePolicy, "/pact code Log it.", JobKind.revise),
        (TEST_REPO, open_testable_pr, TestEngineerPolicy, "/pact test", JobKind.test),
    ],
    ids=["revise", "test"],
)
async def test_past_80_percent_revise_and_test_progress_comments_say_so_too(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    repo: str,
    open_pr: Callable[[GitHubSim], int],
    policy: Callable[[], Any],
    command: str,
    kind: JobKind,
) -> None:
    number = open_pr(github_sim)
    anthropic_sim.set_policy(policy())
    await capped_at_100_after_spending(bot, 85.0, repo)
    github_sim.comment(repo, number, command, user="alice")

    [job] = without_acks(await bot.process())

    assert (job.kind, job.state) == (kind, JobState.succeeded), job.error
    [body] = [
        c.body
        for c in github_sim.issue_comments(repo, number)
        if c.author == github_sim.bot_login and f"pact-bot:job:{job.id}" in c.body
    ]
    assert body.startswith(f"<!-- pact-bot:job:{job.id} -->\n✅ **pact-bot**"), body
    assert body.count("85% of this installation's monthly budget") == 1, body


async def test_under_80_percent_no_note(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    body = await progress_after_spending(bot, github_sim, anthropic_sim, 79.0)

    assert "monthly budget" not in body


async def test_status_shows_the_months_spend_against_the_cap(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim)
    at_now(bot)
    bot.configure(pact_monthly_budget_usd=20.0)
    await spent_before(bot, 2.5)
    await spent_before(bot, 9.0, created_at=month_start(NOW) - 60)
    number = github_sim.open_issue(REPO, "Cart", body="x", user="alice")
    github_sim.comment(REPO, number, "/pact status", user="alice")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded]
    [answer] = bot_comments(github_sim, number)
    assert "This month: $2.50 of $20.00 (installation budget)." in answer
    assert anthropic_sim.requests == []


async def test_metrics_show_spend_of_jobs_another_process_ran(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    # `pact-bot worker` processes ran these jobs: the web process has shown no spend yet.
    await spent_before(bot, 3.0, repo="acme/elsewhere")
    await spent_before(bot, 9.0, repo="acme/lastmonth", created_at=month_start(NOW) - 5)

    text = await metrics(bot)

    assert 'pact_spend_usd_total{repository="acme/elsewhere"} 3.0' in text.splitlines()
    assert 'repository="acme/lastmonth"' not in text


async def test_metrics_show_the_months_spend_by_repository(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    await labelled_after_spending(bot, github_sim, anthropic_sim, 4.0)
    await spent_before(bot, 30.0, created_at=month_start(NOW) - 5)
    [job] = without_acks(await bot.process())
    assert job.state is JobState.succeeded and job.cost_usd > 0, job.error

    text = await metrics(bot)

    shop = 'pact_spend_usd_total{repository="acme/shop"} '
    [line] = [x for x in text.splitlines() if x.startswith(shop)]
    assert float(line.split()[-1]) == pytest.approx(4.0 + job.cost_usd)
