"""`pact-bot doctor`: check the configuration end to end, one line per check.

Each line is `✓ <check>: <what was found>` or `✗ <check>: <what is wrong> — fix: <what to do>`.
Every check talks to the real thing (GitHub's API with the App's JWT, the Anthropic API,
bubblewrap, the database, the data directory); nothing is changed except a probe file in the
data directory, which is removed again.

Public API: `run_doctor(settings) -> int` (0 only when every check passes),
`async check_all(settings) -> list[Check]`, `Check(name, ok, detail, fix)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from pact_bot.settings import Settings

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


def _status(e: BaseException) -> int | None:
    resp = getattr(e, "response", None)
    code = getattr(resp, "status_code", None)
    return code if isinstance(code, int) else getattr(e, "status_code", None)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


async def check_github(settings: Settings) -> list[Check]:
    """App JWT accepted (GET /app), then installations listed (GET /app/installations)."""
    jwt_name, inst_name = "GitHub App JWT accepted", "App installed"
    missing = [v for v in settings.missing_app_vars() if v != "GITHUB_WEBHOOK_SECRET"]
    if missing:
        fix = "run `pact-bot setup` to register the App, or set " + ", ".join(missing)
        return [
            Check(jwt_name, False, f"{', '.join(missing)} not set", fix),
            Check(inst_name, False, "needs the App's credentials", fix),
        ]
    from githubkit import AppAuthStrategy, GitHub

    assert settings.github_private_key is not None
    auth = AppAuthStrategy(
        str(settings.github_app_id), settings.github_private_key.get_secret_value()
    )
    async with GitHub(
        auth, base_url=settings.github_api_url, http_cache=False, auto_retry=False, timeout=TIMEOUT
    ) as gh:
        try:
            app = (await gh.rest.apps.async_get_authenticated()).json()
        except Exception as e:
            status = _status(e)
            if status in (401, 403, 404):
                detail = f"{settings.github_api_url} answered {status} to GET /app"
                fix = (
                    "GITHUB_APP_ID and GITHUB_PRIVATE_KEY must belong to the same App: copy the "
                    "App ID from the App's settings page and generate a new private key there"
                )
            else:
                detail = f"cannot reach {settings.github_api_url} ({_first_line(e)})"
                fix = (
                    "check GITHUB_API_URL (Enterprise Server: https://HOST/api/v3) and the network"
                )
            skip = Check(inst_name, False, "not checked: the JWT was not accepted", fix)
            return [Check(jwt_name, False, detail, fix), skip]
        slug = app.get("slug") or app.get("name") or "?"
        checks = [Check(jwt_name, True, f"App {slug} (id {app.get('id')}) on {settings.web_url}")]
        install_url = (
            f"{app.get('html_url') or f'{settings.web_url}/apps/{slug}'}/installations/new"
        )
        try:
            installs = (await gh.rest.apps.async_list_installations(per_page=100)).json()
        except Exception as e:
            checks.append(
                Check(
                    inst_name,
                    False,
                    f"GET /app/installations failed ({_first_line(e)})",
                    "retry; if it persists, check GitHub's status and GITHUB_API_URL",
                )
            )
            return checks
        if not installs:
            checks.append(
                Check(
                    inst_name,
                    False,
                    "the App has no installations",
                    f"install it on your repositories: {install_url}",
                )
            )
        else:
            accounts = [str((i.get("account") or {}).get("login", "?")) for i in installs]
            shown = ", ".join(accounts[:5]) + (", …" if len(accounts) > 5 else "")
            checks.append(Check(inst_name, True, f"{len(installs)} installation(s): {shown}"))
        return checks


def check_webhook_secret(settings: Settings) -> Check:
    name = "webhook secret set"
    secret = settings.github_webhook_secret
    if secret is None or not secret.get_secret_value():
        return Check(
            name,
            False,
            "GITHUB_WEBHOOK_SECRET is not set (/webhook answers 503)",
            "set GITHUB_WEBHOOK_SECRET to the secret in the App's webhook settings",
        )
    if len(secret.get_secret_value()) < 16:
        return Check(
            name,
            False,
            "GITHUB_WEBHOOK_SECRET is shorter than 16 characters",
            "set a long random secret in the App's webhook settings and in GITHUB_WEBHOOK_SECRET",
        )
    return Check(name, True, "GITHUB_WEBHOOK_SECRET is set; deliveries are verified with it")


async def check_anthropic(settings: Settings) -> Check:
    """`count_tokens` is free and needs a valid key and model: the cheapest real call."""
    name = "Anthropic key accepted"
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return Check(
            name,
            False,
            "ANTHROPIC_API_KEY is not set",
            "set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a gateway)",
        )
    import anthropic

    model = settings.resolve_model(None)
    where = settings.anthropic_base_url or "the Anthropic API"
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        max_retries=1,
        timeout=TIMEOUT,
    )
    try:
        result = await client.messages.count_tokens(
            model=model, messages=[{"role": "user", "content": "pact-bot doctor"}]
        )
    except anthropic.AuthenticationError:
        return Check(
            name,
            False,
            f"{where} refused ANTHROPIC_API_KEY (401)",
            "set ANTHROPIC_API_KEY to a valid key (your gateway's key behind a gateway)",
        )
    except anthropic.PermissionDeniedError:
        return Check(
            name,
            False,
            f"{where} denied the key access (403)",
            "use a key of a workspace allowed to call the Messages API",
        )
    except anthropic.NotFoundError:
        return Check(
            name,
            False,
            f"{where} does not know the model {model} (404)",
            "set PACT_MODEL (or PACT_MODEL_SONNET) to a model your key can use",
        )
    except anthropic.APIStatusError as e:
        return Check(
            name,
            False,
            f"{where} answered {e.status_code}",
            "retry later; check ANTHROPIC_BASE_URL if it persists",
        )
    except anthropic.APIConnectionError as e:
        return Check(
            name,
            False,
            f"cannot reach {where} ({_first_line(e)})",
            "check ANTHROPIC_BASE_URL and the network (proxies: HTTPS_PROXY)",
        )
    finally:
        await client.close()
    return Check(name, True, f"{model} via {where} ({result.input_tokens} tokens counted)")


PROVIDER_CHECK = {
    "anthropic": "Anthropic key accepted",
    "bedrock": "Bedrock credentials accepted",
    "vertex": "Vertex credentials accepted",
}


async def check_provider(settings: Settings) -> Check:
    """The PACT_PROVIDER's credentials: present and well-formed, then the cheapest real call.

    Vertex counts tokens (free). Bedrock has no free call the SDK offers, so it asks for one
    output token: a fraction of a cent.
    """
    provider = settings.pact_provider
    if provider == "anthropic":
        return await check_anthropic(settings)
    import anthropic

    from pact_bot.agent import provider as prov

    name = PROVIDER_CHECK[provider]
    fix_creds = f"set {prov.NEEDS[provider]} in the environment of pact-bot"
    try:
        if provider == "bedrock":
            auth = prov.bedrock_auth(settings)
            where = f"Bedrock in {auth.region} ({auth.source} credentials)"
        else:
            vauth = prov.vertex_auth(settings)
            where = f"Vertex in {vauth.region}, project {vauth.project} ({vauth.source})"
        client = prov.model_client(settings, max_retries=1, timeout=TIMEOUT)
    except prov.MissingModelKey as e:
        detail = f"{e.what} ({e.cause})" if e.cause else e.what
        return Check(name, False, detail, fix_creds)
    model = settings.resolve_model(None)
    messages: Any = [{"role": "user", "content": "pact-bot doctor"}]
    try:
        if provider == "bedrock":
            await client.messages.create(model=model, max_tokens=1, messages=messages)
            probe = "a 1-token call answered"
        else:
            counted = await client.messages.count_tokens(model=model, messages=messages)
            probe = f"{counted.input_tokens} tokens counted"
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as e:
        return Check(name, False, f"{where} refused the credentials ({e.status_code})", fix_creds)
    except (anthropic.NotFoundError, anthropic.BadRequestError) as e:
        return Check(
            name,
            False,
            f"{where} does not offer the model {model} ({e.status_code})",
            "enable the model for your account, or set PACT_MODEL (or PACT_MODEL_SONNET) to "
            "an id the provider lists",
        )
    except anthropic.APIStatusError as e:
        return Check(name, False, f"{where} answered {e.status_code}", "retry later")
    except anthropic.APIConnectionError as e:
        return Check(
            name,
            False,
            f"cannot reach {where} ({_first_line(e)})",
            "check ANTHROPIC_BEDROCK_BASE_URL / ANTHROPIC_VERTEX_BASE_URL and the network",
        )
    except Exception as e:  # google-auth's RefreshError: the token endpoint refused the key
        if type(e).__name__ != "RefreshError":
            raise
        return Check(name, False, f"Google refused the credentials ({_first_line(e)})", fix_creds)
    finally:
        await client.close()
    return Check(name, True, f"{model} via {where}: {probe}")


def check_bubblewrap() -> Check:
    name = "bubblewrap sandbox usable"
    fix = (
        "install bubblewrap (apt-get install bubblewrap); in a container allow user "
        "namespaces (docs/deployment.md: --security-opt seccomp=unconfined or a seccomp "
        "profile permitting clone/unshare)"
    )
    try:
        bash: Any = importlib.import_module("pact_bot.agent.tools.bash")
        ok, why = bash.sandbox_available()
    except (ImportError, AttributeError):
        ok, why = _probe_bwrap()
    return Check(name, bool(ok), str(why), "" if ok else fix)


def check_sandbox_limits(settings: Settings) -> Check:
    """Which mechanism caps a command's processes and memory here (cgroup or rlimits)."""
    from pact_bot.agent.tools.bash import Limits, describe_limits

    ok, detail = describe_limits(Limits.from_settings(settings))
    fix = (
        "run pact-bot as an unprivileged user (the image's `pact`, uid 10001), under systemd "
        "(systemd-run can make it a scope), or with a writable cgroup; in a container also "
        "set pids_limit and mem_limit (compose.yaml does)"
    )
    return Check("sandbox resource limits", ok, detail, "" if ok else fix)


