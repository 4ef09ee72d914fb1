"""The `/` page's configuration list: `pact-bot doctor`'s checks, run in the background.

The page is public, so it must not let anyone make the server call GitHub and Anthropic
on every view: results are shared for `TTL` seconds and one run at a time is in flight.
A page view waits at most `WAIT` seconds for a run; a slow check (an unreachable host) shows
as "checking" and the next view shows its result. Details are doctor's own words, which
name variables and hosts but never a secret's value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

from pact_bot.doctor import check_all
from pact_bot.doctor_check import Check
from pact_bot.settings import Settings

TTL = 60.0
WAIT = 3.0


def check_public_url(settings: Settings) -> Check:
    """Not one of doctor's: GitHub must reach the server, and people the run viewer."""
    name = "public URL set"
    url = settings.pact_public_url
    if not url:
        return Check(
            name,
            False,
            "PACT_PUBLIC_URL is not set",
            "set it to the https:// address GitHub reaches this server at (webhooks, sign-in "
            "and the job links in comments use it)",
        )
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        return Check(
            name,
            False,
            f"{url} is plain http",
            "serve pact-bot behind https (a reverse proxy) and set PACT_PUBLIC_URL to it",
        )
    return Check(name, True, f"{url} (webhooks at {url}/webhook)")


class CheckCache:
    """The latest results per settings object (the setup flow swaps it: a fresh run)."""

    def __init__(self) -> None:
        self._result: tuple[int, float, list[Check]] | None = None
        self._task: asyncio.Task[list[Check]] | None = None
        self._task_for = 0

    async def get(self, settings: Settings, wait: float = WAIT) -> list[Check] | None:
        """Fresh results, or None while a first run is still going."""
        key = id(settings)
        now = time.monotonic()
        cached = self._result
        if cached is not None and cached[0] == key and now - cached[1] < TTL:
            return cached[2]
        if (
            self._task is None
            or self._task.done()
            or self._task_for != key
            or self._task.get_loop() is not asyncio.get_running_loop()
        ):
            self._task = asyncio.create_task(self._run(settings, key))
            self._task_for = key
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._task), wait)
        if cached is not None and cached[0] == key:
            return cached[2]  # stale but real, while the new run finishes
        return None

    async def _run(self, settings: Settings, key: int) -> list[Check]:
        checks = [*await check_all(settings), check_public_url(settings)]
        self._result = (key, time.monotonic(), checks)
        return checks
