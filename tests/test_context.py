"""Long runs stay inside the context window: old tool results cleared, then a summary, and a
clear stop when nothing fits. The simulator refuses any prompt over its window and any broken
tool_use/tool_result pairing, as the API does, so every request these runs make is checked."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import pytest
from sim.anthropic import AnthropicSim, tool_use
from sim.reader import ModuleReaderPolicy, checksum, module_source

from pact_bot.agent.budget import Budget, RunResult
from pact_bot.agent.context import CLEARED_PREFIX, ContextLimits
from pact_bot.agent.definition import load_definition, system_prompt
from pact_bot.agent.loop import run_agent
from pact_bot.agent.retry import RetryPolicy
from pact_bot.agent.tools import build_tools
from pact_bot.agent.transcript import Transcript, render_transcript
from pact_bot.model_catalog import DEFAULT_PRICES
from pact_bot.pipeline.agent_run import Implementation, failure_of
from pact_bot.pipeline.post_run import CheckResult
from pact_bot.pipeline.report import Failure, RunStats, failure_text

ROOT = Path(__file__).resolve().parents[1]
MODEL = "claude-sonnet-5-5"
WINDOW = 40_000
NOTES = "/workspace/NOTES.md"
FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
READ_EVERY_MODULE = f"Read every module in /workspace/pkg and write {NOTES}."


def modules(n: int) -> list[str]:
    return [f"/workspace/pkg/mod_{i:02d}.py" for i in range(n)]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    (wt / "pkg").mkdir(parents=True)
    for path in modules(16):
        (wt / path.removeprefix("/workspace/")).write_text(module_source(path, 12_000))
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    return wt


async def run(
    sim: AnthropicSim, repo: Path, *, limits: ContextLimits | None = None, message: str = ""
) -> RunResult:
    system = system_prompt(load_definition(None), component="pkg", bash_available=False)
    async with sim.async_client() as client:
        return await run_agent(
            client=client,
            model=MODEL,
            system=system,
            user_message=message or READ_EVERY_MODULE,
            tools=build_tools(repo, sandbox=False),
            budget=Budget(max_turns=200, max_cost_usd=20.0, max_seconds=120),
            prices=DEFAULT_PRICES,
            transcript=Transcript(repo.parent / "t.jsonl", [sim.api_key]),
            retry=FAST_RETRY,
            max_tokens=4_000,
            context=limits or ContextLimits(window=WINDOW),
        )


async def read_every_module(
    sim: AnthropicSim, repo: Path, *, recheck: bool = False, limits: ContextLimits | None = None
) -> RunResult:
    """The long run most tests look at: the model reads 16 modules of about 3,000 tokens each
    through a 40,000-token window and writes their checksums to NOTES."""
    sim.context_window = WINDOW
    sim.set_policy(ModuleReaderPolicy(modules(16), NOTES, recheck=recheck))
    return await run(sim, repo, limits=limits)


def expected_notes(paths: list[str]) -> list[str]:
    return [f"{p}: {checksum(p)}" for p in paths]


def refused(sim: AnthropicSim) -> list[Any]:
    return [c for c in sim.calls if c.path == "/v1/messages" and c.status != 200]


def cleared_notes(body: dict[str, Any]) -> list[str]:
    return [
        b["content"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
        and isinstance(b.get("content"), str)
        and b["content"].startswith(CLEARED_PREFIX)
    ]


def transcript_events(repo: Path, kind: str) -> list[dict[str, Any]]:
    lines = (repo.parent / "t.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("kind") == kind]


async def test_reading_more_than_the_window_holds_finishes_within_it(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    result = await read_every_module(anthropic_sim, repo)

    assert result.stop == "end_turn", result.error
    notes = (repo / "NOTES.md").read_text().splitlines()
    assert notes == expected_notes(modules(16))  # every module really read, nothing lost
    assert refused(anthropic_sim) == []  # no request over the window, no broken pairing
    assert 0 < anthropic_sim.largest_prompt <= WINDOW
    total = sum(len(module_source(p, 12_000)) for p in modules(16)) // 4
    assert total > WINDOW  # the modules alone would not fit
    assert result.cleared_results > 0
    assert result.largest_prompt == anthropic_sim.largest_prompt


async def test_clearing_keeps_the_pairing_and_happens_in_batches(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    result = await read_every_module(anthropic_sim, repo)

    assert result.stop == "end_turn", result.error
    with_notes = [b for b in anthropic_sim.requests if cleared_notes(b)]
    assert with_notes, "some request carried cleared tool results"
    # each cleared result still answers its tool_use, right after it (the simulator would
    # have refused the request otherwise, and it refused none)
    assert refused(anthropic_sim) == []
    last = anthropic_sim.requests[-1]
    for i, m in enumerate(last["messages"]):
        ids = [b["id"] for b in m["content"] if b.get("type") == "tool_use"]
        if ids:
            answered = [b["tool_use_id"] for b in last["messages"][i + 1]["content"]]
            assert ids == answered[: len(ids)]
    # clearing happens in a few batches, not every turn: the prefix is written once per batch
    batches = transcript_events(repo, "context")
    assert 1 <= len(batches) <= 3
    assert len(batches) < len(anthropic_sim.requests) / 5
    reads = [u.cache_read_input_tokens for u in anthropic_sim.usage_log]
    assert sum(reads) > 0.5 * sum(
        u.cache_read_input_tokens + u.input_tokens + u.cache_creation_input_tokens
        for u in anthropic_sim.usage_log
    )


async def test_a_cleared_result_says_how_to_get_it_back_and_viewing_again_works(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    result = await read_every_module(anthropic_sim, repo, recheck=True)

    assert result.stop == "end_turn", result.error
    first = modules(16)[0]
    notes = [n for b in anthropic_sim.requests for n in cleared_notes(b)]
    about_first = [n for n in notes if first in n]
    assert about_first and "lines 1-" in about_first[0] and "view it again" in about_first[0]
    lines = (repo / "NOTES.md").read_text().splitlines()
    assert f"recheck {first}: {checksum(first)}" in lines


async def test_when_clearing_is_not_enough_the_summary_carries_the_work_on(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    # keep every tool result: clearing cannot help, so the run must summarise
    limits = ContextLimits(window=WINDOW, keep_recent=10_000)

    result = await read_every_module(anthropic_sim, repo, limits=limits)

    assert result.stop == "end_turn", result.error
    assert result.compactions >= 1 and result.cleared_results == 0
    assert refused(anthropic_sim) == []
    asks = [
        i
        for i, b in enumerate(anthropic_sim.requests)
        if "Summarise the conversation so far" in json.dumps(b["messages"][-1])
    ]
    assert asks
    summary = anthropic_sim.responses[asks[0]]["content"][0]["text"]
    nxt = anthropic_sim.requests[asks[0] + 1]["messages"]
    assert len(nxt) == 1 and nxt[0]["role"] == "user"
    blocks = nxt[0]["content"]
    assert blocks[0]["text"] == READ_EVERY_MODULE  # the task stays first
    assert summary.strip() in blocks[-1]["text"]  # the summary is in the next request
    assert (repo / "NOTES.md").read_text().splitlines() == expected_notes(modules(16))


async def test_a_prompt_too_long_answer_compacts_once_rather_than_failing(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    """Our estimate can be wrong: the API's 400 forces a compaction, not a failure."""
    anthropic_sim.context_window = 25_000
    anthropic_sim.set_policy(ModuleReaderPolicy(modules(16), NOTES))

    result = await run(anthropic_sim, repo, limits=ContextLimits(window=60_000))

    assert result.stop == "end_turn", result.error
    too_long = [c for c in refused(anthropic_sim) if c.status == 400]
    assert too_long and all(c.error_type == "invalid_request_error" for c in too_long)
    assert result.compactions >= 1
    assert (repo / "NOTES.md").read_text().splitlines() == expected_notes(modules(16))


