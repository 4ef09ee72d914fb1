"""What every job kind receives: its typed task, the repository's API, the repository's
configuration (read once), what earlier attempts saved, and the worker's controls.

    async with open_context(runtime, job, control, CodeTask) as ctx:
        ...

The context holds one connection pool for the job (closed on exit) and one token that
reaches this repository only (`github.client.RepoClient`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pact_bot.github.repo_api import RepoAPI, RepoInfo
from pact_bot.jobs.model import Job, Queue
from pact_bot.jobs.tasks import Saved, TaskBase
from pact_bot.jobs.worker import JobControl
from pact_bot.pipeline.runtime import Runtime
from pact_bot.repo_config import CONFIG_PATH, RepoConfig, parse_repo_config

log = logging.getLogger(__name__)

T = TypeVar("T", bound=TaskBase)
DEFAULT_COMMAND = "/pact"


@dataclass
class JobContext(Generic[T]):
    rt: Runtime
    job: Job
    control: JobControl
    task: T
    api: RepoAPI
    saved: Saved
    _info: RepoInfo | None = None
    _config_text: tuple[str | None] | None = None
    _config: RepoConfig | None = None
    budget_note: str | None = None  # set by `steps.ensure_budget`: shown in the progress comment

    @property
    def number(self) -> int:
        return self.job.number or 0

    @property
    def sender(self) -> str:
        return self.job.sender

    @property
    def queue(self) -> Queue:
        return self.rt.queue or self.control.queue

    async def info(self) -> RepoInfo:
        """The repository's default branch and clone URL (one API call per job)."""
        if self._info is None:
            self._info = await self.api.info(self.task.default_branch)
        return self._info

    async def config_text(self) -> str | None:
        """`.github/pact.yml` on the default branch (None: no file), read once."""
        if self._config_text is None:
            branch = (await self.info()).default_branch
            self._config_text = (await self.api.file_text(CONFIG_PATH, branch),)
        return self._config_text[0]

    async def config(self) -> RepoConfig:
        """The repository's configuration; RepoConfigError when the file is invalid.

        A valid file's label and command word are cached for ingress, which routes
        the next webhooks of this repository with them.
        """
        if self._config is None:
            cfg = parse_repo_config(await self.config_text())
            try:
                await self.control.set_repo_config(self.job.repo, cfg.trigger_fields())
            except Exception:
                log.warning("could not cache the repository's trigger config", exc_info=True)
            self._config = cfg
        return self._config

    async def command_word(self) -> str:
        """The repository's command word, `/pact` when its configuration cannot be read."""
        with contextlib.suppress(Exception):
            return (await self.config()).command
        return DEFAULT_COMMAND

    async def save(self, **fields: Any) -> None:
        """Record progress for a retry (and `pact-bot jobs show`), here and in the queue."""
        for name, value in fields.items():
            if name in Saved.model_fields:
                setattr(self.saved, name, value)
        await self.control.progress(**fields)


@contextlib.asynccontextmanager
async def open_context(
    runtime: Runtime, job: Job, control: JobControl, model: type[T]
) -> AsyncIterator[JobContext[T]]:
    """The job's context over a repository client minted for it (one pool, closed on exit)."""
    task = model.model_validate(job.task)
    inst = job.installation_id or await runtime.app.installation_id(job.repo)
    client = await runtime.app.repo_client(job.repo, inst)
    async with client:
        yield JobContext(
            rt=runtime,
            job=job,
            control=control,
            task=task,
            api=RepoAPI(client),
            saved=task.progress.model_copy(),
        )