def check_sandbox_exposure(settings: Settings) -> Check:
    """The data dir, database, env file and key must not be readable inside the sandbox."""
    from pact_bot.startup import exposed, private_paths

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
    import shutil
    import subprocess

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


async def _guard(name: str, fn: Any, *args: Any) -> list[Check]:
    """A check that breaks unexpectedly is a ✗ line, not a traceback that hides the others."""
    try:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            result = await result
    except Exception as e:
        return [
            Check(
                name,
                False,
                f"the check itself failed ({_first_line(e)})",
                "report this; the other lines still apply",
            )
        ]
    return result if isinstance(result, list) else [result]


async def check_all(settings: Settings) -> list[Check]:
    github, anthropic_check, database = await asyncio.gather(
        _guard("GitHub App JWT accepted", check_github, settings),
        _guard(PROVIDER_CHECK[settings.pact_provider], check_provider, settings),
        _guard("database reachable and migrated", check_database, settings),
    )
    bwrap = await asyncio.to_thread(check_bubblewrap)
    return [
        *github,
        check_webhook_secret(settings),
        *anthropic_check,
        bwrap,
        *await _guard("sandbox resource limits", check_sandbox_limits, settings),
        *await _guard("private files hidden from the sandbox", check_sandbox_exposure, settings),
        *database,
        *await _guard("data dir writable", check_data_dir, settings),
        *await _guard("toolchains in the sandbox", _toolchains, settings),
        *await _guard("data dir disk use", _disk, settings),
    ]


async def _toolchains(settings: Settings) -> list[Check]:
    from pact_bot.doctor_sandbox import check_toolchains

    return await check_toolchains(settings)


def _disk(settings: Settings) -> Check:
    from pact_bot.doctor_sandbox import check_disk

    return check_disk(settings)


def run_doctor(settings: Settings) -> int:
    checks = asyncio.run(check_all(settings))
    for c in checks:
        click.echo(c.line())
    failed = sum(not c.ok for c in checks)
    click.echo(f"\n{len(checks) - failed}/{len(checks)} checks passed.")
    return 0 if not failed else 1
