"""Revise jobs end to end on the simulators: a review on a bot PR → one commit, a reply per
thread; plus the pure parts (REPLY lines, thread wording)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot, without_acks  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy
from test_code_pipeline import attr, bot_comments, first_text

from pact_bot.jobs.model import TERMINAL, Job, JobState
from pact_bot.jobs.worker import run_workers
from pact_bot.pipeline.pr_branch import check_pr
from pact_bot.pipeline.report import Failure, JobProgress, Phase
from pact_bot.pipeline.revise_text import (
    ReviewComment,
    parse_replies,
    progress_body,
    revise_message,
    thread_reply,
    without_replies,
)
from pact_bot.pipeline.steps import JobFailed

REPO = "acme/shop"
BRANCH = "pact/code/cart"
SPEC = "# Cart service\n\n## API\n- `add(item, qty)` adds an item.\n- `total()` sums.\n"
CART = (
    "class Cart:\n"
    "    def __init__(self) -> None:\n"
    "        self.items: dict[str, int] = {}\n"
    "\n"
    "    def add(self, item: str, qty: int) -> None:\n"
    "        self.items[item] = self.items.get(item, 0) + qty\n"
    "\n"
    "    def total(self) -> int:\n"
    "        return sum(self.items.values())\n"
)
SUMMARY = (
    "# Implementation summary: cart\n\n## Files\n- src/cart.py\n\n## Assumptions\n- none\n\n"
    "## For the Test Engineer\n- `total()` sums quantities.\n"
)
PR_BODY = "This pull request implements the following spec:\n\n- `docs/cart-spec.md`\n"

# --- harness: ingress + real workers, concurrently ------------------------------------


async def drive(b: InProcessBot, workers: int = 2, timeout: float = 60.0) -> list[Job]:
    """Run `workers` real worker tasks while routing deliveries, until every job ended and
    nothing new arrived; returns all jobs, oldest first."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_workers(b.queue, b.handler, workers, stop, poll_interval=0.02, grace_seconds=5)
    )
    try:
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            new = await b.route_new()
            jobs = await b.queue.list()
            busy = any(j.state not in TERMINAL for j in jobs)
            quiet = 0 if (new or busy) else quiet + 1
            if quiet >= 3:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("jobs did not finish in time")
    finally:
        stop.set()
        await task
    return sorted(await b.queue.list(), key=lambda j: j.created_at)


def issue_opened_by(github: GitHubSim, user: str, role: str, pact_yml: str = "") -> int:
    """An issue that `user`, a collaborator with `role`, opened on a fresh acme/shop (its
    `.github/pact.yml` is `pact_yml`, when given)."""
    files = {"README.md": "x\n"} | ({".github/pact.yml": pact_yml} if pact_yml else {})
    github.add_repo("acme", "shop", files=files)
    github.add_user(user, role)
    return github.open_issue(REPO, "Hi", user=user)


def open_bot_pr(github: GitHubSim, files: dict[str, str] | None = None) -> int:
    owner, name = REPO.split("/")
    repo = github.add_repo(
        owner, name, files=files or {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC}
    )
    github.add_user("alice", "write")
    github.commit(
        REPO,
        BRANCH,
        {"src/cart.py": CART, "docs/implementation-summary-cart.md": SUMMARY},
        "Implement cart",
        user=github.bot_login,
    )
    return github.create_pull(
        repo, BRANCH, "main", "Implement cart", PR_BODY, github.bot_login
    ).number


def reviewed_bot_pr(
    github: GitHubSim,
    anthropic: AnthropicSim,
    *,
    files: dict[str, str] | None = None,
    policy: RevisePolicy | None = None,
    by: str = "alice",
    state: str = "REQUEST_CHANGES",
    body: str = "",
    comments: list[dict[str, Any]] | None = None,
) -> tuple[int, str]:
    """A bot PR (in a repository of `files`) that `by` reviews, the model scripted to revise
    as `policy`; the PR's number and its branch's head before any revision."""
    number = open_bot_pr(github, files)
    before = github.branches(REPO)[BRANCH]
    anthropic.set_policy(policy or RevisePolicy())
    github.submit_review(REPO, number, by, state, body=body, comments=comments)
    return number, before


