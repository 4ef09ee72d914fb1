"""`pact-bot code docs/x-spec.md`: the same agent and checks on a local repository.

No GitHub App, no queue: only ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL). The work lands
on a new local branch (`pact/code/<spec-slug>`, suffixed when taken) as one commit with
the implementation summary; nothing is pushed. The terminal shows the current turn,
the cost so far and the tool being called. The transcript and git's scratch files live
under `.git/pact-bot/`, so nothing of ours is ever committed.

Exit codes: 0 committed; 1 the agent's work failed a check or the budget (changes are
left uncommitted on the new branch for inspection); 2 nothing started (missing key,
dirty repository, missing spec, invalid `.github/pact.yml`).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import TextIO

from pact_bot.confined import NotFound, Refused, read_present, read_text
from pact_bot.pipeline import pr_text, report
from pact_bot.pipeline.agent_passes import AgentRequest
from pact_bot.pipeline.agent_run import failure_of, implement
from pact_bot.pipeline.prompts import AGENT_DOCS, first_message
from pact_bot.pipeline.runtime import MissingModelKey, Runtime, anthropic_client
from pact_bot.repo_config import CONFIG_PATH, RepoConfigError, parse_repo_config
from pact_bot.settings import Settings
from pact_bot.specs import branch_name, component_name, summary_path
from pact_bot.workspace import Workspace, default_runner
from pact_bot.workspace.git import user_config


class LocalError(Exception):
    """Nothing was started; the message says what to fix."""


def _git(repo: Path, *args: str) -> str:
    """Hardened git (no hooks, no fsmonitor, no config beyond the repository's own)."""
    code, out, err = default_runner().run_sync(
        ["-c", "core.quotepath=off", *args], repo, check=False
    )
    if code != 0:
        raise LocalError(f"git {' '.join(args)}: {err.strip() or 'failed'}")
    return out


class Display:
    """One status line, rewritten in place on a terminal, printed per change otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""
        self.started = time.monotonic()

    def status(self, turn: int, cost: float, tool: str | None) -> None:
        elapsed = report.duration(time.monotonic() - self.started)
        line = f"turn {turn} · ${cost:.2f} · {elapsed}" + (f" · {tool}" if tool else "")
        if line == self.last:
            return
        self.last = line
        if self.tty:
            width = 120
            self.out.write("\r\033[K" + line[:width])
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        if self.tty and self.last:
            self.out.write("\r\033[K")
            self.last = ""
        self.out.write(text + "\n")
        self.out.flush()


def run_local(
    settings: Settings,
    specs: list[str],
    repo_dir: Path,
    instructions: str,
    *,
    out: TextIO | None = None,
) -> int:
    display = Display(out or sys.stderr)
    try:
        return asyncio.run(_run(settings, specs, Path(repo_dir), instructions, display))
    except (LocalError, MissingModelKey) as e:
        display.say(f"pact-bot: {e}")
        return 2
    except KeyboardInterrupt:
        display.say("pact-bot: interrupted; the changes so far are left uncommitted")
        return 130


async def _run(
    settings: Settings, specs: list[str], repo_dir: Path, instructions: str, display: Display
) -> int:
    client = anthropic_client(settings)  # MissingModelKey before anything else
    if not repo_dir.is_dir():
        raise LocalError(f"{repo_dir} is not a directory")
    try:
        root = Path(_git(repo_dir, "rev-parse", "--show-toplevel").strip())
    except LocalError:
        raise LocalError(f"{repo_dir} is not a git repository") from None
    if _git(root, "status", "--porcelain", "--untracked-files=normal").strip():
        raise LocalError(
            f"the repository at {root} has uncommitted changes; commit or stash them first "
            "(pact-bot commits everything the agent changes)"
        )
    try:
        _git(root, "rev-parse", "--verify", "HEAD")
    except LocalError:
        raise LocalError("the repository has no commit yet; commit the spec first") from None
    rel_specs = []
    for s in specs:
        p = Path(s)
        full = (p if p.is_absolute() else (Path.cwd() / p)).resolve()
        if not full.is_file():
            full = (root / s).resolve()
        if not full.is_file() or not full.is_relative_to(root):
            raise LocalError(f"spec not found in the repository: {s}")
        rel_specs.append(full.relative_to(root).as_posix())
    try:
        spec_texts = [(s, read_text(root, s)) for s in rel_specs]
        cfg = parse_repo_config(_optional(root, CONFIG_PATH))
    except Refused as e:
        raise LocalError(f"refused to read {e}") from None
    except RepoConfigError as e:
        raise LocalError(str(e)) from None
    eff = cfg.effective(settings)

    git_dir = Path(_git(root, "rev-parse", "--absolute-git-dir").strip())
    data_dir = git_dir / "pact-bot"
    data_dir.mkdir(parents=True, exist_ok=True)
    from pact_bot.agent.transcript import Transcript

    name = user_config(root, "user.name") or "pact-bot"
    email = user_config(root, "user.email") or "pact-bot@users.noreply.github.com"
    workspace = Workspace(data_dir, identity=(name, email))
    runtime = Runtime(settings, workspace=workspace, model_client=client)

    components = [component_name(s) for s in rel_specs]
    component = "-".join(components) if len(components) <= 3 else components[0]
    branch = _free_branch(root, branch_name(eff.branch_prefix, rel_specs))
    _git(root, "switch", "--quiet", "-c", branch)
    display.say(f"pact-bot: implementing {', '.join(rel_specs)} on new branch {branch}")

    files = [f for f in _git(root, "ls-files", "-z").split("\0") if f]
    docs = read_present(root, AGENT_DOCS)
    message = first_message(
        specs=spec_texts,
        context="Requested locally with `pact-bot code`.",
        instructions=instructions,
        files=files,
        agent_docs=docs,
        summary_file=summary_path(component),
    )
    run_id = f"local-{uuid.uuid4().hex[:8]}"
    transcript = Transcript.for_job(data_dir, run_id, secrets=settings.secrets())

    async def on_progress(turn: int, cost: float, tool: str | None) -> None:
        display.status(turn, cost, tool)

    async def never() -> bool:
        return False

    from pact_bot.agent.cost import UnknownModelPrice

    try:
        impl = await implement(
            AgentRequest(
                runtime=runtime,
                worktree=root,
                user_message=message,
                model=cfg.model or "",
                effective=eff,
                transcript=transcript,
                component=component,
                on_progress=on_progress,
                should_cancel=never,
                secrets=settings.secrets(),
            )
        )
    except UnknownModelPrice as e:
        raise LocalError(str(e)) from None
    display.say(f"pact-bot: {impl.stats.line()}")
    failed = failure_of(impl)
    if failed is not None:
        kind, detail, bad = failed
        display.say("pact-bot: " + report.failure_text(kind, detail, files=bad))
        display.say(
            f"pact-bot: nothing was committed; the agent's changes (if any) are left on branch "
            f"{branch}. Transcript: {transcript.path}"
        )
        return 1
    sha = await workspace.commit(
        root,
        pr_text.commit_message(components, rel_specs, None).rstrip()
        + f"\n\nWritten by pact-bot ({impl.model}); "
        f"{impl.stats.line()}",
        author=(name, email),
    )
    rows = pr_text.file_rows(impl.diff)
    display.say(f"pact-bot: committed {sha[:12]} on {branch}:")
    for r in rows:
        display.say(f"  {r.status:<9} {r.path} (+{r.added} −{r.removed})")
    summary = impl.checks.summary_files[0] if impl.checks.summary_files else None
    if summary:
        display.say(f"pact-bot: implementation summary: {summary}")
    display.say(f"pact-bot: transcript: {transcript.path}")
    return 0


def _free_branch(root: Path, branch: str) -> str:
    existing = set(_git(root, "branch", "--list", "--format=%(refname:short)").split())
    if branch not in existing:
        return branch
    n = 2
    while f"{branch}-{n}" in existing:
        n += 1
    return f"{branch}-{n}"


def _optional(root: Path, path: str) -> str | None:
    try:
        return read_text(root, path)
    except NotFound:
        return None
