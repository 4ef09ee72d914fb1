"""Spec drift end to end: a push to the default branch → drift job → "PACT Drift" check run
→ "Update code" → an issue and a code job told only what changed."""

from __future__ import annotations

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import attr, first_text

from pact_bot.jobs.model import JobKind, JobState

REPO = "acme/shop"
SPEC = """# Cart service

## Adding items
- R1: `add(item, qty)` MUST add an item to the cart.

## Totals
- R2: `total()` MUST return the sum of the cart.
"""
SUMMARY = """# Implementation Summary: Cart

Implemented `docs/cart-spec.md`.

## Traceability

| Requirement | Files | Tests | Status |
| --- | --- | --- | --- |
| R1 | src/cart.py | tests/test_cart.py | implemented |
| R2 | src/cart.py | tests/test_cart.py | implemented |
"""
FILES = {
    "README.md": "# Shop\n",
    "docs/cart-spec.md": SPEC,
    "docs/implementation-summary-cart.md": SUMMARY,
    "src/cart.py": "STATUS = 'implemented'\n",
    "tests/test_cart.py": "def test_cart() -> None:\n    pass\n",
}
NEW_TOTALS = SPEC.replace(
    "- R2: `total()` MUST return the sum of the cart.",
    "- R2: `total()` MUST return the sum of the cart, tax included.",
)


def setup(github: GitHubSim, config: str | None = None) -> None:
    files = dict(FILES)
    if config is not None:
        files[".github/pact.yml"] = config
    github.add_repo("acme", "shop", files=files)
    github.add_user("alice", "write")
    github.add_user("rita", "read")


async def test_spec_edit_on_main_gets_a_drift_check_whose_button_updates_only_that_section(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim)
    # new files: the summary and src/cart.py are there already (the editor cannot `create` them)
    anthropic_sim.set_policy(
        SpecCoderPolicy(source_path="src/{module}_tax.py", test_path="tests/test_{module}_tax.py")
    )
    sha = github_sim.push(REPO, "main", {"docs/cart-spec.md": NEW_TOTALS}, user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [(JobKind.drift, JobState.succeeded)], jobs
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "name") == "PACT Drift"
    assert attr(run, "head_sha") == sha
    assert attr(run, "conclusion") == "neutral"
    output = attr(run, "output")
    assert "`docs/cart-spec.md`: sections “Totals”" in output["summary"]
    assert "Adding items" not in output["summary"]
    assert "Requirements in the changed sections: R2" in output["text"]
    assert [a["identifier"] for a in attr(run, "actions")] == ["pact-update"]
    assert anthropic_sim.requests == []  # nothing runs before someone presses

    github_sim.press_check_run_action(REPO, attr(run, "id"), "pact-update", user="alice")
    jobs = await bot.process()

    kinds = [(j.kind, j.state) for j in jobs]
    assert kinds == [(JobKind.drift, JobState.succeeded), (JobKind.code, JobState.succeeded)]
    code = jobs[1]
    issue = github_sim.issue(REPO, code.number or 0)
    assert issue.title == "Update the code for docs/cart-spec.md"
    assert "“Totals”" in (issue.body or "")
    first = first_text(anthropic_sim)
    assert "These sections changed: “Totals”." in first
    assert "Requirements in them: R2." in first
    assert "The existing implementation is in: src/cart.py." in first
    assert "Adding items" not in first
    assert "## Totals" not in first  # the spec itself is not pasted: only what changed
    [pr] = github_sim.pulls(REPO)
    assert f"Closes #{code.number}" in pr["body"]


async def test_pushes_that_are_not_drift_post_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim)
    # the bot's own push, a push to another branch, and a push that changes no implemented
    # spec and no implementing file
    github_sim.push(REPO, "main", {"docs/cart-spec.md": NEW_TOTALS}, user=github_sim.bot_login)
    github_sim.push(REPO, "feature", {"docs/cart-spec.md": SPEC + "\nMore.\n"}, user="alice")
    github_sim.push(REPO, "main", {"README.md": "# Shop!\n"}, user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [(JobKind.drift, JobState.succeeded)]
    reasons = [reason for event, reason in bot.routed if event.startswith("push")]
    assert reasons == ["sent by a bot", "push to another branch", "push to the default branch"]
    assert github_sim.check_runs(REPO) == []


async def test_drift_off_posts_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim, "drift: off\n")
    github_sim.push(REPO, "main", {"docs/cart-spec.md": NEW_TOTALS}, user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [(JobKind.drift, JobState.succeeded)]
    assert github_sim.check_runs(REPO) == []


async def test_code_changed_alone_is_drift_without_a_button_and_a_merged_update_is_not(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim)
    github_sim.push(REPO, "main", {"src/cart.py": "STATUS = 'changed'\n"}, user="alice")
    # code and its summary together (what merging a bot PR pushes): an update, not drift
    github_sim.push(
        REPO,
        "main",
        {
            "src/cart.py": "STATUS = 'again'\n",
            "docs/implementation-summary-cart.md": SUMMARY + "\n",
        },
        user="alice",
    )

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded, JobState.succeeded]
    [run] = github_sim.check_runs(REPO)
    output = attr(run, "output")
    assert output["title"] == "1 implementing file changed alone"
    assert "`src/cart.py` modified: implements `docs/cart-spec.md` (R1, R2)" in output["text"]
    assert attr(run, "actions") == []


async def test_update_button_pressed_by_a_read_only_user_starts_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim)
    github_sim.push(REPO, "main", {"docs/cart-spec.md": NEW_TOTALS}, user="alice")
    await bot.process()
    [run] = github_sim.check_runs(REPO)

    github_sim.press_check_run_action(REPO, attr(run, "id"), "pact-update", user="rita")
    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [(JobKind.drift, JobState.failed)]
    assert "lacks write permission" in (jobs[0].error or "")
    assert anthropic_sim.requests == []
    assert github_sim.pulls(REPO) == []


async def test_a_push_whose_range_is_gone_fails_the_job_with_the_reason_and_posts_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim)
    repo = github_sim.repo(REPO)
    after = github_sim.branches(REPO)["main"]
    github_sim.announce_push(repo, "main", "f" * 40, after, "alice")  # a force push's old tip

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [(JobKind.drift, JobState.failed)]
    assert (jobs[0].error or "").startswith("api_error: HTTP 404 on GET")
    assert "/compare/" in (jobs[0].error or "")
    assert github_sim.check_runs(REPO) == []


async def test_an_update_button_without_a_push_range_starts_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim)
    repo = github_sim.repo(REPO)
    run = github_sim.create_check_run(
        repo,
        github_sim.app_id,
        {
            "name": "PACT Drift",
            "head_sha": github_sim.branches(REPO)["main"],
            "status": "completed",
            "conclusion": "neutral",
            "external_id": "drift:../../x...HEAD",
            "actions": [{"label": "Update code", "description": "d", "identifier": "pact-update"}],
        },
    )

    github_sim.press_check_run_action(REPO, run.id, "pact-update", user="alice")
    jobs = await bot.process()

    assert jobs == []
    assert ("check_run.requested_action", "update button without a push range") in bot.routed
