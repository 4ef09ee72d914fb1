"""One agent run's state: what it was started with, the conversation as it grows, and the
steps every model call shares (building the request, calling, accounting, the transcript).

The loop (`agent/loop.py`) and the context fitting (`agent/compaction.py`) both drive a run
through this object, so neither keeps state the other cannot see.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anthropic

from pact_bot.agent.api_call import _call, _State
from pact_bot.agent.budget import Budget, RunResult, Stop
from pact_bot.agent.context import ContextLimits
from pact_bot.agent.cost import Usage, cost
from pact_bot.agent.messages import _close_dangling, _strip_cache
from pact_bot.agent.retry import RetryPolicy
from pact_bot.agent.run_log import _metrics, _run_metrics
from pact_bot.agent.tools import Tools
from pact_bot.agent.transcript import Transcript

log = logging.getLogger(__name__)


@dataclass
class Session:
    api: anthropic.AsyncAnthropic
    model: str
    price: dict[str, float]
    budget: Budget
    retry: RetryPolicy
    thinking: dict[str, Any] | None
    max_tokens: int
    floor: int  # the smallest answer worth a call: min_max_tokens, above any thinking budget
    tools: Tools
    transcript: Transcript
    system_blocks: list[dict[str, Any]]
    tool_defs: list[dict[str, Any]]  # built once: every request sends the same (cached) prefix
    limits: ContextLimits
    msgs: list[dict[str, Any]]
    first_message: dict[str, Any]  # the task, kept for a summarised conversation
    follow_up: str | list[dict[str, Any]] | None  # a continued run's new message, kept likewise
    logged: int  # messages already in the transcript
    started: float = field(default_factory=time.monotonic)
    final_text: str = ""
    last_prompt: tuple[int, int] | None = None  # (messages sent, prompt tokens counted)
    refusal: str = ""  # the API's last "prompt is too long" message
    state: _State = field(default_factory=_State)

    @property
    def deadline(self) -> float:
        return self.started + self.budget.max_seconds

    def params(self, max_tokens: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The request for one call (thinking, when asked for, passed through)."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": self.system_blocks,
            "tools": self.tool_defs,
            "messages": messages,
        }
        if self.thinking is not None:
            params["thinking"] = self.thinking
        return params

    async def call(self, params: dict[str, Any], worst: float) -> Any:
        """One model call with our retries (`api_call._call`)."""
        return await _call(
            self.api,
            params,
            self.retry,
            self.deadline,
            self.state,
            worst,
            self.budget.max_cost_usd,
            self.transcript,
        )

    def account(self, response: Any) -> Usage:
        """Count a finished call against the run's turns and dollars."""
        self.state.turns += 1
        usage = Usage.from_api(response.usage)
        call_cost = cost(usage, self.price)
        self.state.spent += call_cost
        self.state.usage = self.state.usage + usage
        self.state.largest_prompt = max(self.state.largest_prompt, usage.prompt_tokens)
        _metrics(usage, call_cost)
        return usage

    def write_request(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int,
        est: int,
        worst: float,
        **purpose: str,
    ) -> None:
        """The request's transcript line: the messages not logged before, and its worst case."""
        self.transcript.write(
            "request",
            turn=self.state.turns + 1,
            **purpose,
            messages=_strip_cache(copy.deepcopy(messages[self.logged :])),
            max_tokens=max_tokens,
            estimated_input_tokens=est,
            worst_case_usd=round(worst, 6),
            spent_usd=round(self.state.spent, 6),
        )

    def write_response(
        self, response: Any, content: list[dict[str, Any]], usage: Usage, **purpose: str
    ) -> None:
        self.transcript.write(
            "response",
            turn=self.state.turns,
            **purpose,
            id=getattr(response, "id", None),
            stop_reason=response.stop_reason,
            content=content,
            usage=usage.as_dict(),
            cost_usd=round(cost(usage, self.price), 6),
            total_cost_usd=round(self.state.spent, 6),
        )

    def too_long(self, est: int) -> str:
        said = f" (the API said: {self.refusal})" if self.refusal else ""
        return (
            f"the prompt needs about {est:,} tokens and the answer at least {self.floor:,}, more "
            f"than the {self.limits.window:,}-token context window of {self.model} allows, even "
            f"after clearing old tool results and summarising the earlier work{said}"
        )

    def finish(self, stop: Stop, error: str | None = None) -> RunResult:
        """The run's result, its transcript line, metrics and log line."""
        _close_dangling(self.msgs, f"Not run: the run stopped ({stop}).")
        state = self.state
        result = RunResult(
            stop=stop,
            cost_usd=round(state.spent, 6),
            usage=state.usage,
            duration_s=round(time.monotonic() - self.started, 3),
            final_text=self.final_text,
            messages=_strip_cache(self.msgs),
            tool_calls=list(self.tools.calls),
            files_touched=self.tools.files_touched,
            error=error,
            **state.counts(),
        )
        self.transcript.write(
            "stop",
            stop=stop,
            error=error,
            cost_usd=result.cost_usd,
            usage=result.usage.as_dict(),
            duration_s=result.duration_s,
            files_touched=result.files_touched,
            cache_read_share=round(result.usage.cached_share, 4),
            **result.counts(),
        )
        _run_metrics(result.usage)
        log.info(
            "agent stopped: %s",
            stop,
            extra={"stop": stop, "turns": result.turns, "cost_usd": result.cost_usd},
        )
        return result


def text_of(content: list[dict[str, Any]]) -> str:
    """The text blocks of an answer, joined."""
    return "\n".join(b["text"] for b in content if b["type"] == "text").strip()
