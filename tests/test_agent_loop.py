"""The agent loop against the Anthropic simulator: work done, budgets never passed, retries,
caching, transcript and cancellation."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sim.anthropic import AnthropicSim, Fault, Turn, text, tool_use
from sim.policies import ReplayPolicy, SpecCoderPolicy

from pact_bot.agent.budget import Budget, Progress, RunResult
from pact_bot.agent.cost import UnknownModelPrice
from pact_bot.agent.definition import load_definition, system_prompt
from pact_bot.agent.loop import CONTINUE_TEXT, run_agent
from pact_bot.agent.retry import RetryPolicy
from pact_bot.agent.tools import build_tools
from pact_bot.agent.transcript import Transcript, render_transcript
from pact_bot.model_catalog import DEFAULT_PRICES

MODEL = "claude-sonnet-5-5"
SECRET = "ghs_" + "S3cretInstallationToken0123456789"
FAST_RETRY = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
SPEC = "# Auth spec\n\nImplement `login(user, password) -> bool`.\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    (wt / "docs").mkdir(parents=True)
    (wt / "docs" / "auth-spec.md").write_text(SPEC)
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    return wt


@pytest.fixture
def system() -> str:
    return system_prompt(load_definition(None), component="auth", bash_available=False)


async def run(
    sim: AnthropicSim,
    repo: Path,
    system: str,
    *,
    budget: Budget | None = None,
    message: str = "Implement docs/auth-spec.md",
    transcript: Transcript | None = None,
    **kw: Any,
) -> RunResult:
    async with sim.async_client() as client:
        return await run_agent(
            client=client,
            model=kw.pop("model", MODEL),
            system=system,
            user_message=message,
            tools=kw.pop("tools", None) or build_tools(repo, sandbox=False),
            budget=budget or Budget(max_turns=30, max_cost_usd=5.0, max_seconds=60),
            prices=DEFAULT_PRICES,
            transcript=transcript or Transcript(repo.parent / "t.jsonl", [sim.api_key]),
            retry=kw.pop("retry", FAST_RETRY),
            **kw,
        )


def breakpoints(body: dict[str, Any]) -> int:
    def count(blocks: Any) -> int:
        return sum(1 for b in blocks if isinstance(b, dict) and "cache_control" in b)

    n = count(body.get("tools", []))
    if isinstance(body.get("system"), list):
        n += count(body["system"])
    for m in body["messages"]:
        if isinstance(m["content"], list):
            n += count(m["content"])
    return n


async def test_spec_coder_run_writes_the_code_and_the_summary(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(stale_first_edit=True))
    progress: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    result = await run(anthropic_sim, repo, system, on_progress=on_progress)
    assert result.stop == "end_turn", result.error
    assert "ready for the Test phase" in result.final_text
    for path in ("src/auth.py", "tests/test_auth.py", "docs/implementation-summary-auth.md"):
        assert (repo / path).is_file(), path
        assert path in result.files_touched
    assert "## Assumptions" in (repo / "docs/implementation-summary-auth.md").read_text()
    assert any(c.is_error is False and c.summary.startswith("view") for c in result.tool_calls)
    assert result.turns == len(anthropic_sim.requests) == len(progress)
    assert [p.turn for p in progress] == list(range(1, result.turns + 1))
    assert progress[0].tool == "view /workspace/docs/auth-spec.md"
    assert result.cost_usd == pytest.approx(anthropic_sim.total_cost(DEFAULT_PRICES), abs=1e-6)
    for body in anthropic_sim.requests:
        assert "temperature" not in body and "tool_choice" not in body
        assert [t["name"] for t in body["tools"]] == ["str_replace_based_edit_tool", "grep", "glob"]


async def test_prompt_cache_breakpoints_stay_within_four_and_are_read(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())
    result = await run(anthropic_sim, repo, system)
    assert result.stop == "end_turn"
    assert all(1 <= breakpoints(b) <= 4 for b in anthropic_sim.requests)
    assert anthropic_sim.requests[0]["system"][-1]["cache_control"] == {"type": "ephemeral"}
    log = anthropic_sim.usage_log
    assert log[0].cache_creation_input_tokens > 0
    assert all(u.cache_read_input_tokens > 0 for u in log[1:])
    assert result.usage.cached_share > 0.5


async def test_dollar_cap_is_never_passed(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(max_turns_to_loop=10**9, loop_padding=4000))
    cap = 0.08
    result = await run(
        anthropic_sim, repo, system, budget=Budget(max_turns=500, max_cost_usd=cap, max_seconds=60)
    )
    assert result.stop == "budget_cost"
    assert result.turns >= 2
    spent = anthropic_sim.total_cost(DEFAULT_PRICES)
    assert spent <= cap
    assert result.cost_usd <= cap and result.cost_usd == pytest.approx(spent, abs=1e-6)
    assert all(b["max_tokens"] >= 1024 for b in anthropic_sim.requests)
    assert "dollar budget" in result.describe()


async def test_a_cap_below_one_call_makes_no_call(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    result = await run(
        anthropic_sim, repo, system, budget=Budget(max_turns=5, max_cost_usd=0.001, max_seconds=60)
    )
    assert (result.stop, result.turns, anthropic_sim.requests) == ("budget_cost", 0, [])


async def test_turn_cap(anthropic_sim: AnthropicSim, repo: Path, system: str) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(max_turns_to_loop=10**9))
    result = await run(
        anthropic_sim, repo, system, budget=Budget(max_turns=3, max_cost_usd=5, max_seconds=60)
    )
    assert (result.stop, result.turns, len(anthropic_sim.requests)) == ("budget_turns", 3, 3)
    # the returned conversation can be continued: every tool call has its result
    assert result.messages[-1]["role"] == "user"


async def test_time_cap(anthropic_sim: AnthropicSim, repo: Path, system: str) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(turn_latency=5))
    start = time.monotonic()
    result = await run(
        anthropic_sim, repo, system, budget=Budget(max_turns=5, max_cost_usd=5, max_seconds=0.5)
    )
    assert result.stop == "budget_time"
    assert time.monotonic() - start < 3


async def test_429_is_retried_after_retry_after(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.inject(Fault.rate_limited(retry_after=1))
    start = time.monotonic()
    result = await run(anthropic_sim, repo, system)
    assert result.stop == "end_turn" and result.retries == 1
    assert time.monotonic() - start >= 1.0
    assert [c.status for c in anthropic_sim.calls][:2] == [429, 200]


async def test_529_storm_beyond_retries_stops_with_a_clear_error(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.inject_always(Fault.overloaded())
    result = await run(anthropic_sim, repo, system, retry=RetryPolicy(2, 0.01, 0.02))
    assert result.stop == "error"
    assert result.error == "Anthropic API overloaded (529) after 2 retries"
    assert len(anthropic_sim.requests) == 3
    assert result.turns == 0 and result.cost_usd == 0


async def test_overload_mid_stream_is_retried_and_charged_conservatively(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.inject(Fault.stream_error(after_events=3))
    result = await run(anthropic_sim, repo, system)
    assert result.stop == "end_turn" and result.retries == 1
    assert result.cost_usd >= anthropic_sim.total_cost(DEFAULT_PRICES)


async def test_bad_request_is_not_retried(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    DEFAULT_PRICES_PLUS = {**DEFAULT_PRICES, "claude-nope-1": DEFAULT_PRICES[MODEL]}
    async with anthropic_sim.async_client() as client:
        result = await run_agent(
            client=client,
            model="claude-nope-1",
            system=system,
            user_message="hi",
            tools=build_tools(repo, sandbox=False),
            budget=Budget(),
            prices=DEFAULT_PRICES_PLUS,
            transcript=Transcript(repo.parent / "t.jsonl"),
            retry=FAST_RETRY,
        )
    assert result.stop == "error" and "404" in (result.error or "")
    assert len(anthropic_sim.requests) == 1


async def test_unknown_model_price_refuses_before_any_call(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    with pytest.raises(UnknownModelPrice, match="claude-opus-4-6"):
        await run(anthropic_sim, repo, system, model="claude-opus-4-6")
    assert anthropic_sim.requests == []


async def test_tool_failures_go_back_as_error_results(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(
        ReplayPolicy(
            [
                [
                    tool_use(
                        "str_replace_based_edit_tool", {"command": "view", "path": "/etc/passwd"}
                    )
                ],
                [text("Done.")],
            ]
        )
    )
    result = await run(anthropic_sim, repo, system)
    assert result.stop == "end_turn" and result.final_text == "Done."
    block = anthropic_sim.requests[1]["messages"][-1]["content"][0]
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert "outside the repository" in block["content"]


async def test_max_tokens_continues_once_then_reports(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.inject(Fault.max_tokens())
    anthropic_sim.set_policy(lambda body: Turn([text("A long answer " * 50)]))
    result = await run(anthropic_sim, repo, system)
    assert result.stop == "end_turn"
    assert anthropic_sim.requests[1]["messages"][-1]["content"][-1]["text"] == CONTINUE_TEXT

    anthropic_sim.reset()
    anthropic_sim.inject(Fault.max_tokens(), Fault.max_tokens())
    result = await run(anthropic_sim, repo, system)
    assert result.stop == "max_tokens" and result.turns == 2


async def test_cancel_is_checked_between_turns(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(max_turns_to_loop=10**9))
    checks = 0

    async def should_cancel() -> bool:
        nonlocal checks
        checks += 1
        return checks > 2

    result = await run(anthropic_sim, repo, system, should_cancel=should_cancel)
    assert (result.stop, result.turns, len(anthropic_sim.requests)) == ("cancelled", 2, 2)


async def test_continuing_a_finished_conversation(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(skip_summary=True))
    first = await run(anthropic_sim, repo, system)
    assert first.stop == "end_turn"
    assert not (repo / "docs/implementation-summary-auth.md").exists()
    second = await run(
        anthropic_sim,
        repo,
        system,
        messages=first.messages,
        message="You did not write docs/implementation-summary-auth.md. Write it now.",
    )
    assert second.stop == "end_turn"
    assert (repo / "docs/implementation-summary-auth.md").is_file()
    sent = anthropic_sim.requests[len(anthropic_sim.requests) - second.turns]["messages"]
    strip = [_without_cache(m) for m in sent]
    assert strip[: len(first.messages)] == first.messages
    assert "Write it now." in json.dumps(strip[len(first.messages) - 1 :])


def _without_cache(m: dict[str, Any]) -> dict[str, Any]:
    if isinstance(m["content"], list):
        return {
            **m,
            "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]],
        }
    return m


async def test_transcript_has_every_turn_and_no_secret(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    (repo / "docs" / "auth-spec.md").write_text(SPEC + f"\nDeploy token: {SECRET}\n")
    anthropic_sim.set_policy(SpecCoderPolicy())
    path = repo.parent / "transcripts" / "job-7.jsonl"
    transcript = Transcript(path, secrets=[anthropic_sim.api_key, SECRET])
    result = await run(
        anthropic_sim,
        repo,
        system,
        transcript=transcript,
        message=f"Implement docs/auth-spec.md (key {anthropic_sim.api_key})",
    )
    assert result.stop == "end_turn"
    raw = path.read_text()
    assert SECRET not in raw and anthropic_sim.api_key not in raw
    assert "[redacted]" in raw
    kinds = [json.loads(line)["kind"] for line in raw.splitlines()]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.count("response") == result.turns == kinds.count("request")
    text_view = render_transcript(path)
    assert f"turn {result.turns}: assistant" in text_view
    assert "→ str_replace_based_edit_tool" in text_view and "stop: end_turn" in text_view
    assert SECRET not in text_view


async def test_thinking_blocks_go_back_unchanged(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())
    result = await run(
        anthropic_sim, repo, system, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    # the simulator rejects a tool-use turn whose signed thinking blocks were altered or dropped
    assert result.stop == "end_turn", result.error
    first = anthropic_sim.responses[0]["content"][0]
    assert first["type"] == "thinking"
    sent_back = anthropic_sim.requests[1]["messages"][1]["content"][0]
    assert sent_back == first


async def test_failing_progress_callback_does_not_end_the_run(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())

    async def broken(p: Progress) -> None:
        raise RuntimeError("GitHub said 502")

    result = await run(anthropic_sim, repo, system, on_progress=broken)
    assert result.stop == "end_turn"


async def test_bash_in_the_sandbox_within_the_loop(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    from pact_bot.agent.tools.bwrap import sandbox_available

    if not sandbox_available()[0]:
        pytest.skip("bubblewrap unusable")
    anthropic_sim.set_policy(SpecCoderPolicy(bash_commands=["ls docs && echo made > out.txt"]))
    tools = build_tools(repo, sandbox=True)
    result = await run(anthropic_sim, repo, system, tools=tools)
    assert result.stop == "end_turn"
    assert any(c.summary == "bash: ls docs && echo made > out.txt" for c in result.tool_calls)
    assert "out.txt" in result.files_touched
    assert any(t.get("name") == "bash" for t in anthropic_sim.requests[0]["tools"])


async def test_a_tool_outliving_the_time_budget_stops_the_run(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    from pact_bot.agent.tools.bwrap import sandbox_available

    if not sandbox_available()[0]:
        pytest.skip("bubblewrap unusable")
    anthropic_sim.set_policy(ReplayPolicy([[tool_use("bash", {"command": "sleep 30"})]]))
    start = time.monotonic()
    result = await run(
        anthropic_sim,
        repo,
        system,
        tools=build_tools(repo, sandbox=True),
        budget=Budget(max_turns=5, max_cost_usd=5, max_seconds=1.5),
    )
    assert result.stop == "budget_time" and time.monotonic() - start < 5
    last = result.messages[-1]["content"][0]
    assert last["type"] == "tool_result" and last["is_error"] is True


def test_redactor_scrubs_secrets_in_every_form(tmp_path: Path) -> None:
    from pact_bot.agent.transcript import Redactor

    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAabcdefghijklmnop\n"
        "-----END RSA PRIVATE KEY-----"
    )
    r = Redactor(["multi\nline-secret-value", "plainsecret"])
    assert r.text("a plainsecret b") == "a [redacted] b"
    assert "line-secret" not in r.text('{"x": "multi\\nline-secret-value"}')
    assert r.text(f"key: {pem}") == "key: [redacted]"
    assert r.text("tok ghp_" + "a" * 36 + " key sk-ant-api03-abcdefghij") == (
        "tok [redacted] key [redacted]"
    )
    t = Transcript(tmp_path / "x.jsonl", ["plainsecret"])
    t.write("note", nested={"list": ["plainsecret", 1]}, plainsecret="v")
    assert "plainsecret" not in (tmp_path / "x.jsonl").read_text()
    assert "note" in render_transcript(tmp_path / "x.jsonl")
    assert render_transcript(tmp_path / "missing.jsonl").startswith("No transcript")


async def test_failing_streams_are_charged_so_retries_cannot_pass_the_cap(
    anthropic_sim: AnthropicSim, repo: Path, system: str
) -> None:
    anthropic_sim.inject_always(Fault.stream_error(after_events=4))
    cap = 0.5
    result = await run(
        anthropic_sim,
        repo,
        system,
        budget=Budget(max_turns=5, max_cost_usd=cap, max_seconds=60),
        retry=RetryPolicy(max_retries=50, base_delay=0.001, max_delay=0.002),
    )
    assert result.stop == "budget_cost"
    assert "a retry could pass the dollar cap" in (result.error or "")
    assert anthropic_sim.total_cost(DEFAULT_PRICES) <= result.cost_usd <= cap
    assert 1 < len(anthropic_sim.requests) < 50
