"""Running the agent for a job: its definition, tools and sandbox, setup before it, the passes
(`agent_passes.py`: asking once more for a missing summary or traceability rows), the tests
after it, and which failure a finished run maps to. Shared by the job kinds that run the agent
(code, revise, test, a rebase's merge) and local mode. Setup and the test run themselves:
`toolchain_run.py`.

The agent package is imported when the agent runs, not with this module: importing it
loads the anthropic SDK (~2 s on a busy machine), which `load_agent_soon` does in a
thread while a job's first GitHub and git steps run.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pact_bot.agent.definition import AGENT_NAME, TEST_AGENT_NAME, load_definition, system_prompt
from pact_bot.pipeline import trace
from pact_bot.pipeline.agent_passes import (
    AgentPasses,
    AgentRequest,
    is_budget,
    may_ask_again,
    run_error,
)
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.post_run import CheckResult
from pact_bot.pipeline.prompts import SUMMARY_REMINDER
from pact_bot.pipeline.report import Failure, JobProgress, Phase, RunStats
from pact_bot.pipeline.steps import JobFailed, ProgressTracker, Work, config_or_fail
from pact_bot.pipeline.toolchain_run import (
    ToolchainReport,
    agent_note,
    close_sandbox,
    open_sandbox,
    proposal_line,
    record_setup,
    run_setup,
    run_tests,
    setup_failure,
    test_command,
    undo_setup,
)
from pact_bot.repo_config import Effective
from pact_bot.specs import summary_path
from pact_bot.traceability import Coverage, SpecRequirements

if TYPE_CHECKING:
    from pact_bot.jobsandbox import JobSandbox

log = logging.getLogger(__name__)

SETUP_FAILED = "setup_failed"  # Implementation.stop when a setup command failed


@dataclass
class Implementation:
    stop: str
    stats: RunStats
    final_text: str
    checks: CheckResult
    paths: list[str]
    deleted: list[str]
    diff: str
    error: str | None = None
    asked_again: bool = False
    budget_detail: str = ""
    model: str = ""
    setup_notes: list[str] = field(default_factory=list)
    toolchain: ToolchainReport = field(default_factory=ToolchainReport)
    coverage: Coverage | None = None  # the traceability table, checked (trace.py)
    trace_asked: bool = False  # the agent was asked once more for missing rows
    messages: list[dict[str, Any]] = field(default_factory=list)  # the last run's conversation

    @property
    def over_budget(self) -> bool:
        return is_budget(self.stop)

    @property
    def cancelled(self) -> bool:
        return self.stop == "cancelled"


async def implement(req: AgentRequest) -> Implementation:
    """Run the agent under the job's budgets, then the checks (asking once for a missing
    summary, then once for missing traceability rows, within what is left of the budget),
    then the repository's tests. The job's agent is `req.definition`, the one on the default
    branch (`trusted.agent_definition`); the Test phase's is `pipeline/test_job.py`'s.

    Every sandboxed command (setup, the agent's bash, the test run) shares the job's
    sandbox (`pact_bot.jobsandbox`): one home, the repository's caches, the allowlist."""
    # Here rather than at the top: see the module docstring (start-up cost of the SDK).
    from pact_bot import test_phase
    from pact_bot.agent.tools import build_tools

    runtime, worktree, effective = req.runtime, req.worktree, req.effective
    name = TEST_AGENT_NAME if req.test_engineer else AGENT_NAME
    definition = req.definition or load_definition(
        worktree, None if req.test_engineer else effective.agent, name=name
    )
    model = runtime.settings.resolve_model(req.model or definition.model)
    tools = build_tools(worktree, effective.sandbox, settings=runtime.settings)
    bash = tools.bash is not None
    if req.test_engineer:
        system = test_phase.system_prompt(definition, bash_available=bash)
    else:
        system = system_prompt(definition, component=req.component, bash_available=bash)
    files = await asyncio.to_thread(runtime.workspace.tracked_files, worktree)
    command, configured = test_command(effective, files)
    toolchain = ToolchainReport(command, configured)
    box: JobSandbox | None = None
    if tools.bash is not None:
        # Local mode has no job id or repository name: a run id, and the checkout's name.
        box_id = req.job_id or f"local-{uuid.uuid4().hex[:8]}"
        box = await open_sandbox(
            runtime.settings, box_id, req.repo or f"local/{worktree.name}", effective
        )
        tools.bash.env = box.agent_env
    try:
        passes = AgentPasses(request=req, model=model, system=system, tools=tools)
        impl = await _implement(passes, box, toolchain)
    finally:
        if box is not None:
            toolchain.refused = await close_sandbox(
                box, runtime.settings, req.transcript, runtime.workspace
            )
    return impl


async def _implement(
    passes: AgentPasses, box: JobSandbox | None, toolchain: ToolchainReport
) -> Implementation:
    """Setup, the agent's passes, and the tests when the work may ship."""
    req, tools = passes.request, passes.tools
    runtime, worktree, effective, traced = req.runtime, req.worktree, req.effective, req.traced
    user_message = req.user_message
    setup_timeout = runtime.settings.pact_setup_minutes * 60
    result_of_setup, passes.setup_paths = await run_setup(
        worktree, effective.setup, tools, box=box, timeout=setup_timeout
    )
    record_setup(req.transcript, result_of_setup)
    failed_step = result_of_setup.failed
    if failed_step is not None:  # the agent does not start on a half-made toolchain
        await undo_setup(worktree, passes.setup_paths, tools)
        stats = RunStats(stop=SETUP_FAILED)
        return _unfinished(SETUP_FAILED, stats, setup_failure(failed_step), passes, toolchain, [])
    notes = result_of_setup.notes()
    if effective.setup and tools.bash is None:
        notes = ["The repository's setup commands were not run: there is no sandbox here."]
    if tools.bash is not None:
        notes.append(agent_note(toolchain.test_command))
    if notes:
        user_message += "\n\n<setup>\n" + "\n".join(notes) + "\n</setup>"

    result = await passes.run(user_message)
    if tools.halt is not None:  # staging an oversized worktree would copy it into git
        stats = passes.stats()
        return _unfinished(str(result.stop), stats, tools.halt, passes, toolchain, notes)
    seen = await passes.inspect()
    asked = seen.checks.problems == (Failure.no_summary,) and may_ask_again(result)
    if asked:
        result = await passes.run(SUMMARY_REMINDER.format(path=summary_path(req.component)))
        seen = await passes.inspect()
    # --- traceability (pipeline/trace.py): one follow-up for missing rows
    coverage = None
    trace_asked = False
    if traced and seen.checks.ok and not run_error(result):
        coverage = passes.coverage(seen)
        again = trace.followup(coverage, traced)
        if again and may_ask_again(result):
            trace_asked = True
            result = await passes.run(again)
            seen = await passes.inspect()
            coverage = passes.coverage(seen)
    stop = str(result.stop)
    stats = passes.stats()
    impl = Implementation(
        stop=stop,
        stats=stats,
        final_text=result.final_text or "",
        checks=seen.checks,
        paths=seen.changes.paths,
        deleted=seen.deleted,
        diff=seen.changes.diff,
        error=run_error(result),
        asked_again=asked,
        budget_detail=_budget_detail(stop, stats, effective),
        model=passes.model,
        setup_notes=notes,
        coverage=coverage,
        trace_asked=trace_asked,
        toolchain=toolchain,
        messages=list(result.messages),
    )
    tested = box is not None and tools.bash is not None and toolchain.test_command
    if tested and impl.paths and failure_of(impl) is None:  # only work that may ship
        await run_tests(runtime.settings, box, tools, toolchain, req.transcript)
    return impl


def _unfinished(
    stop: str,
    stats: RunStats,
    error: str,
    passes: AgentPasses,
    toolchain: ToolchainReport,
    notes: list[str],
) -> Implementation:
    """A run that stopped before its work could be looked at: nothing to check or ship."""
    return Implementation(
        stop=stop,
        stats=stats,
        final_text="",
        checks=CheckResult(),
        paths=[],
        deleted=[],
        diff="",
        error=error,
        model=passes.model,
        setup_notes=notes,
        toolchain=toolchain,
    )


def _budget_detail(stop: str, stats: RunStats, eff: Effective) -> str:
    if stop == "budget_turns":
        return f"{eff.max_turns} turns"
    if stop == "budget_cost":
        return f"${eff.max_cost_usd:.2f}; spent ${stats.cost_usd:.2f}"
    if stop == "budget_time":
        return f"{eff.max_minutes:g} minutes"
    return stop


def failure_of(impl: Implementation) -> tuple[Failure, str, list[str]] | None:
    """The failure to report for a finished implementation, or None when it may ship."""
    if impl.stop == SETUP_FAILED:
        return Failure.setup_failed, impl.error or "", []
    if impl.cancelled:
        return Failure.cancelled, "", []
    if impl.stop == "context_window":
        return Failure.context_window, impl.error or "", []
    if impl.stop == "workspace_full":
        return Failure.workspace_full, impl.error or "", []
    if impl.error and not impl.paths:
        return Failure.model_error, impl.error, []
    if impl.over_budget:
        return Failure.budget, impl.budget_detail, []
    if impl.error:
        return Failure.model_error, impl.error, []
    first = impl.checks.first
    if first is None:
        return None
    if first is Failure.no_change:
        return first, impl.final_text, []
    return first, "", list(impl.checks.protected or impl.checks.links)


async def run_job_agent(
    ctx: JobContext[Any],
    work: Work,
    token: str,
    message: str,
    component: str,
    specs: tuple[str, ...],
    existing_summaries: list[str],
    traced: Sequence[SpecRequirements] = (),
    *,
    test_engineer: bool = False,
) -> Implementation:
    """The agent in the job's worktree under the budgets of the configuration the job read,
    reporting in its progress comment, stopped by its cancel flag."""
    job = ctx.job
    tracker, wt = work.held()
    cfg = await config_or_fail(ctx)
    eff = cfg.effective(ctx.rt.settings)
    await tracker.show(JobProgress(job.id, Phase.implementing, specs=specs))

    async def on_progress(turn: int, cost: float, tool: str | None) -> None:
        await tracker.show(
            JobProgress(
                job.id, Phase.implementing, specs=specs, turn=turn, cost_usd=cost, tool=tool
            )
        )
        await ctx.control.progress(turns=turn, cost_usd=round(cost, 6))

    from pact_bot.agent.cost import UnknownModelPrice  # (start-up cost: module docstring)
    from pact_bot.agent.provider import resolved_secrets
    from pact_bot.agent.transcript import Transcript
    from pact_bot.pipeline import trusted

    # boundary: the cloud credentials the client resolves (in no setting) are secrets too
    ctx.rt.model  # noqa: B018 (resolves them, or raises MissingModelKey as the run would)
    secrets = [*ctx.rt.settings.secrets(), *resolved_secrets(), token]
    files = await asyncio.to_thread(ctx.rt.workspace.tracked_files, wt)
    tracker.note = proposal_line(eff, files)
    try:
        # boundary: the agent as on the default branch, never as the PR branch has it
        default_branch = (await ctx.info()).default_branch
        if test_engineer:  # the Test phase's agent, from the default branch as well
            definition = await trusted.agent_definition(
                wt, default_branch, None, name=TEST_AGENT_NAME
            )
        else:
            definition = await trusted.agent_definition(wt, default_branch, eff.agent)
        impl = await implement(
            AgentRequest(
                runtime=ctx.rt,
                worktree=wt,
                user_message=message,
                model=cfg.model or "",
                effective=eff,
                transcript=Transcript.for_job(
                    ctx.rt.settings.pact_data_dir, job.id, secrets=secrets
                ),
                component=component,
                on_progress=on_progress,
                should_cancel=ctx.control.cancelled,
                secrets=secrets,
                existing_summaries=existing_summaries,
                definition=definition,
                job_id=job.id,
                repo=job.repo,
                traced=traced,
                test_engineer=test_engineer,
            )
        )
    except UnknownModelPrice as e:
        raise JobFailed(Failure.model_error, str(e)) from None
    tracker.state = JobProgress(job.id, Phase.checking, specs=specs, stats=impl.stats)
    await ctx.control.progress(turns=impl.stats.turns, cost_usd=round(impl.stats.cost_usd, 6))
    return impl


async def stop_on_failure(
    ctx: JobContext[Any], tracker: ProgressTracker, impl: Implementation, *, no_change_ok: bool
) -> None:
    """After the run: its failure stops the job (a run that changed nothing need not, where
    the job still answers), else the comment shows the checks and a cancel stops the job."""
    failed = failure_of(impl)
    if failed is not None and not (no_change_ok and failed[0] is Failure.no_change):
        raise JobFailed(*failed)
    await tracker.show(tracker.state)  # `run_job_agent` left it at "checking"
    if await ctx.control.cancelled():
        raise JobFailed(Failure.cancelled)


def load_agent_soon() -> asyncio.Future[None]:
    """Import the agent (the anthropic SDK: ~2 s on a busy machine) in a thread while the
    job talks to GitHub and git clones; else the first job of a process waits for it.
    Import errors are left to the real import."""

    def load() -> None:
        try:
            import pact_bot.agent.loop  # noqa: F401
        except Exception:
            log.debug("early agent import failed", exc_info=True)

    if "pact_bot.agent.loop" in sys.modules:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
    return asyncio.ensure_future(asyncio.to_thread(load))
