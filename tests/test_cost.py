"""Cost math, and a worst case that never undershoots."""

from __future__ import annotations

import pytest

from pact_bot.agent.cost import (
    UnknownModelPrice,
    Usage,
    cost,
    estimate_request_tokens,
    estimate_tokens,
    max_output_within,
    model_prices,
    worst_case_cost,
)
from pact_bot.model_catalog import DEFAULT_PRICES

SONNET = model_prices("claude-sonnet-5-5", DEFAULT_PRICES)


def test_cost_of_each_token_kind() -> None:
    assert cost(Usage(input_tokens=1_000_000), SONNET) == pytest.approx(2.0)
    assert cost(Usage(output_tokens=1_000_000), SONNET) == pytest.approx(10.0)
    assert cost(Usage(cache_write_tokens=1_000_000), SONNET) == pytest.approx(2.5)
    assert cost(Usage(cache_read_tokens=1_000_000), SONNET) == pytest.approx(0.2)
    u = Usage(1000, 2000, 3000, 4000)
    assert cost(u, SONNET) == pytest.approx((2000 + 20000 + 600 + 10000) / 1e6)


def test_usage_adds_and_reads_the_api_shape() -> None:
    u = Usage.from_api(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": None,
        }
    )
    assert u == Usage(10, 5, 100, 0)
    assert u + u == Usage(20, 10, 200, 0)
    assert u.prompt_tokens == 110 and u.cached_share == pytest.approx(100 / 110)


def test_worst_case_prices_input_at_the_higher_of_input_and_cache_write() -> None:
    assert worst_case_cost(1_000_000, 0, SONNET) == pytest.approx(2.5)
    assert worst_case_cost(0, 16_000, SONNET) == pytest.approx(0.16)
    assert worst_case_cost(1_000_000, 0, SONNET, known_cached_tokens=400_000) == pytest.approx(
        0.6 * 2.5 + 0.4 * 0.2
    )
    # whatever actually happens to a request, the real cost is never above the worst case
    for actual in (Usage(1000, 500), Usage(0, 500, 0, 1000), Usage(10, 500, 990, 0)):
        assert cost(actual, SONNET) <= worst_case_cost(actual.prompt_tokens, 500, SONNET)


def test_max_output_within_remaining_budget() -> None:
    assert max_output_within(0.01, 0, SONNET) == 1000
    assert max_output_within(0.01, 4000, SONNET) == 0
    n = max_output_within(0.5, 10_000, SONNET)
    assert worst_case_cost(10_000, n, SONNET) <= 0.5 < worst_case_cost(10_000, n + 1, SONNET)


def test_unknown_model_refuses_with_a_clear_message() -> None:
    with pytest.raises(UnknownModelPrice) as err:
        model_prices("claude-mystery-9", DEFAULT_PRICES)
    msg = str(err.value)
    assert "claude-mystery-9" in msg and "PACT_PRICES" in msg and "claude-sonnet-5-5" in msg
    with pytest.raises(UnknownModelPrice):
        model_prices("m", {"m": {"input": 1.0}})


def test_token_estimates_overshoot() -> None:
    # ~4 characters per token is typical for English; the estimate assumes 3 bytes.
    assert estimate_tokens("a" * 3000) == 1000
    assert estimate_tokens("é" * 300) == 200
    n = estimate_request_tokens(
        "sys",
        [{"type": "bash_20250124", "name": "bash"}],
        [{"role": "user", "content": "hello " * 100}],
    )
    assert n > 1000 + 600 / 3
