"""Attacks on the host through the agent's sandbox (issue #10, findings 4 and 7).

A command may not take the host's processes, memory, CPU or disk with it, and nothing private
of the bot (data dir, database, env file, key) may be readable from inside. Each test runs the
real bash tool in real bubblewrap, or a whole job on the simulators.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
import uuid
from pathlib import Path

import pytest
from bwrap_support import needs_bwrap, readme_worktree
from click.testing import CliRunner
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import run_to_failure, scripted_issue

from pact_bot.agent.tools.bash import BashTool
from pact_bot.agent.tools.limits import Limits, limit_mechanism
from pact_bot.agent.transcript import transcript_path
from pact_bot.cli import main as cli
from pact_bot.jobs.model import JobState

MiB = 1024 * 1024
SMALL = Limits(pids=64, memory_bytes=256 * MiB, cpu_seconds=2, file_bytes=8 * MiB)


@pytest.fixture
def wt(tmp_path: Path) -> Path:
    return readme_worktree(tmp_path)


def _host_processes() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


async def _peak_processes_while(task: asyncio.Task[tuple[str, bool]]) -> int:
    peak = 0
    while not task.done():
        peak = max(peak, _host_processes())
        await asyncio.sleep(0.02)
    return peak


# --- finding 4: resource limits ---------------------------------------------------------


@needs_bwrap
async def test_fork_bomb_ends_with_the_command_and_the_host_keeps_its_processes(
    wt: Path,
) -> None:
    if not limit_mechanism().contains_fork_bomb:
        pytest.fail(f"no way to limit processes here: {limit_mechanism().detail}")
    before = _host_processes()
    tool = BashTool(wt, timeout=8, limits=SMALL)
    started = time.monotonic()
    task = asyncio.create_task(tool.execute(":(){ :|:& };:; sleep 4; echo survived"))
    peak = await _peak_processes_while(task)
    out, is_error = task.result()

    assert time.monotonic() - started < 20
    assert peak - before < SMALL.pids + 150, f"{peak - before} processes appeared"
    await asyncio.sleep(0.5)
    assert _host_processes() - before < 50, "processes of the bomb outlived the command"
    # the host can still start processes and the next command runs normally
    assert await tool.execute("echo fine") == ("fine\n", False)
    assert is_error or "survived" in out


@needs_bwrap
async def test_process_flood_is_refused_past_the_pid_limit(wt: Path) -> None:
    out, is_error = await BashTool(wt, timeout=30, limits=SMALL).execute(
        "n=0; for i in $(seq 200); do sleep 3 & n=$((n+1)); done 2>/dev/null; "
        "echo started=$(jobs -p | wc -l)"
    )
    started = [int(line.split("=")[1]) for line in out.splitlines() if "started=" in line]
    # 200 were asked for: fewer than the limit running proves the limit held (bash's own
    # "Resource temporarily unavailable" went to /dev/null with the loop's stderr); no
    # count at all means even the `echo` could not fork, and the command failed.
    assert started or is_error, out
    assert not started or started[0] < SMALL.pids, out


@needs_bwrap
async def test_yes_into_a_file_is_cut_at_the_file_size_limit(wt: Path) -> None:
    tool = BashTool(wt, timeout=10, limits=SMALL, disk_cap=None)
    started = time.monotonic()
    out, is_error = await tool.execute("yes > big")

    assert time.monotonic() - started < 8, "only the timeout stopped it"
    assert is_error and "File size limit exceeded" in out, out
    assert (wt / "big").stat().st_size <= SMALL.file_bytes


@needs_bwrap
async def test_memory_hog_is_killed(wt: Path) -> None:
    out, is_error = await BashTool(wt, timeout=30, limits=SMALL).execute(
        "python3 -c 'b = bytearray(768 * 1024 * 1024); print(\"ALLOCATED\", len(b))'"
    )
    assert is_error and "ALLOCATED" not in out, out


@needs_bwrap
async def test_busy_loop_is_stopped_by_the_cpu_limit_not_the_timeout(wt: Path) -> None:
    out, is_error = await BashTool(wt, timeout=60, limits=SMALL).execute("while :; do :; done")
    assert is_error and "timed out" not in out, out


@needs_bwrap
async def test_worktree_past_the_disk_cap_stops_every_later_command(wt: Path) -> None:
    tool = BashTool(wt, timeout=30, limits=SMALL, disk_cap=4 * MiB)
    # a symlink to a big host tree is not followed, a small file is fine
    assert (await tool.run({"command": "ln -s /usr usr-link && head -c 1M /dev/zero > a"}))[
        1
    ] is False
    assert tool.halt is None

    out, is_error = await tool.run({"command": "head -c 5M /dev/zero > b && echo wrote"})
    assert is_error and "wrote" in out
    assert "The job stops here: the working copy grew to more than 4 MiB" in out
    assert tool.halt is not None

    out, is_error = await tool.run({"command": "echo again > c"})
    assert is_error and out.startswith("Not run: the working copy grew")
    assert not (wt / "c").exists()


@needs_bwrap
async def test_job_whose_command_fills_the_worktree_stops_with_a_clear_comment(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    bot.configure(pact_sandbox_disk_mb=4)
    filler = SpecCoderPolicy(
        bash_commands=["head -c 6M /dev/zero > blob.bin", "echo second > second.txt"]
    )
    number = scripted_issue(github_sim, anthropic_sim, filler)

    comment, _ = await run_to_failure(bot, github_sim, number)

    assert "The job stopped: the working copy grew to more than 4 MiB" in comment
    assert "Nothing was pushed" in comment and "PACT_SANDBOX_DISK_MB" in comment
    # the model got no further turn after the command that filled the disk
    commands = [
        b["input"].get("command")
        for r in anthropic_sim.requests
        for m in r["messages"]
        if m["role"] == "assistant"
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use" and b["name"] == "bash"
    ]
    assert "echo second > second.txt" not in commands


# --- finding 7: nothing private inside the sandbox ---------------------------------------


async def test_a_finished_job_leaves_its_database_and_transcript_private(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    scripted_issue(github_sim, anthropic_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [(j.state, j.error) for j in jobs]
    transcript = transcript_path(bot.data_dir, jobs[0].id)
    assert stat.S_IMODE(transcript.stat().st_mode) == 0o600
    assert stat.S_IMODE(transcript.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((bot.data_dir / "pact.db").stat().st_mode) == 0o600


def test_start_makes_everything_created_later_owner_only(tmp_path: Path) -> None:
    from pact_bot.settings import Settings
    from pact_bot.startup import secure_start

    data = tmp_path / "data"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, pact_data_dir=data, pact_database_url=f"sqlite:///{tmp_path / 'q.db'}"
    )
    previous = os.umask(0o022)
    try:
        secure_start(settings)
        (data / "mirrors").mkdir()
        (data / "mirrors" / "config").write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "mirrors").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "mirrors" / "config").stat().st_mode) == 0o600


@needs_bwrap
async def test_files_under_opt_are_not_visible_inside(wt: Path) -> None:
    secret_dir = Path("/opt") / f"pact-test-{uuid.uuid4().hex}"
    try:
        secret_dir.mkdir()
    except OSError as e:
        pytest.skip(f"/opt is not writable here: {e}")
    try:
        (secret_dir / ".env").write_text("GITHUB_WEBHOOK_SECRET=opt-secret-value\n")
        out, is_error = await BashTool(wt).execute(f"cat {secret_dir}/.env; ls /opt")
        assert is_error and "opt-secret-value" not in out
    finally:
        (secret_dir / ".env").unlink()
        secret_dir.rmdir()


@needs_bwrap
async def test_configured_bind_is_visible_and_read_only(wt: Path, tmp_path: Path) -> None:
    tools = tmp_path / "toolchain"
    tools.mkdir()
    (tools / "VERSION").write_text("1.2\n")
    tool = BashTool(wt, extra_binds=[tools])
    assert await tool.execute(f"cat {tools}/VERSION") == ("1.2\n", False)
    assert (await tool.execute(f"echo x > {tools}/VERSION"))[1]
    assert (tools / "VERSION").read_text() == "1.2\n"


def test_data_dir_inside_a_sandbox_bind_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith(("GITHUB_", "PACT_", "ANTHROPIC_")) and not key.startswith("PACT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "shared"
    monkeypatch.setenv("PACT_SANDBOX_BINDS", str(shared))
    monkeypatch.setenv("PACT_DATA_DIR", str(shared / "pact-data"))
    monkeypatch.setenv("PACT_DATABASE_URL", f"sqlite:///{tmp_path / 'pact.db'}")
    repo = tmp_path / "repo"
    repo.mkdir()

    for args in (["worker"], ["code", "--repo", str(repo), "docs/x-spec.md"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "refusing to start: the agent's sandbox would be able to read" in result.output
        assert f"{shared / 'pact-data'} (sandbox bind {shared})" in result.output
    assert not (shared / "pact-data").exists()
    assert not (tmp_path / "pact.db").exists()