THREE = [
    {"path": "src/cart.py", "line": 5, "body": "Rename `qty` to `quantity`."},
    {"path": "src/cart.py", "line": 9, "body": "Validate that totals are never negative."},
    {"path": "src/cart.py", "line": 3, "body": "Question: why a dict? No change needed."},
]

# --- end to end -------------------------------------------------------------------------


async def test_review_with_three_comments_gives_one_commit_and_three_replies(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, before = reviewed_bot_pr(
        github_sim,
        anthropic_sim,
        policy=RevisePolicy(summary_note=True),
        body="A few things.",
        comments=THREE,
    )

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [("revise", JobState.succeeded)], jobs
    commits = github_sim.commits(REPO, BRANCH)
    assert commits[1].sha == before  # one new commit on top: never force-pushed
    head = commits[0]
    assert head.message.startswith("Address review by @alice")
    assert "Co-authored-by: Alice <" in head.message
    assert head.author_name == "pact-bot[bot]"
    cart = github_sim.read_file(REPO, BRANCH, "src/cart.py") or ""
    assert "def add(self, item: str, quantity: int)" in cart
    assert "# Review: Validate that totals" in cart
    summary = github_sim.read_file(REPO, BRANCH, "docs/implementation-summary-cart.md") or ""
    assert "## Revisions" in summary
    # one reply in each thread, citing the commit
    replies = github_sim.review_replies(REPO, number)
    assert len(replies) == 3
    by_parent = {r.in_reply_to: r.body for r in replies}
    ids = [c.id for c in github_sim.review_comments(REPO, number) if c.in_reply_to is None]
    assert sorted(by_parent) == sorted(ids)
    assert f"Addressed in [`{head.sha[:7]}`]" in by_parent[ids[0]]
    assert "replaced `qty` with `quantity`" in by_parent[ids[0]]
    assert by_parent[ids[2]].startswith("No change:")
    # the agent got the review body, each comment's id/path/line/hunk, the spec and summary
    task = first_text(anthropic_sim)
    assert "A few things." in task
    assert f"### Comment {ids[0]} on `src/cart.py` line 5" in task
    assert "@@ " in task  # the diff hunk
    assert "`total()` sums." in task  # the spec
    assert "## For the Test Engineer" in task  # the summary
    assert "REPLY <comment_id>:" in task
    # progress comment and check run as for code jobs
    [progress] = bot_comments(github_sim, number)
    assert f"pushed [`{head.sha[:7]}`]" in progress and "replied to 3 comments" in progress
    runs = github_sim.check_runs(REPO)
    assert [attr(r, "head_sha") for r in runs] == [head.sha]
    assert attr(runs[0], "name") == "PACT Code"
    assert bot.worktrees() == []


async def test_two_reviews_in_quick_succession_run_one_after_the_other(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    anthropic_sim.set_policy(RevisePolicy(turn_latency=0.1))
    github_sim.submit_review(REPO, number, "alice", "COMMENT", comments=[THREE[0]])
    github_sim.submit_review(REPO, number, "alice", "COMMENT", comments=[THREE[1]])

    jobs = await drive(bot, workers=2)

    revise = [j for j in jobs if j.kind == "revise"]
    assert [j.state for j in revise] == [JobState.succeeded] * 2, [j.error for j in revise]
    first, second = revise
    assert first.started_at and first.finished_at and second.started_at
    assert second.started_at >= first.finished_at  # same key: queued behind, not parallel
    commits = github_sim.commits(REPO, BRANCH)
    assert [c.message.splitlines()[0] for c in commits[:2]] == ["Address review by @alice"] * 2
    cart = github_sim.read_file(REPO, BRANCH, "src/cart.py") or ""
    assert "quantity" in cart and "# Review: Validate" in cart  # neither undid the other
    assert len(github_sim.review_replies(REPO, number)) == 2
    starts = [r["messages"][0]["content"][0]["text"] for r in anthropic_sim.requests]
    starts = [t for i, t in enumerate(starts) if len(anthropic_sim.requests[i]["messages"]) == 1]
    assert "new commits since the review" not in starts[0]
    assert "new commits since the review" in starts[1]  # the first job's commit came after


async def test_review_by_user_without_write_is_refused_politely(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    github_sim.add_user("mallory", "read")
    number, before = reviewed_bot_pr(github_sim, anthropic_sim, by="mallory", comments=THREE[:1])

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed]
    [refusal] = bot_comments(github_sim, number)
    assert "@mallory" in refusal and "thanks" in refusal
    assert "write, maintain or admin" in refusal and "(yours: read)" in refusal
    assert anthropic_sim.requests == []
    assert github_sim.branches(REPO)[BRANCH] == before
    assert github_sim.review_replies(REPO, number) == []
    assert bot.worktrees() == []


async def test_review_on_a_humans_pr_starts_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    open_bot_pr(github_sim)
    number = github_sim.open_pr(REPO, "feature", {"src/x.py": "x = 1\n"}, "X", user="alice")
    github_sim.add_user("bob", "write")
    github_sim.submit_review(
        REPO,
        number,
        "bob",
        "REQUEST_CHANGES",
        comments=[{"path": "src/x.py", "line": 1, "body": "Rename `x` to `y`."}],
    )

    jobs = await bot.process()

    assert [j for j in jobs if j.kind == "revise"] == []
    assert bot_comments(github_sim, number) == []
    assert anthropic_sim.requests == []


async def test_review_body_only_gets_one_pr_comment(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, before = reviewed_bot_pr(github_sim, anthropic_sim, body="Looks odd overall.")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    comments = bot_comments(github_sim, number)
    assert len(comments) == 2  # the progress comment and the answer
    answer = [c for c in comments if "pact-bot:job:" not in c]
    head = github_sim.commits(REPO, BRANCH)[0]
    assert head.sha != before and head.message.startswith("Address review by @alice")
    assert len(answer) == 1 and answer[0].startswith(f"@alice pact-bot pushed [`{head.sha[:7]}`]")
    assert github_sim.review_replies(REPO, number) == []
    assert "Looks odd overall." in first_text(anthropic_sim)


async def test_command_on_bot_pr_revises_with_the_instructions(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    anthropic_sim.set_policy(RevisePolicy())
    cid = github_sim.comment(REPO, number, "/pact code Log every\nadded item.", user="alice")

    jobs = without_acks(await bot.process())

    assert [(j.kind, j.state) for j in jobs] == [("revise", JobState.succeeded)], jobs
    head = github_sim.commits(REPO, BRANCH)[0]
    assert head.message.startswith("Apply /pact code instructions by @alice")
    assert "Review: Log every added item." in (
        github_sim.read_file(REPO, BRANCH, "src/cart.py") or ""
    )
    assert "<instructions>\nLog every\nadded item.\n</instructions>" in first_text(anthropic_sim)
    assert "eyes" in [r.content for r in github_sim.reactions(REPO, comment_id=cid)]
    answer = [c for c in bot_comments(github_sim, number) if "pact-bot:job:" not in c]
    assert len(answer) == 1 and head.sha[:7] in answer[0]


async def push_during_the_revision(
    bot: InProcessBot,  # noqa: F811
    github: GitHubSim,
    anthropic: AnthropicSim,
    number: int,
    files: dict[str, str | bytes | None],
) -> tuple[Job, str]:
    """Alice reviews PR `number`, then pushes `files` to it while the agent is at work; the
    revise job as it ended, and her commit."""
    anthropic.set_policy(RevisePolicy(turn_latency=0.3))
    github.submit_review(REPO, number, "alice", "COMMENT", comments=[THREE[0]])
    running = asyncio.create_task(bot.process())
    while not anthropic.requests:
        await asyncio.sleep(0.02)
    human = github.push_to_pr(REPO, number, files, user="alice")
    [job] = await running
    return job, human


async def test_human_push_during_the_run_is_rebased_onto(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)

    job, human = await push_during_the_revision(
        bot, github_sim, anthropic_sim, number, {"README.md": "# Shop!\n"}
    )

    assert job.state == JobState.succeeded, job.error
    commits = github_sim.commits(REPO, BRANCH)
    assert commits[1].sha == human and commits[0].message.startswith("Address review")
    assert github_sim.read_file(REPO, BRANCH, "README.md") == "# Shop!\n"


async def test_conflicting_human_push_stops_with_a_clear_reply(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    edited = CART.replace("qty: int", "count: int")

    job, human = await push_during_the_revision(
        bot, github_sim, anthropic_sim, number, {"src/cart.py": edited}
    )

    assert job.state == JobState.failed
    assert github_sim.branches(REPO)[BRANCH] == human  # nothing pushed over it
    [progress] = bot_comments(github_sim, number)
    assert "Someone pushed to `pact/code/cart`" in progress
    assert "conflict" in progress and "`src/cart.py`" in progress
    assert bot.worktrees() == []


async def test_retried_revise_job_neither_commits_nor_replies_twice(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, _ = reviewed_bot_pr(github_sim, anthropic_sim, state="COMMENT", comments=THREE[:2])
    [job] = await bot.process()
    assert job.state == JobState.succeeded, job.error
    head = github_sim.branches(REPO)[BRANCH]
    calls = len(anthropic_sim.requests)

    again = await bot.run_job(job.model_copy(update={"attempts": 2}))  # e.g. lease lapsed

    assert again.state == JobState.succeeded, again.error
    assert github_sim.branches(REPO)[BRANCH] == head
    assert len(anthropic_sim.requests) == calls
    assert len(github_sim.review_replies(REPO, number)) == 2
    assert len(github_sim.check_runs(REPO)) == 1
    assert len(bot_comments(github_sim, number)) == 1  # the same progress comment


async def test_review_without_body_or_comments_is_left_alone(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    github_sim.submit_review(REPO, number, "alice", "COMMENT")  # e.g. a reply in a thread

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded]
    assert bot_comments(github_sim, number) == []
    assert anthropic_sim.requests == []


def test_fork_head_stops_with_a_clear_reason() -> None:
    with pytest.raises(JobFailed) as e:
        check_pr(REPO, head_repo="mallory/shop", base_repo=REPO, state="open")
    assert e.value.kind is Failure.unsupported
    assert "lives in a fork" in e.value.detail


# --- pure parts -------------------------------------------------------------------------


def test_parse_replies_reads_the_contract_lines_only() -> None:
    text = (
        "Done.\n\nREPLY 11: Changed `a.py`: renamed.\n**REPLY 12:** No change: fine as is.\n"
        "REPLY 13:\nnot a reply line"
    )
    assert parse_replies(text) == {11: "Changed `a.py`: renamed.", 12: "No change: fine as is."}
    assert without_replies(text).startswith("Done.")
    assert "REPLY 11" not in without_replies(text)


def test_thread_reply_cites_the_commit_or_says_why_not() -> None:
    url = "https://x/pull/1/commits/abcdef0123"
    assert thread_reply("Renamed it.", "abcdef0123", url) == (
        f"Addressed in [`abcdef0`]({url}): Renamed it."
    )
    assert thread_reply("No change: a question.", None, None) == "No change: a question."
    assert "did not say why" in thread_reply(None, None, None)
    assert "please check the commit" in thread_reply(None, "abcdef0123", url)


def test_revise_message_keeps_each_comment_with_its_location() -> None:
    comments = [
        ReviewComment(7, "src/a.py", 12, 10, "@@ -1,3 +1,4 @@\n+x", "Fix this."),
        ReviewComment(8, "src/b.py", None, None, "", "Whole file."),
    ]
    text = revise_message(
        reviewer="alice",
        review_body="Body.",
        comments=comments,
        instructions="",
        pr_number=3,
        pr_title="Implement a",
        pr_files=["src/a.py"],
        specs=[("docs/a-spec.md", "# A")],
        summary=("docs/implementation-summary-a.md", "# Summary"),
    )
    assert "### Comment 7 on `src/a.py` lines 10-12" in text
    assert "### Comment 8 on `src/b.py` (file comment)" in text
    assert text.index("Body.") < text.index("Comment 7") < text.index("## Spec")
    assert "update it" in text and "REPLY <comment_id>:" in text


def test_progress_body_names_the_reviewer_and_the_turn() -> None:
    body = progress_body(
        JobProgress("j1", Phase.implementing, turn=3, cost_usd=0.12), reviewer="al"
    )
    assert "<!-- pact-bot:job:j1 -->" in body
    assert "- [x] Preparing" in body
    assert "- [ ] Addressing the review by @al — turn 3, $0.12 so far" in body
    done = progress_body(JobProgress("j1", Phase.done), reviewer="al", done="pushed `abc`.")
    assert "✅ **pact-bot** pushed `abc`." in done
    cancelled = progress_body(JobProgress("j1", Phase.cancelled), reviewer="al")
    assert "cancelled. Nothing was pushed." in cancelled
