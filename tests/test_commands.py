"""`/pact help|status|cancel` end to end: 👀 at once, a reply, the queue's view of the jobs;
and the texts themselves."""

from __future__ import annotations

import asyncio
import contextlib
import time

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy, SpecCoderPolicy
from test_revise import (
    BRANCH,
    REPO,
    SPEC,
    THREE,
    bot_comments,
    drive,
    issue_opened_by,
    open_bot_pr,
)

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.jobs.worker import JobControl
from pact_bot.pipeline.reply import cancel_text, help_text, refusal_text, status_text
from pact_bot.repo_config import parse_repo_config
from pact_bot.settings import Settings


def replies(github: GitHubSim, number: int) -> list[str]:
    """The bot's answers (not progress comments)."""
    return [c for c in bot_comments(github, number) if "pact-bot:job:" not in c]


async def wait_for(cond, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_help_shows_usage_and_the_effective_configuration(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    cfg = "label: build-me\nlimits:\n  max_turns: 10\n  max_cost_usd: 50\nspec_prs: run\n"
    number = issue_opened_by(github_sim, "alice", "write", pact_yml=cfg)
    cid = github_sim.comment(REPO, number, "/pact help", user="alice")
    unknown = github_sim.comment(REPO, number, "/pact frobnicate now", user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [("reply", JobState.succeeded)] * 2
    first, second = replies(github_sim, number)
    assert "`/pact status`" in first and "`/pact cancel`" in first
    assert "label: build-me" in first and "spec_prs: run" in first
    assert "limits: 10 turns, $5," in first  # the server's $5 maximum caps the file's $50
    assert "`/pact frobnicate` is not a pact-bot command" in second
    assert "`/pact code [spec paths]`" in second
    for comment_id in (cid, unknown):
        assert "eyes" in [r.content for r in github_sim.reactions(REPO, comment_id=comment_id)]


async def test_help_quotes_an_invalid_configuration_with_its_line(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    cfg = "label: x\nlimits:\n  max_turns: -3\n"
    github_sim.add_repo("acme", "shop", files={"README.md": "x\n", ".github/pact.yml": cfg})
    number = github_sim.open_issue(REPO, "Help?", user="alice")
    github_sim.comment(REPO, number, "/pact help", user="alice")

    await bot.process()

    [answer] = replies(github_sim, number)
    assert "> .github/pact.yml, line 3: limits.max_turns:" in answer
    assert "greater than or equal to 1" in answer


async def test_status_while_a_job_runs_shows_its_state_turn_and_cost(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    anthropic_sim.set_policy(RevisePolicy(turn_latency=0.4))
    github_sim.submit_review(REPO, number, "alice", "COMMENT", comments=THREE)
    running = asyncio.create_task(drive(bot, workers=2))
    await wait_for(lambda: len(anthropic_sim.requests) >= 2)
    cid = github_sim.comment(REPO, number, "/pact status", user="alice")

    seconds = await wait_for(lambda: bool(replies(github_sim, number)))
    eyes = [r.content for r in github_sim.reactions(REPO, comment_id=cid)]
    [revise_then] = [j for j in await bot.queue.list() if j.kind == "revise"]
    jobs = await running

    assert eyes == ["eyes"] and seconds < 5  # answered while the review job still ran
    assert revise_then.state == JobState.running
    [answer] = replies(github_sim, number)
    assert f"| `{revise_then.id}` | revise | running |" in answer
    assert "$0." in answer
    assert [j.state for j in jobs] == [JobState.succeeded] * 2


async def test_cancel_while_running_pushes_nothing_and_removes_the_worktree(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    before = github_sim.branches(REPO)[BRANCH]
    anthropic_sim.set_policy(RevisePolicy(turn_latency=0.3))
    github_sim.submit_review(REPO, number, "alice", "REQUEST_CHANGES", comments=THREE)
    running = asyncio.create_task(drive(bot, workers=2))
    await wait_for(lambda: bool(anthropic_sim.requests))
    cid = github_sim.comment(REPO, number, "/pact cancel", user="alice")

    jobs = await running

    revise = [j for j in jobs if j.kind == "revise"]
    reply = [j for j in jobs if j.kind == "reply"]
    assert [j.state for j in revise] == [JobState.cancelled]
    assert [j.state for j in reply] == [JobState.succeeded]
    assert github_sim.branches(REPO)[BRANCH] == before  # nothing pushed
    assert github_sim.review_replies(REPO, number) == []
    assert bot.worktrees() == []
    progress = [c for c in bot_comments(github_sim, number) if "pact-bot:job:" in c]
    assert len(progress) == 1 and "cancelled. Nothing was pushed." in progress[0]
    [answer] = replies(github_sim, number)
    assert f"`{revise[0].id}` (revise, running): stops at its next safe point" in answer
    assert "eyes" in [r.content for r in github_sim.reactions(REPO, comment_id=cid)]
    assert len(anthropic_sim.requests) < 7  # stopped before the agent finished


async def test_commands_from_users_without_write_are_refused(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    number = issue_opened_by(github_sim, "mallory", "read")
    github_sim.comment(REPO, number, "/pact status", user="mallory")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed]
    [answer] = replies(github_sim, number)
    assert answer.startswith("@mallory thanks") and "(yours: read)" in answer
    assert "No pact-bot job" not in answer


async def test_cancel_by_a_user_without_write_stops_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    github_sim.add_user("mallory", "read")
    before = github_sim.branches(REPO)[BRANCH]
    anthropic_sim.set_policy(RevisePolicy(turn_latency=0.2))
    github_sim.submit_review(REPO, number, "alice", "REQUEST_CHANGES", comments=THREE)
    running = asyncio.create_task(drive(bot, workers=2))
    await wait_for(lambda: bool(anthropic_sim.requests))
    github_sim.comment(REPO, number, "/pact cancel", user="mallory")

    jobs = await running

    [revise] = [j for j in jobs if j.kind == "revise"]
    assert revise.state == JobState.succeeded
    assert github_sim.branches(REPO)[BRANCH] != before  # the review was still answered
    [answer] = replies(github_sim, number)
    assert answer.startswith("@mallory thanks") and "(yours: read)" in answer


def labelled_issue(github: GitHubSim) -> int:
    github.add_repo("acme", "shop", files={"README.md": "# Shop\n", "docs/cart-spec.md": SPEC})
    github.add_user("alice", "write")
    number = github.open_issue(REPO, "Cart", body="Please implement docs/cart-spec.md")
    github.label_issue(REPO, number, "pact:code", user="alice")
    return number


async def test_a_job_whose_worker_keeps_vanishing_fails_with_a_comment_on_github(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(turn_latency=5))
    number = labelled_issue(github_sim)
    [job] = await bot.route_new()
    clock = FakeClock()
    lossy = SqliteQueue(bot.data_dir / "pact.db", lease_seconds=30, max_attempts=1, clock=clock)
    await lossy.open()
    try:
        claimed = await lossy.claim("doomed")
        assert claimed is not None and claimed.id == job.id
        attempt = asyncio.create_task(bot.handler(claimed, JobControl(lossy, claimed)))
        marker = f"pact-bot:job:{job.id}"
        await wait_for(lambda: any(marker in c for c in bot_comments(github_sim, number)))
        attempt.cancel()  # the worker vanishes mid-run: no finish, its lease lapses
        with contextlib.suppress(asyncio.CancelledError):
            await attempt
        await clock.advance(31)
        notice = await lossy.claim("test-worker")  # the claim fails the job, queues its notice
    finally:
        await lossy.close()
    assert notice is not None and notice.task["command"] == "lost"

    done = await bot.run_job(notice)
    await bot.run_job(notice)  # run again (a retried notice): nothing is said twice

    assert done.state is JobState.succeeded, done.error
    failed = await bot.queue.get(job.id)
    assert failed is not None and failed.state is JobState.failed
    comments = bot_comments(github_sim, number)
    [progress] = [c for c in comments if marker in c]
    assert "could not finish this job" in progress and "⏳" not in progress
    assert "lost 1 time (crash or restart)" in progress
    [said] = [c for c in comments if "pact-bot:lost:" in c]
    assert f"Job `{job.id}` stopped: the worker running it was lost 1 time" in said
    assert "Nothing was pushed" in said and "comment `/pact code`" in said
    assert github_sim.pulls(REPO) == []
    assert await bot.queue.claim("test-worker") is None


async def test_lost_and_ack_cannot_be_commanded_from_a_comment(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    number = issue_opened_by(github_sim, "alice", "write")
    github_sim.comment(REPO, number, "/pact lost 0123456789abcdef", user="alice")
    github_sim.comment(REPO, number, "/pact ack", user="alice")

    jobs = await bot.process()

    assert [(j.task["command"], j.state) for j in jobs] == [("help", JobState.succeeded)] * 2
    first, second = replies(github_sim, number)
    assert "`/pact lost` is not a pact-bot command" in first
    assert "`/pact ack` is not a pact-bot command" in second
    assert not [c for c in bot_comments(github_sim, number) if "pact-bot:lost:" in c]


async def test_pact_code_while_a_job_of_the_issue_runs_gets_eyes_within_seconds(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(turn_latency=0.4))
    number = labelled_issue(github_sim)
    running = asyncio.create_task(drive(bot, workers=2))
    await wait_for(lambda: len(anthropic_sim.requests) >= 1)  # the label's job runs
    cid = github_sim.comment(REPO, number, "/pact code", user="alice")

    seconds = await wait_for(lambda: bool(github_sim.reactions(REPO, comment_id=cid)))
    first_running = [j for j in await bot.queue.list() if j.kind == "code"]
    jobs = await running

    assert seconds < 5
    assert sorted(str(j.state) for j in first_running) == ["queued", "running"]
    first, second = [j for j in jobs if j.kind == "code"]
    assert second.state in (JobState.succeeded, JobState.failed)  # it ran after the first
    notes = [c for c in bot_comments(github_sim, number) if "pact-bot:ack:" in c]
    assert len(notes) == 1
    assert f"Queued: job `{second.id}` is number 2 in line" in notes[0]
    assert f"`{first.id}` (code, running)" in notes[0]
    reacts = [
        r
        for r in github_sim.requests
        if r.method == "POST" and r.path.endswith(f"/issues/comments/{cid}/reactions")
    ]
    assert len(reacts) == 1  # the ack reacted; the code job did not react again


async def test_status_lists_code_and_revise_jobs_not_replies(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    number = labelled_issue(github_sim)
    [code] = await bot.route_new()
    assert await bot.queue.claim("elsewhere") is not None  # runs on another worker
    github_sim.comment(REPO, number, "/pact status", user="alice")
    [status] = await bot.route_new()
    pending_ack = Job(
        kind=JobKind.reply,
        key=status.key,
        repo=REPO,
        number=number,
        delivery_id="d:ack",
        sender="alice",
        task={"command": "ack", "fingerprint": "ack:1"},
    )
    await bot.queue.enqueue(pending_ack)  # queued behind the status reply (same key)

    claimed = await bot.queue.claim("test-worker")
    assert claimed is not None and claimed.id == status.id
    await bot.run_job(claimed)

    [answer] = replies(github_sim, number)
    assert f"| `{code.id}` | code | running |" in answer
    assert pending_ack.id not in answer and status.id not in answer


# --- texts ---------------------------------------------------------------------------


def _job(**kw: object) -> Job:
    base = dict(kind=JobKind.code, key="a/b#1", repo="a/b", number=1, delivery_id="d", sender="x")
    return Job(**{**base, **kw})  # type: ignore[arg-type]


def test_status_text_lists_live_jobs_only() -> None:
    now = time.time()
    jobs = [
        _job(id="run1", state=JobState.running, turns=4, cost_usd=0.31, started_at=now - 30),
        _job(id="q1", kind=JobKind.revise, created_at=now - 5),
        _job(id="old", state=JobState.succeeded),
    ]
    text = status_text(jobs, 1, now=now)
    assert "| `run1` | code | running | 4 | $0.31 | 30s |" in text
    assert "| `q1` | revise | queued | 0 | $0.00 | 5s |" in text
    assert "old" not in text
    assert status_text([jobs[2]], 1) == "No pact-bot job is queued or running for #1."


def test_cancel_and_refusal_texts() -> None:
    text = cancel_text([_job(id="r", state=JobState.running), _job(id="q")], 1)
    assert "`r` (code, running): stops at its next safe point" in text
    assert "`q` (code, queued): cancelled before it started" in text
    assert "nothing to cancel" in cancel_text([], 7)
    assert "only answers reviews" in refusal_text("u", "read", "review")
    assert "only takes `/pact status`" in refusal_text("u", None, "status")


def test_help_text_without_a_file_says_defaults() -> None:
    eff = parse_repo_config(None).effective(Settings(_env_file=None))  # type: ignore[call-arg]
    text = help_text(eff, config_found=False)
    assert "defaults (no file)" in text and "spec_glob: docs/**/*-spec.md" in text
