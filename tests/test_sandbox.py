"""The bash tool runs only inside bubblewrap: no network, no secrets, bounded time and output."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from bwrap_support import needs_bwrap, readme_worktree

from pact_bot.agent.tools import build_tools
from pact_bot.agent.tools.bash import BashTool
from pact_bot.agent.tools.bwrap import sandbox_available


@pytest.fixture
def wt(tmp_path: Path) -> Path:
    return readme_worktree(tmp_path)


@needs_bwrap
async def test_runs_in_workspace_and_writes_land_in_the_worktree(wt: Path) -> None:
    out, err = await BashTool(wt).execute("pwd && cat README.md && echo made > new.txt")
    assert (out, err) == ("/workspace\nhello\n", False)
    assert (wt / "new.txt").read_text() == "made\n"


@needs_bwrap
async def test_cannot_reach_the_network(wt: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        code = (
            "import socket; s = socket.socket(); s.settimeout(3); "
            f"s.connect(('127.0.0.1', {port})); print('CONNECTED')"
        )
        out, err = await BashTool(wt).execute(f'python3 -c "{code}"')
        assert err and "CONNECTED" not in out
        out, err = await BashTool(wt).execute("getent hosts example.com")
        assert err
    finally:
        server.close()


@needs_bwrap
async def test_secrets_in_the_bot_environment_are_invisible(
    wt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_parentsecret123456")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parentsecret")
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", "-----BEGIN")
    out, _err = await BashTool(wt).execute("env; cat /proc/1/environ | tr '\\0' '\\n'")
    assert "parentsecret" not in out
    assert "GITHUB_" not in out and "ANTHROPIC_" not in out
    assert "HOME=/tmp" in out and "PATH=" in out


@needs_bwrap
async def test_killed_at_timeout(wt: Path) -> None:
    start = time.monotonic()
    out, err = await BashTool(wt, timeout=1).execute("echo started; sleep 60; echo never")
    assert time.monotonic() - start < 10
    assert err and "started" in out and "never" not in out
    assert "timed out after 1 seconds" in out


@needs_bwrap
async def test_output_is_capped_head_and_tail(wt: Path) -> None:
    out, err = await BashTool(wt, max_output=2000).execute(
        "echo FIRST; yes filler | head -c 500000; echo; echo LAST"
    )
    assert not err
    assert out.startswith("FIRST") and out.rstrip().endswith("LAST")
    assert "bytes of output omitted" in out
    assert len(out) < 2500


@needs_bwrap
async def test_exit_code_and_stderr_are_reported(wt: Path) -> None:
    out, err = await BashTool(wt).execute("echo out; echo oops >&2; exit 3")
    assert err and out == "out\noops\n[exit code 3]"


@needs_bwrap
async def test_git_dir_is_read_only_inside(wt: Path) -> None:
    (wt / ".git").mkdir()
    (wt / ".git" / "config").write_text("[core]\n")
    _out, err = await BashTool(wt).execute("echo evil > .git/hooks_pre_commit")
    assert err and not (wt / ".git" / "hooks_pre_commit").exists()


@needs_bwrap
async def test_registry_offers_bash_and_supports_restart(wt: Path) -> None:
    tools = build_tools(wt, sandbox=True, bash_timeout=5)
    assert {"type": "bash_20250124", "name": "bash"} in tools.definitions
    res = await tools.run("bash", {"restart": True})
    assert res.content == "tool has been restarted." and not res.is_error
    res = await tools.run("bash", {"command": "cd /tmp && pwd"})
    assert res.content == "/tmp\n"
    res = await tools.run("bash", {"command": "pwd"})
    assert res.content == "/workspace\n"
    res = await tools.run("bash", {})
    assert res.is_error and res.content == "no command provided."


@needs_bwrap
async def test_commands_run_concurrently_without_sharing_state(wt: Path) -> None:
    tool = BashTool(wt)
    results = await asyncio.gather(
        tool.execute("export A=1; echo $A"), tool.execute("echo ${A:-unset}")
    )
    assert results == [("1\n", False), ("unset\n", False)]


def test_without_bubblewrap_bash_is_not_offered_and_the_log_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pact_bot.agent.tools import bwrap

    monkeypatch.setattr(bwrap, "BWRAP", str(tmp_path / "no-bwrap"))
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox_available.cache_clear()
    try:
        assert sandbox_available() == (
            False,
            f"bubblewrap is not installed ({tmp_path / 'no-bwrap'} not found, none on PATH)",
        )
        with caplog.at_level("WARNING"):
            tools = build_tools(tmp_path, sandbox=True)
        assert "bash" not in tools.names
        assert "bash tool not offered: bubblewrap is not installed" in caplog.text
    finally:
        sandbox_available.cache_clear()


@needs_bwrap
async def test_no_capabilities_to_undo_the_read_only_binds(wt: Path) -> None:
    (wt / ".git").mkdir()
    out, err = await BashTool(wt).execute(
        "grep CapEff /proc/self/status; "
        "mount -o remount,bind,rw /workspace/.git && touch .git/planted; "
        "unshare -r -m sh -c 'mount -o remount,bind,rw /workspace/.git && touch .git/planted2'"
    )
    assert "CapEff:\t0000000000000000" in out
    assert err
    assert list((wt / ".git").iterdir()) == []


@needs_bwrap
async def test_private_tmp_is_bounded(wt: Path) -> None:
    from pact_bot.agent.tools.bwrap import TMP_BYTES, _tmp_size

    if not _tmp_size():
        pytest.skip("this bwrap cannot size its tmpfs")
    out, err = await BashTool(wt).execute("df -B1 --output=size /tmp | tail -1")
    assert not err and int(out.strip()) == TMP_BYTES


@pytest.fixture
def rlimits_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits as they are enforced where the bot can make no cgroup (most containers)."""
    from pact_bot.agent.tools import limits

    limits.limit_mechanism.cache_clear()
    monkeypatch.setattr(limits, "_systemd_scope_works", lambda: False)
    monkeypatch.setattr(limits, "_writable_cgroup", lambda: None)
    yield
    limits.limit_mechanism.cache_clear()


