"""The agent loop: stream a turn, run the tools it asks for, repeat — within hard budgets.

    result = await run_agent(
        client=anthropic.AsyncAnthropic(...), model="claude-sonnet-5-5", system=system,
        user_message=first_message, tools=build_tools(worktree, sandbox=True),
        budget=Budget.from_settings(settings), prices=settings.prices,
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

Retries are ours, not the SDK's (the client is used with `max_retries=0`): 429, 408, 409,
5xx and 529, connection failures, and `overloaded_error`/`api_error` events mid-stream are
retried up to `RetryPolicy.max_retries` times with exponential backoff (with jitter), waiting
what `retry-after-ms`/`retry-after` says when the server says it. `x-should-retry: false` is
obeyed. When retries run out the run stops with `error` and a message such as
"Anthropic API overloaded (529) after 5 retries".

Context window: before every call the prompt's size is known (the last response's usage plus
an estimate of what was added since). When it and `max_tokens` would pass
`ContextLimits.compact_at` of the model's window (`cost.context_window`), old tool results are
cleared in one batch, or, when that is not enough, the conversation is summarised by the model
and the run continues from the task and the summary (see `agent/context.py`). A 400 "prompt is
too long" (our estimate was wrong) forces the same once; a prompt that still does not fit
stops the run with `context_window`, which no retry can fix.

Prompt caching: one breakpoint on the system block (tools come before system in the prefix,
so it covers both) and a moving one on the last block of each of the two latest user turns
(the previous one keeps the last cache entry reachable even when a turn adds more than the
API's 20-block lookback); older marks are removed, so a request never carries more than 3.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import email.utils
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anthropic

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
from pact_bot.agent.tools import ToolCall, Tools, summarize
from pact_bot.agent.transcript import Transcript

log = logging.getLogger(__name__)

Stop = Literal[
    "end_turn",
    "budget_turns",
    "budget_cost",
    "budget_time",
    "cancelled",
    "error",
    "max_tokens",
    "context_window",
    "workspace_full",
]
CACHE = {"type": "ephemeral"}
CONTINUE_TEXT = (
    "Your previous response was cut off at the output token limit. Continue from where you "
    "stopped; write large files in several smaller steps (create, then insert or str_replace)."
)
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
RETRYABLE_EVENT_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}
PROMPT_TOO_LONG = "prompt is too long"
SUMMARY_MAX_TOKENS = 8192


@dataclass(frozen=True)
class Budget:
    max_turns: int = 60
    max_cost_usd: float = 5.0
    max_seconds: float = 30 * 60.0

    @classmethod
    def from_settings(cls, settings: Any) -> Budget:
        return cls(
            max_turns=settings.pact_max_turns,
            max_cost_usd=settings.pact_max_cost_usd,
            max_seconds=settings.pact_max_minutes * 60.0,
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 2.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2.0**attempt) * random.uniform(0.75, 1.0)


@dataclass(frozen=True)
class Progress:
    turn: int
    cost_usd: float
    tool: str | None
    tools: list[str]
    elapsed_s: float
    budget: Budget


@dataclass
class RunResult:
    stop: Stop
    turns: int
    cost_usd: float
    usage: Usage
    duration_s: float
    final_text: str
    messages: list[dict[str, Any]]
    tool_calls: list[ToolCall]
    files_touched: list[str]
    error: str | None = None
    retries: int = 0
    compactions: int = 0
    cleared_results: int = 0
    largest_prompt: int = 0

    @property
    def ok(self) -> bool:
        return self.stop == "end_turn"

    def describe(self) -> str:
        """One sentence for a progress comment or a log line."""
        budget = {
            "budget_turns": "the turn limit was reached",
            "budget_cost": "the dollar budget was reached",
            "budget_time": "the time limit was reached",
            "cancelled": "the run was cancelled",
            "max_tokens": "the model's answer was cut off twice at max_tokens",
            "error": f"the run failed: {self.error}",
            "context_window": f"the conversation outgrew the context window: {self.error}",
            "workspace_full": f"{self.error}",
            "end_turn": "the agent finished",
        }[self.stop]
        return (
            f"Stopped because {budget} after {self.turns} turns, ${self.cost_usd:.2f}, "
            f"{self.duration_s:.0f}s; {len(self.tool_calls)} tool calls, "
            f"{len(self.files_touched)} files touched."
        )


class _StopRun(Exception):
    def __init__(self, stop: Stop, error: str | None = None) -> None:
        super().__init__(error or stop)
        self.stop = stop
        self.error = error


@dataclass
class _State:
    turns: int = 0
    spent: float = 0.0
    usage: Usage = field(default_factory=Usage)
    retries: int = 0
    compactions: int = 0
    cleared_results: int = 0
    largest_prompt: int = 0


class _PromptTooLong(Exception):
    """The API refused the prompt as longer than the window (our estimate was short)."""


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


async def _call(
    api: anthropic.AsyncAnthropic,
    params: dict[str, Any],
    retry: RetryPolicy,
    deadline: float,
    state: _State,
    worst: float,
    cap: float,
    transcript: Transcript,
) -> Any:
    """One model call with our retries; raises _StopRun when it cannot be completed."""
    attempt = 0
    while True:
        opened = False
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _StopRun("budget_time")
            async with asyncio.timeout(left):
                async with api.messages.stream(**params) as stream:
                    opened = True
                    return await stream.get_final_message()
        except TimeoutError:
            if opened:
                _charge_failed(state, worst, transcript, "time limit during the call")
            raise _StopRun("budget_time") from None
        except anthropic.APIStatusError as e:
            if opened:
                _charge_failed(state, worst, transcript, _describe(e))
            if e.status_code == 400 and PROMPT_TOO_LONG in _describe(e):
                raise _PromptTooLong(_describe(e)) from None
            if not _retryable(e):
                raise _StopRun("error", f"Anthropic API error: {_describe(e)}") from None
            err: anthropic.APIError = e
        except anthropic.APIConnectionError as e:
            if opened:
                _charge_failed(state, worst, transcript, "connection lost mid-stream")
            err = e
        if attempt >= retry.max_retries:
            raise _StopRun("error", f"{_exhausted(err)} after {attempt} retries") from None
        if state.spent + worst > cap:
            raise _StopRun(
                "budget_cost", f"{_exhausted(err)}; a retry could pass the dollar cap"
            ) from None
        delay = _retry_after(err, retry) or retry.backoff(attempt)
        if time.monotonic() + delay >= deadline:
            raise _StopRun(
                "budget_time", f"{_exhausted(err)}; the time limit ends before a retry"
            ) from None
        attempt += 1
        state.retries += 1
        transcript.write("retry", attempt=attempt, wait_s=round(delay, 3), error=_describe(err))
        log.warning("Anthropic call failed, retrying in %.1fs: %s", delay, _describe(err))
        await asyncio.sleep(delay)


async def _safely(awaitable: Awaitable[Any], default: Any) -> Any:
    """Progress and cancel callbacks talk to GitHub or a database; their failure must not end
    the run."""
    try:
        return await awaitable
    except Exception:
        log.warning("agent callback failed", exc_info=True)
        return default


def _charge_failed(state: _State, worst: float, transcript: Transcript, why: str) -> None:
    """A call that failed after streaming began may have been billed: count its worst case."""
    state.spent += worst
    transcript.write("charged_failed_call", usd=round(worst, 6), reason=why)


def _status(e: anthropic.APIError) -> int | None:
    return getattr(e, "status_code", None)


def _event_error_type(e: anthropic.APIError) -> str | None:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            t = inner.get("type")
            return str(t) if t else None
    return None


def _retryable(e: anthropic.APIStatusError) -> bool:
    should = e.response.headers.get("x-should-retry") if e.response is not None else None
    if should == "false":
        return False
    if should == "true":
        return True
    if e.status_code in RETRYABLE_STATUS:
        return True
    return e.status_code < 400 and _event_error_type(e) in RETRYABLE_EVENT_ERRORS


def _describe(e: anthropic.APIError) -> str:
    status = _status(e)
    kind = _event_error_type(e)
    message = getattr(e, "message", str(e))
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", {})
        if isinstance(inner, dict) and inner.get("message"):
            message = inner["message"]
    parts = [str(status)] if status and status >= 400 else []
    if kind:
        parts.append(kind)
    prefix = f"{' '.join(parts)}: " if parts else ""
    return f"{prefix}{message}"


def _too_long_counts(message: str) -> tuple[int, int]:
    """(tokens counted, window) from "prompt is too long: 201234 tokens > 200000 maximum"."""
    m = re.search(r"(\d+) tokens > (\d+) maximum", message)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _exhausted(e: anthropic.APIError) -> str:
    status, kind = _status(e), _event_error_type(e)
    if status == 529 or kind == "overloaded_error":
        return "Anthropic API overloaded (529)"
    if status == 429 or kind == "rate_limit_error":
        return "Anthropic API rate limited (429)"
    if isinstance(e, anthropic.APIConnectionError):
        return f"Anthropic API unreachable ({e.message})"
    return f"Anthropic API error ({_describe(e)})"


def _retry_after(e: anthropic.APIError, retry: RetryPolicy) -> float | None:
    response = getattr(e, "response", None)
    if response is None or _status(e) in (None, 200):
        return None
    headers = response.headers
    value: float | None = None
    try:
        if "retry-after-ms" in headers:
            value = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            raw = headers["retry-after"]
            try:
                value = float(raw)
            except ValueError:
                parsed = email.utils.parsedate_tz(raw)
                value = email.utils.mktime_tz(parsed) - time.time() if parsed else None
    except (TypeError, ValueError):
        return None
    if value is None or value < 0:
        return None
    return min(value, retry.max_retry_after)


def _append_user(msgs: list[dict[str, Any]], content: str | list[dict[str, Any]]) -> None:
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if msgs and msgs[-1]["role"] == "user":
        prev = msgs[-1]["content"]
        prev = [{"type": "text", "text": prev}] if isinstance(prev, str) else list(prev)
        msgs[-1] = {"role": "user", "content": prev + blocks}
    else:
        msgs.append({"role": "user", "content": blocks})


def _close_dangling(msgs: list[dict[str, Any]], note: str) -> None:
    """Answer tool calls left without a result, so the conversation can be continued."""
    if not msgs or msgs[-1]["role"] != "assistant":
        return
    ids = [b["id"] for b in msgs[-1]["content"] if isinstance(b, dict) and b["type"] == "tool_use"]
    if ids:
        msgs.append({"role": "user", "content": [_tool_result(i, note, True) for i in ids]})


def _log_results(
    transcript: Transcript,
    turn: int,
    tool_uses: list[dict[str, Any]],
    results: list[dict[str, Any]],
) -> None:
    """A compact line per tool run; the full results are in the next `request` line."""
    transcript.write(
        "tool_results",
        turn=turn,
        results=[
            {
                "tool_use_id": r["tool_use_id"],
                "tool": summarize(u["name"], u.get("input") or {}),
                "is_error": bool(r.get("is_error")),
                "chars": len(r["content"]),
            }
            for u, r in zip(tool_uses, results, strict=False)
        ],
    )


def _tool_result(tool_use_id: str, content: str, is_error: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": content or "(no output)",
    }
    if is_error:
        block["is_error"] = True
    return block


def _mark_cache(msgs: list[dict[str, Any]]) -> None:
    _strip_cache(msgs)
    users = [m for m in msgs if m["role"] == "user"][-2:]
    for m in users:
        if isinstance(m["content"], str):
            m["content"] = [{"type": "text", "text": m["content"]}]
        if m["content"]:
            m["content"][-1]["cache_control"] = CACHE


def _strip_cache(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for m in msgs:
        if isinstance(m.get("content"), list):
            for b in m["content"]:
                if isinstance(b, dict):
                    b.pop("cache_control", None)
    return msgs


_FIELDS = {
    "text": ("type", "text", "citations"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "tool_use": ("type", "id", "name", "input"),
}


def _block_dict(block: Any) -> dict[str, Any]:
    """The block as the API returned it, in the shape it accepts back (thinking unchanged)."""
    data = block if isinstance(block, dict) else block.model_dump(mode="json", exclude_none=True)
    keep = _FIELDS.get(data.get("type", ""))
    if keep is None:
        return data
    return {k: data[k] for k in keep if data.get(k) is not None}


def _context_metric(action: str) -> None:
    try:
        from pact_bot import metrics

        metrics.context_edits.labels(action).inc()
    except Exception:  # metrics must never break a run
        log.debug("metrics update failed", exc_info=True)


def _run_metrics(usage: Usage) -> None:
    """The share of one run's prompt tokens that were cache reads (per run, not per call)."""
    if not usage.prompt_tokens:
        return
    try:
        from pact_bot import metrics

        metrics.cache_read_share.observe(usage.cached_share)
    except Exception:  # metrics must never break a run
        log.debug("metrics update failed", exc_info=True)


def _metrics(usage: Usage, dollars: float) -> None:
    try:
        from pact_bot import metrics

        metrics.model_tokens.labels("input").inc(usage.input_tokens)
        metrics.model_tokens.labels("cache_read").inc(usage.cache_read_tokens)
        metrics.model_tokens.labels("cache_write").inc(usage.cache_write_tokens)
        metrics.model_tokens.labels("output").inc(usage.output_tokens)
        metrics.model_dollars.inc(dollars)
    except Exception:  # metrics must never break a run
        log.debug("metrics update failed", exc_info=True)
