"""Signed cookies and server-side sessions of the run viewer.

The cookie holds only a random session id, signed (HMAC-SHA256) with a random key kept in
`PACT_DATA_DIR/session-key` (mode 0600, shared by every `serve` process like the setup
token). The GitHub user token stays on the server: one file per session under
`PACT_DATA_DIR/sessions/` (mode 0600, named by the SHA-256 of the id, so a directory
listing gives nobody a usable cookie), which every web process sharing the port can read.
No new dependency: itsdangerous is not in uv.lock and this needs twenty lines of hmac.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = "session-key"
SESSIONS_DIR = "sessions"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` with `data`, mode 0600, atomically; never replaces an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with contextlib.suppress(FileExistsError):  # another process was first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def signing_key(data_dir: Path) -> bytes:
    """The key every process signs cookies with, created by the first one asking."""
    path = data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        key = path.read_bytes().strip()
        if len(key) >= 32:
            return key
    _write_new(path, secrets.token_urlsafe(48).encode())
    return path.read_bytes().strip()


class Signer:
    """`value.signature`, for values made of URL-safe characters (no dots needed inside)."""

    def __init__(self, key: bytes, purpose: str) -> None:
        self._key = hmac.new(key, purpose.encode(), hashlib.sha256).digest()

    def _mac(self, value: str) -> str:
        return _b64(hmac.new(self._key, value.encode(), hashlib.sha256).digest())

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, signed: str | None) -> str | None:
        """The value when the signature is ours, else None."""
        if not signed or "." not in signed:
            return None
        value, mac = signed.rsplit(".", 1)
        if not hmac.compare_digest(mac.encode(), self._mac(value).encode()):
            return None
        return value


@dataclass(frozen=True)
class Session:
    login: str
    token: str  # the user's GitHub token: server-side only, never logged or rendered
    expires_at: float


class SessionStore:
    """Sessions as files under `root` (one directory shared by the web processes)."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.clock = clock

    def _path(self, sid: str) -> Path:
        return self.root / hashlib.sha256(sid.encode()).hexdigest()

    def create(self, login: str, token: str, ttl: float) -> str:
        self._sweep()
        sid = secrets.token_urlsafe(32)
        record = {"login": login, "token": token, "expires_at": self.clock() + ttl}
        _write_new(self._path(sid), json.dumps(record).encode())
        return sid

    def get(self, sid: str) -> Session | None:
        path = self._path(sid)
        try:
            record = json.loads(path.read_bytes())
            session = Session(
                str(record["login"]), str(record["token"]), float(record["expires_at"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= self.clock():
            path.unlink(missing_ok=True)
            return None
        return session

    def delete(self, sid: str) -> None:
        self._path(sid).unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Drop expired sessions (cheap: runs at sign-in only)."""
        if not self.root.is_dir():
            return
        now = self.clock()
        for path in self.root.iterdir():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if float(json.loads(path.read_bytes())["expires_at"]) <= now:
                    path.unlink(missing_ok=True)
