"""`reviews:` in `.github/pact.yml`: which reviews on the bot's PRs start a revision.

Applied in the worker, before the 👀 and the progress comment: ingress cannot read the
file without an API call, and a review the policy skips ends the job without a trace on
GitHub (the `[skip pact]` marker is honoured earlier, at ingress, from the payload alone).
"""

from __future__ import annotations

import logging

from pact_bot.jobs.tasks import ReviseTask
from pact_bot.pipeline.context import JobContext
from pact_bot.repo_config import RepoConfigError

log = logging.getLogger(__name__)


def review_starts_work(policy: str, state: str) -> bool:
    if policy == "command":
        return False
    if policy == "changes_requested":
        return state == "changes_requested"
    return True


async def review_wanted(ctx: JobContext[ReviseTask]) -> bool:
    """False when the repository's policy ignores this review (an invalid file is left
    to the job, which reports it)."""
    try:
        policy = (await ctx.config()).reviews
    except RepoConfigError:
        return True
    state = (ctx.task.review_state or "").lower()
    if review_starts_work(policy, state):
        return True
    log.info("review ignored by policy", extra={"policy": policy, "state": state})
    return False
