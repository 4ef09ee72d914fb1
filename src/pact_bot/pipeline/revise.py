"""A revise job: a review (or `/pact code <instructions>`) on a bot PR in, one commit and
a reply in every thread out.

    outcome = await handle_revise(runtime, job, control)      # JobOutcome

One job answers a whole review: the agent gets the review body, every line comment (id,
path, line or range, `diff_hunk`, text) and the PR's spec and implementation summary,
works in a worktree of the PR's head branch with the same tools, budgets and checks as a
code job, and ends its last message with one `REPLY <comment_id>: …` line per comment
(`parse_replies`). Then: one commit "Address review by @user" (Co-authored-by the
reviewer) pushed to the PR branch, never forced; when the branch moved meanwhile the new
commit is rebased onto it, and a conflict stops the job with a clear message. Each review
thread gets a reply citing the commit (or saying why nothing changed); a review with only
a body, or a command, gets one PR comment. Progress comment and "PACT Code" check run as
for code jobs.

Jobs of one PR share the PR's job key, so a second review waits for the first.
The class reuses `CodeJob`'s plumbing (client, permission check, progress comment,
config, identities); only the steps differ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from githubkit.exception import GitHubException, RequestFailed

from pact_bot.confined import Refused, read_present
from pact_bot.jobs.model import Job, JobState
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline import report
from pact_bot.pipeline.checks import summary_files
from pact_bot.pipeline.code import (
    SPEC_LIMIT,
    WRITE_PERMISSIONS,
    CodeJob,
    JobFailed,
    failure_of,
)
from pact_bot.pipeline.refusal import refuse_once
from pact_bot.pipeline.report import Failure, Phase, Progress, RunStats
from pact_bot.pipeline.runtime import Runtime
from pact_bot.repo_config import glob_match
from pact_bot.specs import component_name, refusal_text, spec_refs

log = logging.getLogger(__name__)

HUNK_LIMIT = 3_000
COMMENT_LIMIT = 10_000
SUMMARY_LIMIT = 40_000
MAX_COMMENTS = 100
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
    def of(cls, data: dict[str, Any]) -> ReviewComment:
        line = data.get("line") or data.get("original_line")
        start = data.get("start_line") or data.get("original_start_line")
        return cls(
            id=int(data["id"]),
            path=str(data.get("path") or ""),
            line=int(line) if line else None,
            start_line=int(start) if start and start != line else None,
            diff_hunk=str(data.get("diff_hunk") or ""),
            body=str(data.get("body") or ""),
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
            f"Note: the branch has new commits since the review (reviewed at {moved_since[:7]})."
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
        listed = "\n".join(f"- `{f}`" for f in pr_files[:200])
        parts.append(f"## Review context: files changed in this pull request\n\n{listed}")
    for path, text in specs:
        clipped = text if len(text) <= SPEC_LIMIT else text[:SPEC_LIMIT] + "\n… (clipped)"
        parts.append(f'## Spec `{path}`\n\n<spec path="/workspace/{path}">\n{clipped}\n</spec>')
    if summary is not None:
        path, text = summary
        clipped = text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT] + "\n… (clipped)"
        parts.append(
            f"## Summary of the implementation (`/workspace/{path}`)\n\n"
            f'<summary path="/workspace/{path}">\n{clipped}\n</summary>'
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
    cite = f"[`{sha[:7]}`]({commit_url})" if sha and commit_url else (sha or "")[:7]
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


def command_instructions(task: dict[str, Any]) -> str:
    """`/pact code <words>` on a bot PR: the first line's words (spec paths included) and
    the lines below are all the request."""
    words = " ".join(str(a) for a in task.get("spec_paths") or [])
    rest = str(task.get("instructions") or "")
    return "\n".join(t for t in (words, rest) if t.strip())


def commit_title(trigger: str, reviewer: str) -> str:
    if trigger == "review":
        return f"Address review by @{reviewer}"
    return f"Apply /pact code instructions by @{reviewer}"


def progress_body(p: Progress, *, reviewer: str, done: str = "") -> str:
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
            (Phase.implementing, f"Addressing the review by @{reviewer}"),
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
    lines += ["", f"<sub>job `{p.job_id}`</sub>"]
    return "\n".join(lines)


# --- the job ------------------------------------------------------------------------


class ReviseJob(CodeJob):
    def __init__(self, runtime: Runtime, job: Job, control: JobControl) -> None:
        super().__init__(runtime, job, control)
        self.reviewer = job.sender
        self.done_text = ""
        self.pooled = False
        self.model = runtime.settings.resolve_model(None)

    async def run(self) -> JobOutcome:
        try:
            return await super().run()
        finally:
            if self.rc is not None and self.pooled:
                await self.rc.__aexit__(None, None, None)

    async def _show(self, state: Progress, *, force: bool = False) -> None:
        phase_changed = state.phase is not self.state.phase
        self.state = state
        if self.progress is None or self.gh is None:
            return
        body = progress_body(state, reviewer=self.reviewer, done=self.done_text)
        try:
            await self.progress.show(body, force=force or phase_changed)
        except GitHubException:
            log.warning("progress comment update failed", exc_info=True)
            return
        cid = self.progress.comment_id
        if cid is not None and self.saved.get("comment_id") != cid:
            self.saved["comment_id"] = cid
            await self.control.progress(comment_id=cid)

    async def _allowed(self) -> bool:
        from pact_bot.pipeline.commands import permission_of, refusal_text

        perm = await permission_of(self.api, self.repo_path(), self.job.sender)
        if perm in WRITE_PERMISSIONS:
            return True
        log.info("sender lacks permission", extra={"sender": self.job.sender, "permission": perm})
        what = "review" if self.task.get("trigger") == "review" else "command"
        await refuse_once(self, refusal_text(self.job.sender, perm, what))
        return False

    async def _react(self) -> None:
        cid = self.task.get("comment_id")
        if not cid or self.saved.get("acked"):  # the command's ack job reacted already
            return
        try:
            await self.api(
                "POST",
                self.repo_path(f"/issues/comments/{cid}/reactions"),
                json={"content": "eyes"},
            )
        except RequestFailed:
            log.warning("could not react to the command", exc_info=True)

    async def _paged(self, path: str, limit: int = 30) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in range(1, limit + 1):
            items = await self.api(
                "GET", self.repo_path(path), params={"per_page": 100, "page": page}
            )
            out.extend(items or [])
            if not items or len(items) < 100:
                break
        return out

    async def _review_comments(self) -> list[ReviewComment]:
        rid = self.task.get("review_id")
        if not rid:
            return []
        items = await self._paged(f"/pulls/{self.job.number}/reviews/{rid}/comments")
        return [ReviewComment.of(c) for c in items if not c.get("in_reply_to_id")]

    async def _run(self) -> JobOutcome:
        job, task = self.job, self.task
        trigger = str(task.get("trigger") or "review")
        inst = job.installation_id or await self.rt.app.installation_id(job.repo)
        self.rc = await self.rt.app.repo_client(job.repo, inst)
        await self.rc.__aenter__()  # one connection pool for the job, closed by run()
        self.pooled = True
        self.gh = self.rc.gh
        if not await self._allowed():
            return JobOutcome(
                JobState.failed, error=f"refused: {job.sender} lacks write permission"
            )
        review_body = str(task.get("review_body") or "")
        comments = await self._review_comments() if trigger == "review" else []
        instructions = command_instructions(task)
        if trigger == "review" and not comments and not review_body.strip():
            log.info("review without body or comments: nothing to address")
            return JobOutcome(JobState.succeeded)
        if trigger != "review" and not instructions.strip():
            instructions = "Look at the pull request again and fix what is wrong or missing."
        await self._react()
        await self._start_progress()

        repo = await self.rc.repository()
        default_branch = str(repo.get("default_branch") or task.get("default_branch") or "main")
        clone_url = str(repo["clone_url"])
        cfg = await self._config(default_branch)
        eff = cfg.effective(self.rt.settings)
        self.model = eff.model
        pr = await self.api("GET", self.repo_path(f"/pulls/{job.number}"))
        self._check_pr(pr)
        branch = str(pr["head"]["ref"])
        files = await self._paged(f"/pulls/{job.number}/files")
        pr_files = [str(f.get("filename")) for f in files if f.get("status") != "removed"]
        summaries = summary_files(pr_files)

        token = await self.rc.token()
        self.worktree = await self._prepare(clone_url, token, branch)
        wt = self.worktree
        refused: list[Refused] = []
        specs = spec_refs(str(pr.get("body") or ""), eff.spec_glob, refused=refused) or [
            f for f in pr_files if glob_match(eff.spec_glob, f)
        ]
        spec_texts = read_present(wt, specs, refused=refused)
        if refused:
            raise JobFailed(Failure.no_specs, refusal_text(refused))
        sfile = summaries[0] if summaries else None
        summary = next(iter(read_present(wt, [sfile])), None) if sfile else None
        if sfile and (m := _SUMMARY_NAME.search(sfile)):
            component = m.group(1)
        else:
            component = component_name(specs[0]) if specs else "revision"

        pushed = self.saved.get("pushed_sha")
        if pushed:  # a retry after the push: only the replies are left
            log.info("resuming after push", extra={"sha": pushed})
            stats = RunStats(**self.saved["stats"]) if self.saved.get("stats") else RunStats()
            replies = {int(k): v for k, v in (self.saved.get("replies") or {}).items()}
            return await self._answer(
                comments, replies, str(self.saved.get("final") or ""), pushed, stats, specs
            )

        reviewed = str(task.get("head_sha") or "") if trigger == "review" else ""
        message = revise_message(
            reviewer=self.reviewer,
            review_body=review_body if trigger == "review" else "",
            comments=comments,
            instructions=instructions if trigger != "review" else "",
            pr_number=job.number or 0,
            pr_title=str(pr.get("title") or ""),
            pr_files=pr_files,
            specs=spec_texts,
            summary=summary,
            moved_since=reviewed if reviewed and reviewed != pr["head"]["sha"] else None,
        )
        await self._show(Progress(job.id, Phase.implementing))

        # A revision need not touch the summary; a bot PR without one (older versions) is
        # not asked to write one either.
        existing = summaries or [f"docs/implementation-summary-{component}.md"]
        impl = await self._run_agent(wt, token, message, cfg, eff, component, (), existing)
        failed = failure_of(impl)
        if failed is not None and failed[0] is not Failure.no_change:
            raise JobFailed(*failed)
        replies = parse_replies(impl.final_text)
        final = without_replies(impl.final_text)
        await self._show(Progress(job.id, Phase.checking, stats=impl.stats))
        if await self.control.cancelled():
            raise JobFailed(Failure.cancelled)

        sha: str | None = None
        if impl.paths:
            co_author = await self._co_author()
            sha = await self.rt.workspace.commit(
                wt,
                commit_title(trigger, self.reviewer),
                author=await self._author(),
                co_authors=[co_author] if co_author else [],
            )
            await self._show(Progress(job.id, Phase.opening_pr, stats=impl.stats))
            if await self.control.cancelled():
                raise JobFailed(Failure.cancelled)
            sha = await self._push(wt, clone_url, token, branch)
            self.saved.update(pushed_sha=sha)
            await self.control.progress(
                pushed_sha=sha,
                replies={str(k): v for k, v in replies.items()},
                final=final[:5000],
                stats=_stats_dict(impl.stats),
            )
        return await self._answer(comments, replies, final, sha, impl.stats, specs, impl.diff)

    def _check_pr(self, pr: dict[str, Any]) -> None:
        head_repo = (pr.get("head") or {}).get("repo") or {}
        base_repo = (pr.get("base") or {}).get("repo") or {}
        if not head_repo or head_repo.get("full_name") != base_repo.get("full_name", self.job.repo):
            raise JobFailed(
                Failure.unsupported,
                "This pull request's branch lives in a fork, so pact-bot cannot push to it. "
                "Nothing was changed. Move the branch into this repository to have the bot "
                "revise it.",
            )
        if pr.get("state") != "open":
            raise JobFailed(
                Failure.unsupported,
                "This pull request is closed, so pact-bot did not revise it. Reopen it and "
                "review again.",
            )

    async def _prepare(self, clone_url: str, token: str, branch: str) -> Any:
        from pact_bot.workspace import WorkspaceError

        try:
            return await self.rt.workspace.prepare(
                self.job.repo, clone_url, token, branch, branch, self.job.id, reuse_branch=True
            )
        except WorkspaceError as e:
            raise JobFailed(Failure.api_error, f"git: {e}") from None

    async def _push(self, wt: Any, clone_url: str, token: str, branch: str) -> str:
        """Push without force; when the branch moved, rebase our one commit onto it once."""
        from pact_bot.workspace import PushRejected, RebaseConflict

        ws = self.rt.workspace
        for attempt in range(2):
            try:
                await ws.push(wt, clone_url, token, branch)
                return str(await ws.head(wt))
            except PushRejected as e:
                if not e.non_fast_forward or attempt:
                    raise JobFailed(Failure.push_refused, str(e).splitlines()[0][:300]) from None
            try:
                await ws.rebase_onto_remote(wt, branch, clone_url=clone_url, token=token)
            except RebaseConflict as e:
                files = ", ".join(f"`{f}`" for f in e.files[:20])
                raise JobFailed(
                    Failure.unsupported,
                    f"Someone pushed to `{branch}` while pact-bot was working, and those "
                    f"changes conflict with the revision in {files}. Nothing was pushed. "
                    "Review again (or comment `/pact code <instructions>`) once the branch "
                    "is settled.",
                ) from None
        raise JobFailed(Failure.push_refused, "the branch kept moving")

    async def _answer(
        self,
        comments: Sequence[ReviewComment],
        replies: dict[int, str],
        final: str,
        sha: str | None,
        stats: RunStats,
        specs: Sequence[str],
        diff: str = "",
    ) -> JobOutcome:
        job = self.job
        web = self.rt.settings.web_url.rstrip("/")
        pr_url = f"{web}/{job.repo}/pull/{job.number}"
        commit_url = f"{pr_url}/commits/{sha}" if sha else None
        done = {int(x) for x in self.saved.get("replied") or []}
        for c in comments:
            if c.id in done:
                continue
            body = thread_reply(replies.get(c.id), sha, commit_url)
            await self.api(
                "POST",
                self.repo_path(f"/pulls/{job.number}/comments/{c.id}/replies"),
                json={"body": body},
            )
            done.add(c.id)
            await self.control.progress(replied=sorted(done))
        if not comments and not self.saved.get("pr_comment"):
            cite = f"[`{sha[:7]}`]({commit_url})" if sha and commit_url else None
            said = final.strip()[:5000] or "(the agent said nothing more)"
            head = f"@{self.reviewer} " + (
                f"pact-bot pushed {cite}." if cite else "pact-bot made no change."
            )
            await self.comment(f"{head}\n\n{said}")
            await self.control.progress(pr_comment=True)
        if sha and self.saved.get("check_sha") != sha:
            await self._revise_check_run(sha, specs, stats, diff)
            await self.control.progress(check_sha=sha)
        n = len(comments)
        answered = f"replied to {n} comment{'s' if n != 1 else ''}" if n else "replied on the PR"
        if sha:
            self.done_text = f"pushed [`{sha[:7]}`]({commit_url}) and {answered}."
        else:
            self.done_text = f"made no change and {answered} to say why."
        await self._show(Progress(job.id, Phase.done, stats=stats), force=True)
        return JobOutcome(JobState.succeeded, pr_url=pr_url)

    async def _revise_check_run(
        self, sha: str, specs: Sequence[str], stats: RunStats, diff: str
    ) -> None:
        output = report.check_run_output(
            specs=list(specs),
            stats=stats,
            rows=report.file_rows(diff),
            model=self.model,
            job_id=self.job.id,
            summary_file=None,
        )
        output["title"] = f"{commit_title(self.task.get('trigger') or '', self.reviewer)}"
        await self._post_check_run(sha, output)


def _stats_dict(stats: RunStats) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(stats)
    d["files_touched"] = list(stats.files_touched)
    return d


async def handle_revise(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await ReviseJob(runtime, job, control).run()


__all__ = [
    "ReviewComment",
    "ReviseJob",
    "command_instructions",
    "commit_title",
    "handle_revise",
    "parse_replies",
    "revise_message",
    "thread_reply",
    "without_replies",
]
