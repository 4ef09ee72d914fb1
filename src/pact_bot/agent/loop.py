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

Prompt caching: `agent/messages.py`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anthropic

from pact_bot.agent.api_call import _call, _PromptTooLong, _safely, _State, _StopRun
from pact_bot.agent.budget import Budget, Progress, RunResult, Stop
from pact_bot.agent.context import (
    SUMMARY_PROMPT,
    Clearable,
    ContextLimits,
    clear,
    clearable,
    compacted,
    fallback_summary,
    summary_request,
)
from pact_bot.agent.cost import (
    MESSAGE_OVERHEAD_TOKENS,
    Usage,
    context_window,
    cost,
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
    _close_dangling,
    _mark_cache,
    _strip_cache,
    _tool_result,
)
from pact_bot.agent.retry import RetryPolicy, _too_long_counts
from pact_bot.agent.run_log import _context_metric, _log_results, _metrics, _run_metrics
from pact_bot.agent.tools import Tools, summarize
from pact_bot.agent.transcript import Transcript

log = logging.getLogger(__name__)

CONTINUE_TEXT = (
    "Your previous response was cut off at the output token limit. Continue from where you "
    "stopped; write large files in several smaller steps (create, then insert or str_replace)."
)
SUMMARY_MAX_TOKENS = 8192


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
    on_progress: Callable[[Progress], Awaitable[None]] | None = None,
    should_cancel: Callable[[], Awaitable[bool]] | None = None,
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
    retry = retry or RetryPolicy()
    floor = max(min_max_tokens, int((thinking or {}).get("budget_tokens", 0)) + 1)
    api = client.with_options(max_retries=0)
    started = time.monotonic()
    deadline = started + budget.max_seconds
    state = _State()
    limits = context or ContextLimits(window=context_window(model))
    msgs = _strip_cache(copy.deepcopy(messages or []))
    _append_user(msgs, user_message)
    first_message = copy.deepcopy(msgs[0])
    follow_up = user_message if messages else None
    system_blocks = [{"type": "text", "text": system, "cache_control": CACHE}]
    tool_defs = tools.definitions
    logged = len(msgs) - 1 if messages else 0
    final_text = ""
    continued = False
    last_prompt: tuple[int, int] | None = None  # (messages sent, prompt tokens counted)
    transcript.write(
        "start",
        model=model,
        tools=[d["name"] for d in tool_defs],
        budget={
            "max_turns": budget.max_turns,
            "max_cost_usd": budget.max_cost_usd,
            "max_seconds": budget.max_seconds,
        },
        max_tokens=max_tokens,
        system=system,
        continued_from=len(messages or []),
    )

    def finish(stop: Stop, error: str | None = None) -> RunResult:
        _close_dangling(msgs, f"Not run: the run stopped ({stop}).")
        result = RunResult(
            stop=stop,
            turns=state.turns,
            cost_usd=round(state.spent, 6),
            usage=state.usage,
            duration_s=round(time.monotonic() - started, 3),
            final_text=final_text,
            messages=_strip_cache(msgs),
            tool_calls=list(tools.calls),
            files_touched=tools.files_touched,
            error=error,
            retries=state.retries,
            compactions=state.compactions,
            cleared_results=state.cleared_results,
            largest_prompt=state.largest_prompt,
        )
        transcript.write(
            "stop",
            stop=stop,
            error=error,
            turns=result.turns,
            cost_usd=result.cost_usd,
            usage=result.usage.as_dict(),
            duration_s=result.duration_s,
            files_touched=result.files_touched,
            retries=result.retries,
            cache_read_share=round(result.usage.cached_share, 4),
            largest_prompt=result.largest_prompt,
            compactions=result.compactions,
            cleared_results=result.cleared_results,
        )
        _run_metrics(result.usage)
        log.info(
            "agent stopped: %s",
            stop,
            extra={"stop": stop, "turns": result.turns, "cost_usd": result.cost_usd},
        )
        return result

    refusal: list[str] = []  # the API's "prompt is too long" message, when it said so

    def too_long(est: int) -> str:
        said = f" (the API said: {refusal[-1]})" if refusal else ""
        return (
            f"the prompt needs about {est:,} tokens and the answer at least {floor:,}, more than "
            f"the {limits.window:,}-token context window of {model} allows, even after clearing "
            f"old tool results and summarising the earlier work{said}"
        )

    async def summarise(est_in: int) -> int:
        """Ask the model for a summary and continue from the task plus that summary."""
        nonlocal logged
        if len(msgs) < 3:
            return est_in  # nothing done since the task (or the last summary) to summarise
        cands = clearable(msgs, ContextLimits(limits.window, keep_recent=0))
        if est_in + SUMMARY_MAX_TOKENS > limits.window and cands:
            est_in -= _clear_batch(cands, est_in)
        request = summary_request(msgs)
        est = est_in + estimate_tokens(SUMMARY_PROMPT)
        call_max = max(SUMMARY_MAX_TOKENS, floor)
        if est + call_max > limits.window:
            raise _StopRun("context_window", too_long(est))
        if state.turns >= budget.max_turns:
            raise _StopRun("budget_turns")  # the summary is a model call like any other
        worst = worst_case_cost(est, call_max, price)
        if state.spent + worst > budget.max_cost_usd:
            raise _StopRun("budget_cost")
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": call_max,
            "system": system_blocks,
            "tools": tool_defs,
            "messages": request,
        }
        if thinking is not None:
            params["thinking"] = thinking
            params["max_tokens"] = call_max + int(thinking.get("budget_tokens", 0))
            worst = worst_case_cost(est, params["max_tokens"], price)
        transcript.write(
            "request",
            turn=state.turns + 1,
            purpose="summary",
            messages=_strip_cache(copy.deepcopy(request[logged:])),
            max_tokens=params["max_tokens"],
            estimated_input_tokens=est,
            worst_case_usd=round(worst, 6),
            spent_usd=round(state.spent, 6),
        )
        try:
            response = await _call(
                api, params, retry, deadline, state, worst, budget.max_cost_usd, transcript
            )
        except _PromptTooLong as e:
            refusal.append(str(e))
            raise _StopRun("context_window", too_long(est)) from None
        usage = _account(response)
        content = [_block_dict(b) for b in response.content]
        summary = "\n".join(b["text"] for b in content if b["type"] == "text").strip()
        transcript.write(
            "response",
            turn=state.turns,
            purpose="summary",
            id=getattr(response, "id", None),
            stop_reason=response.stop_reason,
            content=content,
            usage=usage.as_dict(),
            cost_usd=round(cost(usage, price), 6),
            total_cost_usd=round(state.spent, 6),
        )
        if not summary:
            lines = [c.summary for c in tools.calls]
            summary = fallback_summary(lines, final_text)
        msgs[:] = compacted(first_message, summary, tools.files_touched)
        if follow_up is not None:
            _append_user(msgs, follow_up)
        state.compactions += 1
        logged = 0
        _mark_cache(msgs)
        new_est = estimate_request_tokens(system_blocks, tool_defs, msgs)
        transcript.write(
            "context",
            action="summarised",
            prompt_tokens_before=est_in,
            estimated_prompt_tokens=new_est,
        )
        _context_metric("summarised")
        return new_est

    def _clear_batch(cands: list[Clearable], est_in: int) -> int:
        saved = clear(msgs, cands)
        state.cleared_results += len(cands)
        transcript.write(
            "context",
            action="cleared",
            results=len(cands),
            saved_tokens=saved,
            prompt_tokens_before=est_in,
            estimated_prompt_tokens=est_in - saved,
        )
        _context_metric("cleared")
        return saved

    async def fit(est_in: int) -> int:
        """Shrink the conversation when it nears the window; returns the new estimate."""
        nonlocal last_prompt
        if est_in + max_tokens <= limits.threshold:
            return est_in
        cands = clearable(msgs, limits)
        if est_in - sum(c.saves for c in cands) + max_tokens <= limits.clear_target:
            saved = _clear_batch(cands, est_in)
            if last_prompt is not None:
                last_prompt = (last_prompt[0], last_prompt[1] - saved)
            _mark_cache(msgs)
            return est_in - saved
        # A summary helps only when the task plus a summary is well under the threshold;
        # otherwise summarise only when the call could not go ahead at all.
        task_only = estimate_request_tokens(system_blocks, tool_defs, [first_message])
        helps = task_only + SUMMARY_MAX_TOKENS + max_tokens <= limits.threshold
        if not helps and est_in + max_tokens <= limits.window:
            return est_in
        last_prompt = None
        return await summarise(est_in)

    def _account(response: Any) -> Usage:
        state.turns += 1
        usage = Usage.from_api(response.usage)
        call_cost = cost(usage, price)
        state.spent += call_cost
        state.usage = state.usage + usage
        state.largest_prompt = max(state.largest_prompt, usage.prompt_tokens)
        _metrics(usage, call_cost)
        return usage

    force_fit = False  # a "prompt is too long" answer came since the last successful call
    known_size = 0  # the prompt's size as that answer counted it
    try:
        while True:
            if tools.halt is not None:
                return finish("workspace_full", tools.halt)
            if should_cancel is not None and await _safely(should_cancel(), False):
                return finish("cancelled")
            if state.turns >= budget.max_turns:
                return finish("budget_turns")
            if time.monotonic() >= deadline:
                return finish("budget_time")

            _mark_cache(msgs)
            if last_prompt is None:
                est_in = estimate_request_tokens(system_blocks, tool_defs, msgs)
            else:
                sent, counted = last_prompt
                est_in = counted + estimate_messages_tokens(msgs[sent:]) + MESSAGE_OVERHEAD_TOKENS
            est_in = await fit(max(est_in, known_size))
            if est_in + floor > limits.window:
                return finish("context_window", too_long(est_in))
            call_max = min(max_tokens, limits.window - est_in)
            remaining = budget.max_cost_usd - state.spent
            if worst_case_cost(est_in, call_max, price) > remaining:
                call_max = min(call_max, max_output_within(remaining, est_in, price))
                if call_max < floor:
                    return finish("budget_cost")
            worst = worst_case_cost(est_in, call_max, price)
            transcript.write(
                "request",
                turn=state.turns + 1,
                messages=_strip_cache(copy.deepcopy(msgs[logged:])),
                max_tokens=call_max,
                estimated_input_tokens=est_in,
                worst_case_usd=round(worst, 6),
                spent_usd=round(state.spent, 6),
            )
            logged = len(msgs)
            params = {
                "model": model,
                "max_tokens": call_max,
                "system": system_blocks,
                "tools": tool_defs,
                "messages": msgs,
            }
            if thinking is not None:
                params["thinking"] = thinking
            try:
                response = await _call(
                    api, params, retry, deadline, state, worst, budget.max_cost_usd, transcript
                )
            except _PromptTooLong as e:
                refusal.append(str(e))
                if force_fit:
                    return finish("context_window", too_long(est_in))
                transcript.write("context", action="refused", error=str(e))
                counted_by_api, window_by_api = _too_long_counts(str(e))
                if window_by_api:
                    limits = dataclasses.replace(limits, window=min(limits.window, window_by_api))
                known_size = max(counted_by_api, est_in + 1)
                force_fit = True
                continue
            force_fit = False
            known_size = 0
            spent_before = state.spent
            usage = _account(response)
            call_cost = state.spent - spent_before
            content = [_block_dict(b) for b in response.content]
            content = [b for b in content if not (b["type"] == "text" and not b.get("text"))]
            if content:
                msgs.append({"role": "assistant", "content": content})
            last_prompt = (
                len(msgs),
                usage.prompt_tokens + max(usage.output_tokens, estimate_tokens(content)),
            )
            logged = len(msgs)
            text = "\n".join(b["text"] for b in content if b["type"] == "text").strip()
            if text:
                final_text = text
            tool_uses = [b for b in content if b["type"] == "tool_use"]
            transcript.write(
                "response",
                turn=state.turns,
                id=getattr(response, "id", None),
                stop_reason=response.stop_reason,
                content=content,
                usage=usage.as_dict(),
                cost_usd=round(call_cost, 6),
                total_cost_usd=round(state.spent, 6),
            )
            if on_progress is not None:
                summaries = [summarize(b["name"], b.get("input") or {}) for b in tool_uses]
                await _safely(
                    on_progress(
                        Progress(
                            turn=state.turns,
                            cost_usd=round(state.spent, 6),
                            tool=summaries[0] if summaries else None,
                            tools=summaries,
                            elapsed_s=round(time.monotonic() - started, 3),
                            budget=budget,
                        )
                    ),
                    None,
                )

            stop_reason = response.stop_reason
            if stop_reason == "max_tokens":
                if continued:
                    return finish("max_tokens", "The model's answer hit max_tokens twice in a row.")
                continued = True
                results: list[dict[str, Any]] = [
                    _tool_result(
                        b["id"], "Not run: this tool call was cut off at max_tokens.", True
                    )
                    for b in tool_uses
                ]
                _append_user(msgs, [*results, {"type": "text", "text": CONTINUE_TEXT}])
                continue
            continued = False
            if tool_uses:
                results = []
                for i, block in enumerate(tool_uses):
                    left = deadline - time.monotonic()
                    try:
                        if left <= 0:
                            raise TimeoutError
                        async with asyncio.timeout(left):
                            r = await tools.run(block["name"], block.get("input") or {})
                    except TimeoutError:
                        note = "Not run: the time limit of the run was reached."
                        results += [_tool_result(b["id"], note, True) for b in tool_uses[i:]]
                        msgs.append({"role": "user", "content": results})
                        _log_results(transcript, state.turns, tool_uses, results)
                        raise _StopRun("budget_time") from None
                    results.append(_tool_result(block["id"], r.content, r.is_error))
                msgs.append({"role": "user", "content": results})
                _log_results(transcript, state.turns, tool_uses, results)
                continue
            if stop_reason == "refusal":
                return finish("error", "The model declined to continue (stop_reason: refusal).")
            if stop_reason == "pause_turn":
                continue
            return finish("end_turn")
    except _StopRun as s:
        return finish(s.stop, s.error)
