"""`pact-bot jobs` and `pact-bot jobs show` on a real database (sync tests: the CLI runs its own
event loop)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sim.anthropic import AnthropicSim, text, tool_use
from sim.policies import ReplayPolicy, SpecCoderPolicy

from pact_bot.agent.budget import Budget
from pact_bot.agent.definition import load_definition, system_prompt
from pact_bot.agent.loop import run_agent
from pact_bot.agent.tools import build_tools
from pact_bot.agent.transcript import Transcript
from pact_bot.cli import main
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.model_catalog import DEFAULT_PRICES


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    return {
        "PACT_DATABASE_URL": f"sqlite:///{tmp_path}/pact.db",
        "PACT_DATA_DIR": str(tmp_path / "data"),
    }


MODEL = "claude-sonnet-5-5"


def record_agent_run(
    anthropic_sim: AnthropicSim, wt: Path, data_dir: Path, job_id: str, system: str, message: str
) -> None:
    """The real agent loop against the simulator, working in `wt`, its transcript kept as a
    worker keeps job `job_id`'s; the model must end its turn."""

    async def agent() -> None:
        async with anthropic_sim.async_client() as client:
            result = await run_agent(
                client=client,
                model=MODEL,
                system=system,
                user_message=message,
                tools=build_tools(wt, sandbox=False),
                budget=Budget(max_turns=30, max_cost_usd=5.0, max_seconds=60),
                prices=DEFAULT_PRICES,
                transcript=Transcript.for_job(data_dir, job_id),
            )
        assert result.stop == "end_turn", result.error

    asyncio.run(agent())


def seed(tmp_path: Path) -> tuple[Job, Job]:
    return asyncio.run(_seed(tmp_path))


async def _seed(tmp_path: Path) -> tuple[Job, Job]:
    ok = Job(
        kind=JobKind.code,
        key="octo/repo#1",
        repo="octo/repo",
        number=1,
        delivery_id=str(uuid.uuid4()),
        sender="alice",
        task={"spec_paths": ["docs/a-spec.md"]},
    )
    bad = ok.model_copy(
        update={"id": "bad0000000000001", "key": "octo/repo#2", "delivery_id": "d-2", "number": 2}
    )
    async with SqliteQueue(tmp_path / "pact.db") as q:
        await q.enqueue(ok)
        await q.enqueue(bad)
        await q.claim("w")
        await q.claim("w")
        await q.finish(ok.id, "w", JobState.succeeded)
        await q.finish(bad.id, "w", JobState.failed, error="agent: budget exceeded\nmore")
    return ok, bad


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_empty_database(env: dict[str, str]) -> None:
    code, out, _ = run(env, "jobs")
    assert code == 0 and out.strip() == "no jobs"


def test_list_table_json_and_state_filter(env: dict[str, str], tmp_path: Path) -> None:
    ok, bad = seed(tmp_path)
    code, out, _ = run(env, "jobs")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:5] == ["ID", "KEY", "KIND", "STATE", "ATTEMPTS"]
    assert len(rows) == 2
    assert any(ok.id in r and "succeeded" in r for r in rows)
    assert any(bad.id in r and "failed" in r and "agent: budget exceeded" in r for r in rows)
    code, out, _ = run(env, "jobs", "--json", "--state", "failed")
    [line] = out.strip().splitlines()
    assert json.loads(line)["id"] == bad.id and json.loads(line)["error"].startswith("agent:")


def test_unknown_state_is_an_error(env: dict[str, str]) -> None:
    code, _, err = run(env, "jobs", "--state", "done")
    assert code == 2 and "unknown state 'done'" in err and "succeeded" in err


def test_show_job_and_unknown_id(env: dict[str, str], tmp_path: Path) -> None:
    ok, _ = seed(tmp_path)
    code, out, _ = run(env, "jobs", "show", ok.id)
    assert code == 0
    assert f"id:           {ok.id}" in out and "succeeded" in out and "docs/a-spec.md" in out
    assert "worker:       w\n" in out  # who ran it (a lane worker: host:pid:replyN:…)
    code, out, _ = run(env, "jobs", "show", ok.id, "--json")
    assert json.loads(out)["delivery_id"] == ok.delivery_id
    code, _, err = run(env, "jobs", "show", "nope")
    assert code == 1 and "no job with id 'nope'" in err


