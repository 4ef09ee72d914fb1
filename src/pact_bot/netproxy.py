"""The sandbox's only way out: an HTTP/HTTPS proxy on a Unix socket that allows listed hosts.

The sandbox keeps its own empty network namespace. The socket is bound into it, and a
forwarder started inside (socat, listening on the sandbox's loopback) lets ordinary clients
reach it through `HTTP_PROXY`/`HTTPS_PROXY`: pip, uv and npm all honour those. Why a Unix
socket and not a port on the host: a socket file is reachable only where it is bound, so no
other sandbox, container or host process can borrow one job's allowlist.

The proxy adds nothing of the bot's to what it forwards (no credentials, no headers), and it
answers a refused host with a 403 whose body says what to change, so the model and the setup
log see a clear error at once instead of a hang. Every refusal is recorded for the job.

An allowed *name* is not a way into the host's own network: a name that resolves to a
loopback, link-local (the cloud metadata service), private or otherwise non-public address
is refused unless an IP-literal rule names that address. The name is resolved once and the
connection goes to the address that was checked, so DNS rebinding between check and connect
has nothing to swap.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
HEAD_LIMIT = 64 * 1024
IDLE_TIMEOUT = 300.0
# Where the socket appears inside the sandbox, and the loopback port the forwarder listens on.
SANDBOX_SOCKET = "/run/pact/proxy.sock"
SANDBOX_PORT = 3128
# PyPI serves its index and its files from two hosts; allowing one without the other is useless.
_COMPANIONS = {"pypi.org": ("files.pythonhosted.org",)}
_HOST = re.compile(r"^[a-z0-9.*-]+$|^\[[0-9a-f:.]+\]$")


@dataclass(frozen=True)
class Rule:
    """`host`, `*.domain` or either with `:port` (any port when none is given)."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        raw = text.strip().lower()
        if "://" in raw:
            parts = urlsplit(raw)
            return cls(_bare(parts.hostname or ""), parts.port)
        host, _, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "")
        if not port.isdigit():
            host, port = raw, ""
        host = _bare(host)
        if not host or not _HOST.match(host):
            raise ValueError(f"not a host name: {text!r}")
        return cls(host.strip("[]"), int(port) if port else None)

    def allows(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + (f":{self.port}" if self.port else "")


def _bare(host: str) -> str:
    return host.strip().strip(".").lower()


def _public(address: str) -> bool:
    """Whether `address` is on the public internet (not the host's loopback, a link-local
    metadata service, a private network, multicast or reserved space)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` has (an IP literal is its own)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_rules(entries: Iterable[str]) -> list[Rule]:
    """Rules from settings and `.github/pact.yml`; a companion host comes with its index."""
    rules: list[Rule] = []
    for entry in entries:
        if not entry.strip():
            continue
        rule = Rule.parse(entry)
        rules.append(rule)
        rules += [Rule(c) for c in _COMPANIONS.get(rule.host, ())]
    return list(dict.fromkeys(rules))


SYSTEM_PIP_CONF = (Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"))


def host_package_indexes(
    env: dict[str, str] | None = None,
    home: Path | None = None,
    system_files: Sequence[Path] = SYSTEM_PIP_CONF,
) -> list[str]:
    """The package indexes the host itself is configured to use (pip/uv index URL, npm
    registry): what a job may reach when nothing else is allowed. Credentials in those URLs
    stay on the host: only the host name is taken."""
    env = dict(os.environ if env is None else env)
    home = home or Path(env.get("HOME", "~")).expanduser()
    urls = [env[k] for k in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX") if env.get(k)]
    urls += env.get("PIP_EXTRA_INDEX_URL", "").split() + env.get("UV_EXTRA_INDEX_URL", "").split()
    pip_files = [*system_files, home / ".config/pip/pip.conf", home / ".pip/pip.conf"]
    if env.get("PIP_CONFIG_FILE"):
        pip_files.append(Path(env["PIP_CONFIG_FILE"]))
    for path in pip_files:
        cfg = configparser.ConfigParser()
        with contextlib.suppress(OSError, configparser.Error):
            cfg.read(path)
            for section in cfg.sections():
                for key in ("index-url", "extra-index-url"):
                    urls += cfg.get(section, key, fallback="").split()
    npm = env.get("npm_config_registry") or env.get("NPM_CONFIG_REGISTRY")
    if npm:
        urls.append(npm)
    with contextlib.suppress(OSError):
        for line in (home / ".npmrc").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "registry" and value.strip():
                urls.append(value.strip())
    if not any("pypi" in u or "pythonhosted" in u for u in urls) and not env.get("PIP_INDEX_URL"):
        urls.append("https://pypi.org/simple")
    if npm is None and not any("npm" in u for u in urls):
        urls.append("https://registry.npmjs.org/")
    hosts = []
    for url in urls:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.hostname:
            hosts.append(parts.hostname + (f":{parts.port}" if parts.port else ""))
    return list(dict.fromkeys(hosts))


@dataclass
class AllowlistProxy:
    """One proxy per job: started before setup, closed when the job ends."""

    socket_path: Path
    rules: Sequence[Rule]
    on_refused: Callable[[str], None] | None = None
    refused: list[str] = field(default_factory=list)
    resolver: Callable[[str, int], Awaitable[list[str]]] = resolve
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def __aenter__(self) -> AllowlistProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def allows(self, host: str, port: int) -> bool:
        host = _bare(host)
        return any(rule.allows(host, port) for rule in self.rules)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return
        if len(head) > HEAD_LIMIT:
            return await _answer(writer, 431, "request head too large")
        first, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = first.decode("latin-1").split(" ")
        except ValueError:
            return await _answer(writer, 400, "not an HTTP proxy request")
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            port = int(port_text) if port_text.isdigit() else 443
            upstream_head = b""
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                return await _answer(writer, 400, f"expected an absolute http:// URL, got {target}")
            host, port = parts.hostname, parts.port or 80
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = [
                line
                for line in rest.split(b"\r\n")
                if line and not line.lower().startswith((b"proxy-", b"connection:"))
            ]
            upstream_head = b"\r\n".join(
                [f"{method} {path} {version}".encode("latin-1"), *kept, b"Connection: close"]
            )
            upstream_head += b"\r\n\r\n"
        host = _bare(host.strip("[]"))
        if not self.allows(host, port):
            self._refuse(host, port)
            allowed = ", ".join(str(r) for r in self.rules) or "nothing"
            return await _answer(
                writer,
                403,
                f"pact-bot sandbox: {host}:{port} is not on this job's network allowlist "
                f"(allowed: {allowed}). A maintainer can add it to sandbox.network.allow in "
                ".github/pact.yml or to PACT_SANDBOX_ALLOW.",
            )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                addresses = await self.resolver(host, port)
        except (OSError, TimeoutError) as e:
            return await _answer(writer, 502, f"pact-bot sandbox: cannot resolve {host}: {e}")
        inner = [a for a in addresses if not _public(a) and not self.allows(a, port)]
        if inner or not addresses:
            self._refuse(host, port)
            return await _answer(
                writer,
                403,
                f"pact-bot sandbox: {host} resolves to {', '.join(inner) or 'nothing'}, an "
                "address on the server's own or a private network; an allowed name does not "
                "reach those. Name the address itself in the allowlist to allow it.",
            )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                # the address just checked, never the name again (no rebinding in between)
                up_reader, up_writer = await asyncio.open_connection(addresses[0], port)
        except (OSError, TimeoutError) as e:
            return await _answer(writer, 502, f"pact-bot sandbox: cannot reach {host}:{port}: {e}")
        log.info("sandbox proxy connect", extra={"host": host, "port": port})
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_writer.write(upstream_head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    def _refuse(self, host: str, port: int) -> None:
        where = f"{host}:{port}"
        log.warning("sandbox proxy refused", extra={"host": host, "port": port})
        self.refused.append(where)
        if self.on_refused is not None:
            self.on_refused(where)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while True:
            async with asyncio.timeout(IDLE_TIMEOUT):
                chunk = await src.read(65536)
            if not chunk:
                break
            dst.write(chunk)
            await dst.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 431: "Too Large", 502: "Bad Gateway"}
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def sandbox_env() -> dict[str, str]:
    """What a networked sandbox command gets so that its clients use the forwarder."""
    url = f"http://127.0.0.1:{SANDBOX_PORT}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    env = dict.fromkeys(names, url)
    env |= {"npm_config_proxy": url, "npm_config_https_proxy": url, "NO_PROXY": "", "no_proxy": ""}
    return env


def forwarder_prelude(socat: str = "socat") -> str:
    """Shell run before the command inside the sandbox: the loopback listener that carries
    connections to the socket, and a wait until it listens (so the first request never races
    it). It dies with the sandbox."""
    return (
        f"{socat} TCP-LISTEN:{SANDBOX_PORT},bind=127.0.0.1,fork,reuseaddr "
        f"UNIX-CONNECT:{SANDBOX_SOCKET} >/dev/null 2>&1 & "
        "for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"
        f"{SANDBOX_PORT}) 2>/dev/null && break; sleep 0.01; done; "
    )
