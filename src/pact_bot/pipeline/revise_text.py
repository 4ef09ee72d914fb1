"""The texts of a revise job: the agent's task, the `REPLY <id>: …` contract of its last
message, the replies in review threads, the commit title and the progress comment. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from githubkit_schemas.latest.models import ReviewComment as ApiReviewComment

from pact_bot.jobs.tasks import CodeTask
from pact_bot.pipeline import report
from pact_bot.pipeline.prompts import SPEC_LIMIT, clip
from pact_bot.pipeline.report import SHA_SHORT, JobProgress, Phase

HUNK_LIMIT = 3_000
COMMENT_LIMIT = 10_000
SUMMARY_LIMIT = 40_000
MAX_COMMENTS = 100
MAX_LISTED_FILES = 200
_REPLY = re.compile(
    r"^[ \t>*_`-]*REPLY[ \t]+#?(\d+)[*_`]*[ \t]*:[ \t]*[*_`]*[ \t]*(.*?)[ \t]*$", re.M
)
_SUMMARY_NAME = re.compile(r"docs/implementation-summary-(.+)\.md$")


@dataclass(frozen=True)
class ReviewComment:
    id: int
    path: str
    line: int | None
    start_line: int | None
    diff_hunk: str
    body: str

    @classmethod
    def of(cls, c: ApiReviewComment) -> ReviewComment:
        line = c.line or c.original_line or None
        start = c.start_line or c.original_start_line or None
        return cls(
            id=int(c.id),
            path=c.path or "",
            line=int(line) if line else None,
            start_line=int(start) if start and start != line else None,
            diff_hunk=c.diff_hunk or "",
            body=c.body or "",
        )

    @property
    def where(self) -> str:
        if self.line is None:
            return "(file comment)"
        if self.start_line:
            return f"lines {self.start_line}-{self.line}"
        return f"line {self.line}"


# --- pure parts ---------------------------------------------------------------------


def parse_replies(text: str) -> dict[int, str]:
    """`REPLY <id>: text` lines of the agent's last message (the last one per id wins)."""
    out: dict[int, str] = {}
    for m in _REPLY.finditer(text or ""):
        reply = m.group(2).strip().rstrip("*_`").strip()
        if reply:
            out[int(m.group(1))] = reply
    return out


def without_replies(text: str) -> str:
    """The agent's last message without its REPLY lines (for a PR comment)."""
    return _REPLY.sub("", text or "").strip()


def revise_message(
    *,
    reviewer: str,
    review_body: str,
    comments: Sequence[ReviewComment],
    instructions: str,
    pr_number: int,
    pr_title: str,
    pr_files: Sequence[str],
    specs: Sequence[tuple[str, str]],
    summary: tuple[str, str] | None,
    moved_since: str | None = None,
) -> str:
    """The agent's task. Section headings start with Review / Spec / Summary so that a
    comment's text ends where the next section begins."""
    parts = [
        f"You are revising pull request #{pr_number} ({pr_title!r}), which you opened "
        "earlier to implement a spec. Its branch is checked out at `/workspace`."
    ]
    if moved_since:
        parts.append(
            "Note: the branch has new commits since the review (reviewed at "
            f"{moved_since[:SHA_SHORT]})."
            " Line numbers and diff hunks below refer to the reviewed version; find the code "
            "in the current files, and keep the newer commits' changes."
        )
    if comments or review_body.strip():
        parts.append(
            f"## Review by @{reviewer}\n\n"
            + (review_body.strip()[:COMMENT_LIMIT] or "(no review body; see the comments)")
        )
    if instructions.strip():
        parts.append(
            f"## Request by @{reviewer}\n\n<instructions>\n{instructions.strip()}\n</instructions>"
        )
    for c in comments[:MAX_COMMENTS]:
        hunk = c.diff_hunk[-HUNK_LIMIT:]
        block = [f"### Comment {c.id} on `{c.path}` {c.where}"]
        if hunk:
            block += ["", "```diff", hunk.replace("```", "'''"), "```"]
        block += ["", c.body.strip()[:COMMENT_LIMIT]]
        parts.append("\n".join(block))
    if pr_files:
        listed = "\n".join(f"- `{f}`" for f in pr_files[:MAX_LISTED_FILES])
        parts.append(f"## Review context: files changed in this pull request\n\n{listed}")
    for path, text in specs:
        parts.append(
            f"## Spec `{path}`\n\n"
            f'<spec path="/workspace/{path}">\n{clip(text, SPEC_LIMIT)}\n</spec>'
        )
    if summary is not None:
        path, text = summary
        parts.append(
            f"## Summary of the implementation (`/workspace/{path}`)\n\n"
            f'<summary path="/workspace/{path}">\n{clip(text, SUMMARY_LIMIT)}\n</summary>'
        )
    summary_path = summary[0] if summary else "docs/implementation-summary-<component>.md"
    steps = [
        "## Review instructions: what to do",
        "",
        "Address the review as a whole: make every change the comments ask for, without "
        "undoing one comment's change for another. A comment that needs no change (a "
        "question, a misunderstanding, a request against the spec) gets none; say why.",
        f"If your change alters what `/workspace/{summary_path}` says (files, behaviour, "
        "assumptions, the For the Test Engineer section), update it; otherwise leave it.",
        "Do not run git commands; pact-bot commits and pushes your changes.",
    ]
    if comments:
        steps.append(
            "End your final message with one line per comment, in this exact format:\n\n"
            "REPLY <comment_id>: <what you changed, or why no change>\n\n"
            "Start the text with `No change:` when you changed nothing for that comment."
        )
    else:
        steps.append("End with a short paragraph saying what you changed, for the PR thread.")
    parts.append("\n".join(steps))
    return "\n\n".join(parts)


