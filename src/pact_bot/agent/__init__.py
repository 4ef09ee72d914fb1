"""The PACT backend-coder agent: definition, tools, loop, budgets, caching, transcript.

Public API (details in each module's docstring):

- `definition`: `load_definition(worktree, override_path=None) -> AgentDefinition`,
  `system_prompt(definition, operating_notes="", *, component, bash_available) -> str`,
  `parse_definition(text, source)`, `DefinitionError`.
- `tools`: `build_tools(worktree, sandbox, *, bash_timeout=120, bash_max_output=30000,
  max_characters=None) -> Tools` (`.definitions`, `await .run(name, input) -> ToolResult`,
  `.files_touched`, `.calls`); `tools.bash.sandbox_available() -> (bool, reason)`.
- `paths`: `resolve(worktree, path)`, `PathError`, `WORKSPACE = "/workspace"`.
- `cost`: `Usage`, `cost(usage, prices)`, `worst_case_cost(...)`, `model_prices(model, table)`,
  `UnknownModelPrice`, `estimate_request_tokens(...)`.
- `transcript`: `Transcript(path, secrets)`, `Transcript.for_job(data_dir, job_id, secrets)`,
  `render_transcript(path) -> str`.
- `loop`: `run_agent(...) -> RunResult`, `Budget`, `RetryPolicy`, `Progress`.
"""

from pact_bot.agent.cost import UnknownModelPrice, Usage
from pact_bot.agent.definition import AgentDefinition, load_definition, system_prompt
from pact_bot.agent.loop import Budget, Progress, RetryPolicy, RunResult, run_agent
from pact_bot.agent.tools import ToolCall, ToolResult, Tools, build_tools
from pact_bot.agent.transcript import Transcript, render_transcript

__all__ = [
    "AgentDefinition",
    "Budget",
    "Progress",
    "RetryPolicy",
    "RunResult",
    "ToolCall",
    "ToolResult",
    "Tools",
    "Transcript",
    "UnknownModelPrice",
    "Usage",
    "build_tools",
    "load_definition",
    "render_transcript",
    "run_agent",
    "system_prompt",
]
