"""CI follow-up end to end: the simulator's "CI" fails a check on a bot PR, pact-bot runs one
revise job with the failures as its task, pushes a fix, and CI turns green; plus the caps
(attempts, a person's push, PRs that are not the bot's, `ci: off`) and the routing rules."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from conftest import load_payload
from sim.anthropic import AnthropicSim, Turn, text, tool_use
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.ci import CiResult
from sim.github import GitHubSim
from sim.policies import Conversation, Script, ScriptPolicy, cat_n_lines
from test_code_pipeline import bot_comments, first_text

from pact_bot.jobs.model import Job, JobState
from pact_bot.triggers import BotIdentity, TriggerConfig, route
from pact_bot.web.app import create_app

REPO = "acme/shop"
BRANCH = "pact/code/cart"
SPEC = "# Cart service\n\n- `total()` sums the quantities.\n"
BUG = "        return sum(self.items.values()) - 1\n"
GOOD = "        return sum(self.items.values())\n"
CART = (
    "class Cart:\n"
    "    def __init__(self) -> None:\n"
    "        self.items: dict[str, int] = {}\n"
    "\n"
    "    def total(self) -> int:\n" + BUG
)
SUMMARY = "# Implementation summary: cart\n\n## Files\n- src/cart.py\n\n## Assumptions\n- none\n"
PR_BODY = "This pull request implements the following spec:\n\n- `docs/cart-spec.md`\n"
LOG = "Run pytest -q\n" + "collected 3 items\n" * 400 + "E   assert 2 == 3\nFAILED test_total\n"


class CiFixPolicy(ScriptPolicy):
    """Reads `path:line: failure: expected `X`, got `Y`` annotations from the task and
    replaces Y with X in that file; ends with one FIXED / NOT FIXED line per check."""

    def script(self, convo: Conversation) -> Script:
        task = convo.first_user_text
        ed = convo.editor
        assert ed is not None
        checks = re.findall(r"^### Check `([^`]+)`", task, re.M)
        fixes = re.findall(r"- (\S+?):\d+: failure: expected `([^`]+)`, got `([^`]+)`", task)
        done: list[str] = []
        for path, want, got in fixes:
            fb = yield Turn(
                [
                    text(f"Viewing {path}."),
                    tool_use(ed, {"command": "view", "path": f"/workspace/{path}"}),
                ]
            )
            if got not in "\n".join(cat_n_lines(fb.result.text).values()):
                continue
            fb = yield Turn(
                [
                    text("Fixing it."),
                    tool_use(
                        ed,
                        {
                            "command": "str_replace",
                            "path": f"/workspace/{path}",
                            "old_str": got,
                            "new_str": want,
                        },
                    ),
                ]
            )
            if not fb.failed:
                done.append(path)
        lines = [
            f"FIXED {c}: corrected {', '.join(done)}"
            if done and c == "tests"
            else f"NOT FIXED {c}: nothing in the output says what to change"
            for c in checks
        ]
        while True:
            yield Turn([text("Done.\n\n" + "\n".join(lines))])


def failing_tests(cart: str, want: str = GOOD.strip(), got: str = BUG.strip()) -> CiResult:
    return CiResult(
        "tests",
        "failure",
        title="1 test failed",
        summary="test_total failed",
        annotations=[
            {
                "path": "src/cart.py",
                "start_line": 6,
                "message": f"expected `{want}`, got `{got}`",
            }
        ],
        log=LOG,
    )


def ci_from_content(github: GitHubSim, *, always_fail: bool = False) -> list[str]:
    """Install a CI that fails `tests` while the bug is in src/cart.py; returns the shas
    it ran on."""
    ran: list[str] = []

    def ci(repo: str, sha: str) -> list[CiResult]:
        ran.append(sha)
        cart = github.repo(repo).read_file(sha, "src/cart.py") or ""
        if BUG.strip() in cart:
            return [failing_tests(cart)]
        if always_fail:  # asks for one more change each time
            line = cart.splitlines()[-1].strip()
            return [failing_tests(cart, want=f"{line} + 0", got=line)]
        return [CiResult("tests", "success", title="3 passed")]

    github.ci = ci
    return ran


def open_bot_pr(github: GitHubSim, pact_yml: str | None = None, author: str | None = None) -> int:
    owner, name = REPO.split("/")
    files = {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC}
    if pact_yml is not None:
        files[".github/pact.yml"] = pact_yml
    repo = github.add_repo(owner, name, files=files)
    github.add_user("alice", "write")
    login = author or github.bot_login
    github.commit(
        REPO,
        BRANCH,
        {"src/cart.py": CART, "docs/implementation-summary-cart.md": SUMMARY},
        "Implement cart",
        user=login,
    )
    return github.create_pull(repo, BRANCH, "main", "Implement cart", PR_BODY, login).number


def head(github: GitHubSim) -> str:
    return github.branches(REPO)[BRANCH]


def failing_bot_pr(
    github: GitHubSim,
    anthropic: AnthropicSim,
    *,
    always_fail: bool = False,
    pact_yml: str | None = None,
    author: str | None = None,
) -> tuple[int, str]:
    """A bot PR (see open_bot_pr) under ci_from_content's CI, the model scripted to fix what
    fails, and `tests` failed on the PR's head: the PR's number and that head."""
    number = open_bot_pr(github, pact_yml=pact_yml, author=author)
    ci_from_content(github, always_fail=always_fail)
    anthropic.set_policy(CiFixPolicy())
    failed = head(github)
    github.run_check(REPO, failed, failing_tests(CART))
    return number, failed


def runs_on(github: GitHubSim, sha: str) -> list[tuple[str, str | None]]:
    return [(r.name, r.conclusion) for r in github.check_runs(REPO) if r.head_sha == sha]


async def settle(bot: InProcessBot, rounds: int = 6) -> list[Job]:  # noqa: F811
    """Process until no delivery starts a job (each push makes CI run again)."""
    jobs: list[Job] = []
    for _ in range(rounds):
        new = await bot.process()
        if not new:
            return jobs
        jobs += new
    raise AssertionError(f"the CI loop did not settle: {jobs}")


# --- end to end -------------------------------------------------------------------------


async def test_failing_checks_on_a_bot_pr_get_one_fix_commit_and_ci_turns_green(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    ran = ci_from_content(github_sim)
    anthropic_sim.set_policy(CiFixPolicy())
    failed = head(github_sim)
    repo = github_sim.repo(REPO)
    # two checks fail on one commit: one job, not one per check
    github_sim.run_check(REPO, failed, failing_tests(CART))
    github_sim.run_check(
        REPO, failed, CiResult("lint", "timed_out", title="lint timed out", text="ruff hung")
    )

    jobs = await settle(bot)

    working = [j for j in jobs if j.kind == "revise" and j.task.get("trigger") == "ci"]
    assert [j.state for j in working] == [JobState.succeeded]
    commits = github_sim.commits(REPO, BRANCH)
    assert commits[1].sha == failed  # one commit on top, never forced
    fix = commits[0]
    assert fix.message.startswith("Fix failing checks")
    assert fix.author_name == github_sim.bot_login
    assert github_sim.read_file(REPO, BRANCH, "src/cart.py") == CART.replace(BUG, GOOD)
    # the agent got each failed check: name, conclusion, output, annotations, the log's tail
    task = first_text(anthropic_sim)
    assert "### Check `tests`: failure" in task and "### Check `lint`: timed_out" in task
    assert "1 test failed" in task and "test_total failed" in task and "ruff hung" in task
    assert f"src/cart.py:6: failure: expected `{GOOD.strip()}`" in task
    assert "E   assert 2 == 3\nFAILED test_total" in task  # the end of the Actions log
    assert task.count("collected 3 items") < 400  # only the tail
    # CI ran on the fix and is green now
    assert ran[-1] == fix.sha
    assert sorted(runs_on(github_sim, fix.sha)) == [("PACT Code", "success"), ("tests", "success")]
    # one comment names what was fixed and what was not
    [said] = [c for c in bot_comments(github_sim, number) if "pact-ci sha=" in c]
    assert f"pushed [`{fix.sha[:7]}`]" in said and "`tests`, `lint`" in said
    assert "FIXED tests: corrected src/cart.py" in said
    assert "NOT FIXED lint:" in said
    assert repo.full_name == REPO


async def test_attempts_are_capped_then_the_pr_is_handed_back_once(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, _ = failing_bot_pr(
        github_sim, anthropic_sim, always_fail=True, pact_yml="ci:\n  max_attempts: 2\n"
    )

    await settle(bot)

    ours = [c for c in github_sim.commits(REPO, BRANCH) if c.message.startswith("Fix failing")]
    assert len(ours) == 2  # max_attempts
    comments = bot_comments(github_sim, number)
    handbacks = [c for c in comments if "pact-ci-handback" in c]
    assert len(handbacks) == 1
    assert "`tests` still fails" in handbacks[0] and "Over to you" in handbacks[0]
    # a later failure on the same PR starts no work and no second hand-back
    github_sim.run_check(REPO, head(github_sim), failing_tests(CART))
    await settle(bot)
    assert len(bot_comments(github_sim, number)) == len(comments)


async def test_a_persons_push_stops_the_loop_and_says_so_once(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    ci_from_content(github_sim)
    anthropic_sim.set_policy(CiFixPolicy())
    github_sim.push_to_pr(REPO, number, {"notes.md": "mine\n"}, "WIP", user="alice")
    await settle(bot)  # CI failed on alice's commit
    github_sim.push_to_pr(REPO, number, {"notes.md": "mine 2\n"}, "WIP 2", user="alice")
    await settle(bot)

    assert not any(
        c.author_name == github_sim.bot_login for c in github_sim.commits(REPO, BRANCH)[:2]
    )
    stops = [c for c in bot_comments(github_sim, number) if "pact-ci-stopped" in c]
    assert len(stops) == 1
    assert "Someone other than pact-bot pushed to `pact/code/cart`" in stops[0]
    assert anthropic_sim.requests == []


async def test_an_attempt_that_changes_nothing_hands_the_pr_back(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number = open_bot_pr(github_sim)
    anthropic_sim.set_policy(CiFixPolicy())
    failed = head(github_sim)
    github_sim.run_check(REPO, failed, CiResult("lint", "failure", title="E501 line too long"))

    await settle(bot)

    assert head(github_sim) == failed
    [said] = bot_comments(github_sim, number)[-1:]
    assert "made no change, so it stops here: over to you" in said
    assert "NOT FIXED lint:" in said
    # the next failure of that PR starts nothing more
    github_sim.run_check(REPO, failed, CiResult("lint2", "failure"))
    requests = len(anthropic_sim.requests)
    await settle(bot)
    assert len(anthropic_sim.requests) == requests


@pytest.mark.parametrize("case", ["not the bot's PR", "ci: off"])
async def test_failed_checks_start_no_work(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    case: str,
) -> None:
    if case == "ci: off":
        number, before = failing_bot_pr(github_sim, anthropic_sim, pact_yml="ci: off\n")
    else:
        github_sim.add_user("bob", "write")
        number, before = failing_bot_pr(github_sim, anthropic_sim, author="bob")

    await settle(bot)

    assert head(github_sim) == before
    assert bot_comments(github_sim, number) == []
    assert anthropic_sim.requests == []


async def test_without_actions_permission_the_check_output_still_arrives(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    """An installation that has not accepted `actions: read` yet keeps working."""
    inst = github_sim.auth.installations[github_sim.installation_id]
    inst.permissions.pop("actions")
    failing_bot_pr(github_sim, anthropic_sim)

    await settle(bot)

    task = first_text(anthropic_sim)
    assert "1 test failed" in task and "FAILED test_total" not in task
    assert "the App lacks `actions: read`" in task
    assert github_sim.read_file(REPO, BRANCH, "src/cart.py") == CART.replace(BUG, GOOD)


def check_suite_delivery(github: GitHubSim, number: int, sha: str) -> tuple[bytes, dict[str, str]]:
    """A signed `check_suite.completed` for a failed suite on `sha`, in GitHub's shape.

    The vendored octokit examples hold no `check_suite` payload, so the suite is the one
    GitHub nests in its real `check_run.completed` example (the same object a
    `check_suite` delivery carries), pointed at the simulator's repository and PR."""
    base = load_payload("api.github.com/check_run/completed.payload.json")
    suite = copy.deepcopy(base["check_run"]["check_suite"])
    repo = github.repo(REPO)
    pr = github.pull(REPO, number)
    suite.update(head_branch=BRANCH, head_sha=sha, conclusion="failure", after=sha)
    suite["app"]["slug"] = "github-actions"
    [pull] = suite["pull_requests"]
    pull["number"] = number
    pull["head"].update(ref=BRANCH, sha=sha)
    pull["base"].update(ref="main", sha=github.branches(REPO)["main"])
    for side in (pull["head"], pull["base"]):
        side["repo"].update(id=repo.id, name=repo.name)
    repository = copy.deepcopy(base["repository"])
    repository.update(id=repo.id, name=repo.name, full_name=REPO)
    repository["owner"]["login"] = REPO.split("/")[0]
    payload = {
        "action": "completed",
        "check_suite": suite,
        "repository": repository,
        "sender": base["sender"],
        "installation": {"id": github.installation_id},
    }
    assert pr["head"]["sha"] == sha
    body = json.dumps(payload).encode()
    signature = hmac.new(github.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "check_suite",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
    }


