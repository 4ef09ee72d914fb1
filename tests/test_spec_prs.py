"""Spec PRs end to end: the "PACT Code" check run and its "Implement" button, `spec_prs: run`
and `off`, pagination of the PR's files, changed sections named from the diff."""

from __future__ import annotations

from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import attr

from pact_bot.jobs.model import JobState
from pact_bot.pipeline.spec_check import check_output
from pact_bot.specs import SpecChange

REPO = "acme/shop"
SPEC = "# Cart service\n\n## Purpose\nKeep a cart.\n\n## API\n- `add(item, qty)`\n"


def setup(github: GitHubSim, config: str | None = None) -> None:
    files = {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC}
    if config is not None:
        files[".github/pact.yml"] = config
    github.add_repo("acme", "shop", files=files)
    github.add_user("alice", "write")


def spec_pr(github: GitHubSim, extra: dict[str, str | bytes | None] | None = None) -> int:
    changed = SPEC.replace("- `add(item, qty)`\n", "- `add(item, qty)`\n- `total()`\n")
    return github.open_pr(
        REPO,
        "spec/cart",
        {"docs/cart-spec.md": changed, **(extra or {})},
        "Cart: total()",
        user="alice",
    )


async def test_button_on_the_check_run_opens_a_pr_for_the_spec_branch(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy())
    number = spec_pr(github_sim)

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [("spec_check", JobState.succeeded)]
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "name") == "PACT Code"
    assert attr(run, "head_sha") == github_sim.pull(REPO, number)["head"]["sha"]
    assert [a["identifier"] for a in attr(run, "actions")] == ["implement"]
    output = attr(run, "output")
    assert output["title"] == "1 spec ready to implement"
    assert "`docs/cart-spec.md` (modified): sections “API”" in output["summary"]
    assert anthropic_sim.requests == []  # nothing runs before someone presses

    github_sim.press_check_run_action(REPO, attr(run, "id"), "implement", user="alice")
    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [("code", JobState.succeeded)], jobs
    [pr] = [p for p in github_sim.pulls(REPO) if p["number"] != number]
    assert pr["base"]["ref"] == "spec/cart" and pr["head"]["ref"] == "pact/code/cart"
    assert "Implement button" in pr["body"]


async def test_spec_prs_run_opens_the_pr_with_no_human_action(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup(github_sim, "spec_prs: run\n")
    anthropic_sim.set_policy(SpecCoderPolicy())
    number = spec_pr(github_sim)

    jobs = await bot.process()

    kinds = [(j.kind, j.state) for j in jobs]
    assert kinds == [("spec_check", JobState.succeeded), ("code", JobState.succeeded)], jobs
    [pr] = [p for p in github_sim.pulls(REPO) if p["number"] != number]
    assert pr["base"]["ref"] == "spec/cart"
    runs = {attr(r, "head_sha"): r for r in github_sim.check_runs(REPO)}
    spec_run = runs[github_sim.pull(REPO, number)["head"]["sha"]]
    assert attr(spec_run, "actions") == []
    assert attr(spec_run, "output")["title"] == "Implementing 1 spec"
    assert jobs[1].id in attr(spec_run, "output")["summary"]


async def test_spec_prs_off_and_prs_without_specs_get_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim, "spec_prs: off\n")
    spec_pr(github_sim)
    github_sim.open_pr(REPO, "docs", {"docs/guide.md": "# Guide\n"}, "Guide", user="alice")

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [("spec_check", JobState.succeeded)] * 2, [
        j.error for j in jobs
    ]
    assert github_sim.check_runs(REPO) == []


async def test_spec_found_past_the_first_page_of_files(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim)
    many: dict[str, str | bytes | None] = {f"src/m{i:03d}.py": f"x = {i}\n" for i in range(120)}
    many["docs/zz-new-spec.md"] = "# ZZ\n\n## Scope\nNew.\n"
    github_sim.open_pr(REPO, "big", many, "Big", user="alice")

    await bot.process()

    [run] = github_sim.check_runs(REPO)
    assert "`docs/zz-new-spec.md` (added)" in attr(run, "output")["summary"]
    pages = [r for r in github_sim.requests if r.path.endswith("/pulls/1/files")]
    assert len(pages) >= 2


async def test_changed_lines_far_below_their_heading_are_named(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    long = "# Cart\n\n## Limits\n" + "".join(f"- rule {i}\n" for i in range(30))
    setup(github_sim)
    github_sim.commit(REPO, "main", {"docs/limits-spec.md": long}, "Limits spec")
    changed = long.replace("- rule 20\n", "- rule 20 (at most 99 items)\n")
    github_sim.open_pr(REPO, "limits", {"docs/limits-spec.md": changed}, "Limits", user="alice")

    await bot.process()

    [run] = github_sim.check_runs(REPO)
    assert "`docs/limits-spec.md` (modified): sections “Limits”" in attr(run, "output")["summary"]


async def test_invalid_config_on_a_spec_pr_is_quoted_in_the_check_run(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
) -> None:
    setup(github_sim, "spec_prs: sometimes\n")
    spec_pr(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed]
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "conclusion") == "neutral" and attr(run, "actions") == []
    assert "> .github/pact.yml, line 1: spec_prs:" in attr(run, "output")["summary"]


def test_check_output_names_specs_and_sections() -> None:
    changes = [SpecChange("docs/a-spec.md", "added", ("Scope", "API")), SpecChange("b", "x")]
    out = check_output(changes, "suggest")
    assert out["title"] == "2 specs ready to implement"
    assert "- `docs/a-spec.md` (added): sections “Scope”, “API”" in out["summary"]
    assert check_output(changes[:1], "run", "j1")["title"] == "Implementing 1 spec"
