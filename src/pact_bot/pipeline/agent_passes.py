"""One job's passes of the agent over a prepared worktree: the first run, then at most one
more for a missing summary and one for missing traceability rows. Every pass continues the
same conversation within what the earlier ones left of the job's budgets, and the worktree
is checked after each (`post_run.run_checks`).

The agent package is imported when a pass runs, not with this module (see `agent_run`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pact_bot.pipeline import trace
from pact_bot.pipeline.post_run import CheckResult, run_checks
from pact_bot.pipeline.report import RunStats
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.toolchain_run import undo_setup
from pact_bot.repo_config import Effective
from pact_bot.traceability import Coverage, SpecRequirements
from pact_bot.workspace import Changes
from pact_bot.workspace.links import staged_links

if TYPE_CHECKING:
    from pact_bot.agent.budget import Progress, RunResult
    from pact_bot.agent.definition import AgentDefinition
    from pact_bot.agent.tools import Tools
    from pact_bot.agent.transcript import Transcript

ProgressFn = Callable[[int, float, str | None], Awaitable[None]]


@dataclass
class Inspection:
    """What the agent left in the worktree (setup leftovers put back), and the checks on it."""

    changes: Changes
    deleted: list[str]
    checks: CheckResult


@dataclass(frozen=True, kw_only=True)
class AgentRequest:
    """What a job asks of the agent, declared once: `agent_run.implement` takes it and its
    passes read it. `model` "" means the definition's; `definition` None, the worktree's
    (local mode); `test_engineer`, the Test phase's agent instead of the coder."""

    runtime: Runtime
    worktree: Path
    user_message: str
    model: str
    effective: Effective
    transcript: Transcript
    component: str
    on_progress: ProgressFn
    should_cancel: Callable[[], Awaitable[bool]]
    secrets: Sequence[str]
    existing_summaries: Sequence[str] = ()
    definition: AgentDefinition | None = None
    job_id: str = ""
    repo: str = ""
    traced: Sequence[SpecRequirements] = ()
    test_engineer: bool = False


@dataclass
class AgentPasses:
    request: AgentRequest
    model: str  # resolved: the request's, else the definition's
    system: Any
    tools: Tools
    started: float = field(default_factory=time.monotonic)  # setup's time counts as well
    setup_paths: set[str] = field(default_factory=set)  # put back after every pass
    results: list[RunResult] = field(default_factory=list)

    def stats(self) -> RunStats:
        """What the passes cost together, for the job's record and the PR."""
        results = self.results
        calls: Counter[str] = Counter(c.name for c in self.tools.calls)
        return RunStats(
            turns=sum(r.turns for r in results),
            cost_usd=sum(float(r.cost_usd) for r in results),
            input_tokens=sum(r.usage.input_tokens for r in results),
            output_tokens=sum(r.usage.output_tokens for r in results),
            cache_read_tokens=sum(r.usage.cache_read_tokens for r in results),
            cache_write_tokens=sum(r.usage.cache_write_tokens for r in results),
            duration_s=sum(float(r.duration_s) for r in results),
            stop=str(results[-1].stop),
            tool_calls=dict(calls),
            files_touched=tuple(self.tools.files_touched),
        )

    @property
    def turns(self) -> int:
        return sum(r.turns for r in self.results)

    @property
    def spent(self) -> float:
        return sum(float(r.cost_usd) for r in self.results)

    async def run(self, message: str) -> RunResult:
        """One pass: the first with `message` as the task, later ones continuing the last
        pass's conversation, within what the passes before left of the budgets."""
        from pact_bot.agent.budget import Budget
        from pact_bot.agent.loop import run_agent

        req = self.request
        eff = req.effective
        turns_used, cost_used = self.turns, self.spent
        budget = Budget(
            max_turns=max(eff.max_turns - turns_used, 1),
            max_cost_usd=max(eff.max_cost_usd - cost_used, 0.0),
            max_seconds=max(eff.max_minutes * 60 - (time.monotonic() - self.started), 1.0),
        )

        async def progress(p: Progress) -> None:
            await req.on_progress(turns_used + p.turn, cost_used + p.cost_usd, p.tool)

        result = await run_agent(
            client=req.runtime.model,
            model=self.model,
            system=self.system,
            user_message=message,
            tools=self.tools,
            budget=budget,
            prices=req.runtime.settings.prices,
            transcript=req.transcript,
            on_progress=progress,
            should_cancel=req.should_cancel,
            messages=self.results[-1].messages if self.results else None,
            retry=req.runtime.agent_retry,
        )
        self.results.append(result)
        return result

    async def inspect(self) -> Inspection:
        """What the agent left (setup leftovers put back), and the checks on it."""
        req = self.request
        await undo_setup(req.worktree, self.setup_paths, self.tools)
        changes = await req.runtime.workspace.changes(req.worktree)
        deleted = [f.path for f in changes.files if f.status == "D"]
        checks = run_checks(
            changes.paths,
            changes.diff,
            protected=req.effective.protected_paths,
            secrets=req.secrets,
            deleted=deleted,
            existing_summaries=req.existing_summaries,
            links=await staged_links(req.worktree),  # boundary: no link out, no linked summary
        )
        return Inspection(changes, deleted, checks)

    def coverage(self, seen: Inspection) -> Coverage | None:
        """The traceability table as the worktree now has it (`trace.py`)."""
        req = self.request
        files = req.runtime.workspace.tracked_files(req.worktree)
        return trace.coverage_of(req.worktree, req.traced, seen.changes.paths, files, seen.deleted)


def is_budget(stop: str) -> bool:
    return stop.startswith("budget")


def run_error(result: RunResult) -> str | None:
    """The error a finished pass reports, if it failed."""
    if result.error:
        return str(result.error)
    if result.stop in ("error", "max_tokens"):
        return result.describe()
    return None


def may_ask_again(result: RunResult) -> bool:
    """A follow-up pass is worth its turns only after a pass that ended on its own."""
    stop = str(result.stop)
    return not is_budget(stop) and stop != "cancelled" and not run_error(result)