async def test_a_failed_check_suite_delivery_gets_the_fix_commit_and_one_comment(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    number, failed = failing_bot_pr(github_sim, anthropic_sim)  # its check_run is not routed
    body, headers = check_suite_delivery(github_sim, number, failed)

    app = create_app(bot.settings, bot.queue)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        answer = await c.post("/webhook", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    jobs = []
    while (job := await bot.queue.claim("test-worker")) is not None:
        jobs.append(await bot.run_job(job))

    [job] = jobs
    assert (job.kind, job.state, job.delivery_id) == (
        "revise",
        JobState.succeeded,
        headers["X-GitHub-Delivery"],
    ), job.error
    fix = github_sim.commits(REPO, BRANCH)[0]
    assert github_sim.commits(REPO, BRANCH)[1].sha == failed  # one commit on top
    assert fix.message.startswith("Fix failing checks")
    assert github_sim.read_file(REPO, BRANCH, "src/cart.py") == CART.replace(BUG, GOOD)
    [said] = [c for c in bot_comments(github_sim, number) if "pact-ci sha=" in c]
    assert f"pushed [`{fix.sha[:7]}`]" in said and "FIXED tests: corrected src/cart.py" in said


# --- routing ------------------------------------------------------------------------------


def _check_payload(event: str, conclusion: str, sha: str = "a" * 40, slug: str = "ci") -> Any:
    pull = {
        "number": 7,
        "head": {"ref": BRANCH, "sha": sha, "repo": {"id": 1, "name": "shop"}},
        "base": {"ref": "main", "sha": "b" * 40, "repo": {"id": 1, "name": "shop"}},
    }
    check = {
        "id": 99,
        "head_sha": sha,
        "name": "tests",
        "conclusion": conclusion,
        "app": {"id": 5, "slug": slug},
        "pull_requests": [pull],
    }
    return {
        "action": "completed",
        event: check,
        "repository": {"full_name": REPO, "name": "shop", "owner": {"login": "acme"}},
        "installation": {"id": 3},
        "sender": {"login": "github-actions[bot]", "type": "Bot"},
    }


@pytest.mark.parametrize("event", ["check_run", "check_suite"])
def test_a_failed_check_routes_one_ci_job_per_head_commit(event: str) -> None:
    bot_id, cfg = BotIdentity("pact-bot"), TriggerConfig()
    first = route(event, _check_payload(event, "failure"), bot_id, cfg, "d1")
    second = route("check_run", _check_payload("check_run", "timed_out"), bot_id, cfg, "d2")
    assert first.job is not None and second.job is not None  # a CI app is a bot: still counts
    assert first.job.kind == "revise" and first.job.key == f"{REPO}#7"
    assert first.job.task["trigger"] == "ci" and first.job.task["head_sha"] == "a" * 40
    assert first.job.task["fingerprint"] == second.job.task["fingerprint"]  # coalesced


@pytest.mark.parametrize(
    ("conclusion", "slug"), [("success", "ci"), ("neutral", "ci"), ("failure", "pact-bot")]
)
def test_passing_or_own_checks_start_nothing(conclusion: str, slug: str) -> None:
    decision = route(
        "check_run",
        _check_payload("check_run", conclusion, slug=slug),
        BotIdentity("pact-bot"),
        TriggerConfig(),
    )
    assert decision.job is None
