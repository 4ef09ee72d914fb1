"""A scripted model that must read many large modules: for context-window tests and benches.

`ModuleReaderPolicy(modules, notes_path)` plays a coder whose task is to read every module
(absolute `/workspace/...` paths) with the text editor's `view` and then write `notes_path`
listing each module's checksum (the `CHECKSUM = "..."` line `module_source` puts at the end
of each module), so the answer is only right if every module was really read.

Like a real model, it knows only what its context holds (the server keeps no state):
- a checksum it saw in a view result is written down in its next turn's text
  (`Noted <path>: <checksum>`), so assistant text keeps what cleared tool results lose;
- a view clipped by the editor (`<response clipped>` with `lines a-b of n`) is continued
  with `view_range` [b+1, n];
- asked for a summary (a user text holding `Summarise the conversation so far`, the phrase
  pact-bot's compaction and the bench's peer use), it answers with its notes, the files it
  wrote and what remains; after compaction it reads them back from the first user message;
- `writes` ({path: text}) are created one per turn after the reading, before the notes (the
  short bench task: read a spec, write a module, write the summary);
- with `recheck=True`, once it sees that the first module's result was cleared, it views
  that module again and adds `recheck <path>: <checksum>` (from the new result) to the notes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .anthropic import Turn, text, tool_use

SUMMARY_ASK = "Summarise the conversation so far"
EDITOR = "str_replace_based_edit_tool"
_CHECKSUM = re.compile(r'CHECKSUM = "([0-9a-f]+)"')
_NOTED = re.compile(r"Noted (/\S+): ([0-9a-f]+)")
_WRITTEN = re.compile(r"Written: (/\S+)")
_RECHECKED = re.compile(r"recheck (/\S+): ([0-9a-f]+)")
_CLIPPED = re.compile(r"lines (\d+)-(\d+) of (\d+)")
_CLEARED = "[cleared to save context:"


def checksum(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:12]


def module_source(path: str, chars: int, width: int = 60) -> str:
    """Python-looking text of about `chars` characters whose last line is the checksum of
    `path` (the `/workspace/...` path the model views it by)."""
    lines = []
    n = 0
    size = 0
    while size < chars:
        body = f"def helper_{n}(value: int) -> int:  # "
        line = (body + "x" * width)[: width - 1]
        lines.append(line)
        size += len(line) + 1
        n += 1
    lines.append(f'CHECKSUM = "{checksum(path)}"')
    return "\n".join(lines) + "\n"


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _result_text(block: dict[str, Any]) -> str:
    body = block.get("content", "")
    if isinstance(body, str):
        return body
    return "\n".join(b.get("text", "") for b in _blocks(body) if b.get("type") == "text")


class ModuleReaderPolicy:
    def __init__(
        self,
        modules: Sequence[str],
        notes_path: str,
        *,
        recheck: bool = False,
        writes: Mapping[str, str] | None = None,
    ) -> None:
        self.modules = list(modules)
        self.notes_path = notes_path
        self.recheck = recheck
        self.writes = dict(writes or {})

    def __call__(self, request: dict[str, Any]) -> Turn:
        messages = request.get("messages") or []
        texts: list[str] = []  # everything the model "remembers" in words
        uses: dict[str, dict[str, Any]] = {}
        results: list[tuple[dict[str, Any], str]] = []  # (tool input, result text) in order
        for m in messages:
            for b in _blocks(m.get("content")):
                if b.get("type") == "text":
                    texts.append(b["text"])
                elif b.get("type") == "tool_use":
                    uses[b["id"]] = b.get("input") or {}
                elif b.get("type") == "tool_result":
                    results.append((uses.get(b.get("tool_use_id"), {}), _result_text(b)))
        words = "\n".join(texts)
        noted = dict(_NOTED.findall(words))
        rechecked = dict(_RECHECKED.findall(words))
        written = set(_WRITTEN.findall(words))
        for m in messages:
            for b in _blocks(m.get("content")):
                if (
                    b.get("type") == "tool_use"
                    and (b.get("input") or {}).get("command") == "create"
                ):
                    written.add(str(b["input"].get("path")))
        last_texts = [b.get("text", "") for b in _blocks(messages[-1].get("content"))]
        if any(SUMMARY_ASK in t for t in last_texts):
            return Turn([text(self._summary(noted, rechecked, written))])

        say: list[str] = []
        last_input, last_result = results[-1] if results else ({}, "")
        last_path = str(last_input.get("path", ""))
        if last_input.get("command") == "view" and last_path in self.modules:
            found = _CHECKSUM.search(last_result)
            if found:
                key = "recheck" if last_path in noted else "Noted"
                if key == "Noted" or last_path not in rechecked:
                    say.append(f"{key} {last_path}: {found.group(1)}")
                    (noted if key == "Noted" else rechecked)[last_path] = found.group(1)
            clipped = _CLIPPED.search(last_result) if "<response clipped>" in last_result else None
            if clipped and not found:
                _, end, total = (int(g) for g in clipped.groups())
                return self._view(say, last_path, [end + 1, total])
        for path in self.modules:
            if path not in noted:
                return self._view(say, path, None)
        first = self.modules[0]
        if (
            self.recheck
            and first not in rechecked
            and any(i.get("path") == first and r.startswith(_CLEARED) for i, r in results)
        ):
            return self._view(say, first, None)
        for path, body in self.writes.items():
            if path not in written:
                args = {"command": "create", "path": path, "file_text": body}
                return Turn([*([text("\n".join(say))] if say else []), tool_use(EDITOR, args)])
        if self.notes_path not in written:
            lines = [f"{p}: {noted[p]}" for p in self.modules]
            lines += [f"recheck {p}: {c}" for p, c in rechecked.items()]
            say.append(f"All {len(self.modules)} modules read; writing the notes.")
            return Turn(
                [
                    text("\n".join(say)),
                    tool_use(
                        EDITOR,
                        {
                            "command": "create",
                            "path": self.notes_path,
                            "file_text": "\n".join(lines) + "\n",
                        },
                    ),
                ]
            )
        say.append(f"Done: read {len(self.modules)} modules; the notes are in {self.notes_path}.")
        return Turn([text("\n".join(say))])

    def _view(self, say: list[str], path: str, view_range: list[int] | None) -> Turn:
        args: dict[str, Any] = {"command": "view", "path": path}
        if view_range is not None:
            args["view_range"] = view_range
        blocks = [text("\n".join(say))] if say else []
        return Turn([*blocks, tool_use(EDITOR, args)])

    def _summary(self, noted: dict[str, str], rechecked: dict[str, str], written: set[str]) -> str:
        lines = ["Task: read every module and write the checksum notes."]
        lines += [f"Noted {p}: {c}" for p, c in noted.items()]
        lines += [f"recheck {p}: {c}" for p, c in rechecked.items()]
        lines += [f"Written: {p}" for p in sorted(written)]
        remaining = [p for p in self.modules if p not in noted]
        lines.append(f"Remaining modules: {', '.join(remaining) or 'none'}")
        return "\n".join(lines)
