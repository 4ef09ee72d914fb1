"""Objects a worker process shares across jobs: settings, the App client, the workspace, the model.

Built once per process by `build_handler`; each is created on first use so a process
that only runs local mode never needs the GitHub App, and one that never calls the
model never needs the key. Tests build a `Runtime` directly with their own settings.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pact_bot.agent.provider import MissingModelKey, model_client
from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.github.client import GitHubApp
from pact_bot.jobs.model import Queue
from pact_bot.logs import register_secrets
from pact_bot.settings import Settings
from pact_bot.workspace import Workspace

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from pact_bot.agent.retry import RetryPolicy

log = logging.getLogger(__name__)

__all__ = ["MissingModelKey", "Runtime", "anthropic_client"]


def anthropic_client(settings: Settings, *, max_retries: int = 0) -> AsyncAnthropic:
    """The model client for PACT_PROVIDER (see `pact_bot.agent.provider`).

    SDK retries are off: the agent loop retries 429/529/5xx itself so that waiting
    counts against the job's wall-time budget and shows in the transcript.
    """
    return model_client(settings, max_retries=max_retries)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        app: GitHubApp | None = None,
        workspace: Workspace | None = None,
        model_client: AsyncAnthropic | None = None,
        queue: Queue | None = None,
        agent_retry: RetryPolicy | None = None,
        progress_interval: float = 3.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self._app = app
        self._workspace = workspace
        self._model = model_client
        # Optional: the queue, to cache trigger config for ingress (set_repo_config).
        self.queue = queue
        # The agent loop's retry policy (None: its default); tests shorten the backoff.
        self.agent_retry = agent_retry
        # Minimum seconds between progress-comment edits (GitHub's secondary rate limits).
        self.progress_interval = progress_interval
        # What the progress throttle measures time with (tests: a FakeClock).
        self.clock = clock
        register_secrets(settings.secrets())

    @property
    def app(self) -> GitHubApp:
        if self._app is None:
            self._app = GitHubApp(self.settings)
        return self._app

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace(self.settings.pact_data_dir)
        return self._workspace

    @property
    def model(self) -> AsyncAnthropic:
        if self._model is None:
            self._model = anthropic_client(self.settings)
        return self._model
