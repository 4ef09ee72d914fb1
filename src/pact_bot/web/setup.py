"""Register the GitHub App from app.yml in one click, the way Probot does (manifest flow).

With no App configured, the page posts the manifest to GitHub; GitHub creates the App and
sends the browser back to `GET /setup?code=…&state=…`; the code is exchanged for the App's
id, private key and webhook secret, which are written to the env file (mode 0600) and
loaded into the running server.

The flow is guarded by a one-time setup token (`web/setup_token.py`). Opening the setup link
(or typing the token into the page) sets it as a cookie and redirects to a URL without it, so
GitHub never sees it; the register button appears only with that cookie, each `state` is bound
to the browser's cookie (`web/setup_state.py`), and the callback is refused without both.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import secrets
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pact_bot.logs import register_secrets
from pact_bot.settings import ConfigError, Settings, load_settings
from pact_bot.web.setup_credentials import _env_has_app, _exchange, write_app_credentials
from pact_bot.web.setup_manifest import build_manifest, registration_url, valid_org
from pact_bot.web.setup_state import (
    STATE_TTL_SECONDS,
    _is_local,
    _lock,
    _public_url,
    _return_url,
    _states,
    current_settings,
)
from pact_bot.web.setup_token import burn_token, token_ok
from pact_bot.web.style import layout

log = logging.getLogger(__name__)

TOKEN_COOKIE = "pact_setup_token"
BROWSER_COOKIE = "pact_setup_browser"
COOKIE_MAX_AGE = 60 * 60  # as long as GitHub's code is valid
_MAX_FORM_BYTES = 4096


# -- pages ----------------------------------------------------------------------------------


# No page of the flow is cached, and none tells GitHub (or anyone) where the browser came from.
_NO_LEAK = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(layout(title, body), status_code=status, headers=_NO_LEAK)


def register_form(settings: Settings, request: Request, org: str | None, browser: str) -> str:
    """The form whose button posts the manifest to GitHub (a fresh `state` each time, bound
    to this browser's cookie)."""
    public = _public_url(settings, request)
    manifest = json.dumps(build_manifest(settings, public, _return_url(settings, request)))
    action = registration_url(settings, org, _states(request).new(browser))
    return (
        f'<form action="{html.escape(action)}" method="post">'
        f'<input type="hidden" name="manifest" value="{html.escape(manifest)}">'
        '<button type="submit" id="register">Register GitHub App</button></form>'
    )


def _register_body(settings: Settings, request: Request, org: str | None, browser: str) -> str:
    public = _public_url(settings, request)
    where = f"the organisation <code>{html.escape(org)}</code>" if org else "your account"
    warn = ""
    if not settings.pact_public_url:
        warn = (
            "<p class=warn><code>PACT_PUBLIC_URL</code> is not set, so GitHub will send "
            f"webhooks to <code>{html.escape(public)}/webhook</code>, the address this page "
            "was opened at."
            + (" GitHub cannot reach a loopback address." if _is_local(public) else "")
            + "</p>"
        )
    return (
        f"<p>Register a GitHub App on {where} at <code>{html.escape(settings.web_url)}</code> "
        "from pact-bot's <code>app.yml</code>: GitHub shows you the App it will create, then "
        "sends you back here, and pact-bot saves its credentials to "
        f"<code>{html.escape(str(settings.pact_env_file))}</code> and starts using them.</p>"
        f"{warn}{register_form(settings, request, org, browser)}"
        f"<p>Webhook URL: <code>{html.escape(public)}/webhook</code></p>"
    )


def _org(settings: Settings, request: Request) -> str | None:
    org = request.query_params.get("org") or settings.pact_github_org
    if org and not valid_org(org):
        raise ValueError(org)
    return org


def setup_section(request: Request) -> str:
    """For the `/` page (`app.state.home_sections`): where to register, while no App."""
    settings = current_settings(request)
    if settings.app_configured:
        return ""
    return (
        "<p>Register the GitHub App at <a href='/setup'>/setup</a> with the one-time setup "
        "link from pact-bot's log (or <code>pact-bot setup</code>).</p>"
    )


def _secure(settings: Settings, request: Request) -> bool:
    return _public_url(settings, request).startswith("https://")


def _set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=COOKIE_MAX_AGE,
        path="/setup",
        httponly=True,
        samesite="lax",  # sent on GitHub's top-level redirect back, not on cross-site posts
        secure=_secure(current_settings(request), request),
    )


def _clear_cookies(response: Response, request: Request) -> None:
    secure = _secure(current_settings(request), request)
    for name in (TOKEN_COOKIE, BROWSER_COOKIE):
        response.delete_cookie(name, path="/setup", httponly=True, samesite="lax", secure=secure)


