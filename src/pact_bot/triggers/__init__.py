"""Which webhook starts which job: a pure function of the event, its payload and our identity.

`route` decides what a delivery starts (`route_event` for a payload already validated by
`github.payloads.parse_json`); the answer is a `Decision` whose `job` is None when nothing
starts and whose `reason` is a short phrase for the log. One module per kind of subject:
`issues` (the label, `/pact` commands and their acks), `pulls` (spec checks, reviews,
auto-rebase, the "Implement" button), `commits` (drift on pushes, CI fixes); `decision`
holds what they share, `commands` the command parsing.

Keys: code and revise jobs use `owner/repo#N` (one at a time per issue/PR). Reply jobs use
`owner/repo#N:reply` and spec checks `owner/repo#N:check`: they are quick, and must not sit
behind a 30-minute code job of the same issue.

Tasks are the typed models of `pact_bot.jobs.tasks` (one per job kind), stored as the
fields each trigger sets. `TriggerConfig.from_repo_config` reads the keys workers cache
from `.github/pact.yml` (`label`, `command`, `auto_rebase`).
"""

from pydantic import ValidationError

from pact_bot.triggers.commands import Command, parse_command
from pact_bot.triggers.decision import BotIdentity, Decision, TriggerConfig, new_job_id
from pact_bot.triggers.pulls import IMPLEMENT_ACTION
from pact_bot.triggers.routing import ROUTED_EVENTS, route, route_event

__all__ = [
    "IMPLEMENT_ACTION",
    "ROUTED_EVENTS",
    "BotIdentity",
    "Command",
    "Decision",
    "TriggerConfig",
    "ValidationError",
    "new_job_id",
    "parse_command",
    "route",
    "route_event",
]
