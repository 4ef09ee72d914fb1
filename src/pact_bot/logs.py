"""JSON logs (default) or console logs, with job and delivery ids carried by context.

Every line of a job carries `job_id` and `delivery_id` without each call passing them:
the worker sets `job_context` once. Known secret values are scrubbed from every line: the
settings' and the cloud credentials' for as long as the process runs, an installation token
until it has expired (tokens are minted for as long as the process runs, and each one kept
costs every line a substring search; an expired one opens nothing).

`log_line(logger, level, event, fields)` is `logger.log(level, event, extra=fields)` for
the webhook's one line per delivery: when `setup_logging`'s JSON handler is the only one
it would reach, the line is built straight from `fields` (no LogRecord, no handler chain:
~1 µs instead of ~10) and the lines of one event-loop turn are written together.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pact_log_ctx", default=None
)
_secrets: dict[str, None] = {}  # what `redact` looks for: the two below, kept in step
_kept: dict[str, None] = {}  # the settings' and the cloud credentials': never dropped
_tokens: dict[str, float] = {}  # token -> when it may be dropped (time.time()), oldest first
TOKEN_GRACE_SECONDS = 600.0  # kept past its expiry: a late line about a request made with it

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def register_secrets(values: list[str]) -> None:
    """Values never to print (keys, the webhook secret, credentials), for the process's life."""
    for v in values:
        if v and len(v) >= 8:
            _kept[v] = None
            _secrets[v] = None


def register_token(token: str, expires_at: float) -> None:
    """An installation token (`expires_at`: a `time.time()`), scrubbed until it has expired;
    the expired ones are dropped here, so the list holds the tokens of about an hour."""
    now = time.time()
    while _tokens:
        oldest, until = next(iter(_tokens.items()))
        if until > now:
            break
        del _tokens[oldest]
        if oldest not in _kept:
            _secrets.pop(oldest, None)
    if token and len(token) >= 8:
        _tokens.pop(token, None)
        _tokens[token] = expires_at + TOKEN_GRACE_SECONDS
        _secrets[token] = None


def redact(text: str) -> str:
    for s in _secrets:
        if s in text:
            text = text.replace(s, "[redacted]")
    return text


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    ctx = _context.get()
    out = dict(ctx) if ctx else {}
    for k, v in record.__dict__.items():
        if k not in _STD:
            out[k] = v
    return out


def _dumps(line: dict[str, Any]) -> str:
    """orjson (a few µs less per line than json: the webhook logs one per delivery), json
    for what orjson refuses (integers over 64 bits)."""
    try:
        return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(line, default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return redact(_dumps(line))


class JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """`JsonFormatter` lines to a stream; `log_line`'s lines wait for the end of the
    event-loop turn and go out in one write (any other line flushes them first, so the
    order holds)."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self.flush()
        super().emit(record)

    def add(self, line: str) -> None:
        self._pending.append(line)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._pending:
            lines, self._pending = self._pending, []
            # a closed stream fails quietly, as `logging` does with raiseExceptions off
            with self.lock or contextlib.nullcontext(), contextlib.suppress(ValueError, OSError):
                self.stream.write(self.terminator.join(lines) + self.terminator)
        super().flush()


def log_line(logger: logging.Logger, level: int, event: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, event, extra=fields)`: the same JSON line, built directly when
    `setup_logging`'s `JsonHandler` is the only handler it reaches (else, e.g. under
    pytest's caplog or a console setup, through `logging` itself)."""
    handler = _json_handler
    root = logging.root
    if handler is None or root.handlers != [handler] or logger.filters:
        logger.log(level, event, extra=fields)
        return
    node: logging.Logger | None = logger
    while node is not root and node is not None:
        if node.handlers or not node.propagate:
            logger.log(level, event, extra=fields)
            return
        node = node.parent
    if not logger.isEnabledFor(level) or level < handler.level or handler.filters:
        return
    line: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "level": logging.getLevelName(level).lower(),
        "logger": logger.name,
        "event": event,
    }
    ctx = _context.get()
    if ctx:
        line.update(ctx)
    line.update(fields)
    handler.add(redact(_dumps(line)))


_json_handler: JsonHandler | None = None


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{ts} {record.levelname:<7} {record.getMessage()} {extra}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def setup_logging(fmt: str = "json", level: str = "INFO") -> None:
    global _json_handler
    handler: logging.Handler
    if fmt == "console":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ConsoleFormatter())
        _json_handler = None
    else:
        handler = _json_handler = JsonHandler(sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "httpx2", "uvicorn.access", "anthropic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
