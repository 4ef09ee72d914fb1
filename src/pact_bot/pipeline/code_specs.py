"""What a code job works on: the branch it starts from and targets, and the specs it implements.

Every refusal here happens before the agent runs, and never leaves part of the request out
silently: a spec path that is refused or missing fails the whole job with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from githubkit_schemas.latest.models import DiffEntry

from pact_bot.confined import NotFound, Refused, read_text
from pact_bot.jobs.tasks import CodeTask
from pact_bot.pipeline import report
from pact_bot.pipeline.context import JobContext
from pact_bot.pipeline.prompts import REQUEST_LIMIT
from pact_bot.pipeline.report import Failure
from pact_bot.pipeline.steps import (
    JobFailed,
)
from pact_bot.repo_config import Effective
from pact_bot.specs import (
    refused_paths_text,
    spec_changes,
    spec_refs,
    specs_from_args,
)


@dataclass
class _Target:
    """Where the work goes: base of the worktree, base of the new PR."""

    base_ref: str  # what the worktree starts from
    pr_base: str  # the branch the new PR targets
    pr_files: list[DiffEntry] = field(default_factory=list)
    pr_body: str = ""


async def _target(ctx: JobContext[CodeTask], default_branch: str) -> _Target:
    if not ctx.task.is_pr:
        return _Target(base_ref=default_branch, pr_base=default_branch)
    pr = await ctx.api.pull(ctx.number)
    head_repo = pr.head.repo.full_name if pr.head.repo else None
    if head_repo and head_repo != (pr.base.repo.full_name or ctx.job.repo):
        raise JobFailed(
            Failure.unsupported,
            "This pull request comes from a fork: pact-bot implements specs from branches "
            "of this repository only. Push the spec branch here, or merge the spec and "
            "label an issue that names it.",
        )
    return _Target(
        base_ref=pr.head.ref,
        pr_base=pr.head.ref,
        pr_files=await ctx.api.pull_files(ctx.number),
        pr_body=pr.body or "",
    )


def _find_specs(
    ctx: JobContext[CodeTask], eff: Effective, target: _Target
) -> tuple[list[str], dict[str, list[str]]]:
    refused: list[Refused] = []
    specs, _ = specs_from_args(ctx.task.spec_paths, eff.spec_glob, refused=refused)
    sections: dict[str, list[str]] = {}
    if target.pr_files:
        files = [
            {"filename": f.filename, "status": f.status, "patch": f.patch or None}
            for f in target.pr_files
        ]
        changes = spec_changes(files, eff.spec_glob)
        sections = {c.path: list(c.sections) for c in changes}
        if not specs:
            specs = [c.path for c in changes]
    if not specs:
        text = f"{ctx.task.title}\n{ctx.task.body}"
        specs = spec_refs(text + "\n" + target.pr_body, eff.spec_glob, refused=refused)
    if refused:  # never implement part of what was asked, silently
        raise _refused(refused, eff)
    return specs, sections


def _refused(refused: list[Refused], eff: Effective) -> JobFailed:
    return JobFailed(
        Failure.no_specs,
        refused_paths_text(refused)
        + " "
        + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
    )


def _read_specs(
    wt: Path, specs: list[str], target: _Target, eff: Effective
) -> list[tuple[str, str]]:
    texts, missing = [], []
    refused: list[Refused] = []
    for s in specs:
        try:
            texts.append((s, read_text(wt, s)))
        except NotFound:
            missing.append(s)
        except Refused as e:
            refused.append(e)
    if refused:  # never implement part of what was asked, silently
        raise _refused(refused, eff)
    if missing:
        raise JobFailed(
            Failure.no_specs,
            "These specs do not exist on "
            f"`{target.base_ref}`: {', '.join(f'`{m}`' for m in missing)}. "
            + report.no_specs_comment(eff.spec_glob, eff.label, eff.command),
        )
    return texts


def _context(ctx: JobContext[CodeTask], target: _Target) -> str:
    kind = "pull request" if ctx.task.is_pr else "issue"
    body = ctx.task.body or target.pr_body
    lines = [f"Requested by @{ctx.sender} on {kind} #{ctx.number}: {ctx.task.title}"]
    if body.strip():
        lines.append("")
        lines.append(body.strip()[:REQUEST_LIMIT])
    return "\n".join(lines)
