"""Sign in to the run viewer with GitHub: the App's own OAuth web flow, as Probot does.

`GET /login` sends the browser to `{GITHUB_WEB_URL}/login/oauth/authorize` with a fresh
`state`, which is also put in a signed, HttpOnly, SameSite=Lax cookie of that browser, so
the callback (`GET /auth/callback`) is accepted only in the browser that started it. The
code is traded for a user token on the web host (`POST /login/oauth/access_token`, GitHub
Enterprise Server included); `GET /user` with it says who signed in. The token stays on the
server (`session.SessionStore`); the browser gets a signed session id.

What a viewer may see is asked of GitHub with the viewer's own token, never the App's:
`GET /repos/{owner}/{repo}` and its `permissions.push`. Answers are cached for a minute.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pact_bot.settings import Settings
from pact_bot.web.session import Session, SessionStore, Signer, signing_key
from pact_bot.web.style import CALLBACK_PATH, VIEWER_CSP, layout

log = logging.getLogger(__name__)

SESSION_COOKIE = "pact_session"
STATE_COOKIE = "pact_oauth"
STATE_TTL = 10 * 60  # GitHub's codes live ten minutes
SESSION_TTL = 8 * 3600  # GitHub App user tokens live eight hours
ACCESS_TTL = 60.0
MAX_CACHED = 4096
TIMEOUT = 15.0
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class SignedOut(Exception):
    """GitHub no longer takes the viewer's token: sign in again."""


def enabled(settings: Settings) -> bool:
    return bool(settings.github_client_id and settings.github_client_secret)


def page(
    title: str, body: str, status: int = 200, *, session: Session | None = None
) -> HTMLResponse:
    """A run-viewer page: the shared frame, no inline code allowed, never cached."""
    nav = ""
    if session is not None:
        nav = (
            f"<span class=who>Signed in as <strong>{_esc(session.login)}</strong> · "
            "<form method=post action='/logout'><button class=link id=logout>Sign out"
            "</button></form></span>"
        )
    return HTMLResponse(
        layout(title, body, nav=nav),
        status_code=status,
        headers={**NO_STORE, "Content-Security-Policy": VIEWER_CSP},
    )


def _esc(text: str) -> str:
    return html.escape(text)


@dataclass
class _Access:
    allowed: bool
    expires_at: float


