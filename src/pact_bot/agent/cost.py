"""The cost model (pure): what a run cost, and the most one more call could cost.

Prices are dollars per million tokens, one table per model:
`{"input", "output", "cache_write", "cache_read"}` (see `Settings.prices`). A model without
a price is refused (`UnknownModelPrice`) rather than run uncapped.

The worst case is deliberately pessimistic: every input token is priced at the higher of the
input and cache-write prices (a cache hit is never assumed), and the output at `max_tokens`.
Token estimates overshoot too (about 3 UTF-8 bytes per token, plus a fixed allowance per tool
definition for the hidden prompts of Anthropic's trained tools).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

BYTES_PER_TOKEN = 3.0
TOOL_OVERHEAD_TOKENS = 1_000  # trained tools bring a hidden prompt (~250-700 tokens each)
REQUEST_OVERHEAD_TOKENS = 200
MESSAGE_OVERHEAD_TOKENS = 10
PRICE_KEYS = ("input", "output", "cache_write", "cache_read")
DEFAULT_CONTEXT_WINDOW = 200_000
# Input tokens a request may hold, per model id (without the 1M-context beta, which pact-bot
# does not send). A model not listed gets DEFAULT_CONTEXT_WINDOW, the API's window for every
# current model, so a new model id is never run without a limit.
CONTEXT_WINDOWS: dict[str, int] = {
    "claude-sonnet-5-5": 200_000,
    "claude-opus-5-5": 200_000,
    "claude-haiku-5-5": 200_000,
    "claude-sonnet-4-5": 200_000,
    "claude-opus-4-5": 200_000,
    "claude-haiku-4-5": 200_000,
}


class UnknownModelPrice(Exception):
    """No price for the model: refusing to start rather than run without a dollar cap."""

    def __init__(self, model: str, known: Iterable[str] = ()) -> None:
        known_list = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"No price is known for model {model!r}, so its dollar budget cannot be enforced. "
            f'Set PACT_PRICES=\'{{"{model}": {{"input": ..., "output": ..., "cache_write": ..., '
            f'"cache_read": ...}}}}\' (dollars per million tokens). Priced models: {known_list}.'
        )
        self.model = model


@dataclass(frozen=True)
class Tokens:
    """Token counts and their prompt arithmetic, declared once for one call's `Usage` and a
    job's `RunStats`."""

    input_tokens: int = 0
    """Prompt tokens neither read from nor written to the cache, priced as `input`."""
    output_tokens: int = 0
    cache_read_tokens: int = 0
    """Prompt tokens read from the cache, priced as `cache_read` (a tenth of input)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the cache, priced as `cache_write` (1.25 times input)."""

    @property
    def prompt_tokens(self) -> int:
        """Everything the request sent: uncached input + cache reads + cache writes."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def cached_share(self) -> float:
        return self.cache_read_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True)
class Usage(Tokens):
    """One call's tokens (or a run's, summed)."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """From an SDK `Usage` object or its dict form; missing fields count as 0."""

        def get(name: str) -> int:
            v = usage.get(name) if isinstance(usage, Mapping) else getattr(usage, name, None)
            return int(v or 0)

        return cls(
            input_tokens=get("input_tokens"),
            output_tokens=get("output_tokens"),
            cache_read_tokens=get("cache_read_input_tokens"),
            cache_write_tokens=get("cache_creation_input_tokens"),
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def model_prices(model: str, prices: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The model's complete price table, or UnknownModelPrice."""
    table = prices.get(model)
    if not table or any(k not in table for k in PRICE_KEYS):
        raise UnknownModelPrice(model, [m for m, t in prices.items() if t])
    return {k: float(table[k]) for k in PRICE_KEYS}


def context_window(model: str, windows: Mapping[str, int] = CONTEXT_WINDOWS) -> int:
    """The model's context window in tokens (DEFAULT_CONTEXT_WINDOW when not listed)."""
    return int(windows.get(model, DEFAULT_CONTEXT_WINDOW))


def cost(usage: Usage, prices: Mapping[str, float]) -> float:
    """Dollars for `usage` at one model's `prices`."""
    return (
        usage.input_tokens * prices["input"]
        + usage.output_tokens * prices["output"]
        + usage.cache_write_tokens * prices["cache_write"]
        + usage.cache_read_tokens * prices["cache_read"]
    ) / 1_000_000


def input_price(prices: Mapping[str, float]) -> float:
    """Per-token worst case for an input token whose caching we do not know."""
    return max(prices["input"], prices["cache_write"])


def worst_case_cost(
    estimated_input_tokens: int,
    max_tokens: int,
    prices: Mapping[str, float],
    known_cached_tokens: int = 0,
) -> float:
    """The most one call can cost. Only tokens known to be cached get the cache-read price;
    pass 0 (the default) to assume no cache hit at all."""
    cached = min(max(known_cached_tokens, 0), estimated_input_tokens)
    uncached = estimated_input_tokens - cached
    return (
        uncached * input_price(prices)
        + cached * prices["cache_read"]
        + max_tokens * prices["output"]
    ) / 1_000_000


def max_output_within(
    remaining_usd: float, estimated_input_tokens: int, prices: Mapping[str, float]
) -> int:
    """The largest `max_tokens` whose worst case still fits in `remaining_usd` (may be <= 0)."""
    left = remaining_usd - estimated_input_tokens * input_price(prices) / 1_000_000
    if left <= 0:
        return 0
    return math.floor(left * 1_000_000 / prices["output"])


def estimate_tokens(obj: Any) -> int:
    """A pessimistic token count for any JSON-able value (strings count by UTF-8 bytes)."""
    if isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    return math.ceil(len(data) / BYTES_PER_TOKEN)


def estimate_request_tokens(
    system: Any, tools: list[dict[str, Any]], messages: list[dict[str, Any]]
) -> int:
    """Input tokens a request could count, from scratch (used for the first call)."""
    return (
        REQUEST_OVERHEAD_TOKENS
        + estimate_tokens(system)
        + sum(estimate_tokens(t) + TOOL_OVERHEAD_TOKENS for t in tools)
        + estimate_messages_tokens(messages)
    )


def estimate_messages_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_tokens(m.get("content", "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)
