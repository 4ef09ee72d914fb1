"""The bot PR's body stays true: after a revise its file table lists the new files, its
assumptions come from the summary as it is now, and the cost is summed over the jobs."""

from __future__ import annotations

import re

from sim.anthropic import AnthropicSim, Turn, text, tool_use
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import Conversation, Script, ScriptPolicy, SpecCoderPolicy

from pact_bot.pipeline.pr_refresh import refreshed_body, totals_of
from pact_bot.pipeline.pr_text import FileRow, Summary
from pact_bot.pipeline.report import RunStats

REPO = "acme/shop"
BRANCH = "pact/code/cart"
SPEC = "# Cart service\n\n## API\n- `add(item, qty)` adds an item.\n- `total()` sums.\n"


class AddFilePolicy(ScriptPolicy):
    """The coder asked for a change on its PR: adds a module and a new assumption."""

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        assert ed is not None
        yield Turn(
            [
                text("Adding the discounts module."),
                tool_use(
                    ed,
                    {
                        "command": "create",
                        "path": "/workspace/src/discounts.py",
                        "file_text": "def discount(total: int) -> int:\n    return total\n",
                    },
                ),
            ]
        )
        fb = yield Turn(
            [
                text("Recording the assumption."),
                tool_use(
                    ed,
                    {
                        "command": "view",
                        "path": "/workspace/docs/implementation-summary-cart.md",
                    },
                ),
            ]
        )
        old = re.search(r"## Assumptions", fb.result.text)
        assert old is not None
        yield Turn(
            [
                text("Adding it."),
                tool_use(
                    ed,
                    {
                        "command": "str_replace",
                        "path": "/workspace/docs/implementation-summary-cart.md",
                        "old_str": "## Assumptions",
                        "new_str": "## Assumptions\n\n- Discounts never exceed the total.",
                    },
                ),
            ]
        )
        while True:
            yield Turn([text("I added `src/discounts.py`.")])


async def test_pr_body_after_a_revise_shows_new_files_and_summed_cost(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    owner, name = REPO.split("/")
    github_sim.add_repo(owner, name, files={"README.md": "# Shop\n", "docs/cart-spec.md": SPEC})
    github_sim.add_user("alice", "write")
    anthropic_sim.set_policy(SpecCoderPolicy())
    issue = github_sim.open_issue(REPO, "Cart", body="Implement docs/cart-spec.md", user="alice")
    github_sim.label_issue(REPO, issue, "pact:code", user="alice")
    [code] = await bot.process()
    [pr] = github_sim.pulls(REPO)
    first = totals_of(pr["body"])
    assert first.cost_usd > 0 and first.jobs == (code.id,)
    assert "src/discounts.py" not in pr["body"]

    anthropic_sim.set_policy(AddFilePolicy())
    github_sim.comment(REPO, pr["number"], "/pact code add a discounts module", user="alice")
    jobs = await bot.process()
    [revise] = [j for j in jobs if j.kind == "revise"]

    body = github_sim.pull(REPO, pr["number"])["body"]
    assert body.startswith(pr["body"].split("### Files")[0])  # the trigger line stays
    assert f"Closes #{issue}" in body
    assert "| `src/discounts.py` | added | 2 | 0 |" in body  # the whole PR's files
    assert "| `src/cart.py` | added |" in body
    assert "- Discounts never exceed the total." in body
    revise_cost = revise.cost_usd
    after = totals_of(body)
    assert after.jobs == (code.id, revise.id)
    assert abs(after.cost_usd - (first.cost_usd + revise_cost)) < 0.001
    assert f"${after.cost_usd:.2f} · {after.turns} turns over 2 jobs" in body


def test_a_retried_job_is_counted_once() -> None:
    body = "Implements x (label):\n\n### Files\n\nold\n\n### Run\n\n$0.50 · 4 turns · 1m\n"
    stats = RunStats(turns=3, cost_usd=0.25)
    rows = [FileRow("a.py", "added", 1, 0)]
    once = refreshed_body(
        body, job_id="j2", rows=rows, summary=Summary(None, ()), stats=stats, model="m"
    )
    twice = refreshed_body(
        once, job_id="j2", rows=rows, summary=Summary(None, ()), stats=stats, model="m"
    )
    assert totals_of(once).cost_usd == totals_of(twice).cost_usd == 0.75
    assert totals_of(twice).turns == 7
    assert once == twice
    assert once.startswith("Implements x (label):\n\n### Files")
