"""A code job: specs in, a pull request (or one clear failure comment) out.

    handler = CodeJob(runtime, job, control)
    outcome = await handler.run()        # JobOutcome; never raises for expected failures

The steps (DESIGN.md, "Flow of one job"): installation client → the sender's permission
(refused in a comment, before any work) → 👀 on the trigger → progress comment →
`.github/pact.yml` → specs → worktree → agent (budgets, cancellation) → checks (asking
once more for a missing summary) → commit, push → PR (or the open bot PR for the
same specs, updated) → handoff comment → check run "PACT Code" → final progress.
The worktree is removed whatever happens.

Retries are safe: the progress comment is found again by its hidden marker (and its
id is kept in the job's progress), the branch and PR are found by name, and a job
that already pushed (`pushed_sha` in its progress) skips the agent and finishes the
PR instead of pushing a second commit.

`implement(...)` and `first_message(...)` are shared with local mode.

Job fields read (set by `pact_bot.triggers`): `repo`, `number`, `installation_id` (else
looked up), `sender`; `task`: `trigger` (label | command | check_run), `is_pr`,
`comment_id` (👀 target), `spec_paths`, `instructions`, `title`, `body`,
`default_branch`. What a job keeps in its progress (`JobControl.progress`, for retries
and `pact-bot jobs show`): `comment_id`, `turns`, `cost_usd`, `pushed_sha`, `diff`,
`stats`, `model`, `pr_url`, `pr_number`, `handoff_sha`, `check_sha`; `acked` is set by the
command's ack reply job when it reacted 👀 first (the job then does not react again).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from githubkit.exception import GitHubException, RequestFailed

from pact_bot.confined import NotFound, Refused, read_present, read_text
from pact_bot.jobs.model import Job, JobState
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.logs import redact
from pact_bot.pipeline import report
from pact_bot.pipeline.base import RepoJob
from pact_bot.pipeline.checks import CheckResult, run_checks, summary_files
from pact_bot.pipeline.progress import ProgressComment
from pact_bot.pipeline.refusal import refuse_once
from pact_bot.pipeline.report import Failure, Phase, Progress, RunStats
from pact_bot.pipeline.runtime import Runtime
from pact_bot.repo_config import CONFIG_PATH, Effective, RepoConfigError, parse_repo_config
from pact_bot.specs import (
    branch_name,
    component_name,
    refusal_text,
    spec_changes,
    spec_refs,
    specs_from_args,
    summary_path,
)

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = ("admin", "maintain", "write")
AGENT_DOCS = ("CLAUDE.md", "AGENTS.md", ".github/copilot-instructions.md")
MAP_LIMIT = 400
DOC_LIMIT = 20_000
SPEC_LIMIT = 100_000

# --- pure helpers shared with local mode -------------------------------------------


def repo_map(files: Sequence[str], limit: int = MAP_LIMIT) -> str:
    """Tracked files, one per line; a large repository collapses into directories.

    Directories are expanded breadth-first while the listing stays under `limit`
    lines; the rest show as `dir/ (N files)`.
    """
    if len(files) <= limit:
        return "\n".join(files)
    depth = 1
    best = _collapse(files, 1)
    while depth < 8:
        nxt = _collapse(files, depth + 1)
        if len(nxt) > limit:
            break
        best, depth = nxt, depth + 1
    if len(best) > limit:
        extra = len(best) - limit
        best = [*best[:limit], f"… and {extra} more entries"]
    return "\n".join(best) + f"\n({len(files)} tracked files in total)"


def _collapse(files: Sequence[str], depth: int) -> list[str]:
    counts: Counter[str] = Counter()
    order: list[str] = []
    for f in files:
        parts = f.split("/")
        key = f if len(parts) <= depth else "/".join(parts[:depth]) + "/"
        if key not in counts:
            order.append(key)
        counts[key] += 1
    return [k if not k.endswith("/") else f"{k} ({counts[k]} files)" for k in order]


def first_message(
    *,
    specs: Sequence[tuple[str, str]],
    context: str,
    instructions: str,
    files: Sequence[str],
    agent_docs: Sequence[tuple[str, str]],
    summary_file: str,
    sections: dict[str, Sequence[str]] | None = None,
) -> str:
    """The task: specs (full text), where the request came from, the repository's map
    and its own agent instructions."""
    parts = ["Implement the following specification" + ("s" if len(specs) != 1 else "") + "."]
    for path, text in specs:
        changed = (sections or {}).get(path)
        note = f' changed_sections="{"; ".join(changed)}"' if changed else ""
        clipped = text if len(text) <= SPEC_LIMIT else text[:SPEC_LIMIT] + "\n… (clipped)"
        parts.append(f'<spec path="/workspace/{path}"{note}>\n{clipped}\n</spec>')
    if context.strip():
        parts.append(f"<request>\n{context.strip()}\n</request>")
    if instructions.strip():
        parts.append(f"<instructions>\n{instructions.strip()}\n</instructions>")
    parts.append(f"<repository_map>\n{repo_map(files)}\n</repository_map>")
    for path, text in agent_docs:
        clipped = text if len(text) <= DOC_LIMIT else text[:DOC_LIMIT] + "\n… (clipped)"
        parts.append(
            f'<repository_instructions path="{path}">\n{clipped}\n</repository_instructions>'
        )
    parts.append(
        f"When the implementation is complete, write the implementation summary to "
        f"`/workspace/{summary_file}`, including an `## Assumptions` section listing every "
        "assumption you made instead of asking, and the `## For the Test Engineer` section."
    )
    return "\n\n".join(parts)


SUMMARY_REMINDER = (
    "The implementation summary is missing. Write it now to `/workspace/{path}` as your "
    "instructions describe (with `## Assumptions` and `## For the Test Engineer`). Do not "
    "change anything else."
)

# --- the agent phase, shared with local mode ----------------------------------------


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

    @property
    def over_budget(self) -> bool:
        return _is_budget(self.stop)

    @property
    def cancelled(self) -> bool:
        return self.stop == "cancelled"


def _is_budget(stop: str) -> bool:
    return stop.startswith("budget")


ProgressFn = Callable[[int, float, str | None], Awaitable[None]]


async def implement(
    *,
    runtime: Runtime,
    worktree: Path,
    user_message: str,
    model: str,
    effective: Effective,
    transcript: Any,
    component: str,
    on_progress: ProgressFn,
    should_cancel: Callable[[], Awaitable[bool]],
    secrets: Sequence[str],
    existing_summaries: Sequence[str] = (),
) -> Implementation:
    """Run the agent under the job's budgets, then the checks (asking once for a missing
    summary within what is left of the budget). `transcript` is an agent Transcript."""
    summary_file = summary_path(component)
    from pact_bot.agent.definition import load_definition, system_prompt
    from pact_bot.agent.tools import build_tools

    definition = load_definition(worktree, effective.agent)
    model = runtime.settings.resolve_model(model or definition.model)
    tools = build_tools(worktree, effective.sandbox, settings=runtime.settings)
    system = system_prompt(definition, component=component, bash_available=tools.bash is not None)
    total_seconds = effective.max_minutes * 60
    started = time.monotonic()
    notes, setup_paths = await run_setup(worktree, effective.setup, tools)
    if notes:
        user_message += "\n\n<setup>\n" + "\n".join(notes) + "\n</setup>"

    async def run(message: str, messages: Any, turns_used: int, cost_used: float) -> Any:
        from pact_bot.agent.loop import Budget, run_agent

        budget = Budget(
            max_turns=max(effective.max_turns - turns_used, 1),
            max_cost_usd=max(effective.max_cost_usd - cost_used, 0.0),
            max_seconds=max(total_seconds - (time.monotonic() - started), 1.0),
        )

        async def progress(p: Any) -> None:
            await on_progress(turns_used + p.turn, cost_used + p.cost_usd, p.tool)

        return await run_agent(
            client=runtime.model,
            model=model,
            system=system,
            user_message=message,
            tools=tools,
            budget=budget,
            prices=runtime.settings.prices,
            transcript=transcript,
            on_progress=progress,
            should_cancel=should_cancel,
            messages=messages,
            retry=runtime.agent_retry,
        )

    async def inspect() -> tuple[Any, list[str], CheckResult]:
        """What the agent left (setup leftovers put back), and the checks on it."""
        await undo_setup(worktree, setup_paths, tools)
        changes = await runtime.workspace.changes(worktree)
        deleted = [f.path for f in changes.files if f.status == "D"]
        checks = run_checks(
            changes.paths,
            changes.diff,
            protected=effective.protected_paths,
            secrets=secrets,
            deleted=deleted,
            existing_summaries=existing_summaries,
        )
        return changes, deleted, checks

    result = await run(user_message, None, 0, 0.0)
    results = [result]
    if tools.halt is not None:  # staging an oversized worktree would copy it into git
        return Implementation(
            stop=_stop(result),
            stats=_stats(results, tools),
            final_text="",
            checks=CheckResult(),
            paths=[],
            deleted=[],
            diff="",
            error=tools.halt,
            model=model,
            setup_notes=notes,
        )
    changes, deleted, checks = await inspect()
    asked = False
    stop = _stop(result)
    if (
        checks.problems == (Failure.no_summary,)
        and not _is_budget(stop)
        and stop != "cancelled"
        and not _error(result)
    ):
        asked = True
        result = await run(
            SUMMARY_REMINDER.format(path=summary_file),
            result.messages,
            result.turns,
            float(result.cost_usd),
        )
        results.append(result)
        stop = _stop(result)
        changes, deleted, checks = await inspect()
    stats = _stats(results, tools)
    return Implementation(
        stop=stop,
        stats=stats,
        final_text=str(getattr(result, "final_text", "") or ""),
        checks=checks,
        paths=changes.paths,
        deleted=deleted,
        diff=changes.diff,
        error=_error(result),
        asked_again=asked,
        budget_detail=_budget_detail(stop, stats, effective),
        model=model,
        setup_notes=notes,
    )


async def run_setup(
    worktree: Path, commands: Sequence[str], tools: Any
) -> tuple[list[str], set[str]]:
    """Run `sandbox.setup` commands in the sandbox before the agent starts.

    Returns notes for the agent (what ran, what failed) and the paths the commands
    changed, which are put back after the run unless the agent edited them itself:
    build artefacts of a setup step never end up in the PR.
    """
    if not commands:
        return [], set()
    if tools.bash is None:
        return ["The repository's setup commands were not run: there is no sandbox here."], set()
    notes = []
    for cmd in commands:
        output, is_error = await tools.bash.run({"command": cmd})
        tail = output.strip()[-2000:]
        if is_error:
            notes.append(f"Setup command `{cmd}` failed:\n{tail}")
        else:
            notes.append(f"Setup command `{cmd}` succeeded.")
    return notes, await asyncio.to_thread(_dirty_paths, worktree, tools)


def _dirty_paths(worktree: Path, tools: Any) -> set[str]:
    """What setup changed; nested repositories it planted are removed first (host git
    would run their config)."""
    from pact_bot.workspace.tree import changed_paths

    return changed_paths(worktree, keep=getattr(tools, "nested_before", frozenset()))


async def undo_setup(worktree: Path, paths: set[str], tools: Any) -> None:
    """Put back what setup commands changed and the agent's editor did not touch."""
    if not paths:
        return
    root = worktree.resolve()
    editor = {
        p.relative_to(root).as_posix()
        for p in getattr(getattr(tools, "editor", None), "touched", ())
    }
    keep: frozenset[str] = getattr(tools, "nested_before", frozenset())
    await asyncio.to_thread(_restore, worktree, sorted(paths - editor), keep)


