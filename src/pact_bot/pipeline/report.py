"""What a job tells people while it runs and when it stops: the progress comment, the
failure paragraphs, refusals. (The pull request's texts are in `pr_text`.)

Pure functions of their inputs (no I/O), so each wording is tested without a server.
The hidden marker `<!-- pact-bot:job:<id> -->` in a progress comment lets a
retried job find and keep editing the same comment.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pact_bot.agent.cost import Tokens

MARKER_RE = re.compile(r"<!-- pact-bot:job:([A-Za-z0-9_-]+) -->")
CHECK_NAME = "PACT Code"
SHA_SHORT = 7  # characters of a commit id people read
TOOL_NAME_LIMIT = 80  # characters of the current tool call shown in the progress comment
FILES_LISTED = 20  # protected paths named in a failure
QUOTE_LIMIT = 300  # characters of the agent's last words quoted in a failure


def marker(job_id: str) -> str:
    return f"<!-- pact-bot:job:{job_id} -->"


def job_of(body: str | None) -> str | None:
    """The job id a comment was written for, from its hidden marker."""
    m = MARKER_RE.search(body or "")
    return m.group(1) if m else None


class Phase(enum.StrEnum):
    preparing = "preparing"
    reading_specs = "reading specs"
    implementing = "implementing"
    checking = "checking the result"
    opening_pr = "opening the pull request"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


PHASES = (
    Phase.preparing,
    Phase.reading_specs,
    Phase.implementing,
    Phase.checking,
    Phase.opening_pr,
)


class Failure(enum.StrEnum):
    budget = "budget"
    partial = "partial"  # stopped early; the detail says what was kept (pipeline/partial.py)
    no_change = "no_change"
    no_summary = "no_summary"
    protected = "protected"
    secret = "secret"
    symlink = "symlink"
    push_refused = "push_refused"
    api_error = "api_error"
    model_error = "model_error"
    context_window = "context_window"
    invalid_config = "invalid_config"
    no_specs = "no_specs"
    unsupported = "unsupported"
    cancelled = "cancelled"
    workspace_full = "workspace_full"
    setup_failed = "setup_failed"
    internal = "internal"


@dataclass(frozen=True)
class RunStats(Tokens):
    """What a run cost; built from the agent's RunResult (the token counts: `Tokens`)."""

    turns: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    stop: str = ""
    tool_calls: dict[str, int] = field(default_factory=dict)
    files_touched: tuple[str, ...] = ()

    def line(self) -> str:
        """`$0.42 · 12 turns · 3m 05s · 210k tokens in (81% cached), 9.1k out`"""
        return (
            f"${self.cost_usd:.2f} · {self.turns} turn{'s' if self.turns != 1 else ''} · "
            f"{duration(self.duration_s)} · {tokens(self.prompt_tokens)} tokens in "
            f"({self.cached_share:.0%} cached), {tokens(self.output_tokens)} out"
        )


def duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.2f}M"


# --- progress comment -------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    """One state of the progress comment."""

    job_id: str
    phase: Phase
    specs: tuple[str, ...] = ()
    turn: int = 0
    cost_usd: float = 0.0
    tool: str | None = None
    pr_url: str | None = None
    failure: str | None = None  # the paragraph explaining a failure
    stats: RunStats | None = None
    updated_pr: bool = False
    note: str | None = None  # one extra line under the state (e.g. a proposed setup)


def progress_body(p: JobProgress) -> str:
    lines = [marker(p.job_id)]
    if p.phase is Phase.done:
        verb = "updated" if p.updated_pr else "opened"
        lines.append(f"✅ **pact-bot** {verb} {p.pr_url}")
        if p.stats:
            lines.append("")
            lines.append(p.stats.line())
    elif p.phase is Phase.failed:
        lines.append("❌ **pact-bot** could not finish this job.")
        lines.append("")
        lines.append(p.failure or "The job failed.")
        if p.stats and p.stats.turns:
            lines.append("")
            lines.append(p.stats.line())
    elif p.phase is Phase.cancelled:
        lines.append("⏹️ **pact-bot**: cancelled. Nothing was pushed.")
    else:
        lines.append(f"⏳ **pact-bot** is working on this: **{p.phase.value}**")
        lines.append("")
        for ph in PHASES:
            mark = "x" if PHASES.index(ph) < PHASES.index(p.phase) else " "
            label = ph.value[0].upper() + ph.value[1:]
            if ph is p.phase and ph is Phase.implementing and p.turn:
                label += f" — turn {p.turn}, ${p.cost_usd:.2f} so far"
                if p.tool:
                    label += f" (`{_inline(p.tool)}`)"
            lines.append(f"- [{mark}] {label}")
        if p.specs:
            lines.append("")
            lines.append("Specs: " + ", ".join(f"`{s}`" for s in p.specs))
    return "\n".join(lines + footer(p))


