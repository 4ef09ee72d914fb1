"""Pytest plugin: the `anthropic_sim` fixture.

One simulator server is started per test session; each test gets it reset (default policy,
no faults, empty records and cache). Load with `pytest_plugins` in `tests/conftest.py`.
Use `anthropic_sim.base_url` / `.api_key` (or `.env()` for a subprocess such as
`pact-bot serve`), `.set_policy(...)`, `.inject(...)`; see `tests/sim/anthropic.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .anthropic import AnthropicSim


@pytest.fixture(scope="session")
def _anthropic_sim_server() -> Iterator[AnthropicSim]:
    sim = AnthropicSim().start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def anthropic_sim(_anthropic_sim_server: AnthropicSim) -> Iterator[AnthropicSim]:
    """The Anthropic API simulator, reset for this test."""
    _anthropic_sim_server.reset()
    yield _anthropic_sim_server
    _anthropic_sim_server.reset()
