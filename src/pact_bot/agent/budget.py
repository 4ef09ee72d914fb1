"""What an agent run may spend (`Budget`), what it reports while it runs (`Progress`), and how
it ended (`RunResult`, `Stop`, `RunCounters`).

Callers that only start a run or read its result need these types, not the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from pact_bot.agent.cost import (
    Usage,
)
from pact_bot.agent.tools import ToolCall

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


@dataclass(frozen=True)
class Budget:
    max_turns: int = 60
    max_cost_usd: float = 5.0
    max_seconds: float = 30 * 60.0


@dataclass(frozen=True)
class Progress:
    turn: int
    cost_usd: float
    tool: str | None
    tools: list[str]
    elapsed_s: float
    budget: Budget


@dataclass
class RunCounters:
    """What a run counts while it goes (the session keeps them) and reports when it stops:
    declared once for both."""

    turns: int = 0
    retries: int = 0
    compactions: int = 0
    """Times the run continued from a summary of itself (agent/context.py)."""
    cleared_results: int = 0
    """Tool results replaced by a note of what they held, to save context."""
    largest_prompt: int = 0
    """The largest prompt sent, in tokens: how close the run came to the window."""

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(RunCounters)}


@dataclass(kw_only=True)
class RunResult(RunCounters):
    stop: Stop
    cost_usd: float
    usage: Usage
    duration_s: float
    final_text: str
    messages: list[dict[str, Any]]
    tool_calls: list[ToolCall]
    files_touched: list[str]
    error: str | None = None

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
