"""A simulator of the Anthropic Messages API on loopback, for tests and benchmarks.

It is a real HTTP server (starlette on uvicorn, 127.0.0.1, a free port, in a background
thread), so the official `anthropic` SDK, sync or async, talks to it unchanged through
`base_url`, and so can a subprocess through `ANTHROPIC_BASE_URL`. What the model says is
decided by a *policy* that the test sets; see `tests/sim/policies.py`.

Endpoints: `POST /v1/messages` (JSON or SSE with `stream: true`), `POST
/v1/messages/count_tokens` (`{"input_tokens": n}`), `GET /v1/models` and
`GET /v1/models/{id}`. Every answer carries a `request-id` header; errors have the API's shape
`{"type": "error", "error": {"type", "message"}, "request_id"}`.

Public API (the pytest fixture `anthropic_sim` yields an `AnthropicSim`, reset per test):

- `sim.base_url`, `sim.api_key`, `sim.env()` (the two env vars for a subprocess),
  `sim.client(**kw)` / `sim.async_client(**kw)` (SDK clients pointed at the simulator).
- `sim.set_policy(policy)`: `policy(request_body: dict) -> Turn` (a `str` or a list of
  content blocks are accepted as shorthand). Without one, the model answers a short text.
  A policy raising an exception answers 500 `api_error` with `x-should-retry: false`, and
  the error is kept in `sim.policy_errors`.
- `Turn(content, stop_reason=None, latency=0.0)`: `stop_reason` defaults to `tool_use`
  when the content holds a `tool_use` block, else `end_turn`. Build blocks with `text()`,
  `tool_use(name, input, id=None)`, `thinking(text)`. The simulator assigns missing
  `tool_use` ids and signs thinking blocks; thinking blocks are only emitted when the
  request enables thinking.
- `sim.inject(*faults)` queues faults consumed in order by the next `POST /v1/messages`
  calls (one per call); `sim.inject_always(fault)` applies one to every call until
  `sim.clear_faults()`. Faults: `Fault.rate_limited(retry_after=1)` (429 `rate_limit_error`
  + `retry-after`), `Fault.overloaded()` (529), `Fault.server_error()` (500 `api_error`),
  `Fault.cut_stream(after_events=n)` (connection closed after n SSE events; for a
  non-streaming call, after part of the body), `Fault.stream_error(after_events=n)` (an
  SSE `error` event, as the API sends when it overloads mid-stream), `Fault.max_tokens()`
  (content truncated to half, `stop_reason: "max_tokens"`), `Fault.slow_first_byte(s)`.
  Error faults are answered after the key check and before validation, as the real API
  rate-limits before it parses. Faults only apply to `POST /v1/messages`.
- Records: `sim.requests` (every JSON body posted to `/v1/messages`, rejected ones too),
  `sim.calls` (`RecordedCall`: path, status, headers without the key, body, error type),
  `sim.responses` (messages produced), `sim.usage_log` (`UsageRecord` per answered call),
  `sim.total_cost(prices)`, `sim.max_request_cost(prices)`; `prices` is either
  `{input, output, cache_write, cache_read}` in dollars per million tokens, or a dict
  model -> such a dict. 1-hour cache writes cost `cache_write_1h` (default 2x input).
- A call the client abandons during its latency (policy latency or slow first byte) is not
  billed: it is recorded in `calls` with status 499 and not in `usage_log`/`responses`.
- `sim.advance(seconds)` moves the simulator's clock (cache TTLs) forward.
- `sim.min_cache_tokens` (default 1024, like Sonnet): a cache breakpoint whose prefix is
  shorter is neither written nor read, as with the real API.
- `sim.context_window` (default 200,000 tokens, the API's window for every model without the
  1M beta): a `POST /v1/messages` whose input (tools + system + messages, counted as below)
  is larger is refused with the API's 400 `invalid_request_error`
  "prompt is too long: N tokens > 200000 maximum". `sim.largest_prompt` is the largest input
  the simulator accepted. `count_tokens` answers any size, as the API does.

Validation (400 `invalid_request_error` unless said otherwise), like the real API:
- no key or a wrong one -> 401 `authentication_error` (the key is read from `x-api-key`, or
  from `Authorization: Bearer`, which is how the 2.x SDK sends an API key); a missing
  `anthropic-version` header;
- missing `model`/`max_tokens`/`messages`; unknown model -> 404 `not_found_error`
  ("model: xyz"; known: `KNOWN_MODELS`, the SDK's model list);
- first message not from the user; empty content or empty text blocks; a final assistant
  (prefill) text ending in whitespace;
- a `tool_use` not answered by `tool_result` blocks at the start of the next user turn; a
  `tool_result` whose id matches no `tool_use` of the previous assistant turn; duplicate
  `tool_use` ids or a non-object `input`; tool blocks in a request without `tools`;
- more than 4 `cache_control` breakpoints (tools, system, message blocks, blocks inside a
  `tool_result`, and the request-level `cache_control`, which marks the last block); a bad
  `ttl`; a 1h breakpoint after a 5m one; `cache_control` on a thinking block;
- tools that are neither custom (`name` + `input_schema` of type object) nor a known server
  type with its fixed name (`text_editor_20250728`/`str_replace_based_edit_tool`,
  `bash_20250124`/`bash`, ...) and no extra keys; duplicate tool names;
- for 5.x models (`claude-<family>-5`, `claude-<family>-5-N`): `temperature`/`top_p` other
  than 1, any `top_k` (SDK 2.14 has no such arguments; they can only arrive through
  `extra_body`), a forced `tool_choice` (`any`/`tool`);
- `thinking.budget_tokens` below 1024 or not below `max_tokens`; a thinking block whose
  signature is not the one issued for its text; an assistant turn holding `tool_use` blocks
  that the simulator issued together with thinking blocks, without those thinking blocks
  unchanged (stricter than the API, which needs them only in the current tool-use loop).

Token accounting is a deterministic estimate: each tool definition, system block and message
content block (a string content counts as one block) is serialised as compact sorted JSON
without its `cache_control`, and costs ceil(chars / 4) tokens; input tokens are the sum.
Output tokens are ceil(chars / 4) of each produced block's text, thinking, or tool name plus
JSON input (at least 1). Prompt cache: the prefix ending at every block (order: tools,
system, messages) has a chained hash; a breakpoint writes its prefix for its TTL (5 min, or
1 h with `ttl: "1h"`). A request reads the longest live prefix found at a breakpoint or up
to 20 blocks before one (the API's lookback), refreshing it; breakpoints beyond it are
written (`cache_creation_input_tokens`, split 5m/1h in `usage.cache_creation`); the rest is
`input_tokens`. A produced output longer than `max_tokens` is truncated with
`stop_reason: "max_tokens"` (an incomplete `tool_use` is dropped).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .cloud import CloudSim

KNOWN_MODELS: frozenset[str] = frozenset(
    {
        "claude-haiku-5-5",
        "claude-sonnet-5-5",
        "claude-opus-5-5",
        "claude-fable-5-2",
        "claude-mythos-5-2",
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-sonnet-5",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-mythos-preview",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
    }
)
_FIVE_X = re.compile(r"^claude-[a-z]+-5(?:-\d+)?$")

# Server-defined tool types -> the fixed name the API requires (None: any name).
SERVER_TOOL_TYPES: dict[str, str | None] = {
    "text_editor_20250728": "str_replace_based_edit_tool",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "text_editor_20250124": "str_replace_editor",
    "bash_20250124": "bash",
    "bash_20241022": "bash",
    "web_search_20250305": "web_search",
    "web_fetch_20250910": "web_fetch",
    "code_execution_20250825": "code_execution",
    "memory_20250818": "memory",
}
_SERVER_TOOL_KEYS = {
    "type",
    "name",
    "cache_control",
    "max_characters",
    "defer_loading",
    "allowed_callers",
    "strict",
    "max_uses",
    "allowed_domains",
    "blocked_domains",
    "user_location",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CONTENT_TYPES = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
}
_THINKING_ON = ("enabled", "adaptive", "between_tools")
_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
_LOOKBACK = 20
CONTEXT_WINDOW = 200_000
_DELTA_CHARS = 24


def estimate_tokens(obj: Any) -> int:
    """Tokens of a JSON-able value: ceil(len(compact sorted JSON) / 4), at least 1."""
    raw = obj if isinstance(obj, str) else _canon(obj)
    return max(1, math.ceil(len(raw) / 4))


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_use", "name": name, "input": input}
    if id is not None:
        block["id"] = id
    return block


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value}


@dataclass
class Turn:
    """One assistant answer: content blocks, stop reason, and a latency before it is sent."""

    content: list[dict[str, Any]]
    stop_reason: str | None = None
    latency: float = 0.0

    def resolved_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(b.get("type") == "tool_use" for b in self.content) else "end_turn"


Policy = Callable[[dict[str, Any]], "Turn | str | list[dict[str, Any]]"]


class PolicyError(Exception):
    """Raised by a policy that cannot answer (e.g. a replay that ran out of turns)."""


def default_policy(request: dict[str, Any]) -> Turn:
    return Turn([text("Hello from the Anthropic simulator.")])


@dataclass(frozen=True)
class Fault:
    """A failure the simulator plays for one call (see the module docstring)."""

    kind: str
    retry_after: float | None = None
    after_events: int = 0
    seconds: float = 0.0
    error_type: str = "overloaded_error"

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        return cls("rate_limited", retry_after=retry_after)

    @classmethod
    def overloaded(cls) -> Fault:
        return cls("overloaded")

    @classmethod
    def server_error(cls) -> Fault:
        return cls("server_error")

    @classmethod
    def cut_stream(cls, after_events: int = 3) -> Fault:
        return cls("cut_stream", after_events=after_events)

    @classmethod
    def stream_error(cls, after_events: int = 3, error_type: str = "overloaded_error") -> Fault:
        return cls("stream_error", after_events=after_events, error_type=error_type)

    @classmethod
    def max_tokens(cls) -> Fault:
        return cls("max_tokens")

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        return cls("slow_first_byte", seconds=seconds)


@dataclass
class UsageRecord:
    """Usage of one answered call, as reported to the client."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    stream: bool
    complete: bool = True

    def cost(self, prices: Mapping[str, Any]) -> float:
        """Dollars for this call; `prices` flat or keyed by model (see module docstring)."""
        p = prices if "input" in prices else prices[self.model]
        write_1h = p.get("cache_write_1h", 2 * p["input"])
        dollars = (
            self.input_tokens * p["input"]
            + self.output_tokens * p["output"]
            + self.cache_creation_5m * p["cache_write"]
            + self.cache_creation_1h * write_1h
            + self.cache_read_input_tokens * p["cache_read"]
        )
        return dollars / 1_000_000