class Auth:
    """Sessions, cookie signing and the viewer's write-access cache of one app."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.data_dir = settings.pact_data_dir
        self.sessions = SessionStore(settings.pact_data_dir / "sessions", clock)
        self.clock = clock
        self._access: OrderedDict[tuple[str, str], _Access] = OrderedDict()

    @cached_property
    def _key(self) -> bytes:
        """Made on first use: a server that nobody signs in to writes no key file."""
        return signing_key(self.data_dir)

    @cached_property
    def session_signer(self) -> Signer:
        return Signer(self._key, "session")

    @cached_property
    def state_signer(self) -> Signer:
        return Signer(self._key, "oauth-state")

    def session(self, request: Request) -> Session | None:
        sid = self.session_signer.unsign(request.cookies.get(SESSION_COOKIE))
        return self.sessions.get(sid) if sid else None

    async def can_write(self, settings: Settings, session: Session, repo: str) -> bool:
        """Whether the signed-in user may push to `repo`, by their own token.

        Raises `SignedOut` when GitHub refuses the token, and httpx/githubkit errors when
        GitHub does not answer (not cached: the next view asks again)."""
        key = (hashlib.sha256(session.token.encode()).hexdigest(), repo.lower())
        hit = self._access.get(key)
        now = self.clock()
        if hit is not None and hit.expires_at > now:
            return hit.allowed
        allowed = await _push_permission(settings, session.token, repo)
        self._access[key] = _Access(allowed, now + ACCESS_TTL)
        self._access.move_to_end(key)
        while len(self._access) > MAX_CACHED:
            self._access.popitem(last=False)
        return allowed


def _github(settings: Settings, token: str) -> Any:
    from githubkit import GitHub, TokenAuthStrategy

    return GitHub(
        TokenAuthStrategy(token),
        base_url=settings.github_api_url,
        http_cache=False,
        auto_retry=False,
        timeout=TIMEOUT,
    )


def _status(e: BaseException) -> int | None:
    code = getattr(getattr(e, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


async def _push_permission(settings: Settings, token: str, repo: str) -> bool:
    owner, _, name = repo.partition("/")
    if not owner or not name:
        return False
    async with _github(settings, token) as gh:
        try:
            data = (await gh.rest.repos.async_get(owner, name)).json()
        except Exception as e:
            status = _status(e)
            if status == 401:
                raise SignedOut from None
            if status in (403, 404):
                return False
            raise
    perms = data.get("permissions") if isinstance(data, dict) else None
    return bool(isinstance(perms, dict) and perms.get("push"))


async def _login_of(settings: Settings, token: str) -> str:
    async with _github(settings, token) as gh:
        data = (await gh.rest.users.async_get_authenticated()).json()
    login = data.get("login") if isinstance(data, dict) else None
    if not isinstance(login, str) or not login:
        raise ValueError("GitHub's /user answer has no login")
    return login


def auth_of(request: Request) -> Auth:
    return request.app.state.auth  # type: ignore[no-any-return]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _public_url(settings: Settings, request: Request) -> str:
    return settings.pact_public_url or str(request.base_url).rstrip("/")


def _secure(settings: Settings, request: Request) -> bool:
    return _public_url(settings, request).startswith("https://")


def safe_next(value: str | None) -> str:
    """Only a path on this server: never `//host` or `/\\host` (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/jobs"
    if any(c in value for c in "\\\r\n\t"):
        return "/jobs"
    return value


def login_redirect(request: Request) -> Response:
    """Where a page without a session sends the browser."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", 303, headers=NO_STORE)


def _not_configured() -> HTMLResponse:
    return page(
        "Sign-in is not configured",
        "<p class=err>Signing in needs the App's OAuth credentials, "
        "<code>GITHUB_CLIENT_ID</code> and <code>GITHUB_CLIENT_SECRET</code> (the setup flow "
        "saves them; for an App registered by hand, copy them from the App's settings page "
        "and add its callback URL <code>PACT_PUBLIC_URL/auth/callback</code>).</p>",
        503,
    )


async def login(request: Request) -> Response:
    """`GET /login`: to GitHub's authorize page, with a `state` bound to this browser."""
    settings = _settings(request)
    if not enabled(settings):
        return _not_configured()
    nxt = safe_next(request.query_params.get("next"))
    public = _public_url(settings, request)
    if urlsplit(public).netloc != request.url.netloc:
        # the callback comes back to the public URL: the state cookie must live there
        return RedirectResponse(f"{public}/login?{urlencode({'next': nxt})}", 303)
    state = secrets.token_urlsafe(24)
    expires = int(auth_of(request).clock() + STATE_TTL)
    cookie = auth_of(request).state_signer.sign(f"{state}~{expires}~{_b64path(nxt)}")
    query = {
        "client_id": settings.github_client_id or "",
        "redirect_uri": f"{public}{CALLBACK_PATH}",
        "state": state,
    }
    response = RedirectResponse(
        f"{settings.web_url}/login/oauth/authorize?{urlencode(query)}", 302, headers=NO_STORE
    )
    response.set_cookie(
        STATE_COOKIE,
        cookie,
        max_age=STATE_TTL,
        path=CALLBACK_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(settings, request),
    )
    return response


def _b64path(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _unb64path(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except ValueError:
        return "/jobs"


def _refused(title: str, text: str, status: int) -> HTMLResponse:
    return page(title, f"<p class=err>{text}</p><p><a href='/login'>Sign in again</a>.</p>", status)


async def callback(request: Request) -> Response:
    """`GET /auth/callback`: GitHub's redirect back with `code` and `state`."""
    settings = _settings(request)
    auth = auth_of(request)
    if not enabled(settings):
        return _not_configured()
    if request.query_params.get("error"):
        return _refused("Sign-in cancelled", "GitHub did not sign you in.", 403)
    code = request.query_params.get("code") or ""
    state = request.query_params.get("state") or ""
    bound = auth.state_signer.unsign(request.cookies.get(STATE_COOKIE))
    parts = bound.split("~") if bound else []
    if (
        len(parts) != 3
        or not state
        or not secrets.compare_digest(parts[0].encode(), state.encode())
        or not parts[1].isdigit()
        or int(parts[1]) <= auth.clock()
    ):
        log.warning("sign-in callback refused: state not from this browser or expired")
        return _refused(
            "Sign-in refused",
            "This sign-in was not started in this browser, or it took longer than "
            f"{STATE_TTL // 60} minutes. Nothing was signed in.",
            403,
        )
    if not code:
        return _refused("Sign-in refused", "GitHub sent no code.", 400)
    nxt = safe_next(_unb64path(parts[2]))
    try:
        token, ttl = await _exchange(settings, request, code)
        login_name = await _login_of(settings, token)
    except _ExchangeRefused as e:
        log.warning("oauth code exchange refused", extra={"error": e.kind})
        return _refused("GitHub refused the sign-in", f"GitHub answered {_esc(e.kind)}.", 502)
    except Exception as e:
        log.warning("oauth sign-in failed", extra={"error": type(e).__name__})
        return _refused("GitHub did not answer", "Signing in failed; try again.", 502)
    sid = auth.sessions.create(login_name, token, min(ttl, SESSION_TTL))
    log.info("viewer signed in", extra={"login": login_name})
    response = RedirectResponse(nxt, 303, headers=NO_STORE)
    secure = _secure(settings, request)
    response.delete_cookie(
        STATE_COOKIE, path=CALLBACK_PATH, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        SESSION_COOKIE,
        auth.session_signer.sign(sid),
        max_age=int(min(ttl, SESSION_TTL)),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    return response


class _ExchangeRefused(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def _exchange(settings: Settings, request: Request, code: str) -> tuple[str, float]:
    """The user token for `code`, and how long it lives (seconds)."""
    assert settings.github_client_secret is not None
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        resp = await client.post(
            f"{settings.web_url}/login/oauth/access_token",
            data={
                "client_id": settings.github_client_id or "",
                "client_secret": settings.github_client_secret.get_secret_value(),
                "code": code,
                "redirect_uri": f"{_public_url(settings, request)}{CALLBACK_PATH}",
            },
            headers={"Accept": "application/json"},
        )
    resp.raise_for_status()
    data = resp.json()
    if not isinstance(data, dict) or data.get("error") or not data.get("access_token"):
        kind = str(data.get("error") if isinstance(data, dict) else "") or "no token"
        raise _ExchangeRefused(kind[:60])
    expires = data.get("expires_in")
    ttl = float(expires) if isinstance(expires, (int, float)) and expires > 0 else SESSION_TTL
    return str(data["access_token"]), ttl


def forget(request: Request) -> None:
    """Delete the request's server-side session (its token is gone from the server)."""
    auth = auth_of(request)
    sid = auth.session_signer.unsign(request.cookies.get(SESSION_COOKIE))
    if sid:
        auth.sessions.delete(sid)


def _from_another_site(request: Request) -> bool:
    """A browser's POST started by another page than ours: SameSite=Lax keeps the session
    cookie out of it, but the answer's cookie deletion would still sign the viewer out."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser form (curl, a script): nothing to forge
    parts = urlsplit(_public_url(_settings(request), request))
    return origin != f"{parts.scheme}://{parts.netloc}"


async def logout(request: Request) -> Response:
    """`POST /logout`, from this server's own pages only (no sign-out forged elsewhere)."""
    if _from_another_site(request):
        log.warning("sign-out from another site refused")
        return page("Sign-out refused", "<p class=err>Sign out from this server's pages.</p>", 403)
    forget(request)
    response = RedirectResponse("/", 303, headers=NO_STORE)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(_settings(request), request),
    )
    return response


routes = [
    Route("/login", login, methods=["GET"]),
    Route(CALLBACK_PATH, callback, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
