"""The agent's tools behind one registry: definitions for the API, dispatch, and a record.

    tools = build_tools(worktree, sandbox=True)
    tools.definitions          # list of tool dicts for `messages.stream(tools=...)`
    result = await tools.run("str_replace_based_edit_tool", {...})  # ToolResult(content, is_error)
    tools.files_touched        # sorted repository-relative paths written by the agent
    tools.calls                # [ToolCall(name, summary, is_error)] for the check run

Every failure becomes an error result for the model (`is_error=True`), never an exception
out of `run`: a bad path or a failing command is information for the agent, not a crash.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pact_bot.agent.paths import PathError
from pact_bot.agent.tools import bash as bash_tool
from pact_bot.agent.tools import search
from pact_bot.agent.tools.bwrap import sandbox_available
from pact_bot.agent.tools.editor import EditorTool, ToolError
from pact_bot.workspace import WorkspaceError
from pact_bot.workspace.tree import changed_paths, nested_repos

log = logging.getLogger(__name__)

SUMMARY_CHARS = 120


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolCall:
    name: str
    summary: str
    is_error: bool = False


@dataclass
class Tools:
    worktree: Path
    editor: EditorTool
    bash: bash_tool.BashTool | None
    calls: list[ToolCall] = field(default_factory=list)
    _touched: set[str] = field(default_factory=set)
    # Nested repositories that were there before any command ran (a user's own, in local
    # mode): kept; any other is the agent's and removed before host git looks.
    nested_before: frozenset[str] = frozenset()

    @property
    def definitions(self) -> list[dict[str, Any]]:
        defs = [self.editor.definition(), search.GREP_DEFINITION, search.GLOB_DEFINITION]
        if self.bash is not None:
            defs.append(self.bash.definition())
        return defs

    @property
    def halt(self) -> str | None:
        """Why the job must stop now (a command grew the worktree past its cap), else None."""
        return self.bash.halt if self.bash is not None else None

    @property
    def names(self) -> list[str]:
        return [d["name"] for d in self.definitions]

    @property
    def files_touched(self) -> list[str]:
        root = self.worktree.resolve()
        touched = {p.relative_to(root).as_posix() for p in self.editor.touched}
        return sorted(touched | self._touched)

    async def run(self, name: str, tool_input: Any) -> ToolResult:
        if not isinstance(tool_input, dict):
            tool_input = {}
        summary = summarize(name, tool_input)
        try:
            result = await self._dispatch(name, tool_input)
        except (ToolError, PathError, search.SearchError) as e:
            result = ToolResult(str(e), True)
        except Exception as e:  # a tool bug must not end the run; the model gets the error
            log.exception("tool %s failed", name)
            result = ToolResult(f"Tool {name} failed: {type(e).__name__}: {e}", True)
        self.calls.append(ToolCall(name, summary, result.is_error))
        return result

    async def _dispatch(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        if name == self.editor.definition()["name"]:
            return ToolResult(await asyncio.to_thread(self.editor.run, tool_input))
        if name == "grep":
            return ToolResult(await asyncio.to_thread(search.grep, self.worktree, tool_input))
        if name == "glob":
            return ToolResult(await asyncio.to_thread(search.glob, self.worktree, tool_input))
        if name == "bash" and self.bash is not None:
            text, is_error = await self.bash.run(tool_input)
            self._touched |= await asyncio.to_thread(
                _changed_files, self.worktree, self.nested_before
            )
            return ToolResult(text, is_error)
        return ToolResult(f"Unknown tool {name}. Available tools: {', '.join(self.names)}.", True)


def build_tools(
    worktree: Path,
    sandbox: bool,
    *,
    bash_timeout: float = bash_tool.DEFAULT_TIMEOUT,
    bash_max_output: int = bash_tool.MAX_OUTPUT,
    max_characters: int | None = None,
    settings: Any = None,
) -> Tools:
    """Editor, grep and glob always; bash only when asked for and bubblewrap works.

    `settings` supplies the sandbox's limits, disk cap and extra binds (defaults without)."""
    bash = None
    if sandbox:
        ok, reason = sandbox_available()
        if ok:
            bash = bash_tool.BashTool(
                worktree,
                timeout=bash_timeout,
                max_output=bash_max_output,
                **bash_tool.options_from_settings(settings),
            )
        else:
            log.warning("bash tool not offered: %s", reason, extra={"reason": reason})
    return Tools(
        worktree=worktree,
        editor=EditorTool(worktree, max_characters),
        bash=bash,
        nested_before=nested_repos(worktree),
    )


def summarize(name: str, tool_input: dict[str, Any]) -> str:
    """One short line per call, e.g. `str_replace /workspace/app.py` or `bash: pytest -q`."""
    if name == "bash":
        text = "restart" if tool_input.get("restart") else str(tool_input.get("command", ""))
        text = f"bash: {' '.join(text.split())}"
    elif name in ("grep", "glob"):
        text = f"{name} {tool_input.get('pattern', '')!s}"
        if tool_input.get("path"):
            text += f" in {tool_input['path']}"
    elif "command" in tool_input:
        text = f"{tool_input.get('command')} {tool_input.get('path', '')}"
    else:
        text = name
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _changed_files(worktree: Path, keep: frozenset[str] = frozenset()) -> set[str]:
    """Files a bash command may have written, from git's point of view (host side).

    Nested repositories the command planted are removed first, and git runs hardened
    (`pact_bot.workspace.tree`): nothing the agent wrote is executed on the host."""
    try:
        return changed_paths(worktree, keep=keep)
    except (WorkspaceError, OSError):
        log.warning("git status failed after a bash call", exc_info=True)
        return set()


__all__ = ["ToolCall", "ToolResult", "Tools", "build_tools", "summarize"]