@needs_bwrap
async def test_without_a_cgroup_rlimits_still_cap_file_size_memory_and_cpu(
    wt: Path, rlimits_only: None
) -> None:
    from pact_bot.agent.tools.limits import Limits, limit_mechanism

    assert limit_mechanism().kind == "rlimit"
    limits = Limits(pids=64, memory_bytes=256 * 1024 * 1024, cpu_seconds=1, file_bytes=1 << 20)
    tool = BashTool(wt, timeout=60, limits=limits)
    out, err = await tool.execute("head -c 5M /dev/zero > big")
    assert err and "File size limit exceeded" in out
    assert (wt / "big").stat().st_size == 1 << 20
    out, err = await tool.execute("python3 -c 'bytearray(512 * 1024 * 1024); print(\"GOT\")'")
    assert err and "MemoryError" in out and "GOT" not in out
    out, err = await tool.execute("while :; do :; done")
    assert err and "timed out" not in out
    assert await tool.execute("ulimit -u; ulimit -f; ulimit -H -f") == ("64\n1024\n1024\n", False)
    out, err = await tool.execute("ulimit -f unlimited")
    assert err and "cannot modify limit" in out


def test_root_without_a_cgroup_is_reported_as_uncontained(rlimits_only: None) -> None:
    from pact_bot.agent.tools.limits import Limits, describe_limits

    enforced, detail = describe_limits(Limits())
    if os.getuid() == 0:
        assert not enforced
        assert "RLIMIT_NPROC does not apply to root" in detail
    else:
        assert enforced and f"uid {os.getuid()}" in detail
    assert "512 processes, 4096 MiB memory, 600 s CPU, 1024 MiB per file" in detail


def test_disk_usage_counts_each_file_once_and_follows_no_symlink(tmp_path: Path) -> None:
    from pact_bot.agent.tools.limits import disk_usage

    (tmp_path / "a").write_bytes(b"x" * 100_000)
    os.link(tmp_path / "a", tmp_path / "a-again")
    (tmp_path / "to-usr").symlink_to("/usr")
    (tmp_path / "sub").mkdir()
    with open(tmp_path / "sub" / "sparse", "wb") as f:
        f.truncate(50_000_000)  # git would read all of it
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "pack").write_bytes(b"y" * 10_000_000)  # read-only inside

    size = disk_usage(tmp_path)
    assert 50_100_000 <= size < 50_300_000
    assert disk_usage(tmp_path, stop_above=1000) < 50_000_000