def _token_form(message: str = "") -> str:
    return (
        f"{message}<p>pact-bot printed a one-time setup link when it started (the log line "
        "<code>no GitHub App yet: open this one-time link to register it</code>); "
        "<code>pact-bot setup</code> prints it too. Open that link, or paste its token:</p>"
        '<form action="/setup" method="post"><input name="token" type="password" '
        'autocomplete="off" size="44" aria-label="Setup token"> '
        '<button type="submit" id="token">Continue</button></form>'
    )


def _token_needed(status: int, message: str = "") -> HTMLResponse:
    return _page("Setup token needed", _token_form(message), status)


async def register_page(request: Request) -> Response:
    """`GET /setup` without a code: what is missing and the register button (with the
    token's cookie), or the question for the token."""
    settings = current_settings(request)
    if settings.app_configured:
        return _page(
            "pact-bot is registered",
            f"<p>GitHub App <code>{settings.github_app_id}</code> is configured. "
            "Run <code>pact-bot doctor</code> to check it end to end.</p>",
        )
    try:
        org = _org(settings, request)
    except ValueError:
        return _page("Unknown organisation", "<p class=err>Not a GitHub login.</p>", 400)
    if not token_ok(settings, request.cookies.get(TOKEN_COOKIE)):
        return _token_needed(200)
    browser = request.cookies.get(BROWSER_COOKIE) or secrets.token_urlsafe(24)
    missing = ", ".join(f"<code>{v}</code>" for v in settings.missing_app_vars())
    body = f"<p>No GitHub App is configured yet (missing {missing}).</p>"
    response = _page("Set up pact-bot", body + _register_body(settings, request, org, browser))
    _set_cookie(response, request, BROWSER_COOKIE, browser)
    return response


def _accept_token(request: Request, token: str | None, org: str | None) -> Response:
    """A presented token: as a cookie on a redirect to a URL without it, or a 403 page."""
    settings = current_settings(request)
    target = "/setup" + (f"?{urlencode({'org': org})}" if org else "")
    if settings.app_configured:
        return RedirectResponse(target, status_code=303)
    if not token_ok(settings, token):
        log.warning("setup token refused")
        return _token_needed(
            403, "<p class=err>That is not the setup token (or it was used already).</p>"
        )
    response = RedirectResponse(target, status_code=303, headers=_NO_LEAK)
    _set_cookie(response, request, TOKEN_COOKIE, token or "")
    _set_cookie(response, request, BROWSER_COOKIE, secrets.token_urlsafe(24))
    return response


