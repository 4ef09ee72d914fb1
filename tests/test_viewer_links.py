"""Where people find the run viewer: the progress comment, the check run, `/pact status`."""

from __future__ import annotations

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import REPO, attr, bot_comments, label, progress_comment, setup_repo

from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.pipeline.reply import status_text

PUBLIC = "https://pact.example.test"


async def test_a_job_links_its_page_from_the_progress_comment_and_the_check_run(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    bot.configure(
        pact_public_url=PUBLIC, github_client_id="Iv1.viewer", github_client_secret="s3cret"
    )
    setup_repo(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy())
    number = label(github_sim)

    [job] = await bot.process()

    assert job.state is JobState.succeeded, job.error
    page = f"{PUBLIC}/jobs/{job.id}"
    assert f"[Follow this job]({page})" in progress_comment(github_sim, number, job.id)
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "details_url") == page
    assert not any("s3cret" in c for c in bot_comments(github_sim, number))


async def test_without_a_way_to_sign_in_there_is_no_link(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    bot.configure(pact_public_url=PUBLIC)  # no OAuth credentials: nobody could open the page
    setup_repo(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy())
    number = label(github_sim)

    [job] = await bot.process()

    assert "/jobs/" not in progress_comment(github_sim, number, job.id)
    [run] = github_sim.check_runs(REPO)
    assert f"{PUBLIC}/jobs/" not in str(attr(run, "details_url"))


def test_status_links_each_job_when_a_page_exists() -> None:
    running = Job(
        kind=JobKind.code,
        key="acme/shop#3",
        repo="acme/shop",
        number=3,
        delivery_id="d1",
        sender="alice",
        state=JobState.running,
    )
    job = running
    text = status_text([running], 3, link=lambda i: f"{PUBLIC}/jobs/{i}")
    assert f"[`{job.id}`]({PUBLIC}/jobs/{job.id})" in text
    assert f"| `{job.id}` |" in status_text([running], 3)
