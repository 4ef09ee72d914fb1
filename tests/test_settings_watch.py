"""A running worker picks up the App the setup flow wrote to the env file (`EnvFileWatch`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from conftest import app_credentials

from pact_bot.clock import FakeClock, Interval
from pact_bot.settings import Settings
from pact_bot.settings_watch import EnvFileWatch
from pact_bot.web.setup_credentials import write_app_credentials


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for k in list(os.environ):
        if k.startswith(("GITHUB_", "PACT_", "ANTHROPIC_")):
            monkeypatch.delenv(k)


def watch(path: Path, clock: FakeClock) -> tuple[EnvFileWatch, list[Settings]]:
    seen: list[Settings] = []
    return EnvFileWatch(path, seen.append, Interval(3.0, clock)), seen


async def test_registered_app_is_loaded_after_the_throttle_and_only_once(tmp_path: Path) -> None:
    env_file, clock = tmp_path / "pact.env", FakeClock()
    w, seen = watch(env_file, clock)
    write_app_credentials(env_file, {"GITHUB_APP_ID": "7", **_pem()}, "test")
    assert w.check() is None  # looked less than 3 s ago: no stat, no reload
    await clock.advance(3)
    new = w.check()
    assert new is not None and new.github_app_id == 7 and new.app_configured
    assert seen == [new]
    await clock.advance(3)
    assert w.check() is None  # unchanged since: nothing reloaded
    assert len(seen) == 1


async def test_a_file_that_does_not_load_keeps_the_old_settings_until_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env_file, clock = tmp_path / "pact.env", FakeClock()
    w, seen = watch(env_file, clock)
    env_file.write_text("GITHUB_APP_ID=not-a-number\n")
    await clock.advance(3)
    with caplog.at_level(logging.WARNING):
        assert w.check() is None
    assert seen == []
    assert "GITHUB_APP_ID" in caplog.text
    write_app_credentials(env_file, {"GITHUB_APP_ID": "8", **_pem()}, "fixed")
    await clock.advance(3)
    new = w.check()
    assert new is not None and new.github_app_id == 8
    assert seen == [new]


def _pem() -> dict[str, str]:
    return {
        "GITHUB_PRIVATE_KEY": app_credentials()["GITHUB_PRIVATE_KEY"],
        "GITHUB_WEBHOOK_SECRET": "s",
    }
