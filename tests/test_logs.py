"""The JSON log lines: the webhook's fast line equals the logging module's, secrets stay out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from pact_bot import logs


@pytest.fixture
def json_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.setup_logging("json")
    stream = io.StringIO()
    assert logs._json_handler is not None
    logs._json_handler.setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logs._json_handler = None


def _only_json_handler() -> None:
    """pytest adds its capture handler to the root for each test: set it aside."""
    assert logs._json_handler is not None
    logging.getLogger().handlers[:] = [logs._json_handler]


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_line_writes_what_logging_writes(json_stream: io.StringIO) -> None:
    _only_json_handler()
    log = logging.getLogger("pact_bot.web.webhook")
    fields = {"delivery_id": "d-1", "status": 202, "latency_ms": 1.5}
    logs.register_secrets(["s3cret-token-value"])
    with logs.log_context(web_process=1):
        log.log(logging.INFO, "delivery", extra={**fields, "note": "s3cret-token-value"})
        logs.log_line(log, logging.INFO, "delivery", {**fields, "note": "s3cret-token-value"})
    slow, fast = _lines(json_stream)
    assert slow.pop("ts") == pytest.approx(fast.pop("ts"), abs=1)
    assert fast == slow
    assert fast["note"] == "[redacted]" and fast["web_process"] == 1


def test_lines_of_one_loop_turn_are_written_together_in_order(
    json_stream: io.StringIO,
) -> None:
    _only_json_handler()
    log = logging.getLogger("pact_bot.web.webhook")

    async def main() -> str:
        logs.log_line(log, logging.INFO, "delivery", {"n": 1})
        logs.log_line(log, logging.INFO, "delivery", {"n": 2})
        before = json_stream.getvalue()
        log.warning("other")  # another line flushes the waiting ones first
        logs.log_line(log, logging.INFO, "delivery", {"n": 3})
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return before

    assert asyncio.run(main()) == ""
    assert [line.get("n", line["event"]) for line in _lines(json_stream)] == [1, 2, "other", 3]


def test_log_line_respects_the_level_and_other_handlers(
    json_stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    _only_json_handler()
    log = logging.getLogger("pact_bot.web.webhook")
    logging.getLogger().setLevel(logging.WARNING)
    logs.log_line(log, logging.INFO, "delivery", {"n": 1})
    assert json_stream.getvalue() == ""
    caplog.set_level(logging.INFO, logger="pact_bot.web.webhook")
    logging.getLogger().addHandler(caplog.handler)  # a second handler: through logging
    logs.log_line(log, logging.INFO, "delivery", {"n": 2})
    assert [r.__dict__["n"] for r in caplog.records] == [2]


def test_expired_tokens_are_dropped_the_settings_secrets_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tokens are minted for as long as the process runs: the expired ones go (each kept
    costs every line a search), the App's own secrets and the live tokens stay."""
    monkeypatch.setattr(logs, "_kept", dict(logs._kept))
    monkeypatch.setattr(logs, "_secrets", dict(logs._kept))
    monkeypatch.setattr(logs, "_tokens", {})  # tokens are dropped oldest first
    now = time.time()
    logs.register_secrets(["the-webhook-secret"])
    logs.register_token("ghs_expired_token", now - logs.TOKEN_GRACE_SECONDS - 1)
    logs.register_token("ghs_live_token_1", now + 3600)
    for i in range(2000):
        logs.register_token(f"ghs_token_{i:06d}", now + 3600)
    assert "ghs_expired_token" not in logs._secrets
    line = "the-webhook-secret ghs_live_token_1 ghs_token_001999 ghs_expired_token"
    assert logs.redact(line) == "[redacted] [redacted] [redacted] ghs_expired_token"
