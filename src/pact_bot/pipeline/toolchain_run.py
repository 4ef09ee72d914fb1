"""The repository's own toolchain around the agent: the job's sandbox, setup before the agent,
the bot's own test run after it, and what they said (for the agent, the job's record and
the pull request).

Setup comes from the default branch's `.github/pact.yml` only (`JobContext.config`): a pull
request's branch is written by the agent or by anyone who can push, and must not choose what
runs with the network. A failed setup stops the job before the agent spends anything; a
failed test run does not hide the pull request, it is said plainly on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pact_bot import caches, housekeeping, netproxy, toolchain
from pact_bot.jobsandbox import JobSandbox, SetupResult, SetupStep, run_steps
from pact_bot.repo_config import Effective
from pact_bot.settings import Settings
from pact_bot.toolchain import SuiteRun
from pact_bot.workspace.tree import changed_paths, restore

if TYPE_CHECKING:
    from pact_bot.agent.tools import Tools
    from pact_bot.agent.transcript import Transcript
    from pact_bot.workspace import Workspace

log = logging.getLogger(__name__)

GIB = 1024**3
REFUSED_LISTED = 10  # refused host:port pairs named in a PR body or check run
HOST_CHARS = 100  # of one refused host named (the agent may ask for any name)
TAIL_CHARS = 4_000  # of a failed test run's output quoted in the PR body and check run
DEFAULT_SETUP_SECONDS = 600.0


@dataclass
class ToolchainReport:
    """What the job's toolchain did, carried from the agent run to the PR and check run."""

    test_command: str | None = None
    configured: bool = False  # the test command came from `.github/pact.yml`
    suite: SuiteRun | None = None
    refused: list[str] = field(default_factory=list)

    @property
    def conclusion(self) -> str:
        """The check run's conclusion: failing tests are a failure; a detected command that
        could not run at all (no setup, say) is neutral, a configured one a failure."""
        if self.suite is None or self.suite.outcome == "passed":
            return "success"
        if self.suite.outcome == "errored" and not self.configured:
            return "neutral"
        return "failure"

    def line(self) -> str:
        """One line for the PR body and handoff comment; empty when there is nothing to say."""
        parts = []
        if self.suite is not None:
            verdict = "✅" if self.suite.outcome == "passed" else "❌"
            parts.append(f"{verdict} Tests (`{_inline(self.suite.command)}`): {self.suite.line()}")
        if self.refused:
            parts.append("The sandbox refused: " + refused_text(self.refused))
        return "\n\n".join(parts)

    def markdown(self) -> str:
        """The PR body's / check run's section: the verdict, and the output's tail when the
        tests did not pass."""
        text = self.line()
        if self.suite is not None and self.suite.outcome != "passed":
            text += "\n\n" + fenced(self.suite.tail[-TAIL_CHARS:])
        return text


def refused_text(refused: list[str]) -> str:
    shown = ", ".join(f"`{_inline(h)[:HOST_CHARS]}`" for h in refused[:REFUSED_LISTED])
    more = len(refused) - REFUSED_LISTED
    return (
        shown
        + (f" and {more} more" if more > 0 else "")
        + (" (add them to `sandbox.network.allow` in `.github/pact.yml` if they are needed)")
    )


def fenced(text: str) -> str:
    """A code block no backtick run in `text` can close early."""
    ticks = "`" * max(3, _longest_backticks(text) + 1)
    return f"{ticks}\n{text}\n{ticks}"


def _longest_backticks(text: str) -> int:
    best = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    return best


def _inline(text: str) -> str:
    return " ".join(text.replace("`", "'").split())


async def open_sandbox(settings: Settings, job_id: str, repo: str, eff: Effective) -> JobSandbox:
    """The job's sandbox: the host's own package indexes, the server's `PACT_SANDBOX_ALLOW`
    and the repository's `sandbox.network.allow` (already merged in `eff.network_allow`)."""
    allow = [*netproxy.host_package_indexes(), *eff.network_allow]
    return await JobSandbox.open(
        Path(settings.pact_data_dir), job_id, repo, allow, agent_network=eff.agent_network
    )


