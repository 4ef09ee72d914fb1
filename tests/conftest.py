from __future__ import annotations

import json
from pathlib import Path

import pytest

# Simulator plugins (tests/ is on sys.path via rootdir conftest import): append, do not rewrite.
pytest_plugins = ["sim.fixtures", "sim.anthropic_fixtures"]

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "github-webhooks"


def _fixtures_dir() -> Path:
    for cand in (FIXTURES, Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"):
        if cand.is_dir():
            return cand
    pytest.skip("GitHub webhook fixtures (../shared/fixtures/github-webhooks) are not present")


@pytest.fixture
def webhook_fixtures() -> Path:
    """GitHub's real example payloads: `<host>/<event>/<action>[.<variant>].payload.json`."""
    return _fixtures_dir()


def load_payload(relpath: str) -> dict:
    return json.loads((_fixtures_dir() / relpath).read_text())
