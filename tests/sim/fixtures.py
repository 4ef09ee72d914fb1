"""Pytest plugin: the ``github_sim`` fixture (see ``sim.github`` for its API)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from .github import GitHubSim


@pytest.fixture
def github_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubSim]:
    """A fresh simulated GitHub per test, served on a free loopback port."""
    root: Path = tmp_path_factory.mktemp("github-sim")
    with GitHubSim(root) as sim:
        yield sim
    if sim.errors:
        warnings.warn(f"GitHub simulator answered 500: {sim.errors}", stacklevel=1)
