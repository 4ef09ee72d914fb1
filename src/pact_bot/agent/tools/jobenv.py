"""What one job's sandboxed commands share beyond the worktree: a home, caches, a way out.

A fresh `/tmp` per command is right for isolation but useless for a toolchain: a virtualenv
made by setup would be gone before the agent's first command. So each job gets a home
directory (outside the worktree, so nothing in it reaches the diff) bound read-write into
every command, and the repository's package caches are bound into that home, so the second
job of a repository does not download again. Caches are per repository, never shared between
repositories: one repository's job cannot poison another's packages.

Network is opt-in per command: only commands given a proxy socket can reach anything, and
then only the hosts the proxy allows (see `pact_bot.netproxy`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pact_bot import netproxy
from pact_bot.agent.paths import WORKSPACE

SANDBOX_HOME = "/home/pact"
SANDBOX_CACHE = f"{SANDBOX_HOME}/.cache"
# Every client we expect in the image, pointed at the one cache directory.
_CACHE_ENV = {
    "XDG_CACHE_HOME": SANDBOX_CACHE,
    "PIP_CACHE_DIR": f"{SANDBOX_CACHE}/pip",
    "UV_CACHE_DIR": f"{SANDBOX_CACHE}/uv",
    "npm_config_cache": f"{SANDBOX_CACHE}/npm",
}


@dataclass(frozen=True)
class JobEnv:
    home: Path
    cache: Path | None = None
    proxy_socket: Path | None = None
    socat: str = "socat"
    read_only_workspace: bool = False

    def networked(self, socket: Path | None) -> JobEnv:
        """The same environment with (or, given None, without) the proxy."""
        return replace(self, proxy_socket=socket)

    def read_only(self) -> JobEnv:
        """The same environment with `/workspace` read-only: the bot's own test run must
        not change what was checked and is committed after it."""
        return replace(self, read_only_workspace=True)

    def bwrap_args(self) -> list[str]:
        args = ["--bind", str(self.home), SANDBOX_HOME, "--setenv", "HOME", SANDBOX_HOME]
        if self.cache is not None:
            args += ["--bind", str(self.cache), SANDBOX_CACHE]
            for name, value in _CACHE_ENV.items():
                args += ["--setenv", name, value]
        if self.proxy_socket is not None:
            args += ["--dir", str(Path(netproxy.SANDBOX_SOCKET).parent)]
            args += ["--bind", str(self.proxy_socket), netproxy.SANDBOX_SOCKET]
            for name, value in netproxy.sandbox_env().items():
                args += ["--setenv", name, value]
        if self.read_only_workspace:
            args += ["--remount-ro", WORKSPACE]
        return args

    def command(self, command: str) -> str:
        if self.proxy_socket is None:
            return command
        return netproxy.forwarder_prelude(self.socat) + command

    @staticmethod
    def create(home: Path, cache: Path | None = None) -> JobEnv:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if cache is not None:
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            (home / ".cache").mkdir(mode=0o700, exist_ok=True)
        return JobEnv(home, cache)
