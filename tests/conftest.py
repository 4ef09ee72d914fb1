from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

# Simulator plugins (tests/ is on sys.path via rootdir conftest import): append, do not rewrite.
pytest_plugins = ["sim.fixtures", "sim.anthropic_fixtures"]

# GitHub's real example payloads, vendored (octokit/webhooks, MIT: see the LICENSE there).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "github-webhooks"


def _fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def webhook_fixtures() -> Path:
    """GitHub's real example payloads: `<host>/<event>/<action>[.<variant>].payload.json`."""
    return _fixtures_dir()


def load_payload(relpath: str) -> dict:
    return json.loads((_fixtures_dir() / relpath).read_text())


@functools.cache
def app_credentials() -> dict[str, str]:
    """An App id and private key for servers that must count as configured but never call
    GitHub (ingress tests): without them /webhook answers 503."""
    from sim.auth import new_private_key_pem

    return {"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": new_private_key_pem(pkcs8=True)}
