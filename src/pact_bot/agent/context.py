"""Keeping a long run inside the model's context window (pure functions; the loop drives them).

Two steps, as Anthropic's context editing and Claude Code's compaction do, applied before a
call whose prompt (plus `max_tokens`) would pass `ContextLimits.compact_at` of the window:

1. *Clear* old tool results: every result but the latest `keep_recent` whose text is worth
   clearing is replaced by a one-line note saying what it held and how to get it back. The
   tool_use/tool_result pairs stay (the API rejects a broken pairing). All of them go in one
   batch: a cleared block changes the prompt from there on, so the cache is written once
   and then read again for many turns, rather than rewritten a little every turn.
2. *Summarise*, when clearing cannot bring the prompt well under the threshold: the model is
   asked for a summary of the work (task, decisions, files changed, what remains) with the
   same cached prefix, and the run continues from the first user message (the task) plus
   that summary.

Token counts here use the cost module's pessimistic estimate (more tokens than the API
counts), so the checks err on the safe side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pact_bot.agent.cost import estimate_tokens
from pact_bot.agent.tools import summarize

CLEARED_PREFIX = "[cleared to save context:"
SUMMARY_PROMPT = (
    "The conversation is about to outgrow the context window. Summarise the conversation so "
    "far for yourself, to continue the task from the summary alone: the task as you "
    "understood it, the decisions you made and why, every file you created or changed (with "
    "what it now holds), what you learned from the files you read that you still need, and "
    "what remains to be done, in order. Write only the summary; do not call tools."
)
SUMMARY_INTRO = (
    "This run continues an earlier part of the same session that outgrew the context window. "
    "Your own summary of that earlier part follows; the files it mentions are in the "
    "workspace as it describes. Continue the task from here (view files again when you need "
    "their content)."
)
_CAT_N_LINE = re.compile(r"^\s*(\d+)\t", re.MULTILINE)


@dataclass(frozen=True)
class ContextLimits:
    """When and how far to shrink. `compact_at` and `clear_to` are shares of `window`; a
    clearing batch must bring prompt + max_tokens under `clear_to`, else the run summarises."""

    window: int
    compact_at: float = 0.8
    clear_to: float = 0.6
    keep_recent: int = 3
    """The latest tool results, which a clearing batch never touches."""
    min_result_tokens: int = 200
    """Smaller results are left as they are: their note would save next to nothing."""

    @property
    def threshold(self) -> int:
        return int(self.window * self.compact_at)

    @property
    def clear_target(self) -> int:
        return int(self.window * self.clear_to)


@dataclass(frozen=True)
class Clearable:
    message: int
    block: int
    tokens: int
    note: str

    @property
    def saves(self) -> int:
        return max(0, self.tokens - estimate_tokens(self.note))


def clearable(msgs: list[dict[str, Any]], limits: ContextLimits) -> list[Clearable]:
    """Tool results that may be cleared, oldest first (the latest `keep_recent` never are)."""
    uses: dict[str, tuple[str, dict[str, Any], int]] = {}
    found: list[Clearable] = []
    turn = 0
    for i, m in enumerate(msgs):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        if m["role"] == "assistant":
            turn += 1
            for b in content:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    uses[str(b.get("id"))] = (str(b.get("name")), b.get("input") or {}, turn)
            continue
        for j, b in enumerate(content):
            if not isinstance(b, dict) or b.get("type") != "tool_result":
                continue
            body = b.get("content", "")
            if isinstance(body, str) and body.startswith(CLEARED_PREFIX):
                continue
            size = estimate_tokens(body)
            name, tool_input, at = uses.get(str(b.get("tool_use_id")), ("tool", {}, turn))
            found.append(Clearable(i, j, size, note_for(name, tool_input, at, body)))
    kept = found[: max(0, len(found) - limits.keep_recent)]
    return [c for c in kept if c.tokens >= limits.min_result_tokens and c.saves > 0]


def clear(msgs: list[dict[str, Any]], items: list[Clearable]) -> int:
    """Replace the results in `items` by their notes (in place); returns the tokens saved."""
    saved = 0
    for c in items:
        block = msgs[c.message]["content"][c.block]
        block["content"] = c.note
        saved += c.saves
    return saved


def note_for(name: str, tool_input: dict[str, Any], turn: int, body: Any) -> str:
    """What the cleared result held and how to get it back, in one line."""
    what = f"`{summarize(name, tool_input)}`"
    if tool_input.get("command") == "view" and isinstance(body, str):
        numbers = _CAT_N_LINE.findall(body)
        if numbers:
            what = f"file {tool_input.get('path', '')} lines {numbers[0]}-{numbers[-1]}"
        again = "view it again if you need it"
    elif name == "bash":
        again = "run it again if you need its output"
    else:
        again = "call the tool again if you need it"
    return f"{CLEARED_PREFIX} the result of {what}, from turn {turn}; {again}.]"


def summary_request(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation plus the request for a summary, as the last user turn's last block
    (so the cached prefix of the conversation is read, not written again)."""
    out = list(msgs)
    last = dict(out[-1])
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    last["content"] = [*blocks, {"type": "text", "text": SUMMARY_PROMPT}]
    out[-1] = last
    return out


def compacted(
    first: dict[str, Any], summary: str, files_touched: list[str]
) -> list[dict[str, Any]]:
    """The conversation that replaces a summarised one: the task, then the summary."""
    content = first["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks = [
        b
        for b in blocks
        if not (isinstance(b, dict) and b.get("type") in ("tool_result", "tool_use"))
    ]
    files = ", ".join(files_touched) if files_touched else "none yet"
    text = (
        f"{SUMMARY_INTRO}\n\n<summary>\n{summary.strip()}\n</summary>\n\n"
        f"Files changed so far: {files}"
    )
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": text}]}]


def fallback_summary(tool_lines: list[str], final_text: str) -> str:
    """When the model answers the summary request without text: what the loop itself knows."""
    recent = "\n".join(f"- {line}" for line in tool_lines[-40:]) or "- (no tool calls)"
    said = f"\n\nLast thing said: {final_text.strip()[:2000]}" if final_text.strip() else ""
    return f"Tool calls made so far (latest last):\n{recent}{said}"
