"""Objects a worker process shares across jobs: settings, the App client, the workspace, the model.

Built once per process by `build_handler`; each is created on first use so a process
that only runs local mode never needs the GitHub App, and one that never calls the
model never needs the key. Tests build a `Runtime` directly with their own settings.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.github.client import GitHubApp
from pact_bot.jobs.model import Queue
from pact_bot.logs import register_secrets
from pact_bot.settings import Settings
from pact_bot.workspace import Workspace

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from pact_bot.agent.loop import RetryPolicy

log = logging.getLogger(__name__)


class MissingModelKey(Exception):
    """Neither ANTHROPIC_API_KEY nor ANTHROPIC_BASE_URL is set."""


def anthropic_client(settings: Settings, *, max_retries: int = 0) -> AsyncAnthropic:
    """The SDK client from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL.

    SDK retries are off: the agent loop retries 429/529/5xx itself so that waiting
    counts against the job's wall-time budget and shows in the transcript.
    """
    from anthropic import AsyncAnthropic  # the SDK costs ~2 s to import: only when used

    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    if not key and not settings.anthropic_base_url:
        raise MissingModelKey(
            "ANTHROPIC_API_KEY is not set (or set ANTHROPIC_BASE_URL to a compatible endpoint)"
        )
    kwargs: dict[str, Any] = {"api_key": key or "unused", "max_retries": max_retries}
    if settings.anthropic_base_url:
        kwargs["base_url"] = settings.anthropic_base_url
    return AsyncAnthropic(**kwargs)


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
