"""GitHub's OAuth web flow for a GitHub App: the "Authorize" page and the code exchange.

``GET /login/oauth/authorize?client_id=…&redirect_uri=…&state=…`` shows the page GitHub shows
a signed-in user (the simulator asks who signs in: field ``login``, prefilled from GitHub's
own ``login`` hint parameter); posting it redirects to ``redirect_uri?code=…&state=…``.
``POST /login/oauth/access_token`` (form, JSON or query parameters) trades the code for a
user token as GitHub does, answering 200 with an ``error`` field when something is wrong:
``incorrect_client_credentials`` (unknown client id or wrong secret),
``bad_verification_code`` (unknown, used, expired or another client's code),
``redirect_uri_mismatch``. The answer is JSON with ``Accept: application/json``, else
form-encoded. Codes live ten minutes (``sim.clock``) and work once.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .auth import USER_TOKEN_TTL

if TYPE_CHECKING:
    from .auth import App
    from .github import GitHubSim

CODE_TTL = 600.0
ERROR_URI = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"


@dataclass
class OAuthCode:
    client_id: str
    login: str
    redirect_uri: str
    expires_at: float


_PAGE = """<!doctype html><html><head><meta charset=utf-8><title>Authorize {name}</title>
</head><body style="font:14px system-ui,sans-serif;max-width:30rem;margin:3rem auto">
<h1>Authorize {name}</h1>
<p>{name} by <strong>{owner}</strong> wants to act on your behalf.</p>
<form method="post" action="/login/oauth/authorize">
<input type="hidden" name="client_id" value="{client_id}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<input type="hidden" name="state" value="{state}">
<label>Signed in as <input name="login" id="login" value="{login}"></label>
<button type="submit" id="authorize">Authorize {name}</button>
</form></body></html>
"""


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>Error</title><h1>Error</h1><p>{html.escape(message)}</p>",
        status_code=status,
    )


def _apps(sim: GitHubSim) -> list[App]:
    return list(sim.auth.apps.values())


def _app_of(sim: GitHubSim, client_id: str) -> App | None:
    return next((a for a in _apps(sim) if a.client_id == client_id), None)


def _redirect_ok(app: App, redirect_uri: str) -> bool:
    """GitHub: same scheme, host and port as a callback URL, path equal or below it."""
    want = urlsplit(redirect_uri)
    for cb in app.callback_urls:
        have = urlsplit(cb)
        if (want.scheme, want.netloc) != (have.scheme, have.netloc):
            continue
        base = have.path.rstrip("/")
        if want.path == have.path or want.path.startswith(base + "/"):
            return True
    return False


async def _fields(request: Request) -> dict[str, str]:
    raw = await request.body()
    fields: dict[str, str] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict):
            fields.update({k: str(v) for k, v in data.items()})
    else:
        fields.update({k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()})
    return fields


def oauth_routes(sim: GitHubSim) -> list[Route]:
    def check(fields: dict[str, str]) -> tuple[App, str] | Response:
        app = _app_of(sim, fields.get("client_id", ""))
        if app is None:
            return _error_page("Not Found", 404)
        if not app.callback_urls:
            return _error_page("This GitHub App has no callback URL for the OAuth web flow.")
        redirect_uri = fields.get("redirect_uri") or app.callback_urls[0]
        if not _redirect_ok(app, redirect_uri):
            return _error_page(
                "The redirect_uri MUST match the registered callback URL for this application."
            )
        return app, redirect_uri

    async def authorize(request: Request) -> Response:
        fields = await _fields(request) if request.method == "POST" else dict(request.query_params)
        checked = check(fields)
        if isinstance(checked, Response):
            return checked
        app, redirect_uri = checked
        state = fields.get("state", "")
        if request.method == "GET":
            return HTMLResponse(
                _PAGE.format(
                    name=html.escape(app.name),
                    owner=html.escape(app.owner_login),
                    client_id=html.escape(app.client_id),
                    redirect_uri=html.escape(redirect_uri),
                    state=html.escape(state),
                    login=html.escape(fields.get("login", "")),
                )
            )
        login = fields.get("login", "").strip()
        user = sim.world.users.get(login)
        if user is None or user.type != "User":
            return _error_page("Incorrect username or password.", 401)
        code = secrets.token_hex(10)
        sim.oauth_codes[code] = OAuthCode(
            app.client_id, login, redirect_uri, sim.clock() + CODE_TTL
        )
        sep = "&" if "?" in redirect_uri else "?"
        query = {"code": code} | ({"state": state} if state else {})
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode(query)}", status_code=302)

    async def access_token(request: Request) -> Response:
        fields = await _fields(request)
        as_json = "application/json" in request.headers.get("accept", "")

        def answer(body: dict[str, Any]) -> Response:
            if as_json:
                return JSONResponse(body)
            return Response(
                urlencode({k: str(v) for k, v in body.items()}),
                media_type="application/x-www-form-urlencoded",
            )

        def error(kind: str, description: str) -> Response:
            return answer({"error": kind, "error_description": description, "error_uri": ERROR_URI})

        app = _app_of(sim, fields.get("client_id", ""))
        secret = fields.get("client_secret", "")
        if app is None or not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            return error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        code = sim.oauth_codes.pop(fields.get("code", ""), None)  # single use, even when refused
        if code is None or code.client_id != app.client_id or code.expires_at <= sim.clock():
            return error("bad_verification_code", "The code passed is incorrect or expired.")
        if fields.get("redirect_uri") and fields["redirect_uri"] != code.redirect_uri:
            return error(
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            )
        inst = sim.auth.installation_of(app.id)
        token = sim.auth.issue_user_token(app, inst, code.login)
        return answer(
            {
                "access_token": token.value,
                "expires_in": int(USER_TOKEN_TTL.total_seconds()),
                "refresh_token": "ghr_" + secrets.token_hex(38),
                "refresh_token_expires_in": 15897600,
                "scope": "",
                "token_type": "bearer",
            }
        )

    return [
        Route("/login/oauth/authorize", authorize, methods=["GET", "POST"]),
        Route("/login/oauth/access_token", access_token, methods=["POST"]),
    ]
