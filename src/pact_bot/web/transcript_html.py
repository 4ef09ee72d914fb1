"""A job's transcript (JSONL, already redacted) as HTML for people, one entry per record.

Everything in a transcript is hostile model or tool output: every string goes through
`terminal.printable` (control and bidi characters shown as visible escapes) and then
`html.escape`; nothing from the model is ever markup. Model text is shown as text, not
rendered Markdown. Long blocks fold into `<details>`; unified diffs and the editor's
`str_replace` calls are shown as diffs.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

from pact_bot.agent.tools import summarize
from pact_bot.terminal import printable

FOLD_LINES = 12
FOLD_CHARS = 1200
MAX_BLOCK_CHARS = 60_000  # one block is cut beyond this (the file keeps all of it)


def esc(value: object) -> str:
    """Any value as safe HTML text."""
    return html.escape(printable(str(value)), quote=True)


def _clip(text: str) -> str:
    if len(text) <= MAX_BLOCK_CHARS:
        return text
    return text[:MAX_BLOCK_CHARS] + f"\n… [{len(text) - MAX_BLOCK_CHARS} more characters]"


def _looks_like_diff(text: str) -> bool:
    lines = text.splitlines()
    has_hunk = any(line.startswith("@@ ") for line in lines)
    has_header = any(line.startswith(("diff --git ", "--- ")) for line in lines)
    return has_hunk and has_header


def _diff_html(text: str) -> str:
    out = []
    for line in _clip(text).splitlines():
        cls = ""
        if line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+") and not line.startswith("+++"):
            cls = "add"
        elif line.startswith("-") and not line.startswith("---"):
            cls = "del"
        out.append(f"<span class={cls}>{esc(line)}</span>" if cls else esc(line) + "\n")
    return f"<pre class=diff>{''.join(out)}</pre>"


def _pre(text: str) -> str:
    if _looks_like_diff(text):
        return _diff_html(text)
    return f"<pre>{esc(_clip(text))}</pre>"


def _folded(summary: str, body_html: str, text: str, *, cls: str = "", force: bool = False) -> str:
    """`body_html` under a `<details>` when `text` is long (or `force`), else as is."""
    long = force or text.count("\n") >= FOLD_LINES or len(text) > FOLD_CHARS
    c = f" class='{cls}'" if cls else ""
    if not long:
        return f"<div{c}>{body_html}</div>" if cls else body_html
    lines = text.count("\n") + 1
    return (
        f"<details{c}><summary>{summary} <span class=muted>({lines} lines)</span></summary>"
        f"{body_html}</details>"
    )


def _first_line(text: str, limit: int = 100) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _replace_diff(old: str, new: str) -> str:
    lines = [f"-{line}" for line in old.splitlines()] + [f"+{line}" for line in new.splitlines()]
    return _diff_html("\n".join(lines))


def _tool_input_html(name: str, data: dict[str, Any]) -> str:
    if "old_str" in data:
        head = f"<p class=muted>{esc(data.get('command', ''))} {esc(data.get('path', ''))}</p>"
        return head + _replace_diff(str(data.get("old_str") or ""), str(data.get("new_str") or ""))
    if name == "bash" and "command" in data:
        return _pre(str(data["command"]))
    if "file_text" in data:
        head = f"<p class=muted>{esc(data.get('command', ''))} {esc(data.get('path', ''))}</p>"
        return head + _pre(str(data["file_text"]))
    return _pre(json.dumps(data, ensure_ascii=False, indent=2))


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(
            str(c.get("text", "")) for c in content if isinstance(c, dict) and "text" in c
        )
    return str(content or "")


class TranscriptView:
    """Renders records in order; remembers tool names so a result can say whose it is."""

    def __init__(self) -> None:
        self.tool_names: dict[str, str] = {}

    def entry(self, rec: dict[str, Any]) -> str:
        """The HTML of one record ("" for records folded into another)."""
        kind = str(rec.get("kind", ""))
        stamp = time.strftime("%H:%M:%S", time.gmtime(float(rec.get("ts") or 0)))
        if kind == "start":
            return self._start(rec, stamp)
        if kind == "request":
            return "".join(self._message(m, stamp) for m in rec.get("messages") or [])
        if kind == "response":
            return self._response(rec, stamp)
        if kind == "tool_results":
            return ""  # the full results are in the next request
        if kind == "stop":
            return self._stop(rec, stamp)
        if kind == "phase":
            return _box("system", f"{stamp} · phase", f"<p>{esc(rec.get('phase', ''))}</p>")
        detail = {k: v for k, v in rec.items() if k not in ("ts", "kind")}
        cls = "error" if kind in ("charged_failed_call", "unreadable") else "system"
        body = _pre(json.dumps(detail, ensure_ascii=False, indent=1)[:2000])
        return _box(cls, f"{stamp} · {esc(kind)}", body)

    def _start(self, rec: dict[str, Any], stamp: str) -> str:
        tools = ", ".join(str(t) for t in rec.get("tools") or [])
        budget = rec.get("budget") or {}
        facts = (
            f"<p>Model <code>{esc(rec.get('model', '?'))}</code>; tools {esc(tools)}; "
            f"at most {esc(budget.get('max_turns', '?'))} turns, "
            f"${esc(budget.get('max_cost_usd', '?'))}, "
            f"{esc(round(float(budget.get('max_seconds') or 0) / 60, 1))} minutes.</p>"
        )
        system = str(rec.get("system") or "")
        prompt = _folded("System prompt", _pre(system), system, force=True) if system else ""
        return _box("system", f"{stamp} · agent started", facts + prompt)

    def _message(self, msg: dict[str, Any], stamp: str) -> str:
        role = str(msg.get("role", "?"))
        content = msg.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        parts = [self._block(b) for b in blocks if isinstance(b, dict)]
        if role == "assistant":
            return _box("assistant", f"{stamp} · assistant (earlier)", "".join(parts))
        results = all(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)
        head = f"{stamp} · tool results" if results and blocks else f"{stamp} · {esc(role)}"
        return _box("user", head, "".join(parts))

    def _response(self, rec: dict[str, Any], stamp: str) -> str:
        usage = rec.get("usage") or {}
        head = (
            f"{stamp} · turn {esc(rec.get('turn', '?'))} · {esc(rec.get('stop_reason', ''))} · "
            f"in {esc(usage.get('input_tokens', 0))}"
            f" + cache {esc(usage.get('cache_read_tokens', 0))}"
            f"/{esc(usage.get('cache_write_tokens', 0))}, "
            f"out {esc(usage.get('output_tokens', 0))} · "
            f"${float(rec.get('cost_usd') or 0):.4f}"
        )
        body = "".join(self._block(b) for b in rec.get("content") or [] if isinstance(b, dict))
        return _box("assistant", head, body)

    def _stop(self, rec: dict[str, Any], stamp: str) -> str:
        error = rec.get("error")
        body = (
            f"<p>{esc(rec.get('stop', '?'))} after {esc(rec.get('turns', 0))} turns, "
            f"${float(rec.get('cost_usd') or 0):.4f}, "
            f"{float(rec.get('duration_s') or 0):.1f} s.</p>"
        )
        if error:
            body += f"<p class=err>{esc(error)}</p>"
        return _box("error" if error else "system", f"{stamp} · agent stopped", body)

    def _block(self, b: dict[str, Any]) -> str:
        t = b.get("type")
        if t == "text":
            text = str(b.get("text") or "")
            shown = (
                _pre(text) if _looks_like_diff(text) else f"<div class=say>{esc(_clip(text))}</div>"
            )
            return _folded(esc(_first_line(text)), shown, text)
        if t == "thinking":
            text = str(b.get("thinking") or "")
            return _folded("thinking", _pre(text), text, force=True)
        if t == "redacted_thinking":
            return "<p class=muted>(redacted thinking)</p>"
        if t == "tool_use":
            name = str(b.get("name", "?"))
            self.tool_names[str(b.get("id", ""))] = name
            data = b.get("input") if isinstance(b.get("input"), dict) else {}
            summary = f"→ {esc(summarize(name, data or {}))}"
            return (
                f"<details class=tool><summary>{summary}</summary>"
                f"{_tool_input_html(name, data or {})}</details>"
            )
        if t == "tool_result":
            text = _text_of(b.get("content"))
            name = self.tool_names.get(str(b.get("tool_use_id", "")), "tool")
            error = bool(b.get("is_error"))
            mark = "✗" if error else "←"
            summary = f"{mark} {esc(name)}: {esc(_first_line(text, 80))}"
            lines = text.count("\n") + 1
            cls = "tool error" if error else "tool"
            return (
                f"<details class='{cls}'><summary>{summary} "
                f"<span class=muted>({lines} lines)</span></summary>{_pre(text)}</details>"
            )
        return f"<p class=muted>({esc(t)})</p>"


def _box(cls: str, head: str, body: str) -> str:
    """`head` and `body` are HTML already escaped by the caller."""
    return f"<section class='entry {cls}'><div class=head>{head}</div>{body}</section>\n"


def read_complete_lines(
    path: Path, offset: int = 0, until: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Records from `offset` (to `until`) up to the last complete line, and the offset after
    it (a line the agent is still writing is left for the next read)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read() if until is None else f.read(max(0, until - offset))
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for raw in data[:end].splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = {"kind": "unreadable", "line": raw[:200].decode("utf-8", "replace")}
        records.append(rec if isinstance(rec, dict) else {"kind": "unreadable", "line": ""})
    return records, offset + end


def usage_totals(records: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens over every model call of the transcript."""
    out = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
    for rec in records:
        if rec.get("kind") == "response":
            for k in out:
                v = (rec.get("usage") or {}).get(k, 0)
                out[k] += int(v) if isinstance(v, (int, float)) else 0
    return out
