"""The bash tool runs only inside bubblewrap: no network, no secrets, bounded time and output."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from pact_bot.agent.tools import build_tools
from pact_bot.agent.tools.bash import BashTool, sandbox_available

ok, reason = sandbox_available()
needs_bwrap = pytest.mark.skipif(not ok, reason=f"bubblewrap unusable: {reason}")


@pytest.fixture
def wt(tmp_path: Path) -> Path:
    d = tmp_path / "wt"
    d.mkdir()
    (d / "README.md").write_text("hello\n")
    return d


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
    from pact_bot.agent.tools import bash as bash_module

    monkeypatch.setattr(bash_module, "BWRAP", str(tmp_path / "no-bwrap"))
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
    from pact_bot.agent.tools.bash import TMP_BYTES, _tmp_size

    if not _tmp_size():
        pytest.skip("this bwrap cannot size its tmpfs")
    out, err = await BashTool(wt).execute("df -B1 --output=size /tmp | tail -1")
    assert not err and int(out.strip()) == TMP_BYTES
