"""Code jobs end to end on the simulators: trigger → PR, or one clear failure comment."""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

import pytest
from sim.anthropic import AnthropicSim, Fault
from sim.bot import BotServer, InProcessBot, bot, bot_server, without_acks  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy

from pact_bot.clock import FakeClock
from pact_bot.jobs.model import Job, JobState
from pact_bot.jobs.worker import JobControl
from pact_bot.model_catalog import DEFAULT_PRICES
from pact_bot.pipeline import code

REPO = "acme/shop"
SPEC = """# Cart service

## Purpose
Keep a shopping cart per user.

## API
- `add(item, qty)` adds an item.
- `total()` returns the sum.
"""
FILES = {
    "README.md": "# Shop\n",
    "docs/cart-spec.md": SPEC,
    "src/__init__.py": "",
    "CLAUDE.md": "Use type hints everywhere.\n",
}


def setup_repo(github: GitHubSim, files: dict[str, str] | None = None) -> None:
    owner, name = REPO.split("/")
    github.add_repo(owner, name, files=files or FILES)
    github.add_user("alice", "write")


def label(
    github: GitHubSim,
    body: str = "Please implement docs/cart-spec.md",
    title: str = "Cart",
    by: str = "alice",
) -> int:
    """An issue by `by`, labelled for a code job by alice; its number."""
    number = github.open_issue(REPO, title, body=body, user=by)
    github.label_issue(REPO, number, "pact:code", user="alice")
    return number


def scripted_issue(
    github: GitHubSim, anthropic: AnthropicSim, policy: SpecCoderPolicy | None = None
) -> int:
    """The usual start: the default repository, the model scripted as the spec coder (or as
    `policy`), and an issue labelled for a code job; its number."""
    setup_repo(github)
    anthropic.set_policy(policy or SpecCoderPolicy())
    return label(github)


async def opened_a_pr(
    bot: InProcessBot,  # noqa: F811
    github: GitHubSim,
    anthropic: AnthropicSim,
) -> tuple[int, Job]:
    """A code job run to its PR, for the tests of what comes after: the issue and the job."""
    number = scripted_issue(github, anthropic)
    [job] = await bot.process()
    assert job.state == JobState.succeeded, job.error
    return number, job


def first_text(anthropic: AnthropicSim) -> str:
    """The text of the first message the model was sent."""
    first = anthropic.requests[0]["messages"][0]["content"]
    return first if isinstance(first, str) else first[0]["text"]


async def until_the_model_is_called(anthropic: AnthropicSim) -> None:
    """Waits (10 s at most) until the job's agent is under way."""
    for _ in range(200):
        if anthropic.requests:
            return
        await asyncio.sleep(0.05)


def bot_comments(github: GitHubSim, number: int) -> list[str]:
    return [c.body for c in github.issue_comments(REPO, number) if c.author == github.bot_login]


def progress_comment(github: GitHubSim, number: int, job_id: str) -> str:
    found = [b for b in bot_comments(github, number) if f"pact-bot:job:{job_id}" in b]
    assert len(found) == 1, bot_comments(github, number)
    return found[0]


