"""The loop's side of `agent/context.py`: before a call, shrink the conversation when it nears
the window — clear old tool results in one batch, or have the model summarise the work and
continue from the task plus that summary. Each step is written to the transcript and counted.
"""

from __future__ import annotations

import dataclasses

from pact_bot.agent.api_call import _PromptTooLong, _StopRun
from pact_bot.agent.context import (
    SUMMARY_PROMPT,
    Clearable,
    clear,
    clearable,
    compacted,
    fallback_summary,
    summary_request,
)
from pact_bot.agent.cost import estimate_request_tokens, estimate_tokens, worst_case_cost
from pact_bot.agent.messages import _append_user, _block_dict, _mark_cache
from pact_bot.agent.run_log import _context_metric
from pact_bot.agent.session import Session, text_of

SUMMARY_MAX_TOKENS = 8192


async def fit(s: Session, est_in: int) -> int:
    """Shrink the conversation when it nears the window; returns the new estimate."""
    limits = s.limits
    if est_in + s.max_tokens <= limits.threshold:
        return est_in
    cands = clearable(s.msgs, limits)
    if est_in - sum(c.saves for c in cands) + s.max_tokens <= limits.clear_target:
        saved = clear_batch(s, cands, est_in)
        if s.last_prompt is not None:
            s.last_prompt = (s.last_prompt[0], s.last_prompt[1] - saved)
        _mark_cache(s.msgs)
        return est_in - saved
    # A summary helps only when the task plus a summary is well under the threshold;
    # otherwise summarise only when the call could not go ahead at all.
    task_only = estimate_request_tokens(s.system_blocks, s.tool_defs, [s.first_message])
    helps = task_only + SUMMARY_MAX_TOKENS + s.max_tokens <= limits.threshold
    if not helps and est_in + s.max_tokens <= limits.window:
        return est_in
    s.last_prompt = None
    return await summarise(s, est_in)


def clear_batch(s: Session, cands: list[Clearable], est_in: int) -> int:
    """Clear `cands` (all at once: the cache is rewritten once); returns the tokens saved."""
    saved = clear(s.msgs, cands)
    s.state.cleared_results += len(cands)
    s.transcript.write(
        "context",
        action="cleared",
        results=len(cands),
        saved_tokens=saved,
        prompt_tokens_before=est_in,
        estimated_prompt_tokens=est_in - saved,
    )
    _context_metric("cleared")
    return saved


async def summarise(s: Session, est_in: int) -> int:
    """Ask the model for a summary and continue from the task plus that summary."""
    if len(s.msgs) < 3:
        return est_in  # nothing done since the task (or the last summary) to summarise
    cands = clearable(s.msgs, dataclasses.replace(s.limits, keep_recent=0))
    if est_in + SUMMARY_MAX_TOKENS > s.limits.window and cands:
        est_in -= clear_batch(s, cands, est_in)
    request = summary_request(s.msgs)
    est = est_in + estimate_tokens(SUMMARY_PROMPT)
    call_max = max(SUMMARY_MAX_TOKENS, s.floor)
    if est + call_max > s.limits.window:
        raise _StopRun("context_window", s.too_long(est))
    if s.state.turns >= s.budget.max_turns:
        raise _StopRun("budget_turns")  # the summary is a model call like any other
    worst = worst_case_cost(est, call_max, s.price)
    if s.state.spent + worst > s.budget.max_cost_usd:
        raise _StopRun("budget_cost")
    params = s.params(call_max, request)
    if s.thinking is not None:
        params["max_tokens"] = call_max + int(s.thinking.get("budget_tokens", 0))
        worst = worst_case_cost(est, params["max_tokens"], s.price)
    s.write_request(request, params["max_tokens"], est, worst, purpose="summary")
    try:
        response = await s.call(params, worst)
    except _PromptTooLong as e:
        s.refusal = str(e)
        raise _StopRun("context_window", s.too_long(est)) from None
    usage = s.account(response)
    content = [_block_dict(b) for b in response.content]
    summary = text_of(content)
    s.write_response(response, content, usage, purpose="summary")
    if not summary:
        summary = fallback_summary([c.summary for c in s.tools.calls], s.final_text)
    _restart_from_summary(s, summary)
    new_est = estimate_request_tokens(s.system_blocks, s.tool_defs, s.msgs)
    s.transcript.write(
        "context",
        action="summarised",
        prompt_tokens_before=est_in,
        estimated_prompt_tokens=new_est,
    )
    _context_metric("summarised")
    return new_est


def _restart_from_summary(s: Session, summary: str) -> None:
    """The conversation becomes the task (plus a continued run's message) and the summary."""
    s.msgs[:] = compacted(s.first_message, summary, s.tools.files_touched)
    if s.follow_up is not None:
        _append_user(s.msgs, s.follow_up)
    s.state.compactions += 1
    s.logged = 0
    _mark_cache(s.msgs)
