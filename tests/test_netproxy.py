"""The sandbox's way out: listed hosts through the proxy, nothing else, and a home that stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bwrap_support import needs_bwrap
from sim.pypi import simple_index

from pact_bot.agent.tools.bash import BashTool
from pact_bot.agent.tools.jobenv import JobEnv
from pact_bot.jobsandbox import JobSandbox
from pact_bot.netproxy import AllowlistProxy, Rule, host_package_indexes, parse_rules


@pytest.fixture
async def origin() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A plain HTTP server on the host's loopback; it records each request head."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], seen
    server.close()


@pytest.fixture
def wt(tmp_path: Path) -> Path:
    d = tmp_path / "wt"
    d.mkdir()
    return d


def fetch(url: str, via_connect: bool = False) -> str:
    """A shell line that fetches `url` through the sandbox's proxy with bash alone."""
    hostport = url.split("/")[2]
    if via_connect:
        return (
            "exec 3<>/dev/tcp/127.0.0.1/$(echo $HTTPS_PROXY | cut -d: -f3); "
            f"printf 'CONNECT {hostport} HTTP/1.1\\r\\nHost: {hostport}\\r\\n\\r\\n' >&3; "
            "head -c 39 <&3; echo; "
            f"printf 'GET / HTTP/1.1\\r\\nHost: {hostport}\\r\\n\\r\\n' >&3; cat <&3"
        )
    return (
        "exec 3<>/dev/tcp/127.0.0.1/$(echo $HTTP_PROXY | cut -d: -f3); "
        f"printf 'GET {url} HTTP/1.1\\r\\nHost: {hostport}\\r\\n"
        "Proxy-Authorization: Basic c2VjcmV0\\r\\n\\r\\n' >&3; cat <&3"
    )