def _restore(worktree: Path, paths: list[str], keep: frozenset[str] = frozenset()) -> None:
    """Tracked paths from git, the rest unlinked without following a symlink the agent
    may have put in place of a directory."""
    from pact_bot.workspace.tree import restore

    restore(worktree, paths, keep=keep)


def _stop(result: Any) -> str:
    stop = getattr(result, "stop", "") or ""
    return str(getattr(stop, "value", stop))


def _error(result: Any) -> str | None:
    err = getattr(result, "error", None)
    if err:
        return str(err)
    if _stop(result) in ("error", "max_tokens"):
        return str(result.describe())
    return None


def _budget_detail(stop: str, stats: RunStats, eff: Effective) -> str:
    if stop == "budget_turns":
        return f"{eff.max_turns} turns"
    if stop == "budget_cost":
        return f"${eff.max_cost_usd:.2f}; spent ${stats.cost_usd:.2f}"
    if stop == "budget_time":
        return f"{eff.max_minutes:g} minutes"
    return stop


def _stats(results: Sequence[Any], tools: Any) -> RunStats:
    usage: Counter[str] = Counter()
    for r in results:
        u = r.usage
        for k in _USAGE_KEYS:
            usage[k] += int(getattr(u, k, 0) or 0)
    calls: Counter[str] = Counter(c.name for c in getattr(tools, "calls", []))
    return RunStats(
        turns=sum(int(getattr(r, "turns", 0)) for r in results),
        cost_usd=sum(float(getattr(r, "cost_usd", 0.0)) for r in results),
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage["cache_read_tokens"],
        cache_write_tokens=usage["cache_write_tokens"],
        duration_s=sum(float(getattr(r, "duration_s", 0.0)) for r in results),
        stop=_stop(results[-1]),
        tool_calls=dict(calls),
        files_touched=tuple(getattr(tools, "files_touched", ())),
    )


