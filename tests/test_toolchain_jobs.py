"""The repository's own toolchain through the product: setup installs through the sandbox's
allowlist proxy, the agent and the bot run the tests, the PR and check run say how they went,
and the package cache carries over to the next job of the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import RevisePolicy, SpecCoderPolicy
from sim.pypi import SimpleIndex, simple_index
from sim.state import Repo
from test_code_pipeline import attr, bot_comments

from pact_bot.agent.tools.bwrap import sandbox_available
from pact_bot.agent.transcript import read_transcript, transcript_path
from pact_bot.jobs.model import JobState

pytestmark = pytest.mark.skipif(not sandbox_available()[0], reason=sandbox_available()[1])

REPO = "acme/shop"
SPEC = "# {name} service\n\n## API\n- `describe()` says how far it got.\n"
GREET = (
    "import unittest\n\nimport pactdemo\n\n\n"
    "class Greet(unittest.TestCase):\n"
    "    def test_greets(self) -> None:\n"
    "        self.assertEqual(pactdemo.greet('bot'), {expected!r})\n"
)
TEST_COMMAND = "~/venv/bin/python -m unittest discover -s tests"
DEMO = ("pactdemo", "1.0", "def greet(name):\n    return f'hello {name}'\n")


def files(
    index: SimpleIndex, *, expected: str = "hello bot", agent: bool = False
) -> dict[str, str]:
    config = {
        "sandbox": {
            "setup": [
                "python3 -m venv ~/venv",
                f"~/venv/bin/pip install -q --no-input --cert ca.pem --index-url {index.url} "
                "pactdemo",
            ],
            "network": {"allow": [f"127.0.0.1:{index.port}"], "agent": agent},
        },
        "test_command": TEST_COMMAND,
    }
    return {
        "README.md": "# Shop\n",
        ".gitignore": "__pycache__/\n",
        "docs/cart-spec.md": SPEC.format(name="Cart"),
        "docs/till-spec.md": SPEC.format(name="Till"),
        "src/__init__.py": "",
        "tests/test_greet.py": GREET.format(expected=expected),
        "ca.pem": index.cert_pem.decode(),
        ".github/pact.yml": yaml.safe_dump(config),
    }


def reach_index(url: str) -> str:
    """A bash command that fetches the index page (prints INDEX REACHED when it can)."""
    code = (
        "import ssl, urllib.request as u; "
        f"u.urlopen('{url}', context=ssl.create_default_context(cafile='ca.pem'), timeout=10); "
        "print('INDEX REACHED')"
    )
    return f'python3 -c "{code}"'


def add_shop(github: GitHubSim, extra: dict[str, str]) -> Repo:
    """The shop repository (a README and the cart spec, plus `extra`); alice can write."""
    base = {"README.md": "# Shop\n", "docs/cart-spec.md": SPEC.format(name="Cart")}
    repo = github.add_repo(*REPO.split("/"), files={**base, **extra})
    github.add_user("alice", "write")
    return repo


def label(github: GitHubSim, spec: str) -> int:
    number = github.open_issue(REPO, spec, body=f"Please implement {spec}", user="alice")
    github.label_issue(REPO, number, "pact:code", user="alice")
    return number


def coder(*commands: str) -> SpecCoderPolicy:
    # The scripted coder's own test file stays out of the unittest discovery of `tests/`.
    return SpecCoderPolicy(test_path="checks/test_{module}.py", bash_commands=commands)


def record(b: InProcessBot, job_id: str) -> list[dict[str, Any]]:
    return read_transcript(transcript_path(b.data_dir, job_id))


async def test_setup_installs_through_the_proxy_and_tests_run_and_the_cache_carries_over(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    with simple_index([DEMO]) as index:
        repo_files = files(index)
        config = yaml.safe_load(repo_files[".github/pact.yml"])
        # A host nobody allowed: refused by the proxy, and said so.
        refused = reach_index("https://refused.example/simple/")
        config["sandbox"]["setup"].append(f"{refused} || true")
        repo_files[".github/pact.yml"] = yaml.safe_dump(config)
        github_sim.add_repo(*REPO.split("/"), files=repo_files)
        github_sim.add_user("alice", "write")
        anthropic_sim.set_policy(coder(TEST_COMMAND, reach_index(index.url)))
        label(github_sim, "docs/cart-spec.md")

        jobs = await bot.process(timeout=300)

        assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
        # The agent ran the tests in its offline bash and they passed (the venv from setup
        # is in the job's home); its own call to the index failed: no network by default.
        summary = github_sim.read_file(
            REPO, "pact/code/cart", "docs/implementation-summary-cart.md"
        )
        assert summary is not None
        assert f"`{TEST_COMMAND}` ran:" in summary and "OK" in summary, summary
        assert f"`{reach_index(index.url)}` failed" in summary, summary
        first = anthropic_sim.requests[0]["messages"][0]["content"]
        first_text = first if isinstance(first, str) else first[0]["text"]
        assert f"Run the tests with `{TEST_COMMAND}`" in first_text
        # The bot's own run, in the PR body and the check run.
        [pr] = github_sim.pulls(REPO)
        assert f"✅ Tests (`{TEST_COMMAND}`): 1 passed" in pr["body"]
        assert "The sandbox refused: `refused.example:443`" in pr["body"]
        [run] = github_sim.check_runs(REPO)
        assert attr(run, "conclusion") == "success"
        assert "1 passed" in json.dumps(attr(run, "output"))
        # The job's record: each setup command, the test run, the refusal.
        rec = record(bot, jobs[0].id)
        setup = [r for r in rec if r["kind"] == "setup"]
        assert [r["ok"] for r in setup] == [True, True, True]
        assert [r["outcome"] for r in rec if r["kind"] == "tests"] == ["passed"]
        assert [r["hosts"] for r in rec if r["kind"] == "sandbox_refused"] == [
            ["refused.example:443"]
        ]
        assert list((bot.data_dir / "jobs").iterdir()) == []  # the job's home is gone

        # A second job of the repository installs from the cache: no second download.
        anthropic_sim.set_policy(coder())
        label(github_sim, "docs/till-spec.md")
        jobs = await bot.process(timeout=300)
        assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
        assert index.downloads() == ["/files/pactdemo-1.0-py3-none-any.whl"]
        till = [p for p in github_sim.pulls(REPO) if p["head"]["ref"] == "pact/code/till"]
        assert f"✅ Tests (`{TEST_COMMAND}`): 1 passed" in till[0]["body"]


async def test_failing_tests_give_a_pr_whose_check_run_fails_with_the_output(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    with simple_index([DEMO]) as index:
        repo_files = files(index, expected="goodbye bot", agent=True)
        github_sim.add_repo(*REPO.split("/"), files=repo_files)
        github_sim.add_user("alice", "write")
        anthropic_sim.set_policy(coder(reach_index(index.url)))
        label(github_sim, "docs/cart-spec.md")

        jobs = await bot.process(timeout=300)

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    # `sandbox.network.agent: true`: the agent's own bash reaches the allowed index.
    summary = github_sim.read_file(REPO, "pact/code/cart", "docs/implementation-summary-cart.md")
    assert summary is not None and "INDEX REACHED" in summary, summary
    [pr] = github_sim.pulls(REPO)
    assert f"❌ Tests (`{TEST_COMMAND}`): 0 passed, 1 failed" in pr["body"]
    assert "AssertionError: 'hello bot' != 'goodbye bot'" in pr["body"]
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "conclusion") == "failure"
    output = attr(run, "output")
    assert "FAILED (failures=1)" in attr(output, "text")
    handoff = bot_comments(github_sim, pr["number"])
    assert any("1 failed" in h for h in handoff), handoff


async def test_failing_setup_stops_the_job_with_one_comment_quoting_the_command(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    config = {"sandbox": {"setup": ["echo ready", "echo first; echo boom-marker >&2; exit 7"]}}
    add_shop(github_sim, {".github/pact.yml": yaml.safe_dump(config)})
    anthropic_sim.set_policy(coder())
    number = label(github_sim, "docs/cart-spec.md")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed]
    assert github_sim.pulls(REPO) == []
    assert anthropic_sim.requests == []  # the agent never started
    [comment] = bot_comments(github_sim, number)
    assert "A setup command of the repository failed" in comment
    assert "`echo first; echo boom-marker >&2; exit 7` failed" in comment
    assert "boom-marker" in comment and "[exit code 7]" in comment
    rec = record(bot, jobs[0].id)
    assert [(r["command"], r["ok"]) for r in rec if r["kind"] == "setup"] == [
        ("echo ready", True),
        ("echo first; echo boom-marker >&2; exit 7", False),
    ]


async def test_without_setup_the_progress_comment_proposes_one_and_never_runs_it(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    add_shop(
        github_sim,
        {"requirements.txt": "pactdemo\n", "tests/test_x.py": "def test_x() -> None:\n    pass\n"},
    )
    anthropic_sim.set_policy(coder())
    number = label(github_sim, "docs/cart-spec.md")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    [progress] = [b for b in bot_comments(github_sim, number) if "pact-bot:job:" in b]
    assert (
        "No `sandbox.setup` in `.github/pact.yml`; for this repository: "
        "`python3 -m venv ~/venv`; `~/venv/bin/pip install -r requirements.txt`"
    ) in progress
    rec = record(bot, jobs[0].id)
    assert [r for r in rec if r["kind"] == "setup"] == []  # proposed, not run
    # The detected test command ran but could not (no venv): said plainly, a neutral check.
    [pr] = github_sim.pulls(REPO)
    assert "❌ Tests (`~/venv/bin/python -m pytest -q`): errored" in pr["body"]
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "conclusion") == "neutral"


async def test_revise_runs_setup_from_the_default_branch_never_the_pr_branch(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    branch = "pact/code/cart"
    default = {
        "sandbox": {"setup": ["touch ~/.cache/default-setup-ran"]},
        "test_command": "echo '3 passed in 0.1s'",
    }
    hostile = {
        "sandbox": {"setup": ["touch ~/.cache/pr-branch-setup-ran"]},
        "test_command": "echo '9 failed in 0.1s'; exit 1",
    }
    repo = add_shop(github_sim, {".github/pact.yml": yaml.safe_dump(default)})
    github_sim.commit(
        REPO,
        branch,
        {
            "src/cart.py": "class Cart:\n    pass\n",
            "docs/implementation-summary-cart.md": "# Summary\n\n## For the Test Engineer\n-\n",
            ".github/pact.yml": yaml.safe_dump(hostile),
        },
        "Implement cart",
        user=github_sim.bot_login,
    )
    number = github_sim.create_pull(
        repo,
        branch,
        "main",
        "Implement cart",
        "Implements `docs/cart-spec.md`",
        github_sim.bot_login,
    ).number
    anthropic_sim.set_policy(RevisePolicy())
    comment = {"path": "src/cart.py", "line": 1, "body": "Add a docstring."}
    github_sim.submit_review(REPO, number, "alice", "REQUEST_CHANGES", comments=[comment])

    jobs = await bot.process()

    assert [(j.kind, j.state) for j in jobs] == [("revise", JobState.succeeded)], jobs
    cache = bot.data_dir / "caches" / "acme" / "shop"
    assert (cache / "default-setup-ran").exists()
    assert not (cache / "pr-branch-setup-ran").exists()
    rec = record(bot, jobs[0].id)
    assert [r["command"] for r in rec if r["kind"] == "setup"] == [
        "touch ~/.cache/default-setup-ran"
    ]
    # The revision's check run carries the bot's own test run (the default branch's command).
    [run] = github_sim.check_runs(REPO)
    assert attr(run, "conclusion") == "success"
    assert "3 passed" in json.dumps(attr(run, "output")) and "9 failed" not in json.dumps(
        attr(run, "output")
    )


def test_setup_failure_quote_cannot_break_out_of_its_code_block() -> None:
    from pact_bot.jobsandbox import SetupStep
    from pact_bot.pipeline.toolchain_run import setup_failure

    text = setup_failure(SetupStep("make", False, 1.0, "```\n@everyone ``` injected\n"))
    fence = text.split("\n")[2]
    assert set(fence) == {"`"} and len(fence) > 3
    assert text.rstrip().endswith(fence)


def test_cache_eviction_leaves_a_running_jobs_cache(tmp_path: Path) -> None:
    from pact_bot import caches

    old = caches.repo_cache(tmp_path, "a/old", now=1.0)
    held = caches.repo_cache(tmp_path, "b/held", now=2.0)
    for c in (old, held):
        (c / "blob").write_bytes(b"x" * 200_000)
    job = tmp_path / "jobs" / "j1"
    job.mkdir(parents=True)
    (job / caches.IN_USE).write_text(str(held))

    removed = caches.evict(tmp_path, 100_000, keep=caches.in_use(tmp_path))

    assert removed == [old] and held.exists()


async def test_the_bots_test_run_cannot_change_what_is_committed(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    """The checks (protected paths, secrets) run before the bot's own test run; a test the
    agent wrote that writes a workflow when run must not get it into the commit."""
    evil = (
        "import os, unittest\n\n\n"
        "class Evil(unittest.TestCase):\n"
        "    def test_plants_a_workflow(self) -> None:\n"
        "        os.makedirs('.github/workflows', exist_ok=True)\n"
        "        with open('.github/workflows/evil.yml', 'w') as f:\n"
        "            f.write('on: push\\n')\n"
    )
    config = {"test_command": "python3 -m unittest discover -s tests"}
    add_shop(github_sim, {".github/pact.yml": yaml.safe_dump(config)})
    write = f"mkdir -p tests && cat > tests/test_evil.py <<'EOF'\n{evil}EOF"
    anthropic_sim.set_policy(coder(write))
    label(github_sim, "docs/cart-spec.md")

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert github_sim.read_file(REPO, "pact/code/cart", "tests/test_evil.py")
    assert github_sim.read_file(REPO, "pact/code/cart", ".github/workflows/evil.yml") is None
    [pr] = github_sim.pulls(REPO)
    assert "Read-only file system" in pr["body"]
