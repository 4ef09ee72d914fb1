"""The values a job uses: `.github/pact.yml` under the server's maxima, with the protected
paths no repository can remove."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Always protected, whatever the repository says: `.github/` holds the workflows that run
# with the repository's secrets and this very file (which sets the protected paths).
# `.claude/**`: the agent's own definitions and Claude Code's settings (whose hooks run on
# the machine of whoever opens the checkout); the agent may not rewrite them.
BUILTIN_PROTECTED = (".github/**", ".git/**", ".claude/**")


@dataclass(frozen=True)
class Effective:
    label: str
    command: str
    spec_glob: str
    spec_prs: str
    draft: bool
    branch_prefix: str
    model: str
    max_turns: int
    max_cost_usd: float
    max_minutes: float
    sandbox: bool
    setup: tuple[str, ...]
    network_allow: tuple[str, ...]
    agent_network: bool
    test_command: str | None
    protected_paths: tuple[str, ...]
    agent: str | None
    drift: str = "check"
    phases: tuple[str, ...] = ("code",)

    def as_text(self) -> str:
        """The effective values, one per line (for `/pact help` and logs)."""
        return "\n".join(
            [
                f"label: {self.label}",
                f"command: {self.command}",
                f"spec_glob: {self.spec_glob}",
                f"spec_prs: {self.spec_prs}",
                f"pr.draft: {str(self.draft).lower()}",
                f"pr.branch_prefix: {self.branch_prefix}",
                f"model: {self.model}",
                f"limits: {self.max_turns} turns, ${self.max_cost_usd:g}, "
                f"{self.max_minutes:g} minutes",
                f"sandbox: {'on' if self.sandbox else 'off'}"
                + (f" (setup: {'; '.join(self.setup)})" if self.setup else ""),
                f"sandbox.network: {', '.join(self.network_allow) or 'package indexes only'}"
                + (" (agent too)" if self.agent_network else " (setup only)"),
                f"test_command: {self.test_command or '(detected)'}",
                f"protected_paths: {', '.join(self.protected_paths)}",
                f"agent: {self.agent or '(built-in pact-backend-coder)'}",
                f"drift: {self.drift}",
                f"phases: {', '.join(self.phases)}",
            ]
        )


def protected_patterns(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The built-in protected globs plus the repository's own, built-ins first.

    Additive on purpose: `protected_paths: []` must not unprotect the workflows.
    """
    return tuple(dict.fromkeys([*BUILTIN_PROTECTED, *extra]))


def cap(value: float | None, maximum: float) -> Any:
    return maximum if value is None else min(value, maximum)