async def token_submit(request: Request) -> Response:
    """`POST /setup`: the token typed into the page."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return _token_needed(413, "<p class=err>That form is too large.</p>")
    fields = parse_qs(body.decode("utf-8", "replace"))
    token = (fields.get("token") or [""])[0].strip()
    org = (fields.get("org") or [""])[0] or request.query_params.get("org")
    return _accept_token(request, token, org if org and valid_org(org) else None)


async def setup_callback(request: Request) -> Response:
    """`GET /setup`: the page, a setup link's token, or GitHub's redirect back."""
    code = request.query_params.get("code")
    state = request.query_params.get("state")
    token = request.query_params.get("token")
    if token is not None and not code and not state:
        try:
            org = _org(current_settings(request), request)
        except ValueError:
            org = None
        return _accept_token(request, token, org)
    if not code and not state:
        return await register_page(request)
    settings = current_settings(request)
    if not token_ok(settings, request.cookies.get(TOKEN_COOKIE)):
        log.warning("setup callback without the setup token refused")
        already = (
            "<p>pact-bot already has a GitHub App (its setup token is used up). If GitHub "
            "created another one just now, delete it at "
            f"<a href='{html.escape(settings.web_url)}/settings/apps'>your GitHub Apps</a>.</p>"
            if settings.app_configured
            else ""
        )
        return _page(
            "Setup token required",
            "<p class=err>Only the browser that opened pact-bot's one-time setup link can "
            "finish a registration. Nothing was registered.</p>" + already,
            403,
        )
    states = _states(request)
    if not code or not state or not states.valid(state):
        return _page(
            "Registration link expired",
            "<p class=err>This registration was not started here, or it was started more than "
            f"{STATE_TTL_SECONDS // 60} minutes ago, or it already finished.</p>"
            '<p><a href="/setup">Start again</a>.</p>',
            400,
        )
    if not states.same_browser(state, request.cookies.get(BROWSER_COOKIE)):
        log.warning("setup callback from another browser refused")
        return _page(
            "Registration started elsewhere",
            "<p class=err>This registration was started in another browser; pact-bot only "
            "finishes it in the browser that pressed the button. Nothing was registered.</p>"
            '<p><a href="/setup">Start again</a>.</p>',
            403,
        )
    async with _lock(request):
        settings = current_settings(request)
        env_file = settings.pact_env_file
        if settings.app_configured or _env_has_app(env_file):
            return _page(
                "An App is already configured",
                f"<p class=err>{html.escape(str(env_file))} (or the environment) already holds "
                f"GITHUB_APP_ID {settings.github_app_id or ''}; pact-bot does not overwrite an "
                "existing App's credentials.</p>"
                "<p>GitHub has created the new App, but its credentials were not saved. Either "
                f"delete it at <a href='{html.escape(settings.web_url)}/settings/apps'>your "
                "GitHub Apps</a>, or move the old values out of the env file and reload this "
                "page within the hour (the code GitHub sent is valid that long).</p>",
                409,
            )
        states.consume(state)
        try:
            app = await _exchange(settings, code)
        except Exception as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            log.warning("app manifest conversion failed", extra={"status": status})
            return _page(
                "GitHub did not hand over the App",
                f"<p class=err>Exchanging the code failed ({html.escape(type(e).__name__)}"
                f"{f', HTTP {status}' if status else ''}). Codes are single-use and expire "
                'after an hour. <a href="/setup">Start again</a>.</p>',
                502,
            )
        if not app.get("webhook_secret") or not app.get("pem") or not app.get("id"):
            return _page(
                "GitHub's answer is incomplete",
                "<p class=err>The App has no webhook secret or key; delete it on GitHub and "
                "register again.</p>",
                502,
            )
        values = {
            "GITHUB_APP_ID": str(app["id"]),
            "GITHUB_PRIVATE_KEY": app["pem"],
            "GITHUB_WEBHOOK_SECRET": app["webhook_secret"],
        }
        if app.get("slug"):
            values["GITHUB_APP_SLUG"] = str(app["slug"])
        if app.get("client_id") and app.get("client_secret"):
            # the App's OAuth credentials: people sign in to the run viewer (/jobs) with them
            values["GITHUB_CLIENT_ID"] = str(app["client_id"])
            values["GITHUB_CLIENT_SECRET"] = str(app["client_secret"])
        register_secrets([app["pem"], app["webhook_secret"], app.get("client_secret") or ""])
        slug = app.get("slug") or app.get("name") or ""
        note = f"GitHub App {slug} (id {app['id']}), registered by pact-bot setup"
        write_app_credentials(env_file, values, note)
        burn_token(settings)
        log.info("github app registered", extra={"app_id": app["id"], "slug": slug})
        try:
            fresh = load_settings(_env_file=env_file)
        except ConfigError as e:
            return _page(
                "Saved, but not loaded",
                f"<p class=err>The credentials are in {html.escape(str(env_file))} but the "
                f"settings do not load: {html.escape(str(e))}. Fix it and restart.</p>",
                500,
            )
        request.app.state.settings = fresh
        hook = getattr(request.app.state, "on_settings_changed", None)
        restart = ""
        if hook is not None:
            try:
                result = hook(fresh)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("applying the new App's settings failed; restart to apply")
                restart = (
                    "<p class=warn>Part of the server could not switch to the new App; "
                    "restart pact-bot to finish (the credentials are saved).</p>"
                )
    install = f"{app.get('html_url') or f'{settings.web_url}/apps/{slug}'}/installations/new"
    body = (
        f"<p>GitHub App <strong>{html.escape(str(app.get('name') or slug))}</strong> "
        f"(id <code>{app['id']}</code>) is registered; its id, private key and webhook secret "
        f"are in <code>{html.escape(str(env_file))}</code> (mode 0600), and this server is "
        "using them now.</p>"
        f'<p><a id="install" href="{html.escape(install)}">Install the App on your '
        "repositories</a>, then label an issue <code>pact:code</code> or comment "
        "<code>/pact code</code>.</p>"
        "<p>Next: set <code>ANTHROPIC_API_KEY</code> if you have not, and run "
        "<code>pact-bot doctor</code>.</p>" + restart
    )
    response = _page("pact-bot is registered", body)
    _clear_cookies(response, request)
    return response


routes = [
    Route("/setup", setup_callback, methods=["GET"]),
    Route("/setup", token_submit, methods=["POST"]),
]


def install(app: Starlette) -> None:
    """Mount `/setup` and put the register button on `/` (web/app.py's `home_sections`)."""
    app.router.routes.extend(routes)
    sections = getattr(app.state, "home_sections", None)
    if sections is not None and setup_section not in sections:
        sections.append(setup_section)