def test_show_transcript_of_a_real_agent_run(
    env: dict[str, str], tmp_path: Path, anthropic_sim: AnthropicSim
) -> None:
    ok, _ = seed(tmp_path)
    code, out, _ = run(env, "jobs", "show", ok.id, "--transcript")
    assert code == 0 and "no transcript for this job" in out

    wt = tmp_path / "wt"
    (wt / "docs").mkdir(parents=True)
    (wt / "docs" / "auth-spec.md").write_text("# Auth\n\n" + "Implement `login`.\n" * 200)
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    anthropic_sim.set_policy(SpecCoderPolicy())

    system = system_prompt(load_definition(None), component="auth")
    record_agent_run(
        anthropic_sim, wt, tmp_path / "data", ok.id, system, "Implement docs/auth-spec.md"
    )
    code, out, _ = run(env, "jobs", "show", ok.id, "--transcript")
    assert code == 0
    assert "start  model=claude-sonnet-5-5" in out
    assert "--- user" in out and "Implement docs/auth-spec.md" in out
    assert "→ str_replace_based_edit_tool" in out and "/workspace/docs/auth-spec.md" in out
    assert "more chars]" in out  # the 200-line spec the tool returned is shortened
    assert "stop: end_turn" in out
    assert max(len(line) for line in out.splitlines()) < 400


def test_reply_jobs_show_their_command(env: dict[str, str], tmp_path: Path) -> None:
    """Ack and lost notices are visible, and told apart from the code job they serve."""

    async def enqueue() -> tuple[Job, Job]:
        code = Job(
            kind=JobKind.code,
            key="octo/repo#3",
            repo="octo/repo",
            number=3,
            delivery_id="d-3",
            sender="alice",
            task={"fingerprint": "code::"},
        )
        ack = code.model_copy(
            update={
                "id": "ack0000000000003",
                "kind": JobKind.reply,
                "key": "octo/repo#3:reply",
                "delivery_id": "d-3:ack",
                "task": {"command": "ack", "fingerprint": "ack:1"},
            }
        )
        async with SqliteQueue(tmp_path / "pact.db") as q:
            await q.enqueue(ack)
            await q.enqueue(code)
        return code, ack

    code, ack = asyncio.run(enqueue())
    _, out, _ = run(env, "jobs")
    rows = out.strip().splitlines()[1:]
    assert [r.split()[2] for r in rows if code.id in r] == ["code"]
    assert [r.split()[2] for r in rows if ack.id in r] == ["reply:ack"]
    _, out, _ = run(env, "jobs", "show", ack.id)
    assert "kind:         reply:ack" in out


TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
CLEAR = "\x1b[2J"  # clears the screen


def test_escape_sequences_from_the_agent_never_reach_the_terminal(
    env: dict[str, str], tmp_path: Path, anthropic_sim: AnthropicSim
) -> None:
    """Model text, tool output, the job's error and its task are the agent's or a
    stranger's words: `jobs` shows their control characters escaped, never raw."""

    async def enqueue() -> Job:
        job = Job(
            kind=JobKind.code,
            key="octo/repo#9",
            repo="octo/repo",
            number=9,
            delivery_id="d-9",
            sender="mallory",
            task={"title": f"Cart{TITLE}", "spec_paths": [f"docs/{CLEAR}a-spec.md"]},
        )
        async with SqliteQueue(tmp_path / "pact.db") as q:
            await q.enqueue(job)
            await q.claim("w")
            await q.finish(job.id, "w", JobState.failed, error=f"agent: {CLEAR}boom\u202e")
        return job

    job = asyncio.run(enqueue())
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / "notes.txt").write_text(f"before{CLEAR}after\n")
    anthropic_sim.set_policy(
        ReplayPolicy(
            [
                [
                    text(f"Looking around {TITLE}"),
                    tool_use(
                        "str_replace_based_edit_tool",
                        {"command": "view", "path": "/workspace/notes.txt"},
                    ),
                ],
                f"Done.{TITLE}{CLEAR}",
            ]
        )
    )

    record_agent_run(
        anthropic_sim, wt, tmp_path / "data", job.id, "You are a coder.", "Look at notes.txt"
    )

    outputs = [
        run(env, "jobs")[1],
        run(env, "jobs", "--json")[1],
        run(env, "jobs", "show", job.id)[1],
        run(env, "jobs", "show", job.id, "--json")[1],
        run(env, "jobs", "show", job.id, "--transcript")[1],
    ]
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, out
    listing, as_json, shown, shown_json, transcript = outputs
    assert "agent: \\x1b[2Jboom\\u202e" in listing
    assert json.loads(as_json)["error"] == f"agent: {CLEAR}boom\u202e"  # the same value
    assert json.loads(shown_json)["task"]["title"] == f"Cart{TITLE}"
    assert "error:        agent: \\x1b[2Jboom\\u202e" in shown
    assert '"title": "Cart\\u001b]0;pwned\\u0007"' in shown
    assert "Looking around \\x1b]0;pwned\\x07" in transcript  # the model's text
    assert "before\\x1b[2Jafter" in transcript  # the tool's output
    assert "Done.\\x1b]0;pwned\\x07\\x1b[2J" in transcript
