"""GitHub's App-manifest flow: the github.com pages that take a manifest, and the
``/app-manifests/{code}/conversions`` exchange that turns the code into App credentials.

A browser (or test) POSTs the form field ``manifest`` to ``/settings/apps/new?state=…``
(or ``/organizations/{org}/settings/apps/new``); GitHub would ask the user to confirm and
then redirect to the manifest's ``redirect_url`` with ``code`` and ``state``. The simulator
redirects at once. Converting the code registers a new App (with an installation on the
account) whose JWTs the simulator accepts from then on; a code works once.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from . import shapes
from .auth import DEFAULT_EVENTS, App, new_private_key_pem, random_token

if TYPE_CHECKING:
    from .github import GitHubSim

FORM = """<!doctype html>
<html><head><title>Create GitHub App</title></head><body>
<h1>Create GitHub App</h1>
<form method="post" action="{action}">
<textarea name="manifest" id="manifest">{manifest}</textarea>
<button type="submit" id="create">Create GitHub App</button>
</form></body></html>
"""


def manifest_routes(sim: GitHubSim) -> list[Route]:
    async def new_app(request: Request) -> Response:
        org = request.path_params.get("org")
        state = request.query_params.get("state", "")
        if request.method == "GET":
            manifest_text = request.query_params.get("manifest", "")
            if not manifest_text:
                return HTMLResponse(FORM.format(action=html.escape(str(request.url)), manifest=""))
        else:
            form = await request.form()
            manifest_text = str(form.get("manifest") or "")
        try:
            manifest = json.loads(manifest_text)
        except ValueError:
            return HTMLResponse("<p>Invalid GitHub App manifest: not JSON</p>", status_code=422)
        redirect = manifest.get("redirect_url") if isinstance(manifest, dict) else None
        if not manifest.get("url") or not redirect:
            return HTMLResponse(
                "<p>Invalid GitHub App manifest: url and redirect_url are required</p>",
                status_code=422,
            )
        code = secrets.token_hex(10)
        sim.manifest_codes[code] = {"manifest": manifest, "org": org}
        sep = "&" if "?" in redirect else "?"
        query = {"code": code} | ({"state": state} if state else {})
        return RedirectResponse(f"{redirect}{sep}{urlencode(query)}", status_code=302)

    return [
        Route("/settings/apps/new", new_app, methods=["GET", "POST"]),
        Route("/organizations/{org}/settings/apps/new", new_app, methods=["GET", "POST"]),
    ]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


def convert(sim: GitHubSim, code: str) -> dict[str, Any]:
    """Register the App described by the manifest behind ``code``; GitHub's 201 body."""
    from .github import SimError

    entry = sim.manifest_codes.pop(code, None)
    if entry is None:
        raise SimError(404, "Not Found")
    manifest: dict[str, Any] = entry["manifest"]
    owner_login = entry["org"] or sim.org
    owner_kind = "Organization" if entry["org"] else "User"
    sim.world.user(owner_login, owner_kind, "admin")
    # githubkit caches JWTs per app id in the process: ids must not repeat across simulators
    serial = sim.next_serial()
    app_id = 100_000 + serial
    name = str(manifest.get("name") or "pact-bot")
    app = App(
        id=app_id,
        slug=_slug(name),
        name=name,
        owner_login=owner_login,
        private_key_pem=new_private_key_pem(),
        webhook_secret=random_token("", 40),
        client_id=random_token("Iv23li", 14),
        client_secret=random_token("", 40),
        permissions=dict(manifest.get("default_permissions") or {}),
        events=list(manifest.get("default_events") or DEFAULT_EVENTS),
        webhook_url=(manifest.get("hook_attributes") or {}).get("url"),
        callback_urls=[str(u) for u in manifest.get("callback_urls") or []],
    )
    sim._register(app, 10_000_000 + serial)
    sim.registered_apps.append(app)
    body = dict(sim.world.app_json[app.id])
    body.update(
        {
            "description": manifest.get("description") or "",
            "external_url": manifest.get("url"),
            "client_secret": app.client_secret,
            "webhook_secret": app.webhook_secret,
            "pem": app.private_key_pem,
        }
    )
    body.setdefault("node_id", shapes.node_id("App", app.id))
    return body
