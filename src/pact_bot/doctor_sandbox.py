"""`pact-bot doctor` lines about what jobs' commands find: the toolchains visible inside the
real sandbox (what setup and tests can use), socat for the sandbox's network, and the data
directory's disk use against `PACT_DATA_MAX_GB`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from pact_bot.agent.tools.bash import BashTool
from pact_bot.agent.tools.bwrap import sandbox_available
from pact_bot.agent.tools.limits import Limits
from pact_bot.doctor_check import Check
from pact_bot.housekeeping import GIB, usage
from pact_bot.settings import Settings

TOOLS = ("python3", "uv", "node", "npm", "git")


def probe_command(tools: Sequence[str]) -> str:
    return (
        f"for t in {' '.join(tools)}; do v=$($t --version 2>/dev/null | head -n1) && "
        '[ -n "$v" ] && echo "$t=$v"; done; command -v socat >/dev/null && echo "socat=yes"; true'
    )


async def probe(settings: Settings, tools: Sequence[str] = TOOLS) -> dict[str, str]:
    """`{tool: version line}` as one command inside the sandbox sees them (with the
    server's extra binds, where a toolchain outside /usr may live)."""

    with tempfile.TemporaryDirectory(prefix="pact-doctor-") as d:
        bash = BashTool(
            Path(d),
            timeout=60,
            limits=Limits.from_settings(settings),
            extra_binds=tuple(settings.pact_sandbox_binds),
            disk_cap=None,
        )
        done = await bash.outcome(probe_command(tools))
    found = {}
    for line in done.text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in (*tools, "socat"):
            found[name] = value.strip()
    return found


async def check_toolchains(settings: Settings, tools: Sequence[str] = TOOLS) -> list[Check]:

    ok, why = sandbox_available()
    if not ok:
        return [
            Check("toolchains in the sandbox", False, f"no sandbox ({why})", "see bubblewrap"),
        ]
    found = await probe(settings, tools)
    seen = [f"{t} ({found[t]})" for t in tools if t in found]
    lines = []
    if seen:
        lines.append(Check("toolchains in the sandbox", True, ", ".join(seen)))
    else:
        lines.append(
            Check(
                "toolchains in the sandbox",
                False,
                "none of " + ", ".join(tools),
                "install the toolchains your repositories need on the host or in the image "
                "(the sandbox shows /usr read-only)",
            )
        )
    if "socat" in found:
        lines.append(Check("network for setup (socat)", True, "socat found in the sandbox"))
    else:
        lines.append(
            Check(
                "network for setup (socat)",
                False,
                "socat is not in the sandbox, so setup commands cannot reach package indexes",
                "install socat (apt-get install socat)",
            )
        )
    return lines


def check_disk(settings: Settings) -> Check:
    cap = int(settings.pact_data_max_gb * GIB)
    used = usage(Path(settings.pact_data_dir))
    detail = f"{used.line()}; cap PACT_DATA_MAX_GB={settings.pact_data_max_gb:g}"
    if used.total <= cap:
        return Check("data dir disk use", True, detail)
    return Check(
        "data dir disk use",
        False,
        detail + " (over: least recently used mirrors and caches are removed after jobs)",
        "raise PACT_DATA_MAX_GB or give the data dir more room",
    )
