"""Doctor checks of this host: the bubblewrap sandbox and its limits, what the sandbox could
see, the database, and the data directory.

Nothing is changed except a probe file in the data directory, which is removed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pact_bot.agent.tools.limits import Limits, describe_limits
from pact_bot.doctor_check import TIMEOUT, Check
from pact_bot.doctor_services import _first_line
from pact_bot.settings import Settings
from pact_bot.startup import exposed, private_paths


def check_bubblewrap() -> Check:
    name = "bubblewrap sandbox usable"
    fix = (
        "install bubblewrap (apt-get install bubblewrap); in a container allow user "
        "namespaces (docs/deployment.md: --security-opt seccomp=unconfined or a seccomp "
        "profile permitting clone/unshare)"
    )
    try:
        bwrap: Any = importlib.import_module("pact_bot.agent.tools.bwrap")
        ok, why = bwrap.sandbox_available()
    except (ImportError, AttributeError):
        ok, why = _probe_bwrap()
    return Check(name, bool(ok), str(why), "" if ok else fix)


def check_sandbox_limits(settings: Settings) -> Check:
    """Which mechanism caps a command's processes and memory here (cgroup or rlimits)."""
    ok, detail = describe_limits(Limits.from_settings(settings))
    fix = (
        "run pact-bot as an unprivileged user (the image's `pact`, uid 10001), under systemd "
        "(systemd-run can make it a scope), or with a writable cgroup; in a container also "
        "set pids_limit and mem_limit (compose.yaml does)"
    )
    return Check("sandbox resource limits", ok, detail, "" if ok else fix)


def check_sandbox_exposure(settings: Settings) -> Check:
    """The data dir, database, env file and key must not be readable inside the sandbox."""
    shown = exposed(settings)
    name = "private files hidden from the sandbox"
    if shown:
        return Check(
            name,
            False,
            "the sandbox would show " + ", ".join(shown) + " (serve and worker refuse to start)",
            "move them out of /usr and the other read-only binds, or drop the entry from "
            "PACT_SANDBOX_BINDS",
        )
    paths = ", ".join(str(p) for p in private_paths(settings))
    return Check(name, True, f"none of {paths} is bound into the sandbox")


def _probe_bwrap() -> tuple[bool, str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bubblewrap is not installed (no bwrap on PATH)"
    argv = [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"bubblewrap failed to start: {e}"
    if proc.returncode != 0:
        return False, f"bubblewrap cannot create a sandbox: {proc.stderr.decode()[:200].strip()}"
    return True, "bubblewrap sandbox works"


async def check_database(settings: Settings) -> Check:
    name = "database reachable and migrated"
    if not settings.is_postgres:
        return _check_sqlite(name, settings.sqlite_path)
    host = settings.pact_database_url.split("@")[-1].split("?")[0]
    import psycopg

    try:
        conn = await psycopg.AsyncConnection.connect(settings.pact_database_url, connect_timeout=5)
        await conn.close()
    except psycopg.Error as e:
        return Check(
            name,
            False,
            f"cannot connect to Postgres at {host} ({_first_line(e)})",
            "check PACT_DATABASE_URL (postgresql://user:password@host:5432/db)",
        )
    backends: Any = importlib.import_module("pact_bot.jobs.backends")
    queue = backends.open_queue(settings)
    try:
        await asyncio.wait_for(queue.open(), TIMEOUT)
        depth = await queue.depth()
    except Exception as e:
        if type(e).__name__ == "NotMigrated":
            return Check(
                name,
                False,
                f"Postgres at {host} has no pact-bot schema",
                "run `pact-bot db migrate` once (before starting web and workers)",
            )
        return Check(
            name,
            False,
            f"cannot open Postgres at {host} ({type(e).__name__})",
            "check PACT_DATABASE_URL (postgresql://user:password@host:5432/db)",
        )
    finally:
        with contextlib.suppress(Exception):
            await queue.close()
    total = sum(depth.values())
    return Check(name, True, f"Postgres at {host}, schema ready, {total} job(s)")


def _check_sqlite(name: str, path: Path) -> Check:
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and os.access(parent, os.W_OK):
            return Check(name, True, f"SQLite {path} will be created by `pact-bot serve`")
        return Check(
            name,
            False,
            f"SQLite {path}: directory {parent} is missing or read-only",
            "point PACT_DATABASE_URL at a writable place, e.g. sqlite:////data/pact-bot.db",
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        return Check(
            name,
            False,
            f"SQLite {path} cannot be read ({e})",
            "check the file's permissions, or move it aside to start afresh",
        )
    if "jobs" not in tables:
        return Check(name, False, f"SQLite {path} has no jobs table", "run `pact-bot db migrate`")
    if not os.access(path, os.W_OK):
        return Check(
            name,
            False,
            f"SQLite {path} is read-only for this user",
            "give the user running pact-bot write access to it",
        )
    return Check(name, True, f"SQLite {path}, schema ready")


def check_data_dir(settings: Settings) -> Check:
    name = "data dir writable"
    path = settings.pact_data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-") as f:
            f.write(b"ok")
            f.flush()
    except OSError as e:
        return Check(
            name,
            False,
            f"{path}: {e.strerror or e}",
            "set PACT_DATA_DIR to a directory (a volume) this user can write",
        )
    return Check(name, True, f"{path.resolve()}")