def attr(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


async def test_labelled_issue_becomes_a_pr_with_summary_handoff_and_check_run(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = scripted_issue(github_sim, anthropic_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    job = jobs[0]
    pulls = github_sim.pulls(REPO)
    assert len(pulls) == 1
    pr = pulls[0]
    assert pr["title"] == "Implement cart"
    assert pr["head"]["ref"] == "pact/code/cart"
    assert pr["base"]["ref"] == "main"
    assert f"Closes #{number}" in pr["body"]
    assert "`docs/cart-spec.md`" in pr["body"]
    assert "| `src/cart.py` | added |" in pr["body"]
    assert "### Assumptions the agent recorded" in pr["body"]
    assert job.pr_url == pr["html_url"]
    # the code and the summary are on the branch
    assert github_sim.read_file(REPO, "pact/code/cart", "src/cart.py")
    summary = github_sim.read_file(REPO, "pact/code/cart", "docs/implementation-summary-cart.md")
    assert summary and "For the Test Engineer" in summary
    # review requested from the person who triggered
    assert "alice" in [u["login"] for u in pr.get("requested_reviewers", [])]
    # commit: bot author, Co-authored-by the trigger's author
    commit = github_sim.commits(REPO, "pact/code/cart")[0]
    assert commit.author_name == "pact-bot[bot]"
    assert re.search(
        r"Co-authored-by: .+ <(\d+\+)?alice@users\.noreply\.github\.com>", commit.message
    )
    # 👀 on the issue
    assert "eyes" in [r.content for r in github_sim.reactions(REPO, number=number)]
    # handoff comment on the PR, linking the summary
    handoff = bot_comments(github_sim, pr["number"])
    assert len(handoff) == 1
    assert "## For the Test Engineer" in handoff[0]
    assert "/blob/pact/code/cart/docs/implementation-summary-cart.md" in handoff[0]
    # check run on the head commit
    runs = github_sim.check_runs(REPO)
    assert [attr(r, "name") for r in runs] == ["PACT Code"]
    assert attr(runs[0], "head_sha") == pr["head"]["sha"]
    assert attr(runs[0], "conclusion") == "success"
    assert "str_replace_based_edit_tool" in str(attr(runs[0], "output"))
    # the one progress comment's final state links the PR
    final = progress_comment(github_sim, number, job.id)
    assert f"opened {pr['html_url']}" in final
    assert job.cost_usd > 0 and job.turns > 0
    # the model saw the spec, the repo map and the repository's instructions
    first = first_text(anthropic_sim)
    assert "Keep a shopping cart per user." in first
    assert "src/__init__.py" in first
    assert "Use type hints everywhere." in first
    assert bot.worktrees() == []
    # no token in anything we wrote: comments, PR, check run, commit, transcript
    tokens = {r.token for r in github_sim.requests if r.token}
    assert tokens
    written = [
        *(c.body for c in github_sim.issue_comments(REPO, number)),
        *handoff,
        pr["body"],
        str(attr(runs[0], "output")),
        commit.message,
        *(p.read_text() for p in (bot.data_dir / "transcripts").glob("*.jsonl")),
    ]
    assert len(written) >= 6
    for token in tokens:
        assert not any(token in w for w in written)


async def rerun_of_a_job_that_pushed(
    bot: InProcessBot,  # noqa: F811
    github: GitHubSim,
    anthropic: AnthropicSim,
    job: Job,
) -> Job:
    """Runs `job` again, as a retry does; it must succeed on the work already pushed."""
    sha = github.branches(REPO)["pact/code/cart"]
    model_calls = len(anthropic.requests)
    again = await bot.run_job(job)
    assert again.state == JobState.succeeded, again.error
    assert github.branches(REPO)["pact/code/cart"] == sha  # nothing pushed twice
    assert len(anthropic.requests) == model_calls  # the agent did not run again
    return again


async def test_retried_job_finishes_without_pushing_or_posting_twice(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, job = await opened_a_pr(bot, github_sim, anthropic_sim)
    lapsed = job.model_copy(update={"attempts": 2})  # e.g. its lease lapsed

    again = await rerun_of_a_job_that_pushed(bot, github_sim, anthropic_sim, lapsed)

    assert again.pr_url == job.pr_url
    assert len(github_sim.pulls(REPO)) == 1
    pr_number = github_sim.pulls(REPO)[0]["number"]
    assert len(bot_comments(github_sim, pr_number)) == 1  # one handoff
    assert len(github_sim.check_runs(REPO)) == 1
    progress_comment(github_sim, number, job.id)  # still exactly one progress comment
    assert bot.worktrees() == []


async def test_closed_bot_pr_leaves_its_branch_alone_and_a_new_one_is_used(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, _ = await opened_a_pr(bot, github_sim, anthropic_sim)
    old = github_sim.pulls(REPO)[0]
    github_sim.update_pull(github_sim.repo(REPO), old["number"], {"state": "closed"}, "alice")
    old_sha = github_sim.branches(REPO)["pact/code/cart"]

    github_sim.comment(REPO, number, "/pact code", user="alice")
    [second] = without_acks(await bot.process())

    assert second.state == JobState.succeeded, second.error
    assert github_sim.branches(REPO)["pact/code/cart"] == old_sha
    new = [p for p in github_sim.pulls(REPO) if p["number"] != old["number"]]
    assert [p["head"]["ref"] for p in new] == ["pact/code/cart-2"]
    assert old_sha not in [c.sha for c in github_sim.commits(REPO, "pact/code/cart-2")]


async def pushed_then_lost(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> tuple[Job, dict[str, Any]]:
    """A code job that pushed and opened its PR, as its retry sees it when the worker died
    right after the push: no PR (closed), nothing in the job's record. Returns the retry's
    job and the lost PR."""
    _, job = await opened_a_pr(bot, github_sim, anthropic_sim)
    pr = github_sim.pulls(REPO)[0]
    github_sim.update_pull(github_sim.repo(REPO), pr["number"], {"state": "closed"}, "alice")
    task = {k: v for k, v in job.task.items() if k != "progress"}
    return job.model_copy(update={"task": task, "attempts": 2}), pr


async def test_job_that_pushed_without_recording_it_is_found_by_its_commit(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    job, pr = await pushed_then_lost(bot, github_sim, anthropic_sim)

    await rerun_of_a_job_that_pushed(bot, github_sim, anthropic_sim, job)

    reopened = [p for p in github_sim.pulls(REPO) if p["number"] != pr["number"]]
    assert [p["head"]["ref"] for p in reopened] == ["pact/code/cart"]
    assert "| `src/cart.py` | added |" in reopened[0]["body"]


async def test_a_pushed_job_resumed_on_a_worker_without_the_mirror_lists_only_its_files(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    job, pr = await pushed_then_lost(bot, github_sim, anthropic_sim)
    # The retry runs where the repository's mirror is not (another host, or evicted): its
    # new mirror has the branch tips only.
    shutil.rmtree(bot.data_dir / "mirrors")

    await rerun_of_a_job_that_pushed(bot, github_sim, anthropic_sim, job)

    [reopened] = [p for p in github_sim.pulls(REPO) if p["number"] != pr["number"]]
    assert "| `src/cart.py` | added |" in reopened["body"]
    assert "README.md" not in reopened["body"]  # the base's files are not the PR's
    assert "docs/cart-spec.md` |" not in reopened["body"]


async def test_spec_pr_and_command_opens_pr_targeting_the_spec_branch(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim, {"README.md": "# Shop\n"})
    anthropic_sim.set_policy(SpecCoderPolicy())
    pr_number = github_sim.open_pr(
        REPO, "spec/cart", {"docs/cart-spec.md": SPEC}, "Cart spec", user="alice"
    )
    await bot.process()  # the spec check job (another helper's kind) may fail; ignore it
    cid = github_sim.comment(REPO, pr_number, "/pact code\nKeep it small.", user="alice")

    jobs = [j for j in await bot.process() if j.kind == "code"]

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    pulls = [p for p in github_sim.pulls(REPO) if p["number"] != pr_number]
    assert len(pulls) == 1
    assert pulls[0]["base"]["ref"] == "spec/cart"
    assert pulls[0]["head"]["ref"] == "pact/code/cart"
    assert "Closes" not in pulls[0]["body"]
    first = first_text(anthropic_sim)
    assert "Keep it small." in first
    assert 'changed_sections="Cart service; Purpose; API"' in first
    assert "eyes" in [r.content for r in github_sim.reactions(REPO, comment_id=cid)]


async def test_retrigger_updates_the_same_pr(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, first = await opened_a_pr(bot, github_sim, anthropic_sim)
    sha_before = github_sim.branches(REPO)["pact/code/cart"]

    anthropic_sim.set_policy(SpecCoderPolicy(source_path="src/{module}_v2.py"))
    github_sim.comment(REPO, number, "/pact code docs/cart-spec.md", user="alice")
    second = without_acks(await bot.process())

    assert [j.state for j in second] == [JobState.succeeded], [j.error for j in second]
    assert len(github_sim.pulls(REPO)) == 1
    assert second[0].pr_url == first.pr_url
    branch = github_sim.branches(REPO)["pact/code/cart"]
    assert branch != sha_before
    commits = github_sim.commits(REPO, "pact/code/cart")
    assert sha_before in [c.sha for c in commits]  # fast-forward, never force-pushed
    assert github_sim.read_file(REPO, "pact/code/cart", "src/cart_v2.py")
    assert "updated" in progress_comment(github_sim, number, second[0].id)


# --- failure paths: each ends in a clear comment and a removed worktree ---------------


async def run_to_failure(
    bot: InProcessBot,  # noqa: F811
    github: GitHubSim,
    number: int,
) -> tuple[str, str]:
    """Runs the code job for issue `number`, which must fail leaving no PR, branch or
    worktree behind: its progress comment and its error."""
    jobs = await bot.process()
    assert [j.state for j in jobs] == [JobState.failed], [(j.state, j.error) for j in jobs]
    assert bot.worktrees() == []
    assert github.pulls(REPO) == []
    assert "pact/code/cart" not in github.branches(REPO)
    return progress_comment(github, number, jobs[0].id), jobs[0].error or ""


async def test_budget_exhausted_never_spends_past_the_cap(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    bot.configure(pact_max_cost_usd=0.25)
    looping = SpecCoderPolicy(max_turns_to_loop=10**9, loop_padding=2000)
    number = scripted_issue(github_sim, anthropic_sim, looping)

    comment, error = await run_to_failure(bot, github_sim, number)

    assert "budget ($0.25" in comment
    assert "Nothing was pushed" in comment
    assert "budget" in error
    assert anthropic_sim.total_cost(DEFAULT_PRICES) <= 0.25


BAD_CONFIG = {**FILES, ".github/pact.yml": "label: pact:code\nspec_prs: maybe\n"}


@dataclass(frozen=True)
class Stop:
    """A code job that stops before a PR: what differs from the usual start, and what its
    progress comment says (each of `says`)."""

    says: tuple[str, ...]
    policy: SpecCoderPolicy | None  # None: the model is not scripted at all
    fault: Fault | None = None  # played on every model call
    files: dict[str, str] = field(default_factory=lambda: FILES)
    body: str = "Please implement docs/cart-spec.md"
    model_untouched: bool = False  # stopped before the first model call


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(
            Stop(("model service failed", "529"), SpecCoderPolicy(), fault=Fault.overloaded()),
            id="overloaded_model_beyond_retries",
        ),
        pytest.param(
            Stop(
                ("protected paths (`.github/workflows/x.yml`)",),
                SpecCoderPolicy(write_paths=[".github/workflows/x.yml"]),
            ),
            id="agent_writing_a_workflow_is_refused",
        ),
        pytest.param(
            Stop(("without changing any file",), SpecCoderPolicy(no_edits=True)),
            id="agent_editing_nothing",
        ),
        pytest.param(
            Stop(
                ("found no spec", "`docs/**/*-spec.md`"),
                None,
                body="Make the cart work please.",
                model_untouched=True,
            ),
            id="issue_without_spec_explains_how_to_name_one",
        ),
        pytest.param(
            Stop(
                (".github/pact.yml, line 2: spec_prs",),
                None,
                files=BAD_CONFIG,
                model_untouched=True,
            ),
            id="invalid_repo_config_is_quoted_with_its_line",
        ),
    ],
)
async def test_a_job_that_stops_says_why_in_its_progress_comment(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    stop: Stop,
) -> None:
    setup_repo(github_sim, stop.files)
    if stop.policy is not None:
        anthropic_sim.set_policy(stop.policy)
    if stop.fault is not None:
        anthropic_sim.inject_always(stop.fault)
    number = label(github_sim, body=stop.body)

    comment, _ = await run_to_failure(bot, github_sim, number)

    for text in stop.says:
        assert text in comment
    if stop.model_untouched:
        assert anthropic_sim.requests == []


async def test_forgotten_summary_is_asked_for_once(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    scripted_issue(github_sim, anthropic_sim, SpecCoderPolicy(skip_summary=True))

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert github_sim.read_file(REPO, "pact/code/cart", "docs/implementation-summary-cart.md")
    last = anthropic_sim.requests[-1]["messages"]
    texts = [
        b.get("text", "")
        for m in last
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
    ]
    assert any("implementation summary is missing" in t for t in texts)


async def test_push_refused(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = scripted_issue(github_sim, anthropic_sim)
    hook = github_sim.repo(REPO).path / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  case "$ref" in refs/heads/pact/*) echo "error: GH013: rule violations" >&2; exit 1;;'
        "\n  esac\ndone\nexit 0\n"
    )
    hook.chmod(0o755)

    comment, error = await run_to_failure(bot, github_sim, number)

    assert "GitHub refused the push" in comment
    assert "push_refused" in error


async def test_sender_without_write_permission_is_refused_before_any_work(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim)
    github_sim.add_user("mallory", "read")
    anthropic_sim.set_policy(SpecCoderPolicy())
    number = github_sim.open_issue(REPO, "Cart", body="docs/cart-spec.md", user="mallory")
    github_sim.comment(REPO, number, "/pact code", user="mallory")

    jobs = without_acks(await bot.process())

    assert [j.state for j in jobs] == [JobState.failed]
    comments = bot_comments(github_sim, number)
    assert len(comments) == 1
    assert "@mallory" in comments[0] and "write, maintain or admin" in comments[0]
    assert "(yours: read)" in comments[0]
    assert anthropic_sim.requests == []
    assert github_sim.pulls(REPO) == []
    assert not bot.runtime.workspace.mirror_path(REPO).exists()  # the repo was not cloned


async def test_refusal_names_the_repositorys_own_command_word(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    """A repository that renamed its command is told its own word, not `/pact`."""
    setup_repo(github_sim, {**FILES, ".github/pact.yml": "command: /bot\n"})
    github_sim.add_user("tria", "triage")  # may label issues, may not have code written
    anthropic_sim.set_policy(SpecCoderPolicy())
    number = github_sim.open_issue(REPO, "Cart", body="docs/cart-spec.md", user="tria")
    github_sim.label_issue(REPO, number, "pact:code", user="tria")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed]
    comments = bot_comments(github_sim, number)
    assert len(comments) == 1
    assert "@tria" in comments[0] and "(yours: triage)" in comments[0]
    assert "`/bot code`" in comments[0] and "/pact" not in comments[0]
    assert anthropic_sim.requests == []


async def test_invalid_config_while_the_mirror_is_cloned_stops_the_clone_cleanly(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup_repo(github_sim, BAD_CONFIG)
    number = label(github_sim)
    ws = bot.runtime.workspace
    real_git = ws._git
    fetches: list[str] = []
    fetching = asyncio.Event()

    async def hanging_fetch(args: Any, cwd: Any, **kw: Any) -> Any:
        if args and args[0] == "fetch":
            fetches.append(str(cwd))
            fetching.set()
            await asyncio.Event().wait()  # the clone is still running when the config fails
        return await real_git(args, cwd, **kw)

    real_config = code.config_or_fail

    async def config_once_the_clone_runs(ctx: Any) -> Any:
        # The order this test is about, made certain: the config is read (and found bad)
        # while the clone is under way, however the two tasks are scheduled.
        await asyncio.wait_for(fetching.wait(), timeout=60)
        return await real_config(ctx)

    monkeypatch.setattr(ws, "_git", hanging_fetch)
    monkeypatch.setattr(code, "config_or_fail", config_once_the_clone_runs)

    comment, error = await run_to_failure(bot, github_sim, number)

    assert ".github/pact.yml, line 2: spec_prs" in comment and "invalid_config" in error
    assert fetches, "the clone did not start before the config was read"
    mirror = ws.mirror_path(REPO)
    assert not mirror.exists() and not mirror.with_name(mirror.name + ".tmp").exists()
    assert anthropic_sim.requests == []


async def test_repo_config_label_is_cached_for_ingress(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim, {**FILES, ".github/pact.yml": "label: build-me\n"})
    anthropic_sim.set_policy(SpecCoderPolicy(no_edits=True))
    number = github_sim.open_issue(REPO, "Cart", body="docs/cart-spec.md", user="alice")
    github_sim.comment(REPO, number, "/pact code", user="alice")
    await bot.process()

    assert (await bot.queue.get_repo_config(REPO) or {}).get("label") == "build-me"


async def test_setup_commands_run_in_the_sandbox_and_leave_nothing_behind(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    from pact_bot.agent.tools.bwrap import sandbox_available

    if not sandbox_available()[0]:
        pytest.skip(sandbox_available()[1])
    config = "sandbox:\n  setup:\n    - echo built > build.txt\n    - echo more >> build.txt\n"
    setup_repo(github_sim, {**FILES, ".github/pact.yml": config})
    anthropic_sim.set_policy(SpecCoderPolicy())
    label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    first = first_text(anthropic_sim)
    assert "Setup command `echo built > build.txt` succeeded." in first
    assert "Setup command `echo more >> build.txt` succeeded." in first
    assert github_sim.read_file(REPO, "pact/code/cart", "src/cart.py")
    assert github_sim.read_file(REPO, "pact/code/cart", "build.txt") is None


async def test_cancel_while_running_pushes_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = scripted_issue(github_sim, anthropic_sim, SpecCoderPolicy(turn_latency=0.3))

    running = asyncio.create_task(bot.process())
    await until_the_model_is_called(anthropic_sim)
    assert await bot.queue.request_cancel(f"{REPO}#{number}")
    [job] = await running

    assert job.state == JobState.cancelled
    assert "cancelled. Nothing was pushed." in progress_comment(github_sim, number, job.id)
    assert "pact/code/cart" not in github_sim.branches(REPO)
    assert github_sim.pulls(REPO) == []
    assert bot.worktrees() == []


async def test_a_job_stopped_at_shutdown_leaves_the_history_to_a_later_job(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted_issue(github_sim, anthropic_sim, SpecCoderPolicy(turn_latency=0.3))
    [job] = await bot.route_new()
    claimed = await bot.queue.claim("test-worker")
    assert claimed is not None and claimed.id == job.id
    ws = bot.runtime.workspace
    real_git = ws._git
    unshallow: list[str] = []

    async def spy(args, cwd, **kw):  # type: ignore[no-untyped-def]
        if "--unshallow" in args:
            unshallow.append(str(cwd))
        return await real_git(args, cwd, **kw)

    monkeypatch.setattr(ws, "_git", spy)
    running = asyncio.create_task(bot.handler(claimed, JobControl(bot.queue, claimed)))
    await until_the_model_is_called(anthropic_sim)

    running.cancel()  # the worker stops: its grace period is over
    with pytest.raises(asyncio.CancelledError):
        await running

    # no history fetch began on the way out (it could outlast the process's stop timeout)
    assert unshallow == []
    assert (ws.mirror_path(REPO) / "shallow").exists()
    assert bot.worktrees() == []
    monkeypatch.undo()
    again = await bot.run_job(claimed.model_copy(update={"attempts": 2}))  # handed back
    assert again.state == JobState.succeeded, again.error
    assert not (ws.mirror_path(REPO) / "shallow").exists()  # the later job completed it


async def test_secondary_rate_limit_is_waited_out(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    scripted_issue(github_sim, anthropic_sim)
    github_sim.rate_limit(after=6, retry_after=1, count=1)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert any(r.status == 403 for r in github_sim.requests)
    assert len(github_sim.pulls(REPO)) == 1


# --- through the real `pact-bot serve` process ---------------------------------------


async def test_serve_smoke_signed_delivery_becomes_a_job_and_a_pr(
    bot_server: BotServer,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = scripted_issue(github_sim, anthropic_sim)

    await github_sim.wait_for_deliveries_async(timeout=10)
    labelled = [d for d in github_sim.deliveries if d.event == "issues" and d.action == "labeled"]
    assert [d.status for d in labelled] == [202], bot_server.logs()
    job = await bot_server.wait_for_job(JobState.succeeded, timeout=90)

    assert job.kind == "code" and job.number == number
    assert job.delivery_id == labelled[0].id
    pulls = github_sim.pulls(REPO)
    assert [p["head"]["ref"] for p in pulls] == ["pact/code/cart"]
    assert job.pr_url == pulls[0]["html_url"]
    # no secret of ours in what the server logged
    logs = bot_server.logs()
    assert github_sim.webhook_secret not in logs
    assert anthropic_sim.api_key not in logs


async def test_progress_edits_are_throttled(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    bot.runtime.progress_interval = 1.0
    # The clock stands still: every turn falls inside the interval, though the turns take
    # longer than it in real time (a throttle on the real clock would edit per turn).
    bot.runtime.clock = FakeClock()
    number = scripted_issue(github_sim, anthropic_sim, SpecCoderPolicy(turn_latency=0.25))

    [job] = await bot.process()

    assert job.state == JobState.succeeded and job.turns >= 6
    edits = [
        r
        for r in github_sim.requests
        if r.method == "PATCH" and "/issues/comments/" in r.path and r.status == 200
    ]
    turn_edits = [r for r in edits if "so far" in str(r.body)]
    assert turn_edits == []  # not one per turn: only phase changes and the end, forced
    phases = ["reading specs", "implementing", "opening the pull request"]
    assert [next(p for p in phases if p in str(r.body)) for r in edits[:-1]] == phases
    assert "opened" in progress_comment(github_sim, number, job.id)


# --- the first message (pure) ---------------------------------------------------------


def test_repo_map_is_bounded_for_large_repositories() -> None:
    from pact_bot.pipeline.prompts import repo_map

    small = ["a.py", "src/b.py"]
    assert repo_map(small) == "a.py\nsrc/b.py"
    big = [f"src/pkg{i}/mod{j}.py" for i in range(50) for j in range(40)] + ["README.md"]
    text = repo_map(big, limit=100)
    lines = text.splitlines()
    assert len(lines) <= 102
    assert "src/pkg0/ (40 files)" in text
    assert "README.md" in text
    assert "(2001 tracked files in total)" in text


def test_first_message_holds_specs_context_map_and_repo_instructions() -> None:
    from pact_bot.pipeline.prompts import first_message

    text = first_message(
        specs=[("docs/cart-spec.md", SPEC)],
        context="Requested by @alice on issue #1: Cart",
        instructions="Keep it small.",
        files=["README.md", "docs/cart-spec.md"],
        agent_docs=[("AGENTS.md", "Run make test.")],
        summary_file="docs/implementation-summary-cart.md",
        sections={"docs/cart-spec.md": ["API"]},
    )
    assert '<spec path="/workspace/docs/cart-spec.md" changed_sections="API">' in text
    assert "Keep a shopping cart per user." in text
    assert "<instructions>\nKeep it small.\n</instructions>" in text
    assert '<repository_instructions path="AGENTS.md">\nRun make test.' in text
    assert "/workspace/docs/implementation-summary-cart.md" in text
