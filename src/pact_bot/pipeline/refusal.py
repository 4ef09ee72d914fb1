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
from typing import Any

from pact_bot.pipeline.context import JobContext

log = logging.getLogger(__name__)
_LOGIN = re.compile(r"[^A-Za-z0-9_.\[\]-]")


def refusal_marker(sender: str) -> str:
    return f"<!-- pact-bot:refused:{_LOGIN.sub('', sender).lower()} -->"


async def _bot_login(ctx: JobContext[Any]) -> str:
    try:
        _, login = await ctx.rt.app.identity()
    except Exception:
        log.warning("cannot tell the bot's login; trusting any Bot account", exc_info=True)
        return "Bot"
    return str(login)


async def refuse_once(ctx: JobContext[Any], text: str) -> bool:
    """Post `text` (marked) unless the bot already refused this sender here; True if posted."""
    marker = refusal_marker(ctx.sender)
    found = await ctx.api.find_comments(ctx.number, marker, author=await _bot_login(ctx))
    if marker in found:
        log.info("refused before on this issue: no new comment", extra={"sender": ctx.sender})
        return False
    await ctx.api.comment(ctx.number, f"{text}\n\n{marker}")
    return True
