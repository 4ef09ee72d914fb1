"""The starlette application: `/`, `/webhook`, `/healthz`, `/metrics`.

Public API:
- `create_app(settings, queue, *, bot=None, config_ttl=30.0, open_queue=False) -> Starlette`
  (`open_queue=True` opens and closes the queue in the app's lifespan, for tests; `serve`
  opens it itself because its workers share it).
- `render_home(request) -> str`: the `/` page. It joins `app.state.home_sections`, a list of
  `(Request) -> str` HTML fragments; other parts (the setup flow) append theirs.
- `app.state.settings`, `app.state.queue`, `app.state.bot`.
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

from pact_bot import __version__, metrics
from pact_bot.jobs.model import Queue
from pact_bot.settings import Settings
from pact_bot.triggers import BotIdentity
from pact_bot.web import setup
from pact_bot.web.webhook import WebhookEndpoint

HomeSection = Callable[[Request], str]


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


def render_home(request: Request) -> str:
    sections = "\n".join(s(request) for s in request.app.state.home_sections)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>pact-bot</title></head>"
        f"<body><h1>pact-bot {html.escape(__version__)}</h1>\n{sections}\n"
        "<p><a href='/healthz'>/healthz</a> · <a href='/metrics'>/metrics</a></p>"
        "</body></html>"
    )


async def home(request: Request) -> Response:
    return HTMLResponse(render_home(request))


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
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def create_app(
    settings: Settings,
    queue: Queue,
    *,
    bot: BotIdentity | None = None,
    config_ttl: float = 30.0,
    open_queue: bool = False,
) -> Starlette:
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
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.queue = queue
    app.state.bot = bot
    app.state.home_sections = [status_section]
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