async def close_sandbox(
    box: JobSandbox, settings: Settings, transcript: Transcript, workspace: Workspace | None
) -> list[str]:
    """Close the sandbox, record what it refused, and keep the caches and the data dir
    within their caps (never what a running job holds). Returns the refused `host:port`s."""
    refused = box.refused
    if refused:
        transcript.write("sandbox_refused", hosts=refused)
    await box.close()
    data_dir = Path(settings.pact_data_dir)
    try:
        removed = caches.evict(
            data_dir, int(settings.pact_cache_max_gb * GIB), keep=caches.in_use(data_dir)
        )
        if removed:
            log.info("evicted package caches", extra={"caches": [str(p) for p in removed]})
    except OSError:
        log.warning("cache eviction failed", exc_info=True)
    await housekeeping.tidy(settings, workspace=workspace)
    return refused


def test_command(eff: Effective, files: list[str]) -> tuple[str | None, bool]:
    """(command, configured): `test_command` from `.github/pact.yml`, else detected."""
    if eff.test_command:
        return eff.test_command, True
    return toolchain.detect(files).test_command, False


def proposal_line(eff: Effective, files: list[str]) -> str | None:
    """One line for the progress comment when the repository configured no setup and its
    files suggest one (never run: a guessed install step that half works is worse)."""
    if eff.setup or not eff.sandbox:
        return None
    proposal = toolchain.detect(files)
    if not proposal.setup:
        return None
    lines = "; ".join(f"`{_inline(c)}`" for c in proposal.setup)
    return f"No `sandbox.setup` in `.github/pact.yml`; for this repository: {lines}"


def agent_note(command: str | None) -> str:
    """What the agent is told about tests, in one line (it is paid for every turn)."""
    home = "`~` persists between your commands (setup's venv or packages are there)."
    if command:
        return f"Run the tests with `{command}`; {home}"
    return home


def record_setup(transcript: Transcript, result: SetupResult) -> None:
    """Each setup command's outcome in the job's record (the run viewer shows it)."""
    for step in result.steps:
        transcript.write(
            "setup",
            command=step.command,
            ok=step.ok,
            seconds=round(step.seconds, 2),
            output=step.tail,
        )


def setup_failure(step: SetupStep) -> str:
    """The failure comment's detail: the failing command and its last lines."""
    return f"`{_inline(step.command)}` failed:\n\n{fenced(step.tail or '(no output)')}"


async def run_setup(
    worktree: Path,
    commands: Sequence[str],
    tools: Tools,
    *,
    box: JobSandbox | None = None,
    timeout: float = DEFAULT_SETUP_SECONDS,
) -> tuple[SetupResult, set[str]]:
    """Run `sandbox.setup` commands in the job's sandbox (with its network) before the
    agent starts, until one fails.

    Returns what ran and the paths the commands changed, which are put back after the run
    unless the agent edited them itself: build artefacts of a setup step never end up in
    the PR.
    """
    if not commands or tools.bash is None:
        return SetupResult(), set()
    env = box.networked_env if box is not None else None
    result = await run_steps(tools.bash, commands, timeout, env)
    return result, await asyncio.to_thread(_dirty_paths, worktree, tools)


def _dirty_paths(worktree: Path, tools: Tools) -> set[str]:
    """What setup changed; nested repositories it planted are removed first (host git
    would run their config)."""
    return changed_paths(worktree, keep=tools.nested_before)


async def undo_setup(worktree: Path, paths: set[str], tools: Tools) -> None:
    """Put back what setup commands changed and the agent's editor did not touch."""
    if not paths:
        return
    root = worktree.resolve()
    editor = {p.relative_to(root).as_posix() for p in tools.editor.touched}
    await asyncio.to_thread(_restore, worktree, sorted(paths - editor), tools.nested_before)


def _restore(worktree: Path, paths: list[str], keep: frozenset[str] = frozenset()) -> None:
    """Tracked paths from git, the rest unlinked without following a symlink the agent
    may have put in place of a directory."""
    restore(worktree, paths, keep=keep)


async def run_tests(
    settings: Settings,
    box: JobSandbox | None,
    tools: Tools,
    report: ToolchainReport,
    transcript: Transcript,
) -> None:
    """The bot's own run of the repository's tests, recorded for the PR and the job."""
    if box is None or tools.bash is None or not report.test_command:
        return
    timeout = settings.pact_test_minutes * 60
    suite = await box.run_tests(tools.bash, report.test_command, timeout)
    report.suite = suite
    transcript.write(
        "tests",
        command=suite.command,
        outcome=suite.outcome,
        result=suite.line(),
        exit_code=suite.exit_code,
        output=suite.tail,
    )
