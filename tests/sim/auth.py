"""GitHub App authentication: App keys, RS256 JWTs, installation tokens and their scopes.

GitHub lets an App prove itself with a JWT signed by its private key (``iss`` = app id,
``exp`` at most ten minutes ahead), trade it for an installation token (``ghs_…``) that
may be narrowed to some repositories and permissions, and then checks every call against
that token. The simulator does the same so tests can prove that pact-bot scopes its tokens.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}
DEFAULT_PERMISSIONS: dict[str, str] = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "checks": "write",
    "actions": "read",
    "metadata": "read",
}
DEFAULT_EVENTS = [
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_run",
    "check_suite",
]
TOKEN_TTL = timedelta(hours=1)
USER_TOKEN_TTL = timedelta(hours=8)  # GitHub App user tokens (ghu_) expire after 8 hours
MAX_JWT_LIFETIME = 600


class AuthError(Exception):
    """An answer GitHub gives instead of the resource: 401 (who are you?) or 403 (not you)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def new_private_key_pem(pkcs8: bool = False) -> str:
    """A new 2048-bit RSA key in the PKCS#1 PEM GitHub hands out (`BEGIN RSA PRIVATE KEY`),
    or, with `pkcs8`, as a converted key reads (`BEGIN PRIVATE KEY`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    formats = serialization.PrivateFormat
    return key.private_bytes(
        serialization.Encoding.PEM,
        formats.PKCS8 if pkcs8 else formats.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@cache
def shared_private_key_pem() -> str:
    """One key per test process: generating RSA keys per test would slow the suite."""
    return new_private_key_pem()


def public_key_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def random_token(prefix: str, length: int = 36) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner_login: str
    private_key_pem: str
    webhook_secret: str
    client_id: str
    client_secret: str
    permissions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    events: list[str] = field(default_factory=lambda: list(DEFAULT_EVENTS))
    webhook_url: str | None = None
    created_at: float = field(default_factory=time.time)
    callback_urls: list[str] = field(default_factory=list)  # OAuth web flow redirect targets

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.private_key_pem)


@dataclass
class Installation:
    id: int
    app_id: int
    account_login: str
    permissions: dict[str, str]


@dataclass
class Token:
    """An installation token (``kind`` "installation", ``ghs_``), or a user token of the
    App's OAuth web flow (``kind`` "user", ``ghu_``: it acts as ``actor``, limited both by
    the App's permissions and by what that user may do on each repository).
    ``repositories`` None means every repository installed on."""

    value: str
    installation_id: int
    app_id: int
    actor: str
    repositories: frozenset[str] | None
    permissions: dict[str, str]
    expires_at: datetime
    kind: str = "installation"

    def covers_repo(self, full_name: str) -> bool:
        return self.repositories is None or full_name.lower() in self.repositories

    def allows(self, permission: str, level: str) -> bool:
        return LEVELS.get(self.permissions.get(permission, "none"), 0) >= LEVELS[level]


class Authority:
    """Apps, installations and tokens of one simulated GitHub. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}

    def add_app(self, app: App, installation_id: int) -> Installation:
        inst = Installation(installation_id, app.id, app.owner_login, dict(app.permissions))
        with self._lock:
            self.apps[app.id] = app
            self.installations[installation_id] = inst
        return inst

    def installation_of(self, app_id: int) -> Installation:
        return next(i for i in self.installations.values() if i.app_id == app_id)

    def verify_jwt(self, authorization: str | None) -> App:
        """The App whose key signed the bearer JWT, or AuthError(401) as GitHub answers."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError(401, "A JSON web token could not be decoded")
        raw = authorization.split(" ", 1)[1].strip()
        try:
            claims = jwt.decode(raw, options={"verify_signature": False})
            app = self.apps.get(int(claims.get("iss", 0)))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthError(401, "A JSON web token could not be decoded") from exc
        if app is None:
            raise AuthError(401, "Integration not found")
        try:
            claims = jwt.decode(
                raw,
                app.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=60,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires",
            ) from exc
        except jwt.PyJWTError as exc:
            raise AuthError(401, "A JSON web token could not be decoded") from exc
        now = time.time()
        if float(claims["exp"]) - now > MAX_JWT_LIFETIME + 5:
            raise AuthError(401, "'Expiration time' claim ('exp') is too far in the future")
        if float(claims["iat"]) > now + 60 or float(claims["iat"]) >= float(claims["exp"]):
            raise AuthError(
                401,
                "'Issued at' claim ('iat') must be an Integer representing "
                "the time that the assertion was issued",
            )
        return app

    def issue_token(
        self,
        installation: Installation,
        actor: str,
        repositories: list[str] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> Token:
        """A token narrowed to ``repositories`` (full names) and ``permissions``; asking for
        more than the installation has is refused with 422 as GitHub does."""
        granted = dict(installation.permissions)
        if permissions:
            for name, level in permissions.items():
                have = installation.permissions.get(name, "none")
                if LEVELS.get(level, 99) > LEVELS[have]:
                    raise AuthError(
                        422, "The permissions requested are not granted to this installation."
                    )
            granted = dict(permissions)
            granted.setdefault("metadata", "read")
        token = Token(
            value=random_token("ghs_"),
            installation_id=installation.id,
            app_id=installation.app_id,
            actor=actor,
            repositories=frozenset(r.lower() for r in repositories) if repositories else None,
            permissions=granted,
            expires_at=datetime.now(UTC) + TOKEN_TTL,
        )
        with self._lock:
            self.tokens[token.value] = token
        return token

    def issue_user_token(self, app: App, installation: Installation, login: str) -> Token:
        """A user-to-server token: the App's permissions, acting as ``login``."""
        token = Token(
            value=random_token("ghu_"),
            installation_id=installation.id,
            app_id=app.id,
            actor=login,
            repositories=None,
            permissions=dict(installation.permissions),
            expires_at=datetime.now(UTC) + USER_TOKEN_TTL,
            kind="user",
        )
        with self._lock:
            self.tokens[token.value] = token
        return token

    def token(self, authorization: str | None) -> Token | None:
        """The live token in an ``Authorization: token|Bearer ghs_…`` header, if any."""
        if not authorization or " " not in authorization:
            return None
        scheme, value = authorization.split(" ", 1)
        if scheme.lower() not in ("token", "bearer"):
            return None
        return self.lookup(value.strip())

    def lookup(self, value: str) -> Token | None:
        token = self.tokens.get(value)
        if token is None or token.expires_at <= datetime.now(UTC):
            return None
        return token

    def revoke(self, value: str) -> None:
        with self._lock:
            self.tokens.pop(value, None)
