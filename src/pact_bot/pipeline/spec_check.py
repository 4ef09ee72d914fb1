"""Spec PRs: a "PACT Code" check run with an "Implement" button, or the code job at once.

    outcome = await handle_spec_check(runtime, job, control)    # JobOutcome

On `pull_request.opened|synchronize|reopened` of a PR from this repository, the PR's
files are read (paginated) and the specs it adds or changes found with the spec glob;
`unidiff` on each spec's patch names the sections that changed. Then, per
`.github/pact.yml` `spec_prs`:
- `suggest` (default): a completed, neutral "PACT Code" check run on the head commit
  listing the specs and sections, with the requested action `implement` ("Implement");
  pressing it arrives as `check_run.requested_action` and triggers start a code job;
- `run`: the code job is enqueued right away (same task as the button's), and the check
  run says so;
- `off`: nothing.
PRs without specs, the bot's own PRs and forks get nothing. An invalid `pact.yml` gets
a neutral check run quoting the error, but only on PRs that touch the file or a spec
under the default glob, so unrelated PRs stay quiet.

`check_output(changes, mode, job_id)` is the pure text part.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

from githubkit.exception import GitHubException, RequestFailed

from pact_bot.jobs.model import Enqueued, Job, JobKind, JobState
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.pipeline.base import RepoJob
from pact_bot.pipeline.report import CHECK_NAME
from pact_bot.pipeline.runtime import Runtime
from pact_bot.repo_config import CONFIG_PATH, RepoConfigError, glob_match, parse_repo_config
from pact_bot.specs import DEFAULT_GLOB, SpecChange, spec_changes
from pact_bot.triggers import IMPLEMENT_ACTION

log = logging.getLogger(__name__)

MAX_SPEC_READS = 20
IMPLEMENT = {
    "label": "Implement",
    "description": "Implement these specs in a pull request",
    "identifier": IMPLEMENT_ACTION,
}


def check_output(changes: Sequence[SpecChange], mode: str, job_id: str = "") -> dict[str, str]:
    n = len(changes)
    specs = f"{n} spec{'s' if n != 1 else ''}"
    if mode == "run":
        title = f"Implementing {specs}"
        lead = f"pact-bot started implementing these specs (job `{job_id}`)."
    else:
        title = f"{specs} ready to implement"
        lead = 'Press "Implement" to have pact-bot implement these specs in a pull request.'
    lines = [lead, ""]
    for c in changes:
        sections = (
            f": sections {', '.join(f'“{s}”' for s in c.sections[:20])}" if c.sections else ""
        )
        lines.append(f"- `{c.path}` ({c.status}){sections}")
    return {"title": title, "summary": "\n".join(lines)[:60_000]}


class SpecCheckJob(RepoJob):
    async def run(self) -> JobOutcome:
        try:
            return await self._run()
        except (RequestFailed, GitHubException) as e:
            log.warning("spec check failed", exc_info=True)
            return JobOutcome(JobState.failed, error=f"GitHub API: {type(e).__name__}")

    async def _files(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in range(1, 31):  # GitHub lists at most 3,000 files
            items = await self.api(
                "GET",
                self.repo_path(f"/pulls/{self.job.number}/files"),
                params={"per_page": 100, "page": page},
            )
            out.extend(items or [])
            if not items or len(items) < 100:
                break
        return out

    async def _config_text(self, branch: str, path: str = CONFIG_PATH) -> str | None:
        try:
            data = await self.api(
                "GET", self.repo_path(f"/contents/{path}"), params={"ref": branch}
            )
        except RequestFailed as e:
            if e.response.status_code != 404:
                raise
            return None
        return base64.b64decode(data.get("content", "")).decode("utf-8", "replace")

    async def _run(self) -> JobOutcome:
        job = self.job
        inst = job.installation_id or await self.rt.app.installation_id(job.repo)
        async with await self.rt.app.repo_client(job.repo, inst) as rc:
            self.gh = rc.gh
            return await self._check(rc)

    async def _check(self, rc: Any) -> JobOutcome:
        job = self.job
        pr = await self.api("GET", self.repo_path(f"/pulls/{job.number}"))
        _, bot_login = await self.rt.app.identity()
        if (pr.get("user") or {}).get("login") == bot_login or pr.get("state") != "open":
            return JobOutcome(JobState.succeeded)
        head_sha = str(pr["head"]["sha"])
        repo = await rc.repository()
        default_branch = str(repo.get("default_branch") or self.task.get("default_branch"))
        files = await self._files()
        try:
            cfg = parse_repo_config(await self._config_text(default_branch))
        except RepoConfigError as e:
            touched = [str(f.get("filename")) for f in files]
            if any(p == CONFIG_PATH or glob_match(DEFAULT_GLOB, p) for p in touched):
                await self._check_run(
                    head_sha,
                    {
                        "title": f"{CONFIG_PATH} is not valid",
                        "summary": f"pact-bot cannot look for specs until it is fixed:\n\n> {e}",
                    },
                    actions=False,
                )
            return JobOutcome(JobState.failed, error=f"invalid_config: {e}")
        if cfg.spec_prs == "off":
            return JobOutcome(JobState.succeeded)
        specs = [
            f
            for f in files
            if f.get("status") != "removed" and glob_match(cfg.spec_glob, str(f.get("filename")))
        ]
        for f in specs[:MAX_SPEC_READS]:
            f["contents"] = await self._text_at(str(f["filename"]), head_sha)
        changes = spec_changes(specs, cfg.spec_glob)
        if not changes:
            return JobOutcome(JobState.succeeded)
        if cfg.spec_prs == "run":
            code_id = await self._start_code_job(pr)
            await self._check_run(head_sha, check_output(changes, "run", code_id), actions=False)
        else:
            await self._check_run(head_sha, check_output(changes, "suggest"), actions=True)
        return JobOutcome(JobState.succeeded)

    async def _text_at(self, path: str, ref: str) -> str | None:
        """A spec's new text, so each changed line is named by the heading above it even
        when that heading is far outside the patch's context lines."""
        try:
            return await self._config_text(ref, path)
        except RequestFailed:
            return None

    async def _start_code_job(self, pr: dict[str, Any]) -> str:
        """Enqueue the code job the "Implement" button would start."""
        job = self.job
        code = Job(
            kind=JobKind.code,
            key=Job.key_for(job.repo, job.number),
            repo=job.repo,
            number=job.number,
            installation_id=job.installation_id,
            delivery_id=f"{job.delivery_id}:spec_prs-run",
            sender=str((pr.get("user") or {}).get("login") or job.sender),
            task={
                "trigger": "spec_prs",
                "is_pr": True,
                "number": job.number,
                "default_branch": self.task.get("default_branch"),
                "head_sha": pr["head"]["sha"],
                "head_ref": pr["head"]["ref"],
                "base_ref": pr["base"]["ref"],
                "title": pr.get("title") or "",
                "body": pr.get("body") or "",
                "spec_paths": [],
                "instructions": "",
                "fingerprint": "code::",
            },
        )
        if self.queue is None:
            raise RuntimeError("spec_prs: run needs the queue")
        result = await self.queue.enqueue(code)
        log.info("spec PR: code job enqueued", extra={"result": str(result), "code_job": code.id})
        return code.id if result is Enqueued.created else "already queued"

    async def _check_run(self, sha: str, output: dict[str, str], *, actions: bool) -> None:
        body: dict[str, Any] = {
            "name": CHECK_NAME,
            "head_sha": sha,
            "status": "completed",
            "conclusion": "neutral",
            "external_id": self.job.id,
            "output": output,
        }
        if actions:
            body["actions"] = [IMPLEMENT]
        await self.api("POST", self.repo_path("/check-runs"), json=body)


async def handle_spec_check(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    return await SpecCheckJob(runtime, job, control).run()


__all__ = ["IMPLEMENT", "SpecCheckJob", "check_output", "handle_spec_check"]
