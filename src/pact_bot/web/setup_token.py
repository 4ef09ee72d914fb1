"""The one-time setup token that guards `/setup` until an App is configured.

Before setup anyone who reaches the server could otherwise register *their* App into it
(and receive its webhooks' work). The token is random, kept in `PACT_DATA_DIR/setup-token`
(mode 0600, shared by every process and `pact-bot setup`), printed in the log at start-up as a
link `/setup?token=…`, and burned once the credentials are saved.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

from pact_bot.settings import Settings

log = logging.getLogger(__name__)


TOKEN_FILE = "setup-token"
# -- the one-time setup token ---------------------------------------------------------------


def _token_path(settings: Settings) -> Path:
    return settings.pact_data_dir / TOKEN_FILE


def _read_token(settings: Settings) -> str | None:
    try:
        token = _token_path(settings).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return token or None


def setup_token(settings: Settings) -> str:
    """The setup token, created if there is none (by the first of the processes asking)."""
    existing = _read_token(settings)
    if existing:
        return existing
    path = _token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process was first: use theirs
            os.link(tmp, path)  # atomic, and never replaces: readers see all of it or nothing
    finally:
        tmp.unlink(missing_ok=True)
    return _read_token(settings) or ""


def token_ok(settings: Settings, presented: str | None) -> bool:
    """Constant-time check of a presented token; none is valid once it is burned."""
    expected = _read_token(settings)
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def burn_token(settings: Settings) -> None:
    _token_path(settings).unlink(missing_ok=True)


def setup_link(settings: Settings, public_url: str, org: str | None = None) -> str:
    """The link to open: it carries the token to this server only (GitHub never sees it)."""
    query = {"token": setup_token(settings)} | ({"org": org} if org else {})
    return f"{public_url.rstrip('/')}/setup?{urlencode(query)}"


def local_url(host: str, port: int) -> str:
    """This server as a browser on the same machine (or through `ssh -L`) reaches it."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (reading, not binding)
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce_setup(settings: Settings, host: str, port: int) -> None:
    """The start-up log line with the setup link (`pact-bot serve` with no App yet)."""
    public = settings.pact_public_url or local_url(host, port)
    log.warning(
        "no GitHub App yet: open this one-time link to register it",
        extra={"url": setup_link(settings, public, settings.pact_github_org)},
    )
