"""The setup flow's server-side state: one-time `state` values bound to the browser, the lock
that lets one callback finish at a time, and the live settings the flow replaces.

A `state` is held by the server that showed the button and lives 15 minutes, so a callback
that GitHub sends back cannot be replayed or finished from another browser.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from urllib.parse import urlsplit

from starlette.requests import Request

from pact_bot.settings import Settings

STATE_TTL_SECONDS = 15 * 60
MAX_PENDING_STATES = 256
# -- state: one-time, short-lived, held by the server that showed the button -----------------


class _States:
    """Pending `state` values; bounded so unauthenticated page views cannot grow it."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def new(self, browser: str) -> str:
        """A state for the browser whose browser cookie is `browser`."""
        self._expire()
        state = secrets.token_urlsafe(24)
        self._pending[state] = (time.monotonic() + STATE_TTL_SECONDS, browser)
        while len(self._pending) > MAX_PENDING_STATES:
            self._pending.popitem(last=False)
        return state

    def valid(self, state: str) -> bool:
        self._expire()
        return state in self._pending

    def same_browser(self, state: str, browser: str | None) -> bool:
        entry = self._pending.get(state)
        return (
            entry is not None
            and browser is not None
            and hmac.compare_digest(entry[1].encode(), browser.encode())
        )

    def consume(self, state: str) -> bool:
        self._expire()
        return self._pending.pop(state, None) is not None

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, (exp, _) in self._pending.items() if exp <= now]:
            del self._pending[key]


def _states(request: Request) -> _States:
    st = getattr(request.app.state, "pact_setup_states", None)
    if st is None:
        st = _States()
        request.app.state.pact_setup_states = st
    return st


def _lock(request: Request) -> asyncio.Lock:
    lock = getattr(request.app.state, "pact_setup_lock", None)
    if lock is None:
        lock = asyncio.Lock()
        request.app.state.pact_setup_lock = lock
    return lock


def current_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _public_url(settings: Settings, request: Request) -> str:
    return settings.pact_public_url or str(request.base_url).rstrip("/")


def _return_url(settings: Settings, request: Request) -> str:
    """Where GitHub sends the browser back: the public URL when the page was opened through
    it (behind a proxy too), else the address it was opened at (an ssh tunnel), since the
    setup cookies belong to that address."""
    public = _public_url(settings, request)
    if urlsplit(public).hostname == request.url.hostname:
        return public
    return str(request.base_url).rstrip("/")


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
