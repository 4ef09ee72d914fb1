"""The conversation as the API takes it: user turns, tool results, and the prompt-cache marks.

Prompt caching: one breakpoint on the system block (tools come before system in the prefix,
so it covers both) and a moving one on the last block of each of the two latest user turns
(the previous one keeps the last cache entry reachable even when a turn adds more than the
API's 20-block lookback); older marks are removed, so a request never carries more than 3.
"""

from __future__ import annotations

from typing import Any

CACHE = {"type": "ephemeral"}


def _append_user(msgs: list[dict[str, Any]], content: str | list[dict[str, Any]]) -> None:
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if msgs and msgs[-1]["role"] == "user":
        prev = msgs[-1]["content"]
        prev = [{"type": "text", "text": prev}] if isinstance(prev, str) else list(prev)
        msgs[-1] = {"role": "user", "content": prev + blocks}
    else:
        msgs.append({"role": "user", "content": blocks})


def _close_dangling(msgs: list[dict[str, Any]], note: str) -> None:
    """Answer tool calls left without a result, so the conversation can be continued."""
    if not msgs or msgs[-1]["role"] != "assistant":
        return
    ids = [b["id"] for b in msgs[-1]["content"] if isinstance(b, dict) and b["type"] == "tool_use"]
    if ids:
        msgs.append({"role": "user", "content": [_tool_result(i, note, True) for i in ids]})


def _tool_result(tool_use_id: str, content: str, is_error: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": content or "(no output)",
    }
    if is_error:
        block["is_error"] = True
    return block


def _mark_cache(msgs: list[dict[str, Any]]) -> None:
    _strip_cache(msgs)
    users = [m for m in msgs if m["role"] == "user"][-2:]
    for m in users:
        if isinstance(m["content"], str):
            m["content"] = [{"type": "text", "text": m["content"]}]
        if m["content"]:
            m["content"][-1]["cache_control"] = CACHE


def _strip_cache(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for m in msgs:
        if isinstance(m.get("content"), list):
            for b in m["content"]:
                if isinstance(b, dict):
                    b.pop("cache_control", None)
    return msgs


_FIELDS = {
    "text": ("type", "text", "citations"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "tool_use": ("type", "id", "name", "input"),
}


def _block_dict(block: Any) -> dict[str, Any]:
    """The block as the API returned it, in the shape it accepts back (thinking unchanged)."""
    data = block if isinstance(block, dict) else block.model_dump(mode="json", exclude_none=True)
    keep = _FIELDS.get(data.get("type", ""))
    if keep is None:
        return data
    return {k: data[k] for k in keep if data.get(k) is not None}
