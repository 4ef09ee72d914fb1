"""`/pact rebase` on a bot PR whose base moved in a conflicting way: one merge commit, the
conflict resolved by the (scripted) agent in the sandbox, pushed without force (the
simulator's pre-receive refuses a non-fast-forward update here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sim.anthropic import AnthropicSim, Turn, text, tool_use
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import Conversation, Script, ScriptPolicy, cat_n_lines

from pact_bot.jobs.model import JobState

REPO = "acme/shop"
BRANCH = "pact/code/cart"
BASE_CART = "def total(items):\n    return sum(items)\n"
PR_CART = "def total(items):\n    return sum(items) if items else 0\n"
MAIN_CART = "def total(items: list[int]) -> int:\n    return sum(items)\n"
RESOLVED = "def total(items: list[int]) -> int:\n    return sum(items) if items else 0\n"

# A push that is not a fast-forward of the branch is refused, as with branch protection.
NO_FORCE_HOOK = """#!/bin/sh
while read old new ref; do
  if [ "$old" != "0000000000000000000000000000000000000000" ] && \\
     ! git merge-base --is-ancestor "$old" "$new"; then
    echo "non-fast-forward update of $ref refused" >&2
    exit 1
  fi
done
exit 0
"""


class ResolvePolicy(ScriptPolicy):
    """Reads the conflicted file named in the task and writes the resolution."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        assert ed is not None
        assert "`src/cart.py`" in convo.first_user_text
        fb = yield Turn(
            [
                text("Looking at the conflict."),
                tool_use(ed, {"command": "view", "path": "/workspace/src/cart.py"}),
            ]
        )
        self.seen.append(fb.result.text)
        lines = cat_n_lines(fb.result.text)
        whole = "\n".join(lines[n] for n in sorted(lines))
        yield Turn(
            [
                text("Keeping the base's type hints and this PR's empty-list guard."),
                tool_use(
                    ed,
                    {
                        "command": "str_replace",
                        "path": "/workspace/src/cart.py",
                        "old_str": whole,
                        "new_str": RESOLVED.rstrip("\n"),
                    },
                ),
            ]
        )
        while True:
            yield Turn([text("`src/cart.py`: kept the type hints of main and the guard.")])


def setup(github: GitHubSim) -> int:
    owner, name = REPO.split("/")
    repo = github.add_repo(owner, name, files={"README.md": "# Shop\n", "src/cart.py": BASE_CART})
    github.add_user("alice", "write")
    github.commit(REPO, BRANCH, {"src/cart.py": PR_CART}, "Guard", user=github.bot_login)
    number = github.create_pull(repo, BRANCH, "main", "Cart", "x", github.bot_login).number
    github.commit(
        REPO, "main", {"src/cart.py": MAIN_CART, "NEWS.md": "typed\n"}, "Types", user="alice"
    )
    hook = Path(repo.path) / "hooks" / "pre-receive"
    hook.write_text(NO_FORCE_HOOK)
    return number


async def test_rebase_merges_the_base_and_the_agent_resolves_the_conflict(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = setup(github_sim)
    before = github_sim.branches(REPO)[BRANCH]
    main = github_sim.branches(REPO)["main"]
    policy = ResolvePolicy()
    anthropic_sim.set_policy(policy)
    github_sim.comment(REPO, number, "/pact rebase", user="alice")

    jobs = await bot.process()

    [job] = [j for j in jobs if j.kind == "revise"]
    assert job.state is JobState.succeeded, job.error
    [merge] = github_sim.commits(REPO, BRANCH)[:1]
    assert merge.parents == (before, main)  # one merge commit: nothing rewritten
    assert merge.message.startswith("Merge branch 'main' into pact/code/cart")
    assert (github_sim.read_file(REPO, BRANCH, "src/cart.py") or "").strip() == RESOLVED.strip()
    assert github_sim.read_file(REPO, BRANCH, "NEWS.md") == "typed\n"  # the base came in
    assert "<<<<<<<" in policy.seen[0] and ">>>>>>>" in policy.seen[0]  # markers in the tree
    said = [
        c.body for c in github_sim.issue_comments(REPO, number) if c.author == github_sim.bot_login
    ]
    assert any("resolved the conflicts in `src/cart.py`" in c for c in said)


async def test_rebase_without_conflicts_needs_no_agent(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    owner, name = REPO.split("/")
    repo = github_sim.add_repo(owner, name, files={"README.md": "# Shop\n"})
    github_sim.add_user("alice", "write")
    github_sim.commit(REPO, BRANCH, {"a.py": "a\n"}, "A", user=github_sim.bot_login)
    number = github_sim.create_pull(repo, BRANCH, "main", "A", "x", github_sim.bot_login).number
    github_sim.commit(REPO, "main", {"b.py": "b\n"}, "B", user="alice")
    github_sim.comment(REPO, number, "/pact rebase", user="alice")

    await bot.process()

    merge = github_sim.commits(REPO, BRANCH)[0]
    assert len(merge.parents) == 2
    assert github_sim.read_file(REPO, BRANCH, "b.py") == "b\n"
    assert anthropic_sim.requests == []


def test_the_no_force_hook_refuses_a_rewrite(github_sim: GitHubSim) -> None:
    """The pre-receive rule the rebase test relies on does refuse a non-fast-forward."""
    setup(github_sim)
    repo = github_sim.repo(REPO)
    old, main = github_sim.branches(REPO)[BRANCH], github_sim.branches(REPO)["main"]
    hook = Path(repo.path) / "hooks" / "pre-receive"
    out = subprocess.run(
        [str(hook)],
        input=f"{old} {main} refs/heads/{BRANCH}\n",
        capture_output=True,
        text=True,
        env={"GIT_DIR": str(repo.path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1 and "non-fast-forward" in out.stderr


async def test_auto_rebase_merges_a_conflicting_bot_pr_on_its_own(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = setup(github_sim)
    github_sim.commit(
        REPO, "main", {".github/pact.yml": "auto_rebase: true\n"}, "cfg", user="alice"
    )
    # what an earlier job of this repository cached for ingress
    await bot.queue.set_repo_config(REPO, {"auto_rebase": True})
    assert github_sim.pull(REPO, number)["mergeable_state"] == "dirty"
    anthropic_sim.set_policy(ResolvePolicy())
    github_sim.update_pull(github_sim.repo(REPO), number, {"title": "Cart!"}, "alice")

    jobs = await bot.process()

    [job] = [j for j in jobs if j.kind == "revise"]
    assert job.state is JobState.succeeded, job.error
    assert len(github_sim.commits(REPO, BRANCH)[0].parents) == 2
    pr = github_sim.pull(REPO, number)
    assert pr["mergeable_state"] == "clean"


async def test_without_auto_rebase_a_conflict_starts_nothing(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = setup(github_sim)
    before = github_sim.branches(REPO)[BRANCH]
    github_sim.update_pull(github_sim.repo(REPO), number, {"title": "Cart!"}, "alice")

    await bot.process()

    assert github_sim.branches(REPO)[BRANCH] == before
    assert anthropic_sim.requests == []
