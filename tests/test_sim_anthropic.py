"""The Anthropic simulator, exercised through the real `anthropic` SDK."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from sim.anthropic import AnthropicSim, Fault, Turn, text, thinking, tool_use
from sim.policies import (
    CLOSING,
    ReplayPolicy,
    RevisePolicy,
    SpecCoderPolicy,
    find_spec_paths,
    parse_review_comments,
)

MODEL = "claude-sonnet-5-5"
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
BASH = {"type": "bash_20250124", "name": "bash"}
GREP = {
    "name": "grep",
    "description": "Search tracked files.",
    "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}},
}
USER = [{"role": "user", "content": "hi"}]
PRICES = {"input": 2.0, "output": 10.0, "cache_write": 2.5, "cache_read": 0.2}


_CLIENTS: dict[tuple[Any, ...], anthropic.Anthropic] = {}


def sdk(sim: AnthropicSim, **kw: Any) -> anthropic.Anthropic:
    """An SDK client on the simulator (reused: building one costs an SSL context)."""
    kw.setdefault("max_retries", 0)
    key = (sim.base_url, *sorted(kw.items()))
    if key not in _CLIENTS:
        _CLIENTS[key] = sim.client(**kw)
    return _CLIENTS[key]


def create(sim: AnthropicSim, **body: Any) -> anthropic.types.Message:
    body.setdefault("model", MODEL)
    body.setdefault("max_tokens", 1024)
    body.setdefault("messages", USER)
    return sdk(sim).messages.create(**body)


class Workspace:
    """A tiny stand-in for the bot's editor tool: `/workspace/...` maps to a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bash_log: list[str] = []

    def local(self, path: str) -> Path:
        assert path.startswith("/workspace/"), path
        return self.root / path.removeprefix("/workspace/")

    def run(self, block: Any) -> tuple[str, bool]:
        args = block.input
        if block.name == "bash":
            self.bash_log.append(args["command"])
            return "1 passed", False
        path = self.local(args["path"])
        cmd = args["command"]
        if cmd == "view":
            if not path.is_file():
                return f"The path {args['path']} does not exist.", True
            lines = path.read_text().split("\n")
            numbered = "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(lines, 1))
            return f"Here's the result of running `cat -n` on {args['path']}:\n{numbered}", False
        if cmd == "create":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(args["file_text"])
            return f"File created successfully at: {args['path']}", False
        if cmd == "str_replace":
            old = path.read_text()
            if args["old_str"] not in old:
                return (
                    f"No replacement was performed, old_str `{args['old_str']}` did not appear "
                    f"verbatim in {args['path']}.",
                    True,
                )
            path.write_text(old.replace(args["old_str"], args["new_str"], 1))
            return f"The file {args['path']} has been edited.", False
        if cmd == "insert":
            lines = path.read_text().split("\n")
            at = args["insert_line"]
            lines[at:at] = args["insert_text"].split("\n")
            path.write_text("\n".join(lines))
            return f"The file {args['path']} has been edited.", False
        return f"Unknown command {cmd}", True


def drive(
    sim: AnthropicSim,
    ws: Workspace,
    task: str,
    *,
    tools: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    max_turns: int = 40,
    **extra: Any,
) -> tuple[list[dict[str, Any]], anthropic.types.Message]:
    """A minimal agent loop: call, run the tool calls, send the results back."""
    client = sdk(sim)
    messages = messages or [{"role": "user", "content": task}]
    for _ in range(max_turns):
        msg = client.messages.create(
            model=MODEL, max_tokens=8000, messages=messages, tools=tools or [EDITOR], **extra
        )
        messages.append({"role": "assistant", "content": [b.model_dump() for b in msg.content]})
        calls = [b for b in msg.content if b.type == "tool_use"]
        if msg.stop_reason != "tool_use":
            return messages, msg
        results = []
        for call in calls:
            out, err = ws.run(call)
            results.append(
                {"type": "tool_result", "tool_use_id": call.id, "content": out, "is_error": err}
            )
        messages.append({"role": "user", "content": results})
    raise AssertionError("the loop did not end")


