"""What an agent run leaves for operators besides its result: tool-result lines in the
transcript and the token, dollar and context metrics.

A metrics failure is logged and swallowed: it must never end a run.
"""

from __future__ import annotations

import logging
from typing import Any

from pact_bot import metrics
from pact_bot.agent.cost import (
    Usage,
)
from pact_bot.agent.tools import summarize
from pact_bot.agent.transcript import Transcript

log = logging.getLogger(__name__)


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


def _context_metric(action: str) -> None:
    try:
        metrics.context_edits.labels(action).inc()
    except Exception:  # metrics must never break a run
        log.debug("metrics update failed", exc_info=True)


def _run_metrics(usage: Usage) -> None:
    """The share of one run's prompt tokens that were cache reads (per run, not per call)."""
    if not usage.prompt_tokens:
        return
    try:
        metrics.cache_read_share.observe(usage.cached_share)
    except Exception:  # metrics must never break a run
        log.debug("metrics update failed", exc_info=True)


def _metrics(usage: Usage, dollars: float) -> None:
    try:
        metrics.model_tokens.labels("input").inc(usage.input_tokens)
        metrics.model_tokens.labels("cache_read").inc(usage.cache_read_tokens)
        metrics.model_tokens.labels("cache_write").inc(usage.cache_write_tokens)
        metrics.model_tokens.labels("output").inc(usage.output_tokens)
        metrics.model_dollars.inc(dollars)
    except Exception:  # metrics must never break a run
        log.debug("metrics update failed", exc_info=True)
