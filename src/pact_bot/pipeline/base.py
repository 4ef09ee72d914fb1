"""What every job on one repository shares: who asked, the repo client, GitHub as JSON.

The pipeline talks to GitHub through githubkit's `arequest` and plain JSON rather than
its typed models: the few fields we read stay stable across GitHub Enterprise Server
versions whose responses the typed models would reject.
"""

from __future__ import annotations

from typing import Any

from pact_bot.jobs.model import Job, Queue
from pact_bot.jobs.worker import JobControl
from pact_bot.pipeline.runtime import Runtime


class RepoJob:
    def __init__(self, runtime: Runtime, job: Job, control: JobControl) -> None:
        self.rt = runtime
        self.job = job
        self.control = control
        self.task = job.task
        self.owner, self.name = job.repo.split("/", 1)
        self.gh: Any = None  # the repository-scoped githubkit client, set once minted

    @property
    def queue(self) -> Queue | None:
        return self.rt.queue or self.control.queue

    async def api(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.gh.arequest(method, path, **kw)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def repo_path(self, rest: str = "") -> str:
        return f"/repos/{self.owner}/{self.name}{rest}"

    async def comment(self, body: str) -> int:
        data = await self.api(
            "POST", self.repo_path(f"/issues/{self.job.number}/comments"), json={"body": body}
        )
        return int(data["id"])