@dataclass
class RecordedCall:
    path: str
    status: int
    headers: dict[str, str]
    body: Any
    request_id: str
    error_type: str | None = None


class SimError(Exception):
    """An API error answer: HTTP status, error type and message."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}


def _bad(message: str) -> SimError:
    return SimError(400, "invalid_request_error", message)


class _CutConnection(Exception):
    """Raised inside a response body to make uvicorn drop the connection mid-message."""


@dataclass
class _Segment:
    canon: str
    tokens: int
    cache_control: dict[str, Any] | None


@dataclass
class _CacheEntry:
    expires: float
    ttl: float


class AnthropicSim:
    """The simulator: a starlette app plus the state tests read and steer."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key or "sk-ant-sim-" + secrets.token_urlsafe(24)
        self._secret = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self.reset()
        self.cloud = CloudSim(self)  # Bedrock and Vertex routes (tests/sim/cloud.py)
        self.app = Starlette(
            routes=[
                *self.cloud.routes(),
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/models/{model_id:path}", self._model, methods=["GET"]),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> AnthropicSim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            _SwallowCut(self.app),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("Anthropic simulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> AnthropicSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    def client(self, **kwargs: Any) -> Any:
        import anthropic

        kwargs.setdefault("api_key", self.api_key)
        return anthropic.Anthropic(base_url=self.base_url, **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        import anthropic

        kwargs.setdefault("api_key", self.api_key)
        return anthropic.AsyncAnthropic(base_url=self.base_url, **kwargs)

    # ---- steering ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget policy, faults, records, cache, clock offset and issued thinking blocks."""
        with self._lock:
            self.min_cache_tokens = 1024
            self.context_window = CONTEXT_WINDOW
            self.largest_prompt = 0
            self.policy: Policy = default_policy
            self._faults: deque[Fault] = deque()
            self._always: Fault | None = None
            self.requests: list[dict[str, Any]] = []
            self.calls: list[RecordedCall] = []
            self.responses: list[dict[str, Any]] = []
            self.usage_log: list[UsageRecord] = []
            self.policy_errors: list[BaseException] = []
            self._cache: dict[str, _CacheEntry] = {}
            self._issued_thinking: dict[str, list[dict[str, Any]]] = {}
            self._clock_offset = 0.0
            self._ids = 0

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def inject_always(self, fault: Fault | None) -> None:
        self._always = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always = None

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def advance(self, seconds: float) -> None:
        self._clock_offset += seconds

    def now(self) -> float:
        return time.monotonic() + self._clock_offset

    # ---- spend -------------------------------------------------------------------------
    def total_cost(self, prices: Mapping[str, Any]) -> float:
        return sum(r.cost(prices) for r in self.usage_log)

    def max_request_cost(self, prices: Mapping[str, Any]) -> float:
        return max((r.cost(prices) for r in self.usage_log), default=0.0)

    @property
    def last_request(self) -> dict[str, Any]:
        return self.requests[-1]

    # ---- HTTP ------------------------------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            n = self._ids
        return f"{prefix}sim{n:04d}{secrets.token_hex(8)}"

    def _error(self, err: SimError, request_id: str) -> JSONResponse:
        body = {
            "type": "error",
            "error": {"type": err.type, "message": err.message},
            "request_id": request_id,
        }
        return JSONResponse(
            body, status_code=err.status, headers={"request-id": request_id, **err.headers}
        )

    async def _preamble(
        self, request: Request, rid: str, needs_body: bool = True
    ) -> tuple[dict[str, Any] | None, Any]:
        """Parse the body and check the key and version; returns (body, raw-or-None)."""
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("x-api-key", "authorization")
        }
        call = RecordedCall(request.url.path, 0, headers, body, rid)
        with self._lock:
            self.calls.append(call)
            if request.url.path == "/v1/messages" and isinstance(body, dict):
                self.requests.append(body)
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if key is None and bearer.lower().startswith("bearer "):
            key = bearer[7:]  # the SDK (2.x) sends the API key as a bearer token
        if key is None or not hmac.compare_digest(key, self.api_key):
            raise SimError(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise _bad("anthropic-version: header is required")
        if needs_body and not isinstance(body, dict):
            raise _bad("The request body is not valid JSON.")
        return body, call

    def _record_status(self, rid: str, status: int, error_type: str | None) -> None:
        with self._lock:
            for call in reversed(self.calls):
                if call.request_id == rid:
                    call.status = status
                    call.error_type = error_type
                    break

    async def _count_tokens(self, request: Request) -> Response:
        rid = "req_" + secrets.token_hex(12)
        try:
            body, _ = await self._preamble(request, rid)
            assert body is not None
            self._validate(body, count_only=True)
            segments = self._segments(body)
            answer = {"input_tokens": sum(s.tokens for s in segments)}
        except SimError as err:
            self._record_status(rid, err.status, err.type)
            return self._error(err, rid)
        self._record_status(rid, 200, None)
        return JSONResponse(answer, headers={"request-id": rid})

    async def _models(self, request: Request) -> Response:
        rid = "req_" + secrets.token_hex(12)
        try:
            await self._preamble(request, rid, needs_body=False)
        except SimError as err:
            self._record_status(rid, err.status, err.type)
            return self._error(err, rid)
        self._record_status(rid, 200, None)
        data = [_model_info(m) for m in sorted(KNOWN_MODELS)]
        page = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"],
            "last_id": data[-1]["id"],
        }
        return JSONResponse(page, headers={"request-id": rid})

    async def _model(self, request: Request) -> Response:
        rid = "req_" + secrets.token_hex(12)
        model = request.path_params["model_id"]
        try:
            await self._preamble(request, rid, needs_body=False)
            if model not in KNOWN_MODELS:
                raise SimError(404, "not_found_error", f"model: {model}")
        except SimError as err:
            self._record_status(rid, err.status, err.type)
            return self._error(err, rid)
        self._record_status(rid, 200, None)
        return JSONResponse(_model_info(model), headers={"request-id": rid})

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            return self._always

    async def _messages(self, request: Request) -> Response:
        rid = "req_" + secrets.token_hex(12)
        try:
            body, _ = await self._preamble(request, rid)
            assert body is not None
            fault = self._take_fault()
            self._raise_fault(fault)
            self._validate(body)
            self._check_window(body)
        except SimError as err:
            self._record_status(rid, err.status, err.type)
            return self._error(err, rid)

        try:
            answer = await asyncio.to_thread(self.policy, body)
            turn = _as_turn(answer)
        except Exception as exc:
            self.policy_errors.append(exc)
            err = SimError(
                500,
                "api_error",
                f"simulator policy failed: {type(exc).__name__}: {exc}",
                {"x-should-retry": "false"},
            )
            self._record_status(rid, 500, err.type)
            return self._error(err, rid)

        stream = bool(body.get("stream"))
        message = self._build_message(body, turn, fault)
        record = UsageRecord(
            model=body["model"],
            output_tokens=message["usage"]["output_tokens"],
            stream=stream,
            **self._usage_fields(message["usage"]),
        )
        delay = turn.latency + (fault.seconds if fault and fault.kind == "slow_first_byte" else 0)
        if delay > 0 and await _client_left(request, delay):
            # Nothing was delivered: the call is not billed (status 499 in `calls`).
            self._record_status(rid, 499, "client_closed_request")
            return Response(status_code=499)
        with self._lock:
            self.responses.append(message)
            self.usage_log.append(record)
        self._record_status(rid, 200, None)
        headers = {"request-id": rid}
        if not stream:
            if fault is not None and fault.kind == "cut_stream":
                record.complete = False
                data = json.dumps(message).encode()
                return StreamingResponse(
                    _cut_body(data), media_type="application/json", headers=headers
                )
            return JSONResponse(message, headers=headers)
        return StreamingResponse(
            self._sse(message, fault, record),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    def _check_window(self, body: dict[str, Any]) -> None:
        prompt = sum(s.tokens for s in self._segments(body))
        if prompt > self.context_window:
            raise _bad(f"prompt is too long: {prompt} tokens > {self.context_window} maximum")
        with self._lock:
            self.largest_prompt = max(self.largest_prompt, prompt)

    @staticmethod
    def _usage_fields(usage: dict[str, Any]) -> dict[str, int]:
        cc = usage.get("cache_creation") or {}
        return {
            "input_tokens": usage["input_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "cache_creation_5m": cc.get("ephemeral_5m_input_tokens", 0),
            "cache_creation_1h": cc.get("ephemeral_1h_input_tokens", 0),
        }

    @staticmethod
    def _raise_fault(fault: Fault | None) -> None:
        if fault is None:
            return
        if fault.kind == "rate_limited":
            retry = fault.retry_after if fault.retry_after is not None else 1.0
            raise SimError(
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
                {"retry-after": f"{retry:g}"},
            )
        if fault.kind == "overloaded":
            raise SimError(529, "overloaded_error", "Overloaded")
        if fault.kind == "server_error":
            raise SimError(500, "api_error", "Internal server error")

    async def _sse(
        self, message: dict[str, Any], fault: Fault | None, record: UsageRecord
    ) -> AsyncIterator[bytes]:
        for n, (event, data) in enumerate(sse_events(message)):
            cut = fault is not None and fault.kind in ("cut_stream", "stream_error")
            if fault is not None and cut and n >= fault.after_events:
                record.complete = False
                if fault.kind == "cut_stream":
                    raise _CutConnection("simulated cut")
                err = {
                    "type": "error",
                    "error": {"type": fault.error_type, "message": "Overloaded"},
                }
                yield _sse_bytes("error", err)
                return
            yield _sse_bytes(event, data)
            await asyncio.sleep(0)

    # ---- the message ----------------------------------------------------------------
    def _build_message(
        self, body: dict[str, Any], turn: Turn, fault: Fault | None
    ) -> dict[str, Any]:
        thinking_on = (body.get("thinking") or {}).get("type") in _THINKING_ON
        content: list[dict[str, Any]] = []
        for block in turn.content:
            b = dict(block)
            kind = b.get("type")
            if kind in ("thinking", "redacted_thinking") and not thinking_on:
                continue
            if kind == "tool_use":
                b.setdefault("id", self._next_id("toolu_"))
                b.setdefault("input", {})
            content.append(b)
        stop_reason = turn.resolved_stop_reason()
        budget = int(body["max_tokens"])
        if fault is not None and fault.kind == "max_tokens":
            budget = max(1, min(budget, _output_tokens(content) // 2))
        if _output_tokens(content) > budget:
            content = _truncate(content, budget)
            stop_reason = "max_tokens"
        for b in content:
            if b["type"] == "thinking":
                b["signature"] = self._sign(b["thinking"])
        ids = [b["id"] for b in content if b["type"] == "tool_use"]
        thoughts = [b for b in content if b["type"] in ("thinking", "redacted_thinking")]
        if thoughts:
            with self._lock:
                for tid in ids:
                    self._issued_thinking[tid] = [dict(t) for t in thoughts]
        usage = self._usage(body)
        usage["output_tokens"] = min(budget, _output_tokens(content)) if content else 1
        return {
            "id": self._next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def _sign(self, thought: str) -> str:
        mac = hmac.new(self._secret, thought.encode(), hashlib.sha256).digest()
        return base64.b64encode(b"simsig" + mac).decode()

    # ---- prompt cache ---------------------------------------------------------------
    def _segments(self, body: dict[str, Any]) -> list[_Segment]:
        out: list[_Segment] = []

        def add(section: str, block: Any) -> None:
            cc = block.get("cache_control") if isinstance(block, dict) else None
            clean = _strip_cc(block) if isinstance(block, dict) else block
            if isinstance(clean, dict) and isinstance(clean.get("content"), list):
                # a breakpoint inside a tool_result's content marks the tool_result
                inner = [b for b in clean["content"] if isinstance(b, dict)]
                cc = cc or next((b["cache_control"] for b in inner if "cache_control" in b), None)
                clean["content"] = [_strip_cc(b) if isinstance(b, dict) else b for b in inner]
            raw = _canon(clean)
            out.append(_Segment(section + raw, estimate_tokens(raw), cc))

        for tool in body.get("tools") or []:
            add("tool:", tool)
        system = body.get("system")
        if isinstance(system, str) and system:
            add("system:", {"type": "text", "text": system})
        elif isinstance(system, list):
            for block in system:
                add("system:", block)
        for i, msg in enumerate(body.get("messages") or []):
            content = msg.get("content")
            role = f"{msg.get('role')}{i}:"
            if isinstance(content, str):
                add(role, {"type": "text", "text": content})
            else:
                for block in content or []:
                    add(role, block)
        auto = body.get("cache_control")
        if isinstance(auto, dict) and out and out[-1].cache_control is None:
            out[-1].cache_control = auto  # top-level cache_control marks the last block
        return out

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        segments = self._segments(body)
        model = body.get("model", "")
        hashes: list[str] = []
        cum: list[int] = []
        h = hashlib.sha256(model.encode()).hexdigest()
        total = 0
        for seg in segments:
            h = hashlib.sha256((h + seg.canon).encode()).hexdigest()
            hashes.append(h)
            total += seg.tokens
            cum.append(total)
        now = self.now()
        breakpoints = [i for i, s in enumerate(segments) if s.cache_control]
        with self._lock:
            hit = -1
            for bp in breakpoints:
                for j in range(bp, max(-1, bp - _LOOKBACK), -1):
                    if j <= hit:
                        break
                    entry = self._cache.get(hashes[j])
                    if entry is not None and entry.expires > now:
                        hit = j
                        break
            read = cum[hit] if hit >= 0 else 0
            if hit >= 0:
                entry = self._cache[hashes[hit]]
                marker = segments[hit].cache_control
                if marker:  # a 1h breakpoint on a 5m entry keeps it for the hour
                    entry.ttl = max(entry.ttl, _TTL_SECONDS[marker.get("ttl", "5m")])
                entry.expires = now + entry.ttl
            created = {"5m": 0, "1h": 0}
            covered = hit
            for bp in breakpoints:
                if bp <= covered or cum[bp] < self.min_cache_tokens:
                    continue
                ttl_name = (segments[bp].cache_control or {}).get("ttl", "5m")
                created[ttl_name] += cum[bp] - (cum[covered] if covered >= 0 else 0)
                ttl = _TTL_SECONDS[ttl_name]
                self._cache[hashes[bp]] = _CacheEntry(now + ttl, ttl)
                covered = bp
        creation = created["5m"] + created["1h"]
        return {
            "input_tokens": total - read - creation,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": created["5m"],
                "ephemeral_1h_input_tokens": created["1h"],
            },
            "output_tokens": 0,
            "service_tier": "standard",
        }

    # ---- validation -----------------------------------------------------------------
    def _validate(self, body: dict[str, Any], count_only: bool = False) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("model: Field required")
        if not count_only and "max_tokens" not in body:
            raise _bad("max_tokens: Field required")
        if not count_only:
            mt = body["max_tokens"]
            if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
                raise _bad("max_tokens: Input should be a valid integer greater than 0")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise _bad("messages: Field required")
        if model not in KNOWN_MODELS:
            raise SimError(404, "not_found_error", f"model: {model}")
        five = bool(_FIVE_X.match(model))
        self._validate_sampling(body, five)
        self._validate_tools(body, five)
        self._validate_system(body.get("system"))
        self._validate_messages(messages, body.get("tools"))
        self._validate_cache_control(body)
        self._validate_thinking(body, messages, count_only)

    @staticmethod
    def _validate_sampling(body: dict[str, Any], five: bool) -> None:
        if not five:
            return
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and value != 1:
                raise _bad(
                    f"{name}: is not supported for {body['model']}; "
                    "only the default value can be used"
                )
        if body.get("top_k") is not None:
            raise _bad(f"top_k: is not supported for {body['model']}")

    @staticmethod
    def _validate_tools(body: dict[str, Any], five: bool) -> None:
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise _bad("tools: Input should be a valid list")
        names: set[str] = set()
        for i, tool in enumerate(tools or []):
            if not isinstance(tool, dict):
                raise _bad(f"tools.{i}: Input should be a valid dictionary")
            kind = tool.get("type")
            name = tool.get("name")
            if kind in (None, "custom"):
                if not isinstance(name, str) or not _TOOL_NAME.match(name):
                    raise _bad(f"tools.{i}.custom.name: String should match pattern")
                schema = tool.get("input_schema")
                if not isinstance(schema, dict) or schema.get("type") != "object":
                    raise _bad(f"tools.{i}.custom.input_schema: Field required (type object)")
            elif kind in SERVER_TOOL_TYPES:
                required = SERVER_TOOL_TYPES[kind]
                if required is not None and name != required:
                    raise _bad(f"tools.{i}.{kind}.name: Input should be '{required}'")
                extra = set(tool) - _SERVER_TOOL_KEYS
                if extra:
                    raise _bad(
                        f"tools.{i}.{kind}.{sorted(extra)[0]}: Extra inputs are not permitted"
                    )
            else:
                raise _bad(
                    f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of "
                    "the expected tags"
                )
            if name in names:
                raise _bad(f"tools: Tool names must be unique. Duplicate: {name}")
            names.add(name)
        choice = body.get("tool_choice")
        if choice is not None:
            ctype = choice.get("type") if isinstance(choice, dict) else None
            if ctype not in ("auto", "any", "tool", "none"):
                raise _bad("tool_choice: Input tag does not match any of the expected tags")
            if ctype == "tool" and choice.get("name") not in names:
                raise _bad(f"tool_choice.name: no tool named {choice.get('name')!r}")
            if five and ctype in ("any", "tool"):
                raise _bad(
                    f"tool_choice: forced tool use ('{ctype}') is not supported for "
                    f"{body['model']}; use 'auto' or 'none'"
                )

    @staticmethod
    def _validate_system(system: Any) -> None:
        if system is None or isinstance(system, str):
            return
        if not isinstance(system, list):
            raise _bad("system: Input should be a valid string or list")
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _bad(f"system.{i}.type: Input should be 'text'")
            if not block.get("text"):
                raise _bad("system: text content blocks must be non-empty")

    def _validate_messages(self, messages: list[Any], tools: Any) -> None:
        if not messages:
            raise _bad("messages: at least one message is required")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
                raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = msg.get("content")
            last = i == len(messages) - 1
            if isinstance(content, str):
                if not content and not (last and msg["role"] == "assistant"):
                    raise _bad(
                        f"messages.{i}: all messages must have non-empty content except for "
                        "the optional final assistant message"
                    )
                continue
            if not isinstance(content, list):
                raise _bad(f"messages.{i}.content: Input should be a valid string or list")
            if not content and not (last and msg["role"] == "assistant"):
                raise _bad(
                    f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            for j, block in enumerate(content):
                if not isinstance(block, dict) or block.get("type") not in _CONTENT_TYPES:
                    kind = block.get("type") if isinstance(block, dict) else block
                    raise _bad(f"messages.{i}.content.{j}: Input tag '{kind}' is not expected")
                if block["type"] == "text" and not block.get("text"):
                    raise _bad("messages: text content blocks must be non-empty")
                if block["type"] in ("tool_use", "thinking") and msg["role"] != "assistant":
                    raise _bad(
                        f"messages.{i}.content.{j}: `{block['type']}` blocks can only be in "
                        "`assistant` messages"
                    )
                if block["type"] == "tool_result" and msg["role"] != "user":
                    raise _bad(
                        f"messages.{i}.content.{j}: `tool_result` blocks can only be in "
                        "`user` messages"
                    )
        if messages[0]["role"] != "user":
            raise _bad('messages: first message must use the "user" role')
        last = messages[-1]
        if last["role"] == "assistant":
            blocks = _as_blocks(last["content"])
            if (
                blocks
                and blocks[-1].get("type") == "text"
                and blocks[-1]["text"] != (blocks[-1]["text"].rstrip())
            ):
                raise _bad("messages: final assistant content cannot end with trailing whitespace")
        seen_ids: set[str] = set()
        uses_tools = False
        for i, msg in enumerate(messages):
            for j, b in enumerate(_as_blocks(msg["content"])):
                if b["type"] in ("tool_use", "tool_result"):
                    uses_tools = True
                if b["type"] != "tool_use":
                    continue
                if not isinstance(b.get("input"), dict):
                    raise _bad(
                        f"messages.{i}.content.{j}.tool_use.input: Input should be an object"
                    )
                if b.get("id") in seen_ids:
                    raise _bad(f"messages.{i}.content.{j}: `tool_use` ids must be unique")
                seen_ids.add(b.get("id"))
        if uses_tools and not tools:
            raise _bad(
                "Requests which include `tool_use` or `tool_result` blocks must define tools."
            )
        for i, msg in enumerate(messages):
            content = msg["content"] if isinstance(msg["content"], list) else []
            if msg["role"] == "assistant":
                ids = [b.get("id") for b in content if b["type"] == "tool_use"]
                if not ids:
                    continue
                nxt = messages[i + 1] if i + 1 < len(messages) else None
                answered: set[str] = set()
                if nxt is not None and isinstance(nxt.get("content"), list):
                    for b in nxt["content"]:
                        if b.get("type") != "tool_result":
                            break
                        answered.add(b.get("tool_use_id"))
                missing = [x for x in ids if x not in answered]
                if missing:
                    raise _bad(
                        f"messages.{i + 1}: `tool_use` ids were found without `tool_result` "
                        f"blocks immediately after: {', '.join(map(str, missing))}. Each "
                        "`tool_use` block must have a corresponding `tool_result` block in the "
                        "next message."
                    )
            else:
                prev = messages[i - 1] if i > 0 else None
                prev_ids: set[str] = set()
                if prev is not None and isinstance(prev.get("content"), list):
                    prev_ids = {b.get("id") for b in prev["content"] if b["type"] == "tool_use"}
                for j, b in enumerate(content):
                    if b["type"] == "tool_result" and b.get("tool_use_id") not in prev_ids:
                        raise _bad(
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                            f"`tool_result` blocks: {b.get('tool_use_id')}. Each `tool_result` "
                            "block must have a corresponding `tool_use` block in the previous "
                            "message."
                        )

    @staticmethod
    def _validate_cache_control(body: dict[str, Any]) -> None:
        marks: list[dict[str, Any]] = []

        def visit(block: Any) -> None:
            if not isinstance(block, dict):
                return
            if "cache_control" in block:
                if block.get("type") in ("thinking", "redacted_thinking"):
                    raise _bad(f"{block['type']}.cache_control: Extra inputs are not permitted")
                marks.append(block["cache_control"])
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for inner in block["content"]:
                    visit(inner)

        for tool in body.get("tools") or []:
            visit(tool)
        if isinstance(body.get("system"), list):
            for block in body["system"]:
                visit(block)
        last: Any = None
        for msg in body.get("messages") or []:
            if isinstance(msg.get("content"), list):
                for block in msg["content"]:
                    visit(block)
                    last = block
            else:
                last = None
        auto = body.get("cache_control")
        if auto is not None and not (isinstance(last, dict) and "cache_control" in last):
            marks.append(auto)
        if len(marks) > 4:
            raise _bad(
                f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}."
            )
        seen_5m = False
        for cc in marks:
            if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
                raise _bad("cache_control.type: Input should be 'ephemeral'")
            ttl = cc.get("ttl", "5m")
            if ttl not in _TTL_SECONDS:
                raise _bad("cache_control.ttl: Input should be '5m' or '1h'")
            if ttl == "5m":
                seen_5m = True
            elif seen_5m:
                raise _bad(
                    "a ttl='1h' cache_control block must not come after a ttl='5m' "
                    "cache_control block"
                )

    def _validate_thinking(
        self, body: dict[str, Any], messages: list[dict[str, Any]], count_only: bool
    ) -> None:
        cfg = body.get("thinking")
        if cfg is not None:
            kind = cfg.get("type") if isinstance(cfg, dict) else None
            if kind not in ("enabled", "disabled", "adaptive", "between_tools"):
                raise _bad("thinking.type: Input tag does not match any of the expected tags")
            if kind == "enabled":
                budget = cfg.get("budget_tokens")
                if not isinstance(budget, int) or budget < 1024:
                    raise _bad("thinking.enabled.budget_tokens: Input should be >= 1024")
                if not count_only and budget >= body["max_tokens"]:
                    raise _bad("`max_tokens` must be greater than `thinking.budget_tokens`")
        for i, msg in enumerate(messages):
            if msg["role"] != "assistant" or not isinstance(msg["content"], list):
                continue
            sent = [b for b in msg["content"] if b["type"] in ("thinking", "redacted_thinking")]
            for j, b in enumerate(msg["content"]):
                if b["type"] != "thinking":
                    continue
                sig = b.get("signature")
                if not isinstance(sig, str) or not hmac.compare_digest(
                    sig, self._sign(str(b.get("thinking", "")))
                ):
                    raise _bad(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
            with self._lock:
                issued = next(
                    (
                        self._issued_thinking[b["id"]]
                        for b in msg["content"]
                        if b["type"] == "tool_use" and b.get("id") in self._issued_thinking
                    ),
                    None,
                )
            if issued is not None and [_strip_cc(b) for b in sent] != issued:
                raise _bad(
                    f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                    "but found another block. When `thinking` is enabled, the thinking blocks "
                    "of an assistant turn with `tool_use` must be passed back unchanged."
                )


def _model_info(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": " ".join(w.capitalize() for w in model.split("-")),
        "created_at": "2026-01-01T00:00:00Z",
        "lifecycle": "active",
    }


def _strip_cc(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def _as_turn(answer: Any) -> Turn:
    if isinstance(answer, Turn):
        return answer
    if isinstance(answer, str):
        return Turn([text(answer)])
    if isinstance(answer, list):
        return Turn(list(answer))
    raise TypeError(f"a policy must return a Turn, a str or a list of blocks, not {answer!r}")


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return math.ceil(len(block["text"]) / 4)
    if kind == "thinking":
        return math.ceil(len(block["thinking"]) / 4)
    if kind == "tool_use":
        return math.ceil((len(block["name"]) + len(_canon(block.get("input", {})))) / 4)
    return estimate_tokens(block)


def _output_tokens(content: list[dict[str, Any]]) -> int:
    return max(1, sum(_block_tokens(b) for b in content))


def _truncate(content: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    left = budget
    for block in content:
        cost = _block_tokens(block)
        if cost <= left:
            kept.append(block)
            left -= cost
            continue
        if block["type"] in ("text", "thinking") and left > 0:
            key = block["type"] if block["type"] == "thinking" else "text"
            kept.append({**block, key: block[key][: left * 4]})
        break
    return kept


def _chunks(value: str) -> list[str]:
    """Small deltas like the API's, but at most ~64 per block: the SDK re-parses a tool's
    whole partial JSON on every delta, which would make big file contents quadratic."""
    size = max(_DELTA_CHARS, -(-len(value) // 64))
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events the API streams for `message`, in order."""
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for i, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
        elif kind == "tool_use":
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = json.dumps(block["input"]) if block["input"] else ""
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": c} for c in _chunks(raw)]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            first = block
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": first},
            )
        )
        if i == 0:
            events.append(("ping", {"type": "ping"}))
        for d in deltas:
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    if not message["content"]:
        events.append(("ping", {"type": "ping"}))
    usage = {k: v for k, v in message["usage"].items() if k != "service_tier"}
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _sse_bytes(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _client_left(request: Request, seconds: float) -> bool:
    """Wait `seconds`; True as soon as the client has hung up."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.05))
        if await request.is_disconnected():
            return True
    return False


async def _cut_body(data: bytes) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    await asyncio.sleep(0)
    raise _CutConnection("simulated cut")


class _SwallowCut:
    """Let a simulated cut end the app quietly; uvicorn then closes the connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except _CutConnection:
            return
        except BaseExceptionGroup as group:
            if not all(isinstance(e, _CutConnection) for e in group.exceptions):
                raise


@contextlib.contextmanager
def running_sim(api_key: str | None = None) -> Any:
    """Start a simulator for the duration of a `with` block (benchmarks, scripts)."""
    sim = AnthropicSim(api_key).start()
    try:
        yield sim
    finally:
        sim.stop()