def tool_results(messages: list[dict[str, Any]]) -> list[str]:
    return [
        b["content"]
        for m in messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    ]


def final_text(msg: anthropic.types.Message) -> str:
    return "".join(b.text for b in msg.content if b.type == "text")


# ---- validation ------------------------------------------------------------------------------
def _tool_turn(tid: str = "toolu_a") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": tid, "name": "grep", "input": {"pattern": "x"}}],
    }


def _result(tid: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tid, "content": "ok"}


def _cc(n: int) -> dict[str, Any]:
    return {"type": "text", "text": f"block {n}", "cache_control": {"type": "ephemeral"}}


INVALID: dict[str, dict[str, Any]] = {
    "tool_result without tool_use": {
        "tools": [GREP],
        "messages": [*USER, _tool_turn(), {"role": "user", "content": [_result("toolu_zzz")]}],
    },
    "tool_use without tool_result": {
        "tools": [GREP],
        "messages": [*USER, _tool_turn(), {"role": "user", "content": "go on"}],
    },
    "tool_result not at the start": {
        "tools": [GREP],
        "messages": [
            *USER,
            _tool_turn(),
            {"role": "user", "content": [{"type": "text", "text": "here"}, _result("toolu_a")]},
        ],
    },
    "first message from assistant": {
        "messages": [{"role": "assistant", "content": "hi"}, *USER],
    },
    "five cache breakpoints": {
        "system": [_cc(1), _cc(2), _cc(3)],
        "messages": [{"role": "user", "content": [_cc(4), _cc(5)]}],
    },
    "temperature on 5.x": {"extra_body": {"temperature": 0.2}},
    "top_p on 5.x": {"extra_body": {"top_p": 0.9}},
    "top_k on 5.x": {"extra_body": {"top_k": 5}},
    "tool_choice any on 5.x": {"tools": [GREP], "tool_choice": {"type": "any"}},
    "tool_choice tool on 5.x": {"tools": [GREP], "tool_choice": {"type": "tool", "name": "grep"}},
    "empty text block": {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
    "editor tool renamed": {"tools": [{"type": "text_editor_20250728", "name": "editor"}]},
    "unknown tool type": {"tools": [{"type": "text_editor_19990101", "name": "x"}]},
    "thinking budget above max_tokens": {"thinking": {"type": "enabled", "budget_tokens": 4096}},
    "five breakpoints with the request-level one": {
        "system": [_cc(1), _cc(2), _cc(3), _cc(4)],
        "cache_control": {"type": "ephemeral"},
    },
    "tool blocks without tools": {
        "messages": [*USER, _tool_turn(), {"role": "user", "content": [_result("toolu_a")]}],
    },
    "duplicate tool_use ids": {
        "tools": [GREP],
        "messages": [
            *USER,
            _tool_turn(),
            {"role": "user", "content": [_result("toolu_a")]},
            _tool_turn(),
            {"role": "user", "content": [_result("toolu_a")]},
        ],
    },
    "prefill ending in whitespace": {
        "messages": [*USER, {"role": "assistant", "content": "The answer is "}],
    },
    "five breakpoints counting those inside tool results": {
        "tools": [GREP],
        "system": [_cc(1), _cc(2), _cc(3)],
        "messages": [
            *USER,
            _tool_turn(),
            {"role": "user", "content": [{**_result("toolu_a"), "content": [_cc(4), _cc(5)]}]},
        ],
    },
    "cache_control on a thinking block": {
        "messages": [
            *USER,
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "x",
                        "signature": "c2ln",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "ok"},
                ],
            },
            *USER,
        ],
    },
    "1h breakpoint after a 5m one": {
        "system": [
            _cc(1),
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ]
    },
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_requests_are_rejected_like_the_api(anthropic_sim: AnthropicSim, case: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        create(anthropic_sim, **INVALID[case])
    body = err.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["request_id"] == err.value.response.headers["request-id"]


def test_missing_max_tokens_is_rejected(anthropic_sim: AnthropicSim) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        sdk(anthropic_sim).post(
            "/v1/messages", body={"model": MODEL, "messages": USER}, cast_to=object
        )


def test_unknown_model_is_not_found(anthropic_sim: AnthropicSim) -> None:
    with pytest.raises(anthropic.NotFoundError, match="model: claude-nope-9"):
        create(anthropic_sim, model="claude-nope-9")


def test_valid_requests_pass(anthropic_sim: AnthropicSim) -> None:
    """Server tools, custom tools, answered tool calls, sampling on an older model."""
    messages = [*USER, _tool_turn(), {"role": "user", "content": [_result("toolu_a")]}]
    msg = create(
        anthropic_sim,
        tools=[EDITOR, BASH, GREP],
        tool_choice={"type": "auto"},
        messages=messages,
        system=[_cc(1), _cc(2)],
    )
    assert msg.stop_reason == "end_turn"
    assert create(anthropic_sim, model="claude-opus-4-6", extra_body={"temperature": 0.2}).content
    assert "temperature" not in anthropic_sim.requests[0]
    assert anthropic_sim.requests[1]["temperature"] == 0.2


def test_wrong_key_is_refused(anthropic_sim: AnthropicSim) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        sdk(anthropic_sim, api_key="sk-ant-wrong").messages.create(
            model=MODEL, max_tokens=10, messages=USER
        )
    r = httpx.post(
        anthropic_sim.base_url + "/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 5, "messages": USER},
    )
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_version_header_is_required(anthropic_sim: AnthropicSim) -> None:
    r = httpx.post(
        anthropic_sim.base_url + "/v1/messages",
        headers={"x-api-key": anthropic_sim.api_key},
        json={"model": MODEL, "max_tokens": 5, "messages": USER},
    )
    assert r.status_code == 400
    assert "anthropic-version" in r.json()["error"]["message"]
    ok = httpx.post(
        anthropic_sim.base_url + "/v1/messages",
        headers={"x-api-key": anthropic_sim.api_key, "anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 5, "messages": USER},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["request-id"].startswith("req_")


# ---- thinking --------------------------------------------------------------------------------
def _thinking_call(sim: AnthropicSim) -> anthropic.types.Message:
    sim.set_policy(
        lambda r: Turn(
            [thinking("Look first."), tool_use("grep", {"pattern": "def"}, id="toolu_t")]
        )
    )
    return create(
        sim, tools=[GREP], thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=4096
    )


def _continue(sim: AnthropicSim, assistant_content: list[dict[str, Any]]) -> Any:
    return create(
        sim,
        tools=[GREP],
        thinking={"type": "enabled", "budget_tokens": 1024},
        max_tokens=4096,
        messages=[
            *USER,
            {"role": "assistant", "content": assistant_content},
            {"role": "user", "content": [_result("toolu_t")]},
        ],
    )


def test_thinking_blocks_sent_back_unchanged_pass(anthropic_sim: AnthropicSim) -> None:
    first = _thinking_call(anthropic_sim)
    assert first.content[0].type == "thinking"
    assert first.content[0].signature
    _continue(anthropic_sim, [b.model_dump() for b in first.content])


@pytest.mark.parametrize("change", ["modified", "stripped", "forged signature"])
def test_thinking_blocks_changed_are_rejected(anthropic_sim: AnthropicSim, change: str) -> None:
    content = [b.model_dump() for b in _thinking_call(anthropic_sim).content]
    if change == "modified":
        content[0]["thinking"] = "Something else."
    elif change == "stripped":
        content = content[1:]
    else:
        content[0]["signature"] = "c2lnbmF0dXJl"
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        _continue(anthropic_sim, content)


def test_thinking_is_only_emitted_when_enabled(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(lambda r: Turn([thinking("Hmm."), text("Done.")]))
    assert [b.type for b in create(anthropic_sim).content] == ["text"]


# ---- streaming -------------------------------------------------------------------------------
def _rich_policy(request: dict[str, Any]) -> Turn:
    return Turn(
        [
            thinking("I should look at the file. " * 5),
            text("Let me look at the spec first, then write the code. " * 3),
            tool_use(
                "str_replace_based_edit_tool",
                {"command": "view", "path": "/workspace/docs/a-spec.md", "view_range": [1, 40]},
                id="toolu_fixed",
            ),
        ]
    )


def _comparable(msg: Any) -> dict[str, Any]:
    data = msg.model_dump()
    data.pop("id")
    for block in data["content"]:
        block.pop("parsed_output", None)
    return data


def test_stream_and_json_give_the_same_message(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(_rich_policy)
    args: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": USER,
        "tools": [EDITOR],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    plain = sdk(anthropic_sim).messages.create(**args)
    with sdk(anthropic_sim).messages.stream(**args) as stream:
        streamed = stream.get_final_message()

    async def run_async() -> Any:
        async with anthropic_sim.async_client(max_retries=0).messages.stream(**args) as s:
            return await s.get_final_message()

    streamed_async = asyncio.run(run_async())
    assert _comparable(plain) == _comparable(streamed) == _comparable(streamed_async)
    assert plain.stop_reason == "tool_use"
    assert plain.content[2].input["view_range"] == [1, 40]


def test_stream_event_sequence(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(_rich_policy)
    events = list(
        sdk(anthropic_sim).messages.create(
            model=MODEL,
            max_tokens=4096,
            messages=USER,
            tools=[EDITOR],
            thinking={"type": "enabled", "budget_tokens": 2048},
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert events[0].message.content == []
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "tool_use"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 3
    deltas = {e.delta.type for e in events if e.type == "content_block_delta"}
    assert deltas == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    json_parts = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(json_parts) > 2
    assert json.loads("".join(json_parts))["command"] == "view"
    raw = httpx.post(
        anthropic_sim.base_url + "/v1/messages",
        headers={"x-api-key": anthropic_sim.api_key, "anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 50, "messages": USER, "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert "event: ping" in raw.text


# ---- usage and cache -------------------------------------------------------------------------
BIG_SYSTEM = "You are the PACT backend coder. " * 400  # ~3,200 tokens by the estimate


def _cached_call(sim: AnthropicSim, messages: list[dict[str, Any]], ttl: str = "5m") -> Any:
    cc = {"type": "ephemeral", "ttl": ttl}
    return create(
        sim,
        system=[{"type": "text", "text": BIG_SYSTEM, "cache_control": cc}],
        messages=messages,
    )


def test_second_call_with_same_prefix_reads_the_cache(anthropic_sim: AnthropicSim) -> None:
    first = _cached_call(anthropic_sim, USER).usage
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens > 1024
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    second = _cached_call(anthropic_sim, [{"role": "user", "content": "something else"}]).usage
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens > 0
    total = sdk(anthropic_sim).messages.count_tokens(
        model=MODEL,
        system=[{"type": "text", "text": BIG_SYSTEM}],
        messages=[{"role": "user", "content": "something else"}],
    )
    assert total.input_tokens == second.input_tokens + second.cache_read_input_tokens


def test_cache_expires_after_its_ttl(anthropic_sim: AnthropicSim) -> None:
    _cached_call(anthropic_sim, USER)
    anthropic_sim.advance(301)
    assert _cached_call(anthropic_sim, USER).usage.cache_read_input_tokens == 0
    _cached_call(anthropic_sim, USER, ttl="1h")
    anthropic_sim.advance(1800)
    usage = _cached_call(anthropic_sim, USER, ttl="1h").usage
    assert usage.cache_read_input_tokens > 1024


def test_moving_breakpoint_reads_the_previous_turn(anthropic_sim: AnthropicSim) -> None:
    """The bot's pattern: one breakpoint after system, one on the newest user block."""
    big = "Spec text. " * 600

    def turn_msgs(n: int) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": big}]}]
        for i in range(n):
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": f"a{i}"}]})
            msgs.append({"role": "user", "content": [{"type": "text", "text": f"u{i}"}]})
        msgs[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        return msgs

    first = _cached_call(anthropic_sim, turn_msgs(0)).usage
    second = _cached_call(anthropic_sim, turn_msgs(1)).usage
    assert second.cache_read_input_tokens == (
        first.cache_read_input_tokens + first.cache_creation_input_tokens
    )
    assert 0 < second.cache_creation_input_tokens < 30


def test_small_prefixes_are_not_cached(anthropic_sim: AnthropicSim) -> None:
    system = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    create(anthropic_sim, system=system)
    usage = create(anthropic_sim, system=system).usage
    assert usage.cache_read_input_tokens == usage.cache_creation_input_tokens == 0


def test_usage_log_and_cost(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(lambda r: "x" * 400)  # 100 output tokens
    _cached_call(anthropic_sim, USER)
    _cached_call(anthropic_sim, USER)
    log = anthropic_sim.usage_log
    assert [r.output_tokens for r in log] == [100, 100]
    expected = (
        sum(
            (r.input_tokens * 2 + r.output_tokens * 10)
            + r.cache_creation_5m * 2.5
            + r.cache_read_input_tokens * 0.2
            for r in log
        )
        / 1e6
    )
    assert anthropic_sim.total_cost(PRICES) == pytest.approx(expected)
    assert anthropic_sim.total_cost({MODEL: PRICES}) == pytest.approx(expected)
    assert anthropic_sim.max_request_cost(PRICES) == pytest.approx(log[0].cost(PRICES))
    assert log[0].cost(PRICES) > log[1].cost(PRICES)


def test_output_over_max_tokens_is_truncated(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(lambda r: "y" * 4000)
    msg = create(anthropic_sim, max_tokens=10)
    assert msg.stop_reason == "max_tokens"
    assert msg.content[0].text == "y" * 40
    assert msg.usage.output_tokens == 10


# ---- faults ----------------------------------------------------------------------------------
def test_rate_limit_is_retried_after_retry_after(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.rate_limited(retry_after=0.6))
    started = time.monotonic()
    msg = sdk(anthropic_sim, max_retries=2).messages.create(
        model=MODEL, max_tokens=100, messages=USER
    )
    assert time.monotonic() - started >= 0.6
    assert msg.content[0].text
    assert [c.status for c in anthropic_sim.calls] == [429, 200]


def test_rate_limit_answer_shape(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.rate_limited(retry_after=7))
    with pytest.raises(anthropic.RateLimitError) as err:
        create(anthropic_sim)
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.body["error"]["type"] == "rate_limit_error"


def test_overloaded_and_server_error(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.overloaded(), Fault.server_error())
    with pytest.raises(anthropic.OverloadedError):
        create(anthropic_sim)
    with pytest.raises(anthropic.InternalServerError) as err:
        create(anthropic_sim)
    assert err.value.status_code == 500
    assert create(anthropic_sim).stop_reason == "end_turn"


def test_overload_storm_outlasts_retries(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject_always(Fault.overloaded())
    with pytest.raises(anthropic.OverloadedError):  # one retry after the SDK's ~0.5 s backoff
        sdk(anthropic_sim, max_retries=1).messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert [c.status for c in anthropic_sim.calls] == [529, 529]
    anthropic_sim.clear_faults()
    assert create(anthropic_sim).content


def test_cut_stream_raises(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.cut_stream(after_events=3))
    with (
        pytest.raises((anthropic.APIError, httpx2.TransportError)),
        sdk(anthropic_sim).messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream,
    ):
        stream.get_final_message()
    assert anthropic_sim.usage_log[-1].complete is False


def test_cut_json_answer_is_a_connection_error(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.cut_stream())
    with pytest.raises(anthropic.APIConnectionError):
        create(anthropic_sim)


def test_error_event_mid_stream(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.stream_error(after_events=2))
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        sdk(anthropic_sim).messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream,
    ):
        stream.get_final_message()


def test_max_tokens_fault(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(lambda r: "z" * 400)
    anthropic_sim.inject(Fault.max_tokens())
    msg = create(anthropic_sim)
    assert msg.stop_reason == "max_tokens"
    assert msg.content[0].text == "z" * 200


def test_slow_first_byte(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.inject(Fault.slow_first_byte(1.0))
    with pytest.raises(anthropic.APITimeoutError):
        sdk(anthropic_sim, timeout=0.3).messages.create(model=MODEL, max_tokens=10, messages=USER)
    anthropic_sim.inject(Fault.slow_first_byte(0.3))
    started = time.monotonic()
    create(anthropic_sim)
    assert time.monotonic() - started >= 0.3


# ---- policies --------------------------------------------------------------------------------
def test_replay_policy_plays_turns_then_fails_without_retry(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(
        ReplayPolicy([[tool_use("grep", {"pattern": "x"}, id="toolu_a")], "All done."])
    )
    first = create(anthropic_sim, tools=[GREP])
    assert first.stop_reason == "tool_use"
    messages = [*USER, _tool_turn(), {"role": "user", "content": [_result("toolu_a")]}]
    assert final_text(create(anthropic_sim, tools=[GREP], messages=messages)) == "All done."
    more = [*messages, {"role": "assistant", "content": "All done."}, *USER]
    with pytest.raises(anthropic.InternalServerError, match="exhausted"):
        sdk(anthropic_sim, max_retries=2).messages.create(
            model=MODEL, max_tokens=10, messages=more, tools=[GREP]
        )
    assert anthropic_sim.calls[-1].status == 500
    assert len(anthropic_sim.calls) == 3
    assert anthropic_sim.policy_errors


SPEC = "# Rate Limiter\n\nA token bucket per client.\n"
TASK = "Implement the following specs.\n\n## Spec: `docs/rate-limiter-spec.md`\n\n" + SPEC + "\n"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "rate-limiter-spec.md").write_text(SPEC)
    return Workspace(tmp_path)


def test_spec_paths_are_found() -> None:
    task = "Specs: `docs/a-spec.md`, ### docs/sub/b-spec.md and again docs/a-spec.md"
    assert find_spec_paths(task) == ["docs/a-spec.md", "docs/sub/b-spec.md"]


def test_spec_coder_implements_the_spec(anthropic_sim: AnthropicSim, ws: Workspace) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())
    messages, final = drive(anthropic_sim, ws, TASK)
    source = (ws.root / "src" / "rate_limiter.py").read_text()
    assert 'STATUS = "implemented"' in source
    assert "Rate Limiter" in source
    assert (
        "from rate_limiter import describe" in (ws.root / "tests/test_rate_limiter.py").read_text()
    )
    summary = (ws.root / "docs/implementation-summary-rate-limiter.md").read_text()
    for section in ("## Summary", "## Assumptions", "## For the Test Engineer"):
        assert section in summary
    assert final_text(final) == CLOSING.format(path="docs/implementation-summary-rate-limiter.md")
    assert not any("No replacement" in r for r in tool_results(messages))


def test_spec_coder_retries_a_failed_str_replace(
    anthropic_sim: AnthropicSim, ws: Workspace
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(stale_first_edit=True))
    messages, final = drive(anthropic_sim, ws, TASK)
    assert any(r.startswith("No replacement was performed") for r in tool_results(messages))
    assert 'STATUS = "implemented"' in (ws.root / "src/rate_limiter.py").read_text()
    assert "I have completed the backend implementation" in final_text(final)


def test_spec_coder_with_thinking_and_cache(anthropic_sim: AnthropicSim, ws: Workspace) -> None:
    """Thinking blocks go back unchanged through a whole run; every call is accepted."""
    anthropic_sim.set_policy(SpecCoderPolicy())
    _, final = drive(
        anthropic_sim,
        ws,
        TASK,
        thinking={"type": "enabled", "budget_tokens": 2048},
        system=[{"type": "text", "text": BIG_SYSTEM, "cache_control": {"type": "ephemeral"}}],
    )
    assert final.stop_reason == "end_turn"
    assert all(c.status == 200 for c in anthropic_sim.calls)
    assert sum(r.cache_read_input_tokens for r in anthropic_sim.usage_log) > 0


def test_spec_coder_misbehaviours(anthropic_sim: AnthropicSim, ws: Workspace) -> None:
    anthropic_sim.set_policy(
        SpecCoderPolicy(write_paths=[".github/workflows/x.yml"], skip_summary=True)
    )
    messages, _ = drive(anthropic_sim, ws, TASK)
    assert (ws.root / ".github/workflows/x.yml").exists()
    summary = ws.root / "docs/implementation-summary-rate-limiter.md"
    assert not summary.exists()
    messages.append({"role": "user", "content": "Please write the implementation summary."})
    drive(anthropic_sim, ws, TASK, messages=messages)
    assert "## For the Test Engineer" in summary.read_text()


def test_spec_coder_without_edits(anthropic_sim: AnthropicSim, ws: Workspace) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(no_edits=True))
    before = sorted(p.name for p in ws.root.rglob("*"))
    _, final = drive(anthropic_sim, ws, TASK)
    assert sorted(p.name for p in ws.root.rglob("*")) == before
    assert "I have completed" not in final_text(final)


def test_spec_coder_loops_and_runs_bash(anthropic_sim: AnthropicSim, ws: Workspace) -> None:
    anthropic_sim.set_policy(
        SpecCoderPolicy(max_turns_to_loop=3, bash_commands=["pytest -q"], turn_latency=0.01)
    )
    drive(anthropic_sim, ws, TASK, tools=[EDITOR, BASH])
    assert ws.bash_log == ["pytest -q"]
    assert len(anthropic_sim.requests) == 3 + 1 + 3 + 1 + 1 + 1
    with pytest.raises(AssertionError, match="did not end"):
        anthropic_sim.set_policy(SpecCoderPolicy(max_turns_to_loop=10**9))
        drive(anthropic_sim, ws, TASK, max_turns=5)


REVIEW = """Address this review by @alice on the pull request.

Review body: a few things.

- Comment 101 on `src/app.py` line 2: rename `compute` to `calculate`
```diff
@@ -1,3 +1,3 @@
-def compute(): pass
```
- Comment 102 on `src/app.py` line 4: please document the return value
- Comment 103 on `src/missing.py` line 1: this file should exist
- Comment 104 on `src/app.py` lines 3-3: tidy this
```suggestion
    return 42  # the answer
```
"""


def test_review_comments_are_parsed() -> None:
    comments = parse_review_comments(REVIEW)
    assert [(c.id, c.path, c.line) for c in comments] == [
        ("101", "src/app.py", 2),
        ("102", "src/app.py", 4),
        ("103", "src/missing.py", 1),
        ("104", "src/app.py", 3),
    ]
    blocks = "id: 7\npath: a.py\nline: 3\nbody: fix it\n\nid: 8\npath: b.md\nline: 1\nbody: typo"
    assert [(c.id, c.path, c.line, c.body) for c in parse_review_comments(blocks)] == [
        ("7", "a.py", 3, "fix it"),
        ("8", "b.md", 1, "typo"),
    ]
    as_json = '```json\n[{"id": 9, "path": "c.py", "line": 5, "body": "hm"}]\n```'
    tagged = (
        '<review author="alice">Fix these.</review>\n<comment id="11" path="src/x.py" '
        'line="4">\n<diff_hunk>\n@@ -1 +1 @@\n-a\n</diff_hunk>\nrename `a` to `b`\n</comment>\n'
        '<comment id="12" path="src/y.py" start_line="2" line="3">tidy</comment>'
    )
    assert [
        (c.id, c.path, c.start_line, c.line, c.body) for c in parse_review_comments(tagged)
    ] == [
        ("11", "src/x.py", None, 4, "rename `a` to `b`"),
        ("12", "src/y.py", 2, 3, "tidy"),
    ]
    assert [(c.id, c.line) for c in parse_review_comments(as_json)] == [("9", 5)]


def test_revise_policy_edits_and_replies(anthropic_sim: AnthropicSim, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/app.py").write_text(
        "# app\ndef compute() -> int:\n    return 41\n\nprint(compute())\n"
    )
    anthropic_sim.set_policy(RevisePolicy())
    _, final = drive(anthropic_sim, Workspace(tmp_path), REVIEW)
    source = (tmp_path / "src/app.py").read_text()
    assert "def calculate() -> int:" in source
    assert "return 42  # the answer" in source
    assert "# Review: please document the return value" in source
    replies = [line for line in final_text(final).splitlines() if line.startswith("REPLY ")]
    assert [r.split(":")[0] for r in replies] == [
        "REPLY 101",
        "REPLY 102",
        "REPLY 103",
        "REPLY 104",
    ]
    assert replies[2].startswith("REPLY 103: No change:")
    assert final_text(final).splitlines()[-1] == replies[-1]


def test_abandoned_slow_call_is_not_billed(anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(lambda r: Turn([text("late")], latency=1.0))
    with pytest.raises(anthropic.APITimeoutError):
        sdk(anthropic_sim, timeout=0.2).messages.create(model=MODEL, max_tokens=10, messages=USER)
    deadline = time.monotonic() + 3
    while anthropic_sim.calls[-1].status != 499 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert anthropic_sim.calls[-1].status == 499
    assert anthropic_sim.usage_log == []


def test_spec_coder_reads_the_pipeline_task(anthropic_sim: AnthropicSim, ws: Workspace) -> None:
    """The pipeline's format: `<spec path="/workspace/...">` and the summary path it wants."""
    task = (
        f'Implement the following specification.\n\n<spec path="/workspace/docs/rate-limiter'
        f'-spec.md">\n{SPEC}\n</spec>\n\nWhen the implementation is complete, write the '
        "implementation summary to `/workspace/docs/implementation-summary-limiter.md`."
    )
    assert find_spec_paths(task) == ["docs/rate-limiter-spec.md"]
    anthropic_sim.set_policy(SpecCoderPolicy())
    _, final = drive(anthropic_sim, ws, task)
    assert (ws.root / "docs/implementation-summary-limiter.md").is_file()
    assert "docs/implementation-summary-limiter.md" in final_text(final)


def test_spec_coder_repeats_a_call_cut_at_max_tokens(
    anthropic_sim: AnthropicSim, ws: Workspace
) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())
    first = create(anthropic_sim, tools=[EDITOR], messages=[{"role": "user", "content": TASK}])
    call = first.content[-1]
    assert call.type == "tool_use"
    again = create(
        anthropic_sim,
        tools=[EDITOR],
        messages=[
            {"role": "user", "content": TASK},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": "Not run: this tool call was cut off at max_tokens.",
                        "is_error": True,
                    },
                    {"type": "text", "text": "Continue."},
                ],
            },
        ],
    )
    assert again.content[-1].input == call.input


def test_models_endpoints(anthropic_sim: AnthropicSim) -> None:
    client = sdk(anthropic_sim)
    assert client.models.retrieve(MODEL).id == MODEL
    assert MODEL in [m.id for m in client.models.list()]
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope-9")


def test_revise_policy_follows_plain_instructions(
    anthropic_sim: AnthropicSim, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/app.py").write_text("def run() -> None:\n    pass\n")
    task = (
        "Revise the pull request. Files: `src/app.py`, `docs/implementation-summary-app.md`.\n"
        "<instructions>\nlog every run\n</instructions>"
    )
    anthropic_sim.set_policy(RevisePolicy())
    _, final = drive(anthropic_sim, Workspace(tmp_path), task)
    assert (tmp_path / "src/app.py").read_text().endswith("# Review: log every run")
    assert "REPLY" not in final_text(final)


def test_request_level_cache_control_marks_the_last_block(anthropic_sim: AnthropicSim) -> None:
    messages = [{"role": "user", "content": BIG_SYSTEM}]
    auto = {"type": "ephemeral"}
    first = create(anthropic_sim, messages=messages, cache_control=auto).usage
    second = create(anthropic_sim, messages=messages, cache_control=auto).usage
    assert first.cache_creation_input_tokens == second.cache_read_input_tokens > 1024


def test_big_tool_input_streams_intact(anthropic_sim: AnthropicSim) -> None:
    content = "".join(f'line {i}: "quoted" \\ and ünïcode\n' for i in range(3000))
    call = {"command": "create", "path": "/workspace/big.txt", "file_text": content}
    anthropic_sim.set_policy(lambda r: Turn([tool_use("str_replace_based_edit_tool", call)]))
    with sdk(anthropic_sim).messages.stream(
        model=MODEL, max_tokens=64000, messages=USER, tools=[EDITOR]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == call
