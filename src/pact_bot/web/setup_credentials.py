"""Saving the App GitHub created: the code exchanged for its credentials, written to the env file.

The file is written mode 0600 and never overwrites an App that is already there.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from pact_bot.settings import Settings


def _env_has_app(path: Path) -> bool:
    if not path.is_file():
        return False
    return bool((dotenv_values(path).get("GITHUB_APP_ID") or "").strip())


def _quote_env(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_app_credentials(path: Path, values: dict[str, str], note: str) -> None:
    """Add the App's values to the env file, keeping its other lines; mode 0600, atomic."""
    keep = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            if "=" in line and key in values:
                continue
            keep.append(line)
    while keep and not keep[-1].strip():
        keep.pop()
    block = [f"# {' '.join(note.split())}"] + [f"{k}={_quote_env(v)}" for k, v in values.items()]
    text = "\n".join([*keep, "", *block] if keep else block) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


async def _exchange(settings: Settings, code: str) -> dict[str, Any]:
    """POST /app-manifests/{code}/conversions (unauthenticated; the code is the credential)."""
    from githubkit import GitHub

    async with GitHub(
        base_url=settings.github_api_url, http_cache=False, auto_retry=False, timeout=30
    ) as gh:
        resp = await gh.rest.apps.async_create_from_manifest(code)
        return dict(resp.json())