def footer(p: JobProgress) -> list[str]:
    """The lines every job kind's progress comment ends with, whatever its layout: the
    job's note (the monthly budget's 80 % warning, a setup hint) and the job's id."""
    note = ["", p.note] if p.note else []
    return [*note, "", f"<sub>job `{p.job_id}`</sub>"]


def _inline(text: str, limit: int = TOOL_NAME_LIMIT) -> str:
    text = text.replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_text(kind: Failure | str, detail: str = "", *, files: Sequence[str] = ()) -> str:
    """One paragraph: what happened, what was kept, what to do next."""
    kind = Failure(kind)
    listed = ", ".join(f"`{f}`" for f in files[:FILES_LISTED]) + (
        " …" if len(files) > FILES_LISTED else ""
    )
    detail = detail.strip()
    texts = {
        Failure.budget: (
            f"The agent reached its budget ({detail or 'limit reached'}) before finishing. "
            "Nothing was pushed. Raise `limits` in `.github/pact.yml` (within the server's "
            "maximums) or narrow the spec, then trigger again."
        ),
        Failure.no_change: (
            "The agent finished without changing any file, so there is nothing to open a "
            "pull request with. Check that the spec describes code to write, or add "
            "instructions after the command, then trigger again."
            + (f" The agent's last words: {_quote(detail)}" if detail else "")
        ),
        Failure.no_summary: (
            "The agent did not write the implementation summary "
            "(`docs/implementation-summary-<component>.md`) even when asked again, so the "
            "work was not pushed."
        ),
        Failure.protected: (
            f"The agent changed protected paths ({listed}); pact-bot never pushes changes "
            "there. Nothing was pushed. Adjust the spec or `protected_paths` in "
            "`.github/pact.yml` if the change is intended and made by a person."
        ),
        Failure.symlink: (
            f"The agent left symbolic links that point out of the repository or stand in for "
            f"the implementation summary ({listed}); pact-bot commits neither. Nothing was "
            "pushed. The summary must be a regular file, and links must stay inside the "
            "repository."
        ),
        Failure.secret: (
            "The diff contained a secret value of the bot's own configuration; the work was "
            "discarded and nothing was pushed."
        ),
        Failure.push_refused: (
            f"GitHub refused the push ({detail or 'rejected'}). The branch may be protected "
            "or have moved; nothing was changed on it."
        ),
        Failure.api_error: (
            f"A GitHub API call failed ({detail or 'error'}). The job stopped; trigger it "
            "again when GitHub is reachable."
        ),
        Failure.model_error: (
            f"The model service failed after retries ({detail or 'error'}). Nothing was "
            "pushed; trigger again later."
        ),
        Failure.context_window: (
            "The work outgrew the model's context window "
            f"({detail or 'the prompt was too long'}). Nothing was pushed. Triggering again "
            "unchanged will stop the same way: split the spec into smaller ones, or name fewer "
            "or smaller files for one job."
        ),
        Failure.invalid_config: f"`.github/pact.yml` is not valid:\n\n> {detail}",
        Failure.no_specs: detail or "No spec was found for this job.",
        Failure.partial: detail,
        Failure.unsupported: detail or "pact-bot cannot do this job.",
        Failure.cancelled: "The job was cancelled. Nothing was pushed.",
        Failure.workspace_full: (
            f"The job stopped: {detail or 'the working copy grew past its size limit'}. "
            "Nothing was pushed. Keep large generated files (build output, downloads, data) "
            "out of the repository, or ask the operator to raise `PACT_SANDBOX_DISK_MB`, "
            "then trigger again."
        ),
        Failure.setup_failed: (
            f"A setup command of the repository failed, so the agent did not start and "
            f"nothing was pushed. {detail or ''}\n\nFix `sandbox.setup` in `.github/pact.yml` "
            "on the default branch (a host it needs goes in `sandbox.network.allow`), then "
            "trigger again."
        ),
        Failure.internal: (
            f"pact-bot hit an internal error ({detail or 'unexpected'}). Nothing was pushed; "
            "the operator can look the job up with `pact-bot jobs show`."
        ),
    }
    return texts[kind]


def _quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    text = " ".join(text.split())
    return f"“{text[: limit - 1]}…”" if len(text) > limit else f"“{text}”"


def refusal_comment(user: str, permission: str | None, command: str = "/pact") -> str:
    have = permission or "none"
    return (
        f"@{user} pact-bot only takes `{command} code` from people with write, maintain or "
        f"admin permission on this repository (yours: {have}). Ask a maintainer to trigger "
        "it."
    )


def no_specs_comment(glob: str, label: str, command: str) -> str:
    return (
        "pact-bot found no spec to implement. Specs are files matching "
        f"`{glob}` (for example `docs/payments-spec.md`). Name them in the issue body, add "
        f"them in the pull request, or list them in the command: `{command} code "
        f"docs/payments-spec.md`. Then trigger again (label `{label}` or `{command} code`)."
    )