@needs_bwrap
async def test_an_allowed_host_is_reached_through_the_proxy_and_nothing_else(
    tmp_path: Path, wt: Path, origin: tuple[int, list[bytes]]
) -> None:
    port, seen = origin
    sock = tmp_path / "run" / "proxy.sock"
    env = JobEnv.create(tmp_path / "home").networked(sock)
    async with AllowlistProxy(sock, parse_rules([f"127.0.0.1:{port}"])) as proxy:
        tool = BashTool(wt, env=env)
        out, err = await tool.execute(fetch(f"http://127.0.0.1:{port}/simple/"))
        assert not err and out.endswith("origin"), out
        # The origin got an ordinary request: no proxy headers of the client's passed on.
        assert seen[-1].startswith(b"GET /simple/ HTTP/1.1") and b"Proxy-" not in seen[-1]

        out, err = await tool.execute(fetch(f"https://127.0.0.1:{port}/", via_connect=True))
        assert "200 Connection established" in out and out.endswith("origin"), out

        # A host not on the list: a clear 403 at once, recorded for the job.
        out, _ = await tool.execute(fetch("http://example.com/"))
        assert "403 Forbidden" in out and "example.com:80 is not on this job's network" in out
        assert "sandbox.network.allow" in out
        assert proxy.refused == ["example.com:80"]

        # The sandbox itself still has no network: the host's loopback is not its loopback.
        out, err = await tool.execute(f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED")
        assert err and "CONNECTED" not in out


@needs_bwrap
async def test_an_allowed_name_that_resolves_to_the_hosts_loopback_is_refused(
    tmp_path: Path, wt: Path, origin: tuple[int, list[bytes]]
) -> None:
    """`localhost` stands for any allowed name whose DNS answer is the server itself: the
    bot's own /webhook, its Postgres or Redis must not be one allowlist entry away."""
    port, seen = origin
    sock = tmp_path / "run" / "proxy.sock"
    env = JobEnv.create(tmp_path / "home").networked(sock)
    async with AllowlistProxy(sock, parse_rules([f"localhost:{port}"])) as proxy:
        tool = BashTool(wt, env=env)
        out, _ = await tool.execute(fetch(f"http://localhost:{port}/webhook"))
        assert "403 Forbidden" in out and "resolves to 127.0.0.1" in out, out
        out, _ = await tool.execute(fetch(f"https://localhost:{port}/", via_connect=True))
        assert "403 Forbidden" in out and "Connection established" not in out, out
        assert seen == [] and proxy.refused == [f"localhost:{port}"] * 2

    # Naming the address itself is the operator's explicit choice, and then it is reached.
    rules = parse_rules([f"localhost:{port}", f"127.0.0.1:{port}"])
    async with AllowlistProxy(sock, rules):
        out, _ = await BashTool(wt, env=env).execute(fetch(f"http://localhost:{port}/simple/"))
        assert out.endswith("origin"), out


async def _through(proxy: AllowlistProxy, host: str, port: int) -> bytes:
    """One plain request through the proxy's socket, as the sandbox's forwarder sends it."""
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(f"GET http://{host}:{port}/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


async def test_the_metadata_service_and_private_networks_are_not_reached_by_name(
    tmp_path: Path,
) -> None:
    """Allowed names answered with the cloud metadata address, a private address, or a
    public and a private one (rebinding by round robin) are refused before any connect."""
    answers = {
        "metadata.example": ["169.254.169.254"],
        "mirror.example": ["10.0.0.7"],
        "split.example": ["93.184.216.34", "192.168.1.1"],
        "mapped.example": ["::ffff:127.0.0.1"],
    }

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    rules = parse_rules(list(answers))
    async with AllowlistProxy(tmp_path / "p.sock", rules, resolver=resolver) as proxy:
        for host, addresses in answers.items():
            answer = await _through(proxy, host, 80)
            assert answer.startswith(b"HTTP/1.1 403"), (host, answer)
            assert addresses[-1].encode() in answer
        assert proxy.refused == [f"{h}:80" for h in answers]


async def test_the_connection_goes_to_the_address_that_was_checked(
    tmp_path: Path, origin: tuple[int, list[bytes]]
) -> None:
    """The name is looked up once: what is checked is what is dialled, so a second DNS
    answer (rebinding) never decides where the bytes go."""
    port, seen = origin
    lookups: list[str] = []

    async def resolver(host: str, p: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]  # this name has no real DNS entry: only the checked address works

    rules = parse_rules([f"pkgs.example:{port}", f"127.0.0.1:{port}"])
    async with AllowlistProxy(tmp_path / "p.sock", rules, resolver=resolver) as proxy:
        answer = await _through(proxy, "pkgs.example", port)
    assert answer.endswith(b"origin") and lookups == ["pkgs.example"]
    assert b"Host: pkgs.example" in seen[-1]


@needs_bwrap
async def test_without_the_proxy_a_command_reaches_nothing(
    tmp_path: Path, wt: Path, origin: tuple[int, list[bytes]]
) -> None:
    port, seen = origin
    tool = BashTool(wt, env=JobEnv.create(tmp_path / "home"))
    out, err = await tool.execute(
        f"echo $HTTP_PROXY; exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED"
    )
    assert err and "CONNECTED" not in out and "3128" not in out
    assert seen == []


@needs_bwrap
async def test_the_job_home_and_cache_outlive_each_command_but_stay_out_of_the_worktree(
    tmp_path: Path, wt: Path
) -> None:
    env = JobEnv.create(tmp_path / "home", tmp_path / "cache" / "octo" / "app")
    tool = BashTool(wt, env=env)
    out, err = await tool.execute(
        "mkdir -p ~/venv && echo kept > ~/venv/marker && echo pkg > $PIP_CACHE_DIR.txt && pwd"
    )
    assert not err, out
    out, err = await tool.execute("cat ~/venv/marker; echo $HOME; ls $XDG_CACHE_HOME")
    assert out.split() == ["kept", "/home/pact", "pip.txt"]
    assert sorted(p.name for p in wt.iterdir()) == []
    assert (tmp_path / "cache" / "octo" / "app" / "pip.txt").read_text() == "pkg\n"


def test_rules_match_hosts_ports_and_wildcards() -> None:
    rules = parse_rules(["pypi.org", "*.example.com", "127.0.0.1:8080", "https://npm.corp:4873/"])
    assert Rule("files.pythonhosted.org") in rules  # pypi.org is useless without it
    proxy = AllowlistProxy(Path("unused"), rules)
    assert proxy.allows("PyPI.org.", 443) and proxy.allows("a.b.example.com", 80)
    assert not proxy.allows("example.com", 443)  # *.example.com is subdomains only
    assert proxy.allows("127.0.0.1", 8080) and not proxy.allows("127.0.0.1", 8081)
    assert proxy.allows("npm.corp", 4873) and not proxy.allows("npm.corp", 443)
    assert not proxy.allows("evil-pypi.org", 443)
    with pytest.raises(ValueError, match="not a host"):
        parse_rules(["pypi.org/simple extra"])


def test_the_hosts_own_package_indexes_are_allowed_without_their_credentials(
    tmp_path: Path,
) -> None:
    (tmp_path / ".config" / "pip").mkdir(parents=True)
    (tmp_path / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://user:s3cret@pypi.corp.example/simple\n"
    )
    (tmp_path / ".npmrc").write_text("registry=https://npm.corp.example:4873/\n")
    hosts = host_package_indexes({"HOME": str(tmp_path)}, tmp_path, ())
    assert "pypi.corp.example" in hosts and "npm.corp.example:4873" in hosts
    assert not any("s3cret" in h or "user" in h for h in hosts)
    assert host_package_indexes({}, tmp_path / "none", ()) == [
        "pypi.org",
        "registry.npmjs.org",
    ]


@needs_bwrap
async def test_setup_installs_through_the_allowlist_and_a_second_job_reuses_the_cache(
    tmp_path: Path,
) -> None:
    source = "def greet(name):\n    return f'hello {name}'\n"
    with simple_index([("pactdemo", "1.0", source)]) as index:
        setup = [
            "python3 -m venv ~/venv",
            f"~/venv/bin/pip install --no-input --cert ~/ca.pem --index-url {index.url} pactdemo",
        ]
        test = "~/venv/bin/python -c 'import pactdemo; print(pactdemo.greet(\"bot\"))'"
        for job in ("job1", "job2"):
            wt = tmp_path / job / "wt"
            wt.mkdir(parents=True)
            box = await JobSandbox.open(
                tmp_path / "data", job, "octo/app", [f"127.0.0.1:{index.port}"]
            )
            try:
                (box.env.home / "ca.pem").write_bytes(index.cert_pem)
                bash = BashTool(wt, env=box.agent_env)
                result = await box.setup(bash, setup, timeout=300)
                assert result.failed is None, result.steps[-1].output
                run = await box.run_tests(bash, test, timeout=60)
                assert (run.outcome, run.output.strip()) == ("passed", "hello bot")
                assert list(wt.iterdir()) == []  # the venv lives in the job home, not the diff
            finally:
                await box.close()
            assert not (tmp_path / "data" / "jobs" / job).exists()
        # One download of the wheel in all: the second job took it from the repository's cache.
        assert index.downloads() == ["/files/pactdemo-1.0-py3-none-any.whl"]


@needs_bwrap
async def test_a_failing_setup_command_stops_setup_with_its_output(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    wt.mkdir()
    box = await JobSandbox.open(tmp_path / "data", "j", "octo/app", [])
    try:
        bash = BashTool(wt, env=box.agent_env)
        result = await box.setup(
            bash, ["echo one", "echo boom >&2; exit 3", "echo never"], timeout=60
        )
        failed = result.failed
        assert failed is not None and failed.command == "echo boom >&2; exit 3"
        assert "boom" in failed.tail and "[exit code 3]" in failed.tail
        assert [s.command for s in result.steps] == ["echo one", "echo boom >&2; exit 3"]
        # Without an allowlist there is no proxy, and setup commands are offline like the rest.
        assert box.proxy is None and box.networked_env.proxy_socket is None
        out, err = await bash.execute("echo $HTTPS_PROXY; exec 3<>/dev/tcp/127.0.0.1/443")
        assert err and "3128" not in out
    finally:
        await box.close()
