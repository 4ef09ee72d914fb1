"""Partial work is kept: a code job that runs out of budget after writing files leaves a
draft PR marked partial; `/pact continue` finishes it on the same branch and marks it ready
for review through GraphQL (REST cannot un-draft: the simulator refuses it too)."""

from __future__ import annotations

import asyncio

import httpx
from sim.anthropic import AnthropicSim, Turn, text, tool_use
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import Conversation, Script, ScriptPolicy

from pact_bot.jobs.model import JobState

REPO = "acme/shop"
SPEC = "# Cart service\n\n## API\n- `add(item, qty)` adds an item.\n- `total()` sums.\n"
CART = "class Cart:\n    pass\n"


class StopsHalfwayPolicy(ScriptPolicy):
    """Writes the module, then keeps looking at it (never finishes): a budget stops it."""

    def __init__(self, path: str = "src/cart.py", turn_latency: float = 0.0) -> None:
        self.path = path
        self.turn_latency = turn_latency

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        assert ed is not None
        yield Turn(
            [
                text("Writing the Cart class first."),
                tool_use(
                    ed,
                    {"command": "create", "path": f"/workspace/{self.path}", "file_text": CART},
                ),
            ]
        )
        while True:
            yield Turn(
                [
                    text("Now adding `total()`; checking the class again."),
                    tool_use(ed, {"command": "view", "path": f"/workspace/{self.path}"}),
                ]
            )


class FinishesPolicy(ScriptPolicy):
    """The continuing run: writes `total()` and the summary, then ends."""

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        assert ed is not None
        yield Turn(
            [
                text("Adding total()."),
                tool_use(
                    ed,
                    {
                        "command": "str_replace",
                        "path": "/workspace/src/cart.py",
                        "old_str": "    pass\n",
                        "new_str": "    def total(self) -> int:\n        return 0\n",
                    },
                ),
            ]
        )
        yield Turn(
            [
                text("Writing the summary."),
                tool_use(
                    ed,
                    {
                        "command": "create",
                        "path": "/workspace/docs/implementation-summary-cart.md",
                        "file_text": "# Summary: cart\n\n## Assumptions\n- none\n",
                    },
                ),
            ]
        )
        while True:
            yield Turn([text("The cart is complete.")])


def setup(github: GitHubSim, pact_yml: str | None = None) -> int:
    owner, name = REPO.split("/")
    files = {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC}
    if pact_yml:
        files[".github/pact.yml"] = pact_yml
    github.add_repo(owner, name, files=files)
    github.add_user("alice", "write")
    number = github.open_issue(REPO, "Cart", body="Implement docs/cart-spec.md", user="alice")
    github.label_issue(REPO, number, "pact:code", user="alice")
    return number


def first_text(request: dict) -> str:  # type: ignore[type-arg]
    content = request["messages"][0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


async def test_budget_stop_leaves_a_draft_partial_pr_and_continue_finishes_it(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    issue = setup(github_sim)
    bot.configure(pact_max_turns=3)
    anthropic_sim.set_policy(StopsHalfwayPolicy())

    [code] = await bot.process()

    assert code.state is JobState.failed and (code.error or "").startswith("partial:")
    [pr] = github_sim.pulls(REPO)
    assert pr["draft"] is True
    assert pr["title"] == "[partial] Implement cart"
    assert pr["base"]["ref"] == "main" and pr["head"]["ref"] == "pact/code/cart"
    body = pr["body"]
    assert "**Partial work.**" in body and "it reached its budget (3 turns)" in body
    assert "Now adding `total()`; checking the class again." in body  # its last words
    assert '`str_replace_based_edit_tool` {"command": "view"' in body  # its last calls
    assert "| `src/cart.py` | added |" in body
    assert f"Closes #{issue}" in body
    assert github_sim.read_file(REPO, "pact/code/cart", "src/cart.py") == CART
    assert github_sim.read_file(REPO, "main", "src/cart.py") is None  # never the default
    progress = [c.body for c in github_sim.issue_comments(REPO, issue)][-1]
    assert f"draft pull request #{pr['number']}" in progress
    assert "/pact continue [instructions]" in progress

    bot.configure(pact_max_turns=20)
    anthropic_sim.set_policy(FinishesPolicy())
    before = len(anthropic_sim.requests)
    github_sim.comment(REPO, pr["number"], "/pact continue keep it simple", user="alice")
    jobs = await bot.process()

    [cont] = [j for j in jobs if j.kind == "revise"]
    assert cont.state is JobState.succeeded, cont.error
    task = first_text(anthropic_sim.requests[before])
    assert "PARTIAL work" in task and "`src/cart.py`" in task
    assert "Now adding `total()`; checking the class again." in task  # the last notes
    assert "keep it simple" in task
    after = github_sim.pull(REPO, pr["number"])
    assert after["draft"] is False
    assert ("markPullRequestReadyForReview", pr["number"]) in github_sim.graphql_calls
    assert after["title"] == "Implement cart"
    assert "Partial work" not in after["body"] and f"Closes #{issue}" in after["body"]
    commits = github_sim.commits(REPO, "pact/code/cart")
    assert commits[0].message.startswith("Continue the partial work")
    assert commits[1].message.startswith("WIP: Implement cart (partial")  # same branch


async def test_partial_work_touching_a_protected_path_is_not_pushed(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    issue = setup(github_sim)
    bot.configure(pact_max_turns=3)
    anthropic_sim.set_policy(StopsHalfwayPolicy(".github/workflows/ci.yml"))

    [code] = await bot.process()

    assert code.state is JobState.failed
    assert github_sim.pulls(REPO) == []
    assert "pact/code/cart" not in github_sim.branches(REPO)
    progress = [c.body for c in github_sim.issue_comments(REPO, issue)][-1]
    assert "partial work was NOT pushed: it changes protected paths" in progress
    assert "`.github/workflows/ci.yml`" in progress


def test_rest_cannot_undraft(github_sim: GitHubSim) -> None:
    owner, name = REPO.split("/")
    repo = github_sim.add_repo(owner, name)
    github_sim.commit(REPO, "x", {"a.txt": "a\n"}, "a", user=github_sim.bot_login)
    pr = github_sim.create_pull(repo, "x", "main", "X", "", github_sim.bot_login, True)
    token = github_sim.create_token([REPO])
    r = httpx.patch(
        f"{github_sim.base_url}/repos/{REPO}/pulls/{pr.number}",
        json={"draft": False},
        headers={"Authorization": f"token {token}"},
    )
    assert r.status_code == 422
    assert github_sim.pull(REPO, pr.number)["draft"] is True


async def test_cancel_after_changes_keeps_them_as_a_draft(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    issue = setup(github_sim)
    anthropic_sim.set_policy(StopsHalfwayPolicy(turn_latency=0.2))
    running = asyncio.create_task(bot.process())
    for _ in range(400):
        if len(anthropic_sim.requests) >= 3:  # the module is written by now
            break
        await asyncio.sleep(0.05)
    assert await bot.queue.request_cancel(f"{REPO}#{issue}")
    [job] = await running

    assert job.state is JobState.cancelled
    [pr] = github_sim.pulls(REPO)
    assert pr["draft"] is True and "the job was cancelled" in pr["body"]
    assert github_sim.read_file(REPO, "pact/code/cart", "src/cart.py") == CART
    progress = [c.body for c in github_sim.issue_comments(REPO, issue)][-1]
    assert "the job was cancelled" in progress and f"draft pull request #{pr['number']}" in progress
