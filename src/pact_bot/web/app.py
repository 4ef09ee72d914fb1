"""The starlette application: `/`, `/webhook`, `/healthz`, `/metrics`, the setup flow
(`/setup`), the run viewer (`/jobs`, sign-in at `/login`) and its stylesheet (`/static/`).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pact_bot import __version__, metrics, spend
from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.doctor_check import Check
from pact_bot.jobs.model import Queue
from pact_bot.settings import Settings
from pact_bot.triggers import BotIdentity
from pact_bot.web import setup, signin, style, viewer
from pact_bot.web.checks import CheckCache
from pact_bot.web.webhook import WebhookEndpoint

HomeSection = Callable[[Request], str]  # an HTML fragment of `/`; see `render_home`


def status_section(request: Request) -> str:
    settings: Settings = request.app.state.settings
    missing = settings.missing_app_vars()
    if not missing:
        return (
            "<p>The GitHub App is configured. GitHub delivers webhooks to "
            "<code>/webhook</code>.</p>"
        )
    items = "".join(f"<li><code>{html.escape(v)}</code></li>" for v in missing)
    return (
        "<p><strong>Not configured yet.</strong> These environment variables are missing, "
        f"so <code>/webhook</code> answers 503:</p><ul>{items}</ul>"
    )


def _checks_html(checks: list[Check] | None) -> str:
    if checks is None:
        return "<p class=muted>Checking the configuration… reload in a few seconds.</p>"
    items = []
    for c in checks:
        fix = f"<span class=fix>Fix: {html.escape(c.fix)}</span>" if not c.ok and c.fix else ""
        items.append(
            f"<li class={'ok' if c.ok else 'bad'}><span class=mark>{'✓' if c.ok else '✗'}</span>"
            f"<strong>{html.escape(c.name)}</strong>: {html.escape(c.detail)}{fix}</li>"
        )
    passed = sum(c.ok for c in checks)
    return (
        f"<p>{passed} of {len(checks)} checks pass (the same checks as "
        f"<code>pact-bot doctor</code>).</p><ul class=checks id=checks>{''.join(items)}</ul>"
    )


def _first_steps(settings: Settings) -> str:
    if not settings.app_configured:
        return ""
    slug = settings.github_app_slug or "pact-bot"
    install = f"{settings.web_url}/apps/{slug}/installations/new"
    viewer_line = (
        "<li>Watch runs at <a href='/jobs'>/jobs</a> (sign in with GitHub).</li>"
        if signin.enabled(settings)
        else "<li>The run viewer (<code>/jobs</code>) needs <code>GITHUB_CLIENT_ID</code> and "
        "<code>GITHUB_CLIENT_SECRET</code>.</li>"
    )
    return (
        "<h2>First steps</h2><ol>"
        f"<li><a id=install href='{html.escape(install)}'>Install the App</a> on your "
        "repositories.</li>"
        "<li>Write a spec, open an issue about it and label it <code>pact:code</code> "
        "(or comment <code>/pact code</code>).</li>"
        f"{viewer_line}</ol>"
    )


def render_home(request: Request, checks: list[Check] | None = None) -> str:
    """The `/` page: `app.state.home_sections` (other parts, the setup flow, append theirs),
    then doctor's checks with ✓/✗ (`web/checks.py`) and the first steps."""
    sections = "\n".join(s(request) for s in request.app.state.home_sections)
    settings: Settings = request.app.state.settings
    body = (
        f"{sections}\n<h2>Configuration</h2>{_checks_html(checks)}{_first_steps(settings)}"
        "<p class=muted><a href='/healthz'>/healthz</a> · <a href='/metrics'>/metrics</a></p>"
    )
    return style.layout(f"pact-bot {__version__}", body)


async def home(request: Request) -> Response:
    cache: CheckCache = request.app.state.check_cache
    checks = await cache.get(request.app.state.settings)
    return HTMLResponse(render_home(request, checks), headers={"Cache-Control": "no-store"})


async def healthz(request: Request) -> Response:
    queue: Queue = request.app.state.queue
    try:
        depth = await queue.depth()
    except Exception as e:
        return JSONResponse(
            {"status": "error", "version": __version__, "error": f"queue: {type(e).__name__}"},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "version": __version__, "queue": depth})


async def metrics_endpoint(request: Request) -> Response:
    queue: Queue = request.app.state.queue
    with contextlib.suppress(Exception):
        for state, n in (await queue.depth()).items():
            metrics.queue_depth.labels(state=state).set(n)
        await spend.refresh_spend(queue, request.app.state.clock.now())
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def create_app(
    settings: Settings,
    queue: Queue,
    *,
    bot: BotIdentity | None = None,
    config_ttl: float = 30.0,
    open_queue: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """`open_queue=True` opens and closes the queue in the app's lifespan, for tests; `serve`
    opens it itself because its workers share it."""
    bot = bot or BotIdentity(getattr(settings, "github_app_slug", None) or "pact-bot")
    webhook = WebhookEndpoint(settings, queue, bot, config_ttl=config_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if open_queue:
            await queue.open()
        try:
            yield
        finally:
            if open_queue:
                await queue.close()

    app = _App(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/webhook", _CurrentWebhook(), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *style.routes,
            *signin.routes,
            *viewer.routes,
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.queue = queue
    app.state.clock = clock  # what month `/metrics` counts spend in
    app.state.bot = bot
    app.state.home_sections = [status_section]
    app.state.check_cache = CheckCache()
    app.state.auth = signin.Auth(settings)
    app.state.webhook = webhook

    def on_settings_changed(new: Settings) -> None:
        """The setup flow registered the App: verify deliveries with its secret from now on."""
        app.state.bot = BotIdentity(getattr(new, "github_app_slug", None) or "pact-bot")
        app.state.webhook = WebhookEndpoint(new, queue, app.state.bot, config_ttl=config_ttl)

    app.state.on_settings_changed = on_settings_changed
    setup.install(app)
    return app


class _App(Starlette):
    """Starlette, with `POST /webhook` dispatched straight to the endpoint: the error and
    exception middleware and the router cost a few µs on each resume of every delivery.
    The endpoint catches what it expects; anything else still reaches uvicorn's 500."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/webhook" and scope["method"] == "POST":
            scope["app"] = self
            await self.state.webhook.asgi(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _CurrentWebhook:
    """`/webhook` via `app.state.webhook`, which the setup flow replaces without a restart.

    An ASGI app (a class instance, so starlette does not wrap it in Request/Response)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["app"].state.webhook.asgi(scope, receive, send)