_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def failure_of(impl: Implementation) -> tuple[Failure, str, list[str]] | None:
    """The failure to report for a finished implementation, or None when it may ship."""
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
    return first, "", list(impl.checks.protected)


# --- the GitHub job ----------------------------------------------------------------


class JobFailed(Exception):
    def __init__(self, kind: Failure, detail: str = "", files: Sequence[str] = ()) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.files = list(files)


@dataclass
class _Target:
    """Where the work goes: base of the worktree, base of the new PR."""

    base_ref: str  # what the worktree starts from
    pr_base: str  # the branch the new PR targets
    pr_files: list[dict[str, Any]] = field(default_factory=list)
    pr_body: str = ""


class CodeJob(RepoJob):
    def __init__(self, runtime: Runtime, job: Job, control: JobControl) -> None:
        super().__init__(runtime, job, control)
        self.saved: dict[str, Any] = dict(job.task.get("progress") or {})
        self.progress: ProgressComment | None = None
        self.state = Progress(job.id, Phase.preparing)
        self.worktree: Path | None = None
        self.rc: Any = None
        self._mirror_update: asyncio.Task[Path] | None = None

    async def edit_comment(self, comment_id: int, body: str) -> None:
        await self.api(
            "PATCH", self.repo_path(f"/issues/comments/{comment_id}"), json={"body": body}
        )

    # the job ----------------------------------------------------------------------

    async def run(self) -> JobOutcome:
        try:
            return await self._run()
        except JobFailed as e:
            return await self._fail(e.kind, e.detail, e.files)
        except RequestFailed as e:
            detail = f"HTTP {e.response.status_code} on {e.request.method} {e.request.url.path}"
            log.warning("github call failed", extra={"detail": detail})
            return await self._fail(Failure.api_error, detail)
        except GitHubException as e:
            return await self._fail(Failure.api_error, type(e).__name__)
        except Exception as e:
            log.exception("code job failed")
            first = redact(str(e)).strip().splitlines()[0][:300] if str(e).strip() else ""
            detail = f"{type(e).__name__}: {first}" if first else type(e).__name__
            return await self._fail(Failure.internal, detail)
        finally:
            try:
                await self._drop_mirror_update()
            finally:
                if self.worktree is not None:
                    try:
                        await self.rt.workspace.remove(self.worktree)
                    except Exception:
                        log.exception("worktree removal failed")
                if self.progress is not None:
                    await self.progress.close()

    async def _fail(self, kind: Failure, detail: str = "", files: Sequence[str] = ()) -> JobOutcome:
        if kind is Failure.cancelled:
            await self._show(Progress(self.job.id, Phase.cancelled), force=True)
            return JobOutcome(JobState.cancelled, error="cancelled")
        text = report.failure_text(kind, detail, files=files)
        stats = self.state.stats
        await self._show(Progress(self.job.id, Phase.failed, failure=text, stats=stats), force=True)
        return JobOutcome(JobState.failed, error=f"{kind.value}: {detail or text}"[:2000])

    async def _show(self, state: Progress, *, force: bool = False) -> None:
        """Update the progress comment; a failure to do so never fails the job."""
        phase_changed = state.phase is not self.state.phase
        self.state = state
        if self.progress is None or self.gh is None:
            return
        try:
            await self.progress.show(report.progress_body(state), force=force or phase_changed)
        except GitHubException:
            log.warning("progress comment update failed", exc_info=True)
            return
        cid = self.progress.comment_id
        if cid is not None and self.saved.get("comment_id") != cid:
            self.saved["comment_id"] = cid
            await self.control.progress(comment_id=cid)

    async def _run(self) -> JobOutcome:
        job = self.job
        agent_loaded = _load_agent_soon()
        inst = job.installation_id or await self.rt.app.installation_id(job.repo)
        self.rc = await self.rt.app.repo_client(job.repo, inst)
        self.gh = self.rc.gh
        if not await self._allowed():
            return JobOutcome(
                JobState.failed, error=f"refused: {job.sender} lacks write permission"
            )
        repo = await self.rc.repository()
        default_branch = str(
            repo.get("default_branch") or self.task.get("default_branch") or "main"
        )
        clone_url = str(repo["clone_url"])
        # The sender may write: clone or fetch the mirror while the API calls below run
        # (cold, the clone is most of the wait). `_checkout` awaits it; `run` cancels it
        # if the job fails before then.
        self._mirror_update = asyncio.create_task(
            self.rt.workspace.update_mirror(job.repo, clone_url, await self.rc.token())
        )

        await _all(self._react(), self._start_progress())
        cfg, target = await _all(self._config(default_branch), self._target(default_branch))
        eff = cfg.effective(self.rt.settings)
        await self._show(Progress(job.id, Phase.reading_specs))
        specs, sections = self._find_specs(eff, target)
        if not specs:
            raise JobFailed(
                Failure.no_specs, report.no_specs_comment(eff.spec_glob, eff.label, eff.command)
            )
        components = [component_name(s) for s in specs]
        component = "-".join(components) if len(components) <= 3 else components[0]
        branch = branch_name(eff.branch_prefix, specs)
        existing = await self._open_pr(branch)
        if existing is not None:
            target.pr_base = existing["base"]["ref"]

        token = await self.rc.token()
        pushed = self.saved.get("pushed_sha")
        wt, branch, head_sha = await self._checkout(
            clone_url, token, target, branch, reuse=existing is not None or bool(pushed)
        )
        if not pushed and existing is None and head_sha != await self._base_sha(target):
            # The branch is there but no open PR uses it: ours from an attempt of this very
            # job that pushed before it could record so (resume), or a stale one (start anew).
            if _JOB_LINE.format(job_id=job.id) in await _head_message(wt):
                pushed = head_sha
            else:
                await self.rt.workspace.remove(wt)
                self.worktree = None
                branch = await self._fresh_branch(branch)
                wt, branch, head_sha = await self._checkout(
                    clone_url, token, target, branch, reuse=False
                )
        spec_texts = []
        missing = []
        refused: list[Refused] = []
        for s in specs:
            try:
                spec_texts.append((s, read_text(wt, s)))
            except NotFound:
                missing.append(s)
            except Refused as e:
                refused.append(e)
        if refused:
            raise JobFailed(
                Failure.no_specs,
                refusal_text(refused)
                + " "
                + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
            )
        if missing:
            raise JobFailed(
                Failure.no_specs,
                "These specs do not exist on "
                f"`{target.base_ref}`: {', '.join(f'`{m}`' for m in missing)}. "
                + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
            )
        self.state = Progress(job.id, Phase.reading_specs, specs=tuple(specs))
        summary_file = summary_path(component)

        if pushed and pushed == head_sha:
            log.info("resuming after push", extra={"sha": pushed})
            stats = RunStats(**self.saved.get("stats", {})) if self.saved.get("stats") else None
            rows = report.file_rows(self.saved.get("diff") or await _head_diff(wt))
            summaries = summary_files(self.rt.workspace.tracked_files(wt))
            sfile = summary_file if summary_file in summaries else (summaries or [summary_file])[0]
            return await self._publish(
                eff,
                specs,
                components,
                branch,
                target,
                existing,
                pushed,
                stats or RunStats(),
                rows,
                sfile,
                cfg_model=str(self.saved.get("model") or eff.model),
            )

        files = self.rt.workspace.tracked_files(wt)
        docs = read_present(wt, AGENT_DOCS)
        message = first_message(
            specs=spec_texts,
            context=self._context(target),
            instructions=str(self.task.get("instructions") or ""),
            files=files,
            agent_docs=docs,
            summary_file=summary_file,
            sections=sections,
        )
        existing_summaries = summary_files(files) if existing is not None else []
        await self._show(Progress(job.id, Phase.implementing, specs=tuple(specs)))

        await agent_loaded
        impl = await self._run_agent(
            wt, token, message, cfg, eff, component, tuple(specs), existing_summaries
        )
        failed = failure_of(impl)
        if failed is not None:
            raise JobFailed(*failed)
        await self._show(Progress(job.id, Phase.checking, specs=tuple(specs), stats=impl.stats))
        if await self.control.cancelled():
            raise JobFailed(Failure.cancelled)

        sfile = impl.checks.summary_files[0] if impl.checks.summary_files else summary_file
        co_author = await self._co_author()
        ident = await self._author()
        sha = await self.rt.workspace.commit(
            wt,
            report.commit_message(components, specs, None).rstrip()
            + "\n\n"
            + _JOB_LINE.format(job_id=job.id),
            author=ident,
            co_authors=[co_author] if co_author else [],
        )
        await self._show(Progress(job.id, Phase.opening_pr, specs=tuple(specs), stats=impl.stats))
        from pact_bot.workspace import PushRejected

        try:
            await self.rt.workspace.push(wt, clone_url, await self.rc.token(), branch)
        except PushRejected as e:
            raise JobFailed(Failure.push_refused, str(e).splitlines()[0][:300]) from None
        rows = report.file_rows(impl.diff)
        self.saved.update(
            pushed_sha=sha,
            diff=impl.diff[:200_000],
            stats=_stats_dict(impl.stats),
            model=impl.model,
        )
        await self.control.progress(
            pushed_sha=sha, diff=self.saved["diff"], stats=self.saved["stats"], model=impl.model
        )
        return await self._publish(
            eff,
            specs,
            components,
            branch,
            target,
            existing,
            sha,
            impl.stats,
            rows,
            sfile,
            cfg_model=impl.model,
        )

    async def _publish(
        self,
        eff: Effective,
        specs: list[str],
        components: list[str],
        branch: str,
        target: _Target,
        existing: dict[str, Any] | None,
        sha: str,
        stats: RunStats,
        rows: list[report.FileRow],
        sfile: str,
        *,
        cfg_model: str,
    ) -> JobOutcome:
        job = self.job
        assert self.worktree is not None
        summary_text = "".join(text for _, text in read_present(self.worktree, [sfile]))
        summary = report.parse_summary(summary_text)
        web = self.rt.settings.web_url.rstrip("/")
        body = report.pr_body(
            job_id=job.id,
            specs=specs,
            rows=rows,
            summary_file=sfile,
            summary=summary,
            stats=stats,
            model=cfg_model,
            issue_number=None if self.task.get("is_pr") else job.number,
            trigger=self._trigger_text(),
        )
        pr = existing or await self._open_pr(branch)
        updated = pr is not None
        if pr is None:
            pr = await self.api(
                "POST",
                self.repo_path("/pulls"),
                json={
                    "title": report.pr_title(components),
                    "head": branch,
                    "base": target.pr_base,
                    "body": body,
                    "draft": eff.draft,
                    "maintainer_can_modify": True,
                },
            )
            await self._request_review(int(pr["number"]))
        else:
            await self.api("PATCH", self.repo_path(f"/pulls/{pr['number']}"), json={"body": body})
        number = int(pr["number"])
        pr_url = str(pr.get("html_url") or f"{web}/{job.repo}/pull/{number}")
        await self.control.progress(pr_url=pr_url, pr_number=number)
        summary_url = f"{web}/{job.repo}/blob/{branch}/{sfile}"
        if self.saved.get("handoff_sha") != sha:
            await self.api(
                "POST",
                self.repo_path(f"/issues/{number}/comments"),
                json={"body": report.handoff_comment(summary, sfile, summary_url)},
            )
            await self.control.progress(handoff_sha=sha)
        if self.saved.get("check_sha") != sha:
            await self._check_run(sha, specs, stats, rows, cfg_model, sfile)
            await self.control.progress(check_sha=sha)
        await self._show(
            Progress(
                job.id,
                Phase.done,
                specs=tuple(specs),
                pr_url=pr_url,
                stats=stats,
                updated_pr=updated,
            ),
            force=True,
        )
        return JobOutcome(JobState.succeeded, pr_url=pr_url)

    # steps ------------------------------------------------------------------------

    async def _checkout(
        self, clone_url: str, token: str, target: _Target, branch: str, *, reuse: bool
    ) -> tuple[Path, str, str]:
        from pact_bot.workspace import WorkspaceError

        update, self._mirror_update = self._mirror_update, None
        try:
            if update is not None:
                await update
            self.worktree = await self.rt.workspace.prepare(
                self.job.repo,
                clone_url,
                token,
                target.base_ref,
                branch,
                self.job.id,
                reuse,
                fetch=update is None,
            )
        except WorkspaceError as e:
            raise JobFailed(Failure.api_error, f"git: {e}") from None
        return self.worktree, branch, await self.rt.workspace.head(self.worktree)

    async def _drop_mirror_update(self) -> None:
        """Cancel a mirror update the job no longer needs and wait until git has stopped
        (a finished fetch is kept: the mirror is a cache)."""
        update, self._mirror_update = self._mirror_update, None
        if update is None:
            return
        update.cancel()
        try:
            await update
        except asyncio.CancelledError:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise
        except Exception:
            log.warning("mirror update failed", exc_info=True)

    async def _base_sha(self, target: _Target) -> str | None:
        assert self.worktree is not None
        return await _git_out(self.worktree, "rev-parse", f"refs/remotes/origin/{target.base_ref}")

    async def _fresh_branch(self, branch: str) -> str:
        """`branch-2`, `-3`, … : the first name no remote branch has (a stale bot branch,
        e.g. of a closed PR, is left alone)."""
        for n in range(2, 100):
            name = f"{branch}-{n}"
            if not await self.rt.workspace.remote_branch_exists(self.job.repo, name):
                return name
        raise JobFailed(Failure.internal, f"no free branch name after {branch}-99")

    async def _allowed(self) -> bool:
        sender = self.job.sender
        try:
            data = await self.api("GET", self.repo_path(f"/collaborators/{sender}/permission"))
        except RequestFailed as e:
            if e.response.status_code not in (403, 404):
                raise
            data = {"permission": "none"}
        perm = str(data.get("role_name") or data.get("permission") or "none")
        if perm in WRITE_PERMISSIONS or data.get("permission") in WRITE_PERMISSIONS:
            return True
        log.info("sender lacks permission", extra={"sender": sender, "permission": perm})
        command = str(self.task.get("command_word") or "/pact")
        await refuse_once(self, report.refusal_comment(sender, perm, command))
        return False

    async def _run_agent(
        self,
        wt: Path,
        token: str,
        message: str,
        cfg: Any,
        eff: Any,
        component: str,
        specs: tuple[str, ...],
        existing_summaries: Sequence[str],
    ) -> Implementation:
        """The agent under this job's budgets, progress comment and cancel flag."""
        job = self.job

        async def on_progress(turn: int, cost: float, tool: str | None) -> None:
            await self._show(
                Progress(
                    job.id, Phase.implementing, specs=specs, turn=turn, cost_usd=cost, tool=tool
                )
            )
            await self.control.progress(turns=turn, cost_usd=round(cost, 6))

        from pact_bot.agent.cost import UnknownModelPrice
        from pact_bot.agent.transcript import Transcript

        secrets = [*self.rt.settings.secrets(), token]
        try:
            impl = await implement(
                runtime=self.rt,
                worktree=wt,
                user_message=message,
                model=cfg.model or "",
                effective=eff,
                transcript=Transcript.for_job(
                    self.rt.settings.pact_data_dir, job.id, secrets=secrets
                ),
                component=component,
                on_progress=on_progress,
                should_cancel=self.control.cancelled,
                secrets=secrets,
                existing_summaries=existing_summaries,
            )
        except UnknownModelPrice as e:
            raise JobFailed(Failure.model_error, str(e)) from None
        self.state = Progress(job.id, Phase.checking, specs=specs, stats=impl.stats)
        await self.control.progress(turns=impl.stats.turns, cost_usd=round(impl.stats.cost_usd, 6))
        return impl

    async def _react(self) -> None:
        cid = self.task.get("comment_id")
        if cid and self.saved.get("acked"):  # the command's ack job reacted already
            return
        try:
            if cid:
                path = self.repo_path(f"/issues/comments/{cid}/reactions")
            elif self.task.get("trigger") == "label":
                path = self.repo_path(f"/issues/{self.job.number}/reactions")
            else:
                return
            await self.api("POST", path, json={"content": "eyes"})
        except RequestFailed:
            log.warning("could not react to the trigger", exc_info=True)

    async def _start_progress(self) -> None:
        cid = self.saved.get("comment_id")
        if cid is None:
            cid = await self._find_marker()
        self.progress = ProgressComment(
            self.comment,
            self.edit_comment,
            comment_id=cid,
            min_interval=self._interval(),
            clock=self.rt.clock,
        )
        await self._show(Progress(self.job.id, Phase.preparing), force=True)

    def _interval(self) -> float:
        return float(getattr(self.rt, "progress_interval", 3.0))

    async def _find_marker(self) -> int | None:
        """A retried job's progress comment, by its hidden marker (newest pages last)."""
        want = report.marker(self.job.id)
        page = 1
        while page <= 10:
            items = await self.api(
                "GET",
                self.repo_path(f"/issues/{self.job.number}/comments"),
                params={"per_page": 100, "page": page},
            )
            for c in items or []:
                if want in (c.get("body") or ""):
                    return int(c["id"])
            if not items or len(items) < 100:
                return None
            page += 1
        return None

    async def _config(self, default_branch: str) -> Any:
        try:
            data = await self.api(
                "GET", self.repo_path(f"/contents/{CONFIG_PATH}"), params={"ref": default_branch}
            )
            text = base64.b64decode(data.get("content", "")).decode("utf-8", "replace")
        except RequestFailed as e:
            if e.response.status_code != 404:
                raise
            text = None
        try:
            cfg = parse_repo_config(text)
        except RepoConfigError as e:
            raise JobFailed(Failure.invalid_config, str(e)) from None
        await self._cache_config(cfg.trigger_fields())
        return cfg

    async def _cache_config(self, fields: dict[str, Any]) -> None:
        """Let ingress know this repository's label and command word."""
        try:
            await self.control.set_repo_config(self.job.repo, fields)
        except Exception:
            log.warning("could not cache the repository's trigger config", exc_info=True)

    async def _target(self, default_branch: str) -> _Target:
        if not self.task.get("is_pr"):
            return _Target(base_ref=default_branch, pr_base=default_branch)
        pr = await self.api("GET", self.repo_path(f"/pulls/{self.job.number}"))
        head = pr["head"]
        base_repo = (pr.get("base") or {}).get("repo") or {}
        head_repo = head.get("repo") or {}
        if head_repo.get("full_name") and head_repo.get("full_name") != base_repo.get(
            "full_name", self.job.repo
        ):
            raise JobFailed(
                Failure.unsupported,
                "This pull request comes from a fork: pact-bot implements specs from branches "
                "of this repository only. Push the spec branch here, or merge the spec and "
                "label an issue that names it.",
            )
        files: list[dict[str, Any]] = []
        page = 1
        while page <= 30:
            items = await self.api(
                "GET",
                self.repo_path(f"/pulls/{self.job.number}/files"),
                params={"per_page": 100, "page": page},
            )
            files.extend(items or [])
            if not items or len(items) < 100:
                break
            page += 1
        return _Target(
            base_ref=str(head["ref"]),
            pr_base=str(head["ref"]),
            pr_files=files,
            pr_body=str(pr.get("body") or ""),
        )

    def _find_specs(self, eff: Effective, target: _Target) -> tuple[list[str], dict[str, Any]]:
        args = [str(a) for a in self.task.get("spec_paths") or []]
        refused: list[Refused] = []
        specs, _ = specs_from_args(args, eff.spec_glob, refused=refused)
        sections: dict[str, Any] = {}
        if target.pr_files:
            changes = spec_changes(target.pr_files, eff.spec_glob)
            sections = {c.path: list(c.sections) for c in changes}
            if not specs:
                specs = [c.path for c in changes]
        if not specs:
            text = f"{self.task.get('title') or ''}\n{self.task.get('body') or ''}"
            specs = spec_refs(text + "\n" + target.pr_body, eff.spec_glob, refused=refused)
        if refused:  # never implement part of what was asked, silently
            raise JobFailed(
                Failure.no_specs,
                refusal_text(refused)
                + " "
                + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
            )
        return specs, sections

    async def _open_pr(self, branch: str) -> dict[str, Any] | None:
        items = await self.api(
            "GET",
            self.repo_path("/pulls"),
            params={"state": "open", "head": f"{self.owner}:{branch}", "per_page": 10},
        )
        for pr in items or []:
            if (pr.get("head") or {}).get("ref") == branch:
                return dict(pr)
        return None

    def _context(self, target: _Target) -> str:
        kind = "pull request" if self.task.get("is_pr") else "issue"
        title = str(self.task.get("title") or "")
        body = str(self.task.get("body") or target.pr_body or "")
        lines = [f"Requested by @{self.job.sender} on {kind} #{self.job.number}: {title}"]
        if body.strip():
            lines.append("")
            lines.append(body.strip()[:20_000])
        return "\n".join(lines)

    def _trigger_text(self) -> str:
        trigger = self.task.get("trigger")
        if trigger == "label":
            return f"label on #{self.job.number} by @{self.job.sender}"
        if trigger == "check_run":
            return f"Implement button on #{self.job.number} by @{self.job.sender}"
        return f"requested by @{self.job.sender} on #{self.job.number}"

    async def _author(self) -> tuple[str, str]:
        try:
            _, login = await self.rt.app.identity()
        except Exception:
            login = "pact-bot[bot]"
        try:
            user = await self.api("GET", f"/users/{login}")
            return login, f"{user['id']}+{login}@users.noreply.github.com"
        except (RequestFailed, KeyError):
            return login, f"{login}@users.noreply.github.com"

    async def _co_author(self) -> str | None:
        sender = self.job.sender
        if not sender:
            return None
        try:
            user = await self.api("GET", f"/users/{sender}")
            uid = user.get("id")
            name = user.get("name") or sender
        except RequestFailed:
            uid, name = None, sender
        email = (
            f"{uid}+{sender}@users.noreply.github.com"
            if uid
            else (f"{sender}@users.noreply.github.com")
        )
        return f"{name} <{email}>"

    async def _request_review(self, number: int) -> None:
        try:
            await self.api(
                "POST",
                self.repo_path(f"/pulls/{number}/requested_reviewers"),
                json={"reviewers": [self.job.sender]},
            )
        except RequestFailed:
            log.warning("could not request a review", exc_info=True)

    async def _check_run(
        self,
        sha: str,
        specs: list[str],
        stats: RunStats,
        rows: list[report.FileRow],
        model: str,
        sfile: str,
    ) -> None:
        output = report.check_run_output(
            specs=specs,
            stats=stats,
            rows=rows,
            model=model,
            job_id=self.job.id,
            summary_file=sfile,
        )
        await self._post_check_run(sha, output)

    async def _post_check_run(self, sha: str, output: dict[str, Any]) -> None:
        """The run's record on the commit; a failure here never fails the job."""
        try:
            await self.api(
                "POST",
                self.repo_path("/check-runs"),
                json={
                    "name": report.CHECK_NAME,
                    "head_sha": sha,
                    "status": "completed",
                    "conclusion": "success",
                    "external_id": self.job.id,
                    "output": output,
                },
            )
        except RequestFailed:
            log.warning("could not create the check run", exc_info=True)