async def test_a_task_too_long_even_after_compaction_stops_with_a_clear_failure(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    anthropic_sim.set_policy(ModuleReaderPolicy(modules(1), NOTES))
    huge = "Implement this:\n" + "word " * 50_000  # ~62k tokens by our estimate

    result = await run(anthropic_sim, repo, message=huge)

    assert result.stop == "context_window"
    assert anthropic_sim.requests == []  # refused before sending: a call could only fail
    assert result.error and "40,000-token context window" in result.error
    text = failure_text(Failure.context_window, result.error)
    assert "outgrew the model's context window" in text
    assert "trigger again later" not in text and "unchanged will stop the same way" in text


async def test_the_api_refusing_twice_stops_with_context_window_not_a_retry(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    anthropic_sim.context_window = 3_000  # smaller than the system prompt alone
    anthropic_sim.set_policy(ModuleReaderPolicy(modules(1), NOTES))

    result = await run(anthropic_sim, repo)

    assert result.stop == "context_window"
    assert "prompt is too long" in (result.error or "")
    assert len(anthropic_sim.requests) == 1  # not retried: a retry cannot fix it


async def test_the_transcript_records_the_clearing_and_the_cache_read_share(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    result = await read_every_module(anthropic_sim, repo)

    stop = transcript_events(repo, "stop")[-1]
    assert stop["cache_read_share"] == round(result.usage.cached_share, 4) > 0.5
    assert stop["largest_prompt"] == anthropic_sim.largest_prompt
    assert stop["cleared_results"] == result.cleared_results > 0
    shown = render_transcript(repo.parent / "t.jsonl")
    assert "context: " in shown and '"action": "cleared"' in shown
    assert f"cache_read_share={result.usage.cached_share:.0%}" in shown


def test_a_run_stopped_by_the_window_is_reported_as_such_not_as_a_model_outage() -> None:
    impl = Implementation(
        stop="context_window",
        stats=RunStats(turns=40),
        final_text="",
        checks=CheckResult(),
        paths=["src/a.py"],
        deleted=[],
        diff="",
        error="the prompt needs about 210,000 tokens",
    )
    failed = failure_of(impl)
    assert failed is not None and failed[0] is Failure.context_window
    text = failure_text(failed[0], failed[1])
    assert "210,000 tokens" in text and "trigger again later" not in text


def test_the_token_bench_runs_its_short_task() -> None:
    """bench/tokens.py on the short task, so the benchmark cannot rot."""
    spec = importlib.util.spec_from_file_location("tokens_bench", ROOT / "bench/tokens.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["tokens_bench"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    out = asyncio.run(bench.main_async(argparse.Namespace(tasks="short", sweep=False)))
    (task,) = out["tasks"]
    assert task["pact"]["ok"] and task["peer"]["ok"]
    assert task["pact"]["turns"] == 4
    assert 0 < task["ratio"] < 1  # the peer's prefix is twice pact-bot's
    assert "| short | pact-bot | yes |" in bench.report(out)


async def test_a_large_task_that_fits_runs_without_summarising_every_turn(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    """Over the threshold from the start, but within the window: summarising could not help."""
    anthropic_sim.context_window = WINDOW
    small = "/workspace/pkg/small.py"
    (repo / "pkg" / "small.py").write_text(module_source(small, 1_500))
    anthropic_sim.set_policy(ModuleReaderPolicy([small], NOTES))
    task = f"Read {small} and write {NOTES}.\n\n" + "background " * 6_000

    result = await run(anthropic_sim, repo, message=task)

    assert result.stop == "end_turn", result.error
    assert result.compactions == 0 and len(anthropic_sim.requests) == 3
    assert (repo / "NOTES.md").read_text().splitlines() == expected_notes([small])


async def test_a_summary_answer_without_text_falls_back_to_the_tool_calls_made(
    anthropic_sim: AnthropicSim, repo: Path
) -> None:
    anthropic_sim.context_window = WINDOW
    reader = ModuleReaderPolicy(modules(16), NOTES)

    def no_text_summary(request: dict[str, Any]) -> Any:
        if "Summarise the conversation so far" in json.dumps(request["messages"][-1]):
            return [tool_use("glob", {"pattern": "**/*.py"})]
        return reader(request)

    anthropic_sim.set_policy(no_text_summary)

    result = await run(anthropic_sim, repo, limits=ContextLimits(WINDOW, keep_recent=10_000))

    assert result.compactions >= 1
    after = [b for b in anthropic_sim.requests if len(b["messages"]) == 1][1]
    carried = after["messages"][0]["content"][-1]["text"]
    assert "Tool calls made so far" in carried and "view /workspace/pkg/mod_00.py" in carried
    assert refused(anthropic_sim) == []


def test_the_simulator_refuses_a_prompt_over_its_window_like_the_api(
    anthropic_sim: AnthropicSim,
) -> None:
    anthropic_sim.context_window = 1_000
    client = anthropic_sim.client(max_retries=0)
    big = [{"role": "user", "content": "x" * 8_000}]
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=MODEL, max_tokens=10, messages=big)
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "invalid_request_error"
    assert re.fullmatch(r"prompt is too long: \d+ tokens > 1000 maximum", body["error"]["message"])
    # counting is not refused, as with the API
    assert client.messages.count_tokens(model=MODEL, messages=big).input_tokens > 1_000
    ok = client.messages.create(model=MODEL, max_tokens=10, messages=[big[0] | {"content": "hi"}])
    assert ok.stop_reason == "end_turn" and anthropic_sim.largest_prompt < 1_000
