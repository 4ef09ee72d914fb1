"""At most one refusal per sender per issue or PR: a person without write who sends many
commands (or reviews) gets told once, not once per trigger — every comment is public noise
and spends the installation's API budget.

The refusal carries a hidden marker `<!-- pact-bot:refused:<login> -->`; before posting, the
issue's comments are searched for one written by the bot itself (anyone can paste the
marker into a comment of their own). Stateless, so it holds for both queue backends and
across retries.
"""

from __future__ import annotations

import logging
import re

from pact_bot.pipeline.base import RepoJob

log = logging.getLogger(__name__)
_LOGIN = re.compile(r"[^A-Za-z0-9_.\[\]-]")


def refusal_marker(sender: str) -> str:
    return f"<!-- pact-bot:refused:{_LOGIN.sub('', sender).lower()} -->"


async def _bot_login(job: RepoJob) -> str | None:
    try:
        _, login = await job.rt.app.identity()
    except Exception:
        log.warning("cannot tell the bot's login; trusting any Bot account", exc_info=True)
        return None
    return str(login)


async def _refused_before(job: RepoJob, marker: str) -> bool:
    bot = await _bot_login(job)
    for page in range(1, 11):
        items = await job.api(
            "GET",
            job.repo_path(f"/issues/{job.job.number}/comments"),
            params={"per_page": 100, "page": page},
        )
        for c in items or []:
            user = c.get("user") or {}
            ours = user.get("login") == bot if bot else user.get("type") == "Bot"
            if ours and marker in (c.get("body") or ""):
                return True
        if not items or len(items) < 100:
            break
    return False


async def refuse_once(job: RepoJob, text: str) -> bool:
    """Post `text` (marked) unless the bot already refused this sender here; True if posted."""
    marker = refusal_marker(job.job.sender)
    if await _refused_before(job, marker):
        log.info("refused before on this issue: no new comment", extra={"sender": job.job.sender})
        return False
    await job.comment(f"{text}\n\n{marker}")
    return True
