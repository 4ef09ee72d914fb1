"""Links to the run viewer's pages, for comments, check runs and `/pact status`.

Depends on the settings only, so the pipeline can import it without the web app.
"""

from __future__ import annotations

from urllib.parse import quote

from pact_bot.settings import Settings


def job_url(settings: Settings, job_id: str) -> str | None:
    """The job's page for people, `PACT_PUBLIC_URL/jobs/<id>`; None without a public URL
    or without the App's OAuth credentials (nobody could sign in to see it)."""
    if not settings.pact_public_url:
        return None
    if not (settings.github_client_id and settings.github_client_secret):
        return None
    return f"{settings.pact_public_url}/jobs/{quote(job_id, safe='')}"