def thread_reply(text: str | None, sha: str | None, commit_url: str | None) -> str:
    """What one review thread is told."""
    cite = f"[`{sha[:SHA_SHORT]}`]({commit_url})" if sha and commit_url else (sha or "")[:SHA_SHORT]
    if text is None:
        if sha:
            return (
                f"pact-bot pushed {cite} for this review; the agent did not report on this "
                "comment separately, so please check the commit."
            )
        return "pact-bot made no change for this comment (the agent did not say why)."
    no_change = text.lower().startswith("no change")
    if no_change or not sha:
        body = text if no_change else f"No change: {text}"
        return body + (f"\n\n(The other comments were addressed in {cite}.)" if sha else "")
    return f"Addressed in {cite}: {text}"


def command_instructions(task: CodeTask) -> str:
    """`/pact code <words>` on a bot PR: the first line's words (spec paths included) and
    the lines below are all the request."""
    words = " ".join(task.spec_paths)
    rest = task.instructions
    return "\n".join(t for t in (words, rest) if t.strip())


def commit_title(trigger: str, reviewer: str) -> str:
    if trigger == "review":
        return f"Address review by @{reviewer}"
    if trigger == "ci":
        return "Fix failing checks"
    if trigger == "continue":
        return f"Continue the partial work, as asked by @{reviewer}"
    return f"Apply /pact code instructions by @{reviewer}"


def progress_body(p: JobProgress, *, reviewer: str, done: str = "", doing: str = "") -> str:
    """The revise job's progress comment (failures and cancels read as for code jobs)."""
    if p.phase in (Phase.failed, Phase.cancelled):
        return report.progress_body(p)
    lines = [report.marker(p.job_id)]
    if p.phase is Phase.done:
        lines.append(f"✅ **pact-bot** {done}")
        if p.stats and p.stats.turns:
            lines += ["", p.stats.line()]
    else:
        steps = [
            (Phase.preparing, "Preparing"),
            (Phase.implementing, doing or f"Addressing the review by @{reviewer}"),
            (Phase.checking, "Checking the result"),
            (Phase.opening_pr, "Pushing the commit and replying"),
        ]
        order = [s for s, _ in steps]
        now = order.index(p.phase) if p.phase in order else 0
        lines += [f"⏳ **pact-bot** is revising this pull request: **{steps[now][1]}**", ""]
        for i, (phase, label) in enumerate(steps):
            if phase is Phase.implementing and p.phase is phase and p.turn:
                label += f" — turn {p.turn}, ${p.cost_usd:.2f} so far"
            lines.append(f"- [{'x' if i < now else ' '}] {label}")
    return "\n".join(lines + report.footer(p))
