"""Pick up settings the setup flow wrote to the env file while a process was running.

`pact-bot serve` hears of a registered App through `on_settings_changed`; a separate `pact-bot
worker` process only sees the env file (`PACT_ENV_FILE`) change. It asks this watch before
each job: a stat at most every `every` seconds, a reload only when the file's mtime or size
moved, so the job just claimed runs with the new App instead of failing until a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from pact_bot.clock import Interval
from pact_bot.logs import register_secrets
from pact_bot.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class EnvFileWatch:
    """Calls `on_change(new_settings)` after the env file changed and still loads."""

    def __init__(
        self, path: Path, on_change: Callable[[Settings], None], every: Interval | None = None
    ) -> None:
        self.path = path
        self._on_change = on_change
        self._every = every or Interval(3.0)  # between stats of the file
        self._seen = _stamp(path)
        self._every.mark()  # the stamp above is the first look

    def check(self) -> Settings | None:
        """The new settings when the file changed since the last look, else None."""
        if self._every.remaining() > 0:
            return None
        self._every.mark()
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return None
        self._seen = stamp
        try:
            new = load_settings(_env_file=self.path)
        except ConfigError as e:  # keep running on the old settings; say what is wrong
            log.warning("env file changed but does not load; keeping the old settings: %s", e)
            return None
        register_secrets(new.secrets())
        log.info("settings reloaded from the env file", extra={"path": str(self.path)})
        self._on_change(new)
        return new
