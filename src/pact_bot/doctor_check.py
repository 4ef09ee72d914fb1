"""One line of `pact-bot doctor` (and of the home page's checks): what was found, or what is
wrong and how to fix it.

The checks and the places that show them share this one type, so a check reads the same on
the terminal and on the web.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMEOUT = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"✓ {self.name}: {self.detail}"
        return f"✗ {self.name}: {self.detail} — fix: {self.fix}"
