"""Register the GitHub App from app.yml in one click, the way Probot does (manifest flow).

With no App configured, the page posts the manifest to GitHub; GitHub creates the App and
sends the browser back to `GET /setup?code=…&state=…`; the code is exchanged for the App's
id, private key and webhook secret, which are written to the env file (mode 0600) and
loaded into the running server.

Before setup anyone who reaches the server could otherwise register *their* App into it
(and receive its webhooks' work). So the flow needs a one-time setup token: random, kept in
`PACT_DATA_DIR/setup-token` (mode 0600, shared by every process and `pact-bot setup`),
printed in the log at start-up as a link `/setup?token=…`. Opening the link (or typing the
token into the page) sets it as a cookie and redirects to a URL without it, so GitHub never
sees it; the register button appears only with that cookie, each `state` is bound to the
browser's cookie, and the callback is refused without both. The token is burned once the
credentials are saved.

Public API:
- `routes`: `GET /setup` — the "Register GitHub App" page, a setup link, or GitHub's
  redirect back; `POST /setup` — the token typed into the page.
- `setup_section(request) -> str`: a pointer to `/setup` on the `/` page (web/app.py's
  `app.state.home_sections`); empty once an App is configured.
- `setup_token(settings)`, `token_ok(settings, token)`, `setup_link(...)`,
  `announce_setup(settings, host, port)` (the start-up log line).
- `install(app)`: mounts `routes` and adds `setup_section` to `/`.
- `current_settings(request)`: the live settings, `request.app.state.settings`; the setup
  flow replaces that object, and calls `app.state.on_settings_changed(settings)` if set.
- `load_manifest()`, `build_manifest(settings, public_url, return_url)`,
  `registration_url(settings, org, state)`, `write_app_credentials(path, values, note)`.
- `print_setup_instructions(settings, org) -> int` for `pact-bot setup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import importlib.resources
import ipaddress
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import click
import yaml
from dotenv import dotenv_values
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pact_bot.logs import register_secrets
from pact_bot.settings import ConfigError, Settings, load_settings
from pact_bot.web.style import CALLBACK_PATH, layout

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 15 * 60
MAX_PENDING_STATES = 256
_ORG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_PLACEHOLDER_HOST = "example.com"
TOKEN_FILE = "setup-token"
TOKEN_COOKIE = "pact_setup_token"
BROWSER_COOKIE = "pact_setup_browser"
COOKIE_MAX_AGE = 60 * 60  # as long as GitHub's code is valid
_MAX_FORM_BYTES = 4096


# -- the manifest ---------------------------------------------------------------------------


def load_manifest() -> dict[str, Any]:
    """app.yml as shipped: inside the installed package, else at the source checkout's root."""
    res = importlib.resources.files("pact_bot").joinpath("app.yml")
    if res.is_file():
        text = res.read_text(encoding="utf-8")
    else:
        text = (Path(__file__).resolve().parents[3] / "app.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("app.yml is not a mapping")
    return data


def build_manifest(
    settings: Settings, public_url: str, return_url: str | None = None
) -> dict[str, Any]:
    """The manifest GitHub receives: webhook and redirect URLs point at this server (the
    redirect at `return_url`, the address the browser holding the setup cookies used)."""
    manifest = load_manifest()
    base = public_url.rstrip("/")
    hook = dict(manifest.get("hook_attributes") or {})
    hook["url"] = f"{base}/webhook"
    hook.setdefault("active", True)
    manifest["hook_attributes"] = hook
    manifest["redirect_url"] = f"{(return_url or base).rstrip('/')}/setup"
    # the run viewer's "Sign in with GitHub" comes back here (the App's OAuth web flow)
    manifest["callback_urls"] = [f"{base}{CALLBACK_PATH}"]
    if urlsplit(str(manifest.get("url", ""))).hostname in (None, _PLACEHOLDER_HOST):
        manifest["url"] = base
    return manifest


def valid_org(org: str) -> bool:
    return bool(_ORG_RE.match(org))


def new_app_url(settings: Settings, org: str | None) -> str:
    """GitHub's "new App" page of the user, or of the organisation."""
    if org:
        return f"{settings.web_url}/organizations/{quote(org)}/settings/apps/new"
    return f"{settings.web_url}/settings/apps/new"


def registration_url(settings: Settings, org: str | None, state: str) -> str:
    """Where the manifest form posts to."""
    return f"{new_app_url(settings, org)}?{urlencode({'state': state})}"


def prefilled_url(settings: Settings, org: str | None, public_url: str) -> str:
    """GitHub's "register with URL parameters" link: the same App, filled in by hand."""
    m = build_manifest(settings, public_url)
    params: list[tuple[str, str]] = [
        ("name", str(m["name"])),
        ("url", str(m["url"])),
        ("description", str(m.get("description", ""))),
        ("public", str(bool(m.get("public", False))).lower()),
        ("webhook_active", "true"),
        ("webhook_url", m["hook_attributes"]["url"]),
    ]
    params += [("events[]", e) for e in m.get("default_events", [])]
    params += [(k, v) for k, v in (m.get("default_permissions") or {}).items()]
    return f"{new_app_url(settings, org)}?{urlencode(params)}"


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


# -- state: one-time, short-lived, held by the server that showed the button -----------------


class _States:
    """Pending `state` values; bounded so unauthenticated page views cannot grow it."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def new(self, browser: str) -> str:
        """A state for the browser whose `BROWSER_COOKIE` is `browser`."""
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


def _env_has_app(path: Path) -> bool:
    if not path.is_file():
        return False
    return bool((dotenv_values(path).get("GITHUB_APP_ID") or "").strip())


def _quote_env(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_app_credentials(path: Path, values: dict[str, str], note: str) -> None:
    """Add the App's values to the env file, keeping its other lines; mode 0600, atomic."""
    keep = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            if "=" in line and key in values:
                continue
            keep.append(line)
    while keep and not keep[-1].strip():
        keep.pop()
    block = [f"# {' '.join(note.split())}"] + [f"{k}={_quote_env(v)}" for k, v in values.items()]
    text = "\n".join([*keep, "", *block] if keep else block) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


async def _exchange(settings: Settings, code: str) -> dict[str, Any]:
    """POST /app-manifests/{code}/conversions (unauthenticated; the code is the credential)."""
    from githubkit import GitHub

    async with GitHub(
        base_url=settings.github_api_url, http_cache=False, auto_retry=False, timeout=30
    ) as gh:
        resp = await gh.rest.apps.async_create_from_manifest(code)
        return dict(resp.json())


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


# -- pact-bot setup -------------------------------------------------------------------------


def print_setup_instructions(settings: Settings, org: str | None) -> int:
    """What `pact-bot setup` prints: the page to open, and the manual route."""
    org = org or settings.pact_github_org
    if org and not valid_org(org):
        click.echo(f"pact-bot setup: {org!r} is not a GitHub organisation login", err=True)
        return 2
    if settings.app_configured:
        click.echo(
            f"A GitHub App is already configured (GITHUB_APP_ID={settings.github_app_id}).\n"
            "Run `pact-bot doctor` to check it end to end."
        )
        return 0
    public = settings.pact_public_url or local_url(settings.pact_host, settings.pact_port)
    page = setup_link(settings, public, org)
    m = build_manifest(settings, public)
    perms = ", ".join(f"{k}: {v}" for k, v in (m.get("default_permissions") or {}).items())
    events = ", ".join(m.get("default_events") or [])
    where = f"organisation {org}" if org else "your account"
    lines = [
        f"Register pact-bot as a GitHub App on {where} ({settings.web_url}).",
        "",
        "1. Start the server:  pact-bot serve",
        f"2. Open {page}",
        "   in a browser (the link holds a one-time setup token: keep it to yourself) and",
        '   press "Register GitHub App".',
        "   GitHub shows the App from app.yml, creates it, and sends you back; pact-bot",
        "   writes GITHUB_APP_ID, GITHUB_PRIVATE_KEY and GITHUB_WEBHOOK_SECRET (and the",
        "   App's GITHUB_CLIENT_ID/SECRET, for signing in to the run viewer) to",
        f"   {settings.pact_env_file} (mode 0600) and uses them at once.",
        "3. Install the App on your repositories from the link on that page.",
        "",
        f"Headless server: ssh -L {settings.pact_port}:127.0.0.1:{settings.pact_port} <server>,",
        f"then open {setup_link(settings, f'http://127.0.0.1:{settings.pact_port}', org)}",
        "on your machine.",
    ]
    if not settings.pact_public_url:
        lines += [
            "",
            "PACT_PUBLIC_URL is not set: the webhook URL will be the address you open the page",
            "at. Set PACT_PUBLIC_URL to the URL GitHub reaches this server at.",
        ]
    lines += [
        "",
        "Or register by hand (no browser near the server):",
        f"  a. Open {prefilled_url(settings, org, public)}",
        f"     (webhook URL {m['hook_attributes']['url']}; permissions {perms};",
        f"     events {events}). Set a webhook secret: a long random string.",
        '  b. Create the App, then "Generate a private key" on its page.',
        "  c. Set GITHUB_APP_ID (shown on the App's page), GITHUB_PRIVATE_KEY_PATH (the",
        "     downloaded .pem) and GITHUB_WEBHOOK_SECRET, then restart pact-bot.",
    ]
    click.echo("\n".join(lines))
    return 0
