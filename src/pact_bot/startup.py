"""What `serve`, `worker` and `code` do before anything else: keep the bot's files private.

umask 077 makes every file and directory the process creates (database, transcripts, mirrors,
worktrees, the env file) readable by its own user only. Start-up is refused when the agent's
sandbox would show one of the bot's private paths: it binds `/usr`, the system library dirs,
a few `/etc` files and `PACT_SANDBOX_BINDS` read-only, and a data dir or key under any of
them would be readable by the hostile code the agent runs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pact_bot.settings import ConfigError, Settings


def private_paths(settings: Settings) -> list[Path]:
    """The data dir, the SQLite database, the env file(s) and the private key file."""
    paths = [settings.pact_data_dir, settings.pact_env_file]
    env_file = os.environ.get("PACT_ENV_FILE")
    if env_file:
        paths.append(Path(env_file))
    if not settings.is_postgres:
        paths.append(settings.sqlite_path)
    if settings.github_private_key_path is not None:
        paths.append(settings.github_private_key_path)
    return paths


def exposed(settings: Settings) -> list[str]:
    from pact_bot.agent.tools.bwrap import exposed_paths

    return exposed_paths(private_paths(settings), settings.pact_sandbox_binds)


def secure_start(settings: Settings) -> None:
    """Refuse a private path the sandbox would show; set umask 077; make the data dir 0700."""
    shown = exposed(settings)
    if shown:
        raise ConfigError(
            "the agent's sandbox would be able to read "
            + ", ".join(shown)
            + ": move it out of the sandbox's read-only binds (/usr, /bin, /lib…, "
            "PACT_SANDBOX_BINDS) or drop that entry from PACT_SANDBOX_BINDS"
        )
    os.umask(0o077)
    data = settings.pact_data_dir
    with contextlib.suppress(OSError):
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(data, 0o700)
