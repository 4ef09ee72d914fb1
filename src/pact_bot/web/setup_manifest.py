"""The GitHub App manifest (app.yml) and the GitHub URLs that register an App from it.

Shared by the `/setup` page and `pact-bot setup`, so both offer exactly the same App.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import yaml

from pact_bot.settings import Settings
from pact_bot.web.style import CALLBACK_PATH

_ORG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_PLACEHOLDER_HOST = "example.com"
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
