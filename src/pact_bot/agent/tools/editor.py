"""Anthropic's trained text editor (`text_editor_20250728`), confined to the worktree.

The model was trained on the reference implementation's wording, so results and errors
reproduce it (anthropic-quickstarts `computer_use_demo/tools/edit.py`): `cat -n` style views
with `%6d\\t` line numbers, a ±4 line snippet after edits, the same refusals, and the
`<response clipped>` note. Paths are shown as `/workspace/...`.

Views are larger than the reference's 16,000 characters: `max_characters` (sent in the tool
definition, so the model knows it) defaults to VIEW_MAX_CHARACTERS, so a module of a few
thousand lines is read in one turn rather than four, each of which re-reads the whole cached
prompt (measured in `bench/tokens.py`, docs/benchmarks.md). A clipped file view ends at a line
boundary and its note says which lines were shown and how to view the rest.

Two deliberate differences, both invisible in the text the model reads:
- `create` makes missing parent directories (the reference fails with an OS error).
- tabs survive edits when possible: `str_replace` first tries the verbatim match on the file
  as it is and only falls back to the reference's tab-expanded match (which rewrites the file
  with tabs expanded) when that finds nothing unique; `insert` never expands the file's tabs.
  Views always show tabs expanded, as the reference does. Makefiles stay valid.

There is no `undo_edit`: 20250728 has none.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pact_bot.agent.paths import PathError, display, resolve

NAME = "str_replace_based_edit_tool"
TYPE = "text_editor_20250728"
SNIPPET_LINES = 4
MAX_RESPONSE_LEN = 16000  # the reference's default, kept for `maybe_truncate` callers
VIEW_MAX_CHARACTERS = 100_000  # ~25-33k tokens: an eighth of a 200k window, Claude Code's Read cap
TRUNCATED_MESSAGE = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to you. "
    "You should retry this tool after you have searched inside the file with `grep -n` in order "
    "to find the line numbers of what you are looking for.</NOTE>"
)
COMMANDS = ("view", "create", "str_replace", "insert")


class ToolError(Exception):
    """A failed command; the message goes back to the model as an error result."""


def maybe_truncate(content: str, truncate_after: int | None = MAX_RESPONSE_LEN) -> str:
    if not truncate_after or len(content) <= truncate_after:
        return content
    return content[:truncate_after] + TRUNCATED_MESSAGE


class EditorTool:
    def __init__(self, worktree: Path, max_characters: int | None = None) -> None:
        self.worktree = worktree.resolve()
        self.max_characters = max_characters or VIEW_MAX_CHARACTERS
        self.touched: set[Path] = set()

    def definition(self) -> dict[str, Any]:
        return {"type": TYPE, "name": NAME, "max_characters": self.max_characters}

    def run(self, tool_input: dict[str, Any]) -> str:
        """Run one command; returns the result text or raises ToolError/PathError."""
        command = tool_input.get("command")
        raw_path = tool_input.get("path")
        if command not in COMMANDS:
            raise ToolError(
                f"Unrecognized command {command}. The allowed commands for the {NAME} tool "
                f"are: {', '.join(COMMANDS)}"
            )
        if not isinstance(raw_path, str) or not raw_path:
            raise ToolError(f"Parameter `path` is required for command: {command}")
        path = resolve(self.worktree, raw_path)
        shown = display(self.worktree, path)
        self._validate(command, path, shown)
        if command == "view":
            return self._view(path, shown, tool_input.get("view_range"))
        if command == "create":
            file_text = tool_input.get("file_text")
            if file_text is None:
                raise ToolError("Parameter `file_text` is required for command: create")
            self._write(path, shown, str(file_text), mkdir=True)
            return f"File created successfully at: {shown}"
        if command == "str_replace":
            old_str = tool_input.get("old_str")
            if old_str is None:
                raise ToolError("Parameter `old_str` is required for command: str_replace")
            return self._str_replace(path, shown, str(old_str), tool_input.get("new_str"))
        insert_line = tool_input.get("insert_line")
        if insert_line is None:
            raise ToolError("Parameter `insert_line` is required for command: insert")
        text = tool_input.get("insert_text", tool_input.get("new_str"))
        if text is None:
            raise ToolError("Parameter `insert_text` is required for command: insert")
        if not isinstance(insert_line, int) or isinstance(insert_line, bool):
            raise ToolError(f"Invalid `insert_line` parameter: {insert_line}. It should be an int.")
        return self._insert(path, shown, insert_line, str(text))

    def _validate(self, command: str, path: Path, shown: str) -> None:
        exists = path.exists()
        if not exists and command != "create":
            raise ToolError(f"The path {shown} does not exist. Please provide a valid path.")
        if exists and command == "create":
            raise ToolError(
                f"File already exists at: {shown}. Cannot overwrite files using command `create`."
            )
        if path.is_dir() and command != "view":
            raise ToolError(
                f"The path {shown} is a directory and only the `view` command can be used on "
                "directories"
            )

    def _limit(self) -> int:
        return self.max_characters

    def _view(self, path: Path, shown: str, view_range: Any) -> str:
        if path.is_dir():
            if view_range:
                raise ToolError(
                    "The `view_range` parameter is not allowed when `path` points to a directory."
                )
            listing = "".join(line + "\n" for line in self._tree(path, shown))
            return maybe_truncate(
                f"Here's the files and directories up to 2 levels deep in {shown}, "
                f"excluding hidden items:\n{listing}\n",
                self._limit(),
            )
        content = self._read(path, shown)
        init_line = 1
        total = content.count("\n") + 1
        if view_range:
            if (
                not isinstance(view_range, list)
                or len(view_range) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in view_range)
            ):
                raise ToolError("Invalid `view_range`. It should be a list of two integers.")
            lines = content.split("\n")
            n = len(lines)
            init_line, final_line = view_range
            if init_line < 1 or init_line > n:
                raise ToolError(
                    f"Invalid `view_range`: {view_range}. Its first element `{init_line}` should "
                    f"be within the range of lines of the file: {[1, n]}"
                )
            if final_line > n:
                raise ToolError(
                    f"Invalid `view_range`: {view_range}. Its second element `{final_line}` should "
                    f"be smaller than the number of lines in the file: `{n}`"
                )
            if final_line != -1 and final_line < init_line:
                raise ToolError(
                    f"Invalid `view_range`: {view_range}. Its second element `{final_line}` should "
                    f"be larger or equal than its first `{init_line}`"
                )
            end = None if final_line == -1 else final_line
            content = "\n".join(lines[init_line - 1 : end])
        return self._make_output(content, shown, init_line, total)

    def _tree(self, root: Path, shown: str) -> list[str]:
        """What `find PATH -maxdepth 2 -not -path '*/.*'` prints, sorted, as /workspace paths."""
        out = [shown]

        def children(d: Path) -> list[os.DirEntry[str]]:
            try:
                with os.scandir(d) as it:
                    return sorted((e for e in it if not e.name.startswith(".")), key=_name)
            except OSError:
                return []

        for entry in children(root):
            out.append(f"{shown.rstrip('/')}/{entry.name}")
            if entry.is_dir(follow_symlinks=False):
                out.extend(
                    f"{shown.rstrip('/')}/{entry.name}/{sub.name}"
                    for sub in children(Path(entry.path))
                )
        return out

    def _str_replace(self, path: Path, shown: str, old_str: str, new_str: Any) -> str:
        raw = self._read(path, shown)
        new = "" if new_str is None else str(new_str)
        if old_str and raw.count(old_str) == 1:
            content, old, new_text = raw, old_str, new
        else:
            content, old, new_text = raw.expandtabs(), old_str.expandtabs(), new.expandtabs()
        occurrences = content.count(old) if old else 0
        if occurrences == 0:
            raise ToolError(
                f"No replacement was performed, old_str `{old}` did not appear verbatim in {shown}."
            )
        if occurrences > 1:
            lines = [i + 1 for i, line in enumerate(content.split("\n")) if old in line]
            raise ToolError(
                f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines "
                f"{lines}. Please ensure it is unique"
            )
        new_content = content.replace(old, new_text)
        self._write(path, shown, new_content)
        replacement_line = content.split(old)[0].count("\n")
        start = max(0, replacement_line - SNIPPET_LINES)
        end = replacement_line + SNIPPET_LINES + new_text.count("\n")
        snippet = "\n".join(new_content.split("\n")[start : end + 1])
        return (
            f"The file {shown} has been edited. "
            + self._make_output(snippet, f"a snippet of {shown}", start + 1)
            + "Review the changes and make sure they are as expected. Edit the file again if "
            "necessary."
        )

    def _insert(self, path: Path, shown: str, insert_line: int, text: str) -> str:
        file_lines = self._read(path, shown).split("\n")
        n = len(file_lines)
        if insert_line < 0 or insert_line > n:
            raise ToolError(
                f"Invalid `insert_line` parameter: {insert_line}. It should be within the range "
                f"of lines of the file: {[0, n]}"
            )
        new_lines = text.split("\n")
        self._write(
            path, shown, "\n".join(file_lines[:insert_line] + new_lines + file_lines[insert_line:])
        )
        snippet = "\n".join(
            file_lines[max(0, insert_line - SNIPPET_LINES) : insert_line]
            + new_lines
            + file_lines[insert_line : insert_line + SNIPPET_LINES]
        )
        return (
            f"The file {shown} has been edited. "
            + self._make_output(
                snippet, "a snippet of the edited file", max(1, insert_line - SNIPPET_LINES + 1)
            )
            + "Review the changes and make sure they are as expected (correct indentation, no "
            "duplicate lines, etc). Edit the file again if necessary."
        )

    def _read(self, path: Path, shown: str) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except Exception as e:
            raise ToolError(f"Ran into {e} while trying to read {shown}") from None

    def _write(self, path: Path, shown: str, text: str, mkdir: bool = False) -> None:
        try:
            if mkdir:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except Exception as e:
            raise ToolError(f"Ran into {e} while trying to write to {shown}") from None
        self.touched.add(path)

    def _make_output(
        self, content: str, descriptor: str, init_line: int = 1, total: int | None = None
    ) -> str:
        limit = self._limit()
        note = ""
        lines = content.split("\n")
        if len(content) > limit and total is not None and len(lines[0]) < limit:
            kept, size = [], 0
            for line in lines:
                if size + len(line) + 1 > limit:
                    break
                kept.append(line)
                size += len(line) + 1
            last = init_line + len(kept) - 1
            following = [last + 1, min(total, last + len(kept))]
            content = "\n".join(kept)
            note = (
                "<response clipped><NOTE>To save on context only part of this file has been "
                f"shown to you: lines {init_line}-{last} of {total}. View the rest with "
                f"`view_range` (next: {following}), or search inside the file with `grep -n` to "
                "find the line numbers of what you are looking for.</NOTE>\n"
            )
        else:
            content = maybe_truncate(content, limit)
        numbered = "\n".join(
            f"{i + init_line:6}\t{line}" for i, line in enumerate(content.expandtabs().split("\n"))
        )
        return f"Here's the result of running `cat -n` on {descriptor}:\n{numbered}\n{note}"


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


__all__ = ["NAME", "TYPE", "EditorTool", "PathError", "ToolError"]
