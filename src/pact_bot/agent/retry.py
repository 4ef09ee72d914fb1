"""Which Anthropic API errors are worth another call, how long to wait, and how to name them.

Retries are ours, not the SDK's (the client is used with `max_retries=0`): 429, 408, 409,
5xx and 529, connection failures, and `overloaded_error`/`api_error` events mid-stream are
retried up to `RetryPolicy.max_retries` times with exponential backoff (with jitter), waiting
what `retry-after-ms`/`retry-after` says when the server says it. `x-should-retry: false` is
obeyed. When retries run out the run stops with `error` and a message such as
"Anthropic API overloaded (529) after 5 retries".
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass

import anthropic

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
RETRYABLE_EVENT_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}
PROMPT_TOO_LONG = "prompt is too long"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 2.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2.0**attempt) * random.uniform(0.75, 1.0)


def _status(e: anthropic.APIError) -> int | None:
    return getattr(e, "status_code", None)


def _event_error_type(e: anthropic.APIError) -> str | None:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            t = inner.get("type")
            return str(t) if t else None
    return None


def _retryable(e: anthropic.APIStatusError) -> bool:
    should = e.response.headers.get("x-should-retry") if e.response is not None else None
    if should == "false":
        return False
    if should == "true":
        return True
    if e.status_code in RETRYABLE_STATUS:
        return True
    return e.status_code < 400 and _event_error_type(e) in RETRYABLE_EVENT_ERRORS


def _describe(e: anthropic.APIError) -> str:
    status = _status(e)
    kind = _event_error_type(e)
    message = getattr(e, "message", str(e))
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", {})
        if isinstance(inner, dict) and inner.get("message"):
            message = inner["message"]
    parts = [str(status)] if status and status >= 400 else []
    if kind:
        parts.append(kind)
    prefix = f"{' '.join(parts)}: " if parts else ""
    return f"{prefix}{message}"


def _too_long_counts(message: str) -> tuple[int, int]:
    """(tokens counted, window) from "prompt is too long: 201234 tokens > 200000 maximum"."""
    m = re.search(r"(\d+) tokens > (\d+) maximum", message)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _exhausted(e: anthropic.APIError) -> str:
    status, kind = _status(e), _event_error_type(e)
    if status == 529 or kind == "overloaded_error":
        return "Anthropic API overloaded (529)"
    if status == 429 or kind == "rate_limit_error":
        return "Anthropic API rate limited (429)"
    if isinstance(e, anthropic.APIConnectionError):
        return f"Anthropic API unreachable ({e.message})"
    return f"Anthropic API error ({_describe(e)})"


def _retry_after(e: anthropic.APIError, retry: RetryPolicy) -> float | None:
    response = getattr(e, "response", None)
    if response is None or _status(e) in (None, 200):
        return None
    headers = response.headers
    value: float | None = None
    try:
        if "retry-after-ms" in headers:
            value = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            raw = headers["retry-after"]
            try:
                value = float(raw)
            except ValueError:
                parsed = email.utils.parsedate_tz(raw)
                value = email.utils.mktime_tz(parsed) - time.time() if parsed else None
    except (TypeError, ValueError):
        return None
    if value is None or value < 0:
        return None
    return min(value, retry.max_retry_after)
