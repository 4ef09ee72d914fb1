"""One JSONL transcript per job, with every secret scrubbed before it reaches the disk.

    transcript = Transcript.for_job(settings.pact_data_dir, job.id, secrets=settings.secrets())
    transcript.write("request", turn=1, messages=[...])   # any JSON-able fields
    print(render_transcript(transcript.path))              # `pact-bot jobs show ID --transcript`

Lines are `{"ts", "kind", ...}`; the loop writes `start` (model, tools, budget, system
prompt), then per turn `request` (the new messages only — tool results included — with the
call's `max_tokens` and worst-case price), `response` (content, stop reason, usage, cost) and
`tool_results` (one compact entry per tool run), plus `retry` / `charged_failed_call` when
they happen, then `stop`.

Redaction runs on every value before serialisation and again on the serialised line: the
explicit secrets (and their JSON-escaped forms), everything `pact_bot.logs` knows, and
token shapes (GitHub tokens, Anthropic keys, PEM private keys) even when nobody registered them.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pact_bot.logs import redact as logs_redact

REDACTED = "[redacted]"
_TOKEN_SHAPES = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"
    r"|\bsk-ant-[A-Za-z0-9_\-]{8,}"
    r"|\bv1\.[0-9a-f]{40}\b",
    re.DOTALL,
)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for s in secrets:
            if s and len(s) >= 6:
                values.add(s)
                values.add(json.dumps(s)[1:-1])
                values.update(line for line in s.splitlines() if len(line.strip()) >= 16)
        self.secrets = sorted(values, key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self.secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return _TOKEN_SHAPES.sub(REDACTED, logs_redact(value))

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


class Transcript:
    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.redactor = Redactor(secrets)
        self._lock = threading.Lock()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    @classmethod
    def for_job(cls, data_dir: Path, job_id: str | int, secrets: Iterable[str] = ()) -> Transcript:
        return cls(transcript_path(data_dir, job_id), secrets)

    def write(self, kind: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "kind": kind, **self.redactor.value(fields)}
        line = self.redactor.text(json.dumps(record, ensure_ascii=False, default=_default))
        with self._lock, open(_private(self.path), "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _private(path: Path) -> int:
    """An append descriptor, creating the file 0600: transcripts hold the job's code."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def transcript_path(data_dir: Path, job_id: str | int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(job_id))
    return data_dir / "transcripts" / f"{safe}.jsonl"


def read_transcript(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"kind": "unreadable", "line": line[:200]})
    return out


def render_transcript(path: Path, max_block_chars: int = 4000) -> str:
    """A readable conversation: who said what, which tools ran and what they answered."""
    if not path.exists():
        return f"No transcript at {path}."
    lines: list[str] = []
    for rec in read_transcript(path):
        kind = rec.get("kind")
        stamp = time.strftime("%H:%M:%S", time.gmtime(rec.get("ts", 0)))
        if kind == "start":
            lines.append(f"[{stamp}] start  model={rec.get('model')}  tools={rec.get('tools')}")
            budget = rec.get("budget")
            if budget:
                lines.append(f"           budget {budget}")
        elif kind == "request":
            for msg in rec.get("messages", []):
                lines += _render_message(msg, max_block_chars)
        elif kind == "response":
            usage = rec.get("usage") or {}
            lines.append(
                f"[{stamp}] turn {rec.get('turn')}: assistant  stop={rec.get('stop_reason')}  "
                f"in={usage.get('input_tokens', 0)} cache_read={usage.get('cache_read_tokens', 0)}"
                f" cache_write={usage.get('cache_write_tokens', 0)} "
                f"out={usage.get('output_tokens', 0)}  ${rec.get('cost_usd', 0):.4f} "
                f"(total ${rec.get('total_cost_usd', 0):.4f})"
            )
            lines += _render_blocks(rec.get("content", []), max_block_chars)
        elif kind == "tool_results":
            continue  # shown as the next request's user message
        elif kind == "stop":
            lines.append(
                f"[{stamp}] stop: {rec.get('stop')}  turns={rec.get('turns')}  "
                f"cost=${rec.get('cost_usd', 0):.4f}  {rec.get('duration_s', 0):.1f}s"
                + (
                    f"  cache_read_share={rec['cache_read_share']:.0%}"
                    if isinstance(rec.get("cache_read_share"), (int, float))
                    else ""
                )
                + (f"  error: {rec['error']}" if rec.get("error") else "")
            )
        else:
            detail = {k: v for k, v in rec.items() if k not in ("ts", "kind")}
            lines.append(f"[{stamp}] {kind}: {json.dumps(detail, ensure_ascii=False)[:500]}")
    return "\n".join(lines) + "\n"


def _render_message(msg: dict[str, Any], limit: int) -> list[str]:
    role = msg.get("role", "?")
    content = msg.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    return [f"--- {role}", *_render_blocks(blocks, limit)]


def _render_blocks(blocks: list[Any], limit: int) -> list[str]:
    out = []
    for b in blocks:
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "text":
            out.append(_indent(_clip(b.get("text", ""), limit)))
        elif t == "thinking":
            out.append(_indent("(thinking) " + _clip(b.get("thinking", ""), limit)))
        elif t == "redacted_thinking":
            out.append("    (redacted thinking)")
        elif t == "tool_use":
            args = json.dumps(b.get("input", {}), ensure_ascii=False)
            out.append(f"    → {b.get('name')} {_clip(args, limit)}")
        elif t == "tool_result":
            content = b.get("content")
            if isinstance(content, list):
                content = "\n".join(c.get("text", "") for c in content if isinstance(c, dict))
            mark = "✗" if b.get("is_error") else "←"
            out.append(_indent(f"{mark} {_clip(str(content or ''), limit)}"))
        else:
            out.append(f"    ({t})")
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines() or [""])


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True)
    if hasattr(obj, "__dict__"):
        return vars(obj)
    return str(obj)
