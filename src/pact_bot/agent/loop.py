"""The agent loop: stream a turn, run the tools it asks for, repeat — within hard budgets.

    result = await run_agent(
        client=anthropic.AsyncAnthropic(...), model="claude-sonnet-5-5", system=system,
        user_message=first_message, tools=build_tools(worktree, sandbox=True),
        budget=Budget(max_turns=60, max_cost_usd=5.0), prices=settings.prices,
        transcript=Transcript.for_job(settings.pact_data_dir, job.id, settings.secrets()),
        on_progress=..., should_cancel=...,
    )
    result.stop  # "end_turn" | "budget_turns" | "budget_cost" | "budget_time" | "cancelled"
                 # | "error" | "max_tokens" | "context_window"
                 # | "workspace_full" (a command grew the worktree past its cap)

To continue a finished run ("you forgot the summary, write it now"), pass
`messages=result.messages` with the new `user_message`, and a budget holding what is left.

Budgets are hard. Before every call the loop prices its worst case — the estimated input
tokens all at the higher of the input and cache-write prices, plus `max_tokens` of output —
and starts the call only if what was spent plus that worst case fits under the dollar cap;
near the cap `max_tokens` is lowered to fit, but never below `min_max_tokens` (then the run
stops with `budget_cost`). A call that fails after the response began streaming is charged
its worst case, since it may have been billed. Turns are counted per model call; wall time is
checked before each call and enforced with a timeout around calls and tool runs.

Retries: `agent/retry.py`.

Context window: before every call the prompt's size is known (the last response's usage plus
an estimate of what was added since). When it and `max_tokens` would pass
`ContextLimits.compact_at` of the model's window (`cost.context_window`), old tool results are
cleared in one batch, or, when that is not enough, the conversation is summarised by the model
and the run continues from the task and the summary (see `agent/context.py`). A 400 "prompt is
too long" (our estimate was wrong) forces the same once; a prompt that still does not fit
stops the run with `context_window`, which no retry can fix.

Prompt caching: `agent/messages.py`. A run's state and the steps each call shares:
`agent/session.py`; the clearing and summarising steps: `agent/compaction.py`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anthropic

from pact_bot.agent.api_call import _PromptTooLong, _safely, _StopRun
from pact_bot.agent.budget import Budget, Progress, RunResult
from pact_bot.agent.compaction import fit
from pact_bot.agent.context import ContextLimits
from pact_bot.agent.cost import (
    MESSAGE_OVERHEAD_TOKENS,
    context_window,
    estimate_messages_tokens,
    estimate_request_tokens,
    estimate_tokens,
    max_output_within,
    model_prices,
    worst_case_cost,
)
from pact_bot.agent.messages import (
    CACHE,
    _append_user,
    _block_dict,
    _mark_cache,
    _strip_cache,
    _tool_result,
)
from pact_bot.agent.retry import RetryPolicy, _too_long_counts
from pact_bot.agent.run_log import _log_results
from pact_bot.agent.session import Session, text_of
from pact_bot.agent.tools import Tools, summarize
from pact_bot.agent.transcript import Transcript

CONTINUE_TEXT = (
    "Your previous response was cut off at the output token limit. Continue from where you "
    "stopped; write large files in several smaller steps (create, then insert or str_replace)."
)

ProgressFn = Callable[[Progress], Awaitable[None]]
CancelFn = Callable[[], Awaitable[bool]]


async def run_agent(
    *,
    client: anthropic.AsyncAnthropic,
    model: str,
    system: str,
    user_message: str | list[dict[str, Any]],
    tools: Tools,
    budget: Budget,
    prices: Mapping[str, Mapping[str, float]],
    transcript: Transcript,
    on_progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    messages: list[dict[str, Any]] | None = None,
    max_tokens: int = 16000,
    min_max_tokens: int = 1024,
    retry: RetryPolicy | None = None,
    thinking: dict[str, Any] | None = None,
    context: ContextLimits | None = None,
) -> RunResult:
    """Run the agent until it ends its turn or a budget, cancellation or error stops it.

    `thinking` (e.g. `{"type": "enabled", "budget_tokens": 4096}`) is passed through; the
    thinking blocks the model returns are sent back unchanged. Raises `UnknownModelPrice`
    before any call when `model` has no price. `context` defaults to 80 % of the model's
    window (`cost.context_window`)."""
    price = model_prices(model, prices)
    msgs = _strip_cache(copy.deepcopy(messages or []))
    _append_user(msgs, user_message)
    s = Session(
        api=client.with_options(max_retries=0),
        model=model,
        price=price,
        budget=budget,
        retry=retry or RetryPolicy(),
        thinking=thinking,
        max_tokens=max_tokens,
        floor=max(min_max_tokens, int((thinking or {}).get("budget_tokens", 0)) + 1),
        tools=tools,
        transcript=transcript,
        system_blocks=[{"type": "text", "text": system, "cache_control": CACHE}],
        tool_defs=tools.definitions,
        limits=context or ContextLimits(window=context_window(model)),
        msgs=msgs,
        first_message=copy.deepcopy(msgs[0]),
        follow_up=user_message if messages else None,
        logged=len(msgs) - 1 if messages else 0,
    )
    transcript.write(
        "start",
        model=model,
        tools=[d["name"] for d in s.tool_defs],
        budget={
            "max_turns": budget.max_turns,
            "max_cost_usd": budget.max_cost_usd,
            "max_seconds": budget.max_seconds,
        },
        max_tokens=max_tokens,
        system=system,
        continued_from=len(messages or []),
    )
    try:
        return await _loop(s, on_progress, should_cancel)
    except _StopRun as stop:
        return s.finish(stop.stop, stop.error)


async def _loop(
    s: Session, on_progress: ProgressFn | None, should_cancel: CancelFn | None
) -> RunResult:
    """Call, run the tools asked for, repeat, until a stop; raises _StopRun from deeper down."""
    tools, state, budget = s.tools, s.state, s.budget
    continued = False  # the last answer was cut off at max_tokens and asked to continue
    force_fit = False  # a "prompt is too long" answer came since the last successful call
    known_size = 0  # the prompt's size as that answer counted it
    while True:
        if tools.halt is not None:
            return s.finish("workspace_full", tools.halt)
        if should_cancel is not None and await _safely(should_cancel(), False):
            return s.finish("cancelled")
        if state.turns >= budget.max_turns:
            return s.finish("budget_turns")
        if time.monotonic() >= s.deadline:
            return s.finish("budget_time")

        _mark_cache(s.msgs)
        est_in = await fit(s, max(_prompt_estimate(s), known_size))
        if est_in + s.floor > s.limits.window:
            return s.finish("context_window", s.too_long(est_in))
        call_max = min(s.max_tokens, s.limits.window - est_in)
        remaining = budget.max_cost_usd - state.spent
        if worst_case_cost(est_in, call_max, s.price) > remaining:
            call_max = min(call_max, max_output_within(remaining, est_in, s.price))
            if call_max < s.floor:
                return s.finish("budget_cost")
        worst = worst_case_cost(est_in, call_max, s.price)
        s.write_request(s.msgs, call_max, est_in, worst)
        s.logged = len(s.msgs)
        try:
            response = await s.call(s.params(call_max, s.msgs), worst)
        except _PromptTooLong as e:
            s.refusal = str(e)
            if force_fit:
                return s.finish("context_window", s.too_long(est_in))
            s.transcript.write("context", action="refused", error=str(e))
            counted_by_api, window_by_api = _too_long_counts(str(e))
            if window_by_api:
                s.limits = dataclasses.replace(s.limits, window=min(s.limits.window, window_by_api))
            known_size = max(counted_by_api, est_in + 1)
            force_fit = True
            continue
        force_fit = False
        known_size = 0
        tool_uses = await _take_answer(s, response, on_progress)

        stop_reason = response.stop_reason
        if stop_reason == "max_tokens":
            if continued:
                return s.finish("max_tokens", "The model's answer hit max_tokens twice in a row.")
            continued = True
            note = "Not run: this tool call was cut off at max_tokens."
            results = [_tool_result(b["id"], note, True) for b in tool_uses]
            _append_user(s.msgs, [*results, {"type": "text", "text": CONTINUE_TEXT}])
            continue
        continued = False
        if tool_uses:
            await _run_tools(s, tool_uses)
            continue
        if stop_reason == "refusal":
            return s.finish("error", "The model declined to continue (stop_reason: refusal).")
        if stop_reason == "pause_turn":
            continue
        return s.finish("end_turn")


def _prompt_estimate(s: Session) -> int:
    """The prompt's size: the last call's count plus what was added since, else from scratch."""
    if s.last_prompt is None:
        return estimate_request_tokens(s.system_blocks, s.tool_defs, s.msgs)
    sent, counted = s.last_prompt
    return counted + estimate_messages_tokens(s.msgs[sent:]) + MESSAGE_OVERHEAD_TOKENS


async def _take_answer(
    s: Session, response: Any, on_progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Account for the answer, add it to the conversation, log and report it; returns the
    tool calls it asks for."""
    usage = s.account(response)
    content = [_block_dict(b) for b in response.content]
    content = [b for b in content if not (b["type"] == "text" and not b.get("text"))]
    if content:
        s.msgs.append({"role": "assistant", "content": content})
    s.last_prompt = (
        len(s.msgs),
        usage.prompt_tokens + max(usage.output_tokens, estimate_tokens(content)),
    )
    s.logged = len(s.msgs)
    text = text_of(content)
    if text:
        s.final_text = text
    tool_uses = [b for b in content if b["type"] == "tool_use"]
    s.write_response(response, content, usage)
    if on_progress is not None:
        summaries = [summarize(b["name"], b.get("input") or {}) for b in tool_uses]
        progress = Progress(
            turn=s.state.turns,
            cost_usd=round(s.state.spent, 6),
            tool=summaries[0] if summaries else None,
            tools=summaries,
            elapsed_s=round(time.monotonic() - s.started, 3),
            budget=s.budget,
        )
        await _safely(on_progress(progress), None)
    return tool_uses


async def _run_tools(s: Session, tool_uses: list[dict[str, Any]]) -> None:
    """Run the calls in order within the run's time; their results become the next user turn.
    At the deadline the calls not run are answered as such and the run stops."""
    results: list[dict[str, Any]] = []
    for i, block in enumerate(tool_uses):
        left = s.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                r = await s.tools.run(block["name"], block.get("input") or {})
        except TimeoutError:
            note = "Not run: the time limit of the run was reached."
            results += [_tool_result(b["id"], note, True) for b in tool_uses[i:]]
            s.msgs.append({"role": "user", "content": results})
            _log_results(s.transcript, s.state.turns, tool_uses, results)
            raise _StopRun("budget_time") from None
        results.append(_tool_result(block["id"], r.content, r.is_error))
    s.msgs.append({"role": "user", "content": results})
    _log_results(s.transcript, s.state.turns, tool_uses, results)
