"""`/pact <sub> [args…]` in a comment: the command word, its arguments and free text."""

from __future__ import annotations

from dataclasses import dataclass, field

REPLY_COMMANDS = ("help", "status", "cancel")
PR_COMMANDS = ("continue", "rebase")  # only on the bot's own pull requests


@dataclass(frozen=True)
class Command:
    name: str  # code, help, status, cancel, or "" for a bare command
    args: list[str] = field(default_factory=list)
    instructions: str = ""
    sub: str = ""  # continue | rebase: a `code` job on the bot's PR with this command


def parse_command(body: str | None, command: str = "/pact") -> Command | None:
    """`/pact <sub> [args…]` on the first line, free text below; None when not a command."""
    if not body:
        return None
    first, _, rest = body.strip().partition("\n")
    tokens = first.split()
    if not tokens or tokens[0] != command:
        return None
    name = tokens[1].lower() if len(tokens) > 1 else ""
    return Command(name=name, args=tokens[2:], instructions=rest.strip())
