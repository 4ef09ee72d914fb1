"""What `pact-bot setup` prints: the page to open, and the manual route.

The command does not register anything itself: the browser flow needs the server running.
"""

from __future__ import annotations

import click

from pact_bot.settings import Settings
from pact_bot.web.setup_manifest import build_manifest, prefilled_url, valid_org
from pact_bot.web.setup_token import local_url, setup_link

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