_JOB_LINE = "pact-bot job {job_id}"


def _load_agent_soon() -> asyncio.Future[None]:
    """Import the agent (the anthropic SDK: ~2 s on a busy machine) in a thread while the
    job talks to GitHub and git clones; else the first job of a process waits for it.
    Import errors are left to the real import."""

    def load() -> None:
        try:
            import pact_bot.agent  # noqa: F401
        except Exception:
            log.debug("early agent import failed", exc_info=True)

    if "pact_bot.agent.loop" in sys.modules:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
    return asyncio.ensure_future(asyncio.to_thread(load))


async def _git_out(worktree: Path, *args: str) -> str | None:
    """Read-only git in the job's worktree (no network, no token), hardened."""
    from pact_bot.workspace import default_runner

    code, out, _ = await default_runner().run(args, worktree, check=False)
    return out.strip() if code == 0 else None


async def _head_message(worktree: Path) -> str:
    return await _git_out(worktree, "log", "-1", "--format=%B") or ""


async def _head_diff(worktree: Path) -> str:
    args = ("show", "--format=", "--no-color", "--no-renames", "--no-ext-diff", "--no-textconv")
    return await _git_out(worktree, *args, "HEAD") or ""


def _stats_dict(stats: RunStats) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(stats)
    d["files_touched"] = list(stats.files_touched)
    return d


async def handle_code(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await CodeJob(runtime, job, control).run()


async def _all(*aws: Awaitable[Any]) -> list[Any]:
    """Run independent steps concurrently; once all are done, raise the first failure in
    argument order (as running them one after another would have reported it)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
