"""git's smart HTTP protocol, served by running ``git http-backend`` as a CGI program.

Mounted at ``{web}/{owner}/{name}.git/...`` (the ``clone_url`` the API returns). Clients
authenticate as with GitHub: HTTP basic auth ``x-access-token:<installation token>`` (git
sends it after a 401 with ``WWW-Authenticate``, or up front via ``http.extraHeader``).
Fetching needs ``contents: read``, pushing ``contents: write``; bodies stream both ways and
gzip'd request bodies are inflated by http-backend itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from .auth import Token
from .gitrepo import BYPASS_ENV

SERVICES = ("git-upload-pack", "git-receive-pack")


@dataclass(frozen=True)
class GitCall:
    """What a git request asked for, for the simulator's request log."""

    method: str
    path: str
    query: str
    token: str | None
    status: int


class GitHost(Protocol):
    """What the git endpoint needs from the simulator."""

    repos_root: Path

    def git_repo_path(self, owner: str, name: str) -> Path | None: ...

    def git_token(self, value: str | None) -> Token | None: ...

    def git_authorize(self, token: Token, full_name: str, write: bool) -> str | None: ...

    def git_pushed(
        self, full_name: str, token: Token, before: dict[str, str], after: dict[str, str]
    ) -> None: ...

    def git_record(self, call: GitCall) -> None: ...


def basic_password(header: str | None) -> str | None:
    """The password (the token) of a basic ``Authorization``; bearer/token forms too."""
    if not header or " " not in header:
        return None
    scheme, value = header.split(" ", 1)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except ValueError:
            return None
        return decoded.split(":", 1)[1] if ":" in decoded else None
    if scheme.lower() in ("bearer", "token"):
        return value.strip()
    return None


def _refs(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", "--git-dir", str(path), "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


class GitEndpoint:
    """Raw ASGI app: the request body is read by exactly one consumer (the feeder), which a
    ``StreamingResponse`` (listening for disconnects on the same channel) would not allow."""

    def __init__(self, host: GitHost) -> None:
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = self.host
        request = Request(scope)
        owner = request.path_params["owner"]
        name = request.path_params["name"]
        rest = request.path_params["rest"]
        full_name = f"{owner}/{name}"
        query = request.url.query
        value = basic_password(request.headers.get("authorization"))

        async def answer(status: int, text: str, headers: dict[str, str] | None = None) -> None:
            host.git_record(GitCall(request.method, request.url.path, query, value, status))
            await PlainTextResponse(text, status_code=status, headers=headers)(scope, receive, send)

        repo_path = host.git_repo_path(owner, name)
        if repo_path is None:
            return await answer(404, "Repository not found.\n")
        if rest == "info/refs":
            service = request.query_params.get("service", "")
        elif rest in SERVICES and request.method == "POST":
            service = rest
        else:
            return await answer(404, "Not Found\n")  # the dumb protocol is not served
        if service not in SERVICES:
            return await answer(403, "Please upgrade your git client.\n")
        token = host.git_token(value)
        if token is None:
            return await answer(
                401,
                "Invalid username or token. Password authentication is not supported for Git "
                "operations.\n",
                {"WWW-Authenticate": 'Basic realm="GitHub"'},
            )
        denied = host.git_authorize(token, full_name, write=service == "git-receive-pack")
        if denied:
            return await answer(403, denied + "\n")
        before = _refs(repo_path) if rest == "git-receive-pack" else None
        env = _cgi_env(request, host.repos_root, f"/{owner}/{name}.git/{rest}", token)
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        feeder = asyncio.create_task(_feed(receive, proc))
        assert proc.stdout is not None
        try:
            status, headers, first = await _cgi_headers(proc.stdout)
            host.git_record(GitCall(request.method, request.url.path, query, value, status))
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                }
            )
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            while chunk := await proc.stdout.read(65536):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await feeder
            await proc.wait()
            if before is not None:
                after = await asyncio.to_thread(_refs, repo_path)
                if after != before:
                    await asyncio.to_thread(host.git_pushed, full_name, token, before, after)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            feeder.cancel()


def _cgi_env(request: Request, root: Path, path_info: str, token: Token) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "HTTP_")) and k != BYPASS_ENV
    }
    env.update(
        {
            "GIT_PROJECT_ROOT": str(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            # GitHub serves partial clones (`--filter=blob:none`) and the lazy fetches of
            # single objects they make later
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "uploadpack.allowFilter",
            "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "uploadpack.allowAnySHA1InWant",
            "GIT_CONFIG_VALUE_1": "true",
            "PATH_INFO": path_info,
            "QUERY_STRING": request.url.query,
            "REQUEST_METHOD": request.method,
            "REMOTE_USER": token.actor,
            "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
    )
    if ctype := request.headers.get("content-type"):
        env["CONTENT_TYPE"] = ctype
    if length := request.headers.get("content-length"):
        env["CONTENT_LENGTH"] = length
    for header in ("content-encoding", "git-protocol", "accept"):
        if value := request.headers.get(header):
            env["HTTP_" + header.upper().replace("-", "_")] = value
    return env


async def _feed(receive: Receive, proc: asyncio.subprocess.Process) -> None:
    assert proc.stdin is not None
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            if chunk := message.get("body", b""):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            if not message.get("more_body", False):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()


async def _cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Parse the CGI header block; returns (status, headers, body bytes already read)."""
    buf = b""
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        chunk = await stdout.read(4096)
        if not chunk:
            break
        buf += chunk
    sep = b"\r\n\r\n" if b"\r\n\r\n" in buf else b"\n\n"
    head, _, rest = buf.partition(sep)
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        if ":" not in line:
            continue
        key, value = (part.strip() for part in line.split(":", 1))
        if key.lower() == "status":
            status = int(value.split()[0])
        else:
            headers[key] = value
    return status, headers, rest
