"""One model call of an agent run: streamed, retried, bounded by the deadline and the dollar cap.

A call that fails after the response began streaming is charged its worst case, since it
may have been billed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import anthropic

from pact_bot.agent.budget import RunCounters, Stop
from pact_bot.agent.cost import (
    Usage,
)
from pact_bot.agent.retry import (
    PROMPT_TOO_LONG,
    RetryPolicy,
    _describe,
    _exhausted,
    _retry_after,
    _retryable,
)
from pact_bot.agent.transcript import Transcript

log = logging.getLogger(__name__)


class _StopRun(Exception):
    def __init__(self, stop: Stop, error: str | None = None) -> None:
        super().__init__(error or stop)
        self.stop = stop
        self.error = error


@dataclass
class _State(RunCounters):
    spent: float = 0.0
    usage: Usage = field(default_factory=Usage)


class _PromptTooLong(Exception):
    """The API refused the prompt as longer than the window (our estimate was short)."""


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
