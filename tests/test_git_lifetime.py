"""Host git dies with the bot, and what it started keeps the mirror locked until it ends: a
SIGKILLed bot leaves nothing writing its mirror while the restarted bot clears the lock
files there.

The gits here are stand-ins first on PATH (the runner passes PATH through and starts `git`
by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

import pact_bot
from pact_bot.clock import FakeClock
from pact_bot.workspace import Workspace, WorkspaceError
from pact_bot.workspace.git import GitRunner

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

# A bot process: one runner call, the way each call site is reached in the product.
_BOT = """
import asyncio, sys
from pathlib import Path
from pact_bot.workspace.git import GitRunner, user_config

how, cwd = sys.argv[1], Path(sys.argv[2])
git = GitRunner()
if how == "run":  # `pact-bot worker`'s loop
    asyncio.run(git.run(["fetch", "--quiet", "origin"], cwd))
elif how == "run on uvloop":  # `pact-bot serve`'s loop
    import uvloop
    uvloop.run(git.run(["fetch", "--quiet", "origin"], cwd))
elif how == "run_sync in a worker thread":
    asyncio.run(asyncio.to_thread(git.run_sync, ["ls-files", "-z"], cwd))
else:
    user_config(cwd, "user.name")
"""


class FakeGit:
    """`bin/git`: writes `<pid> <PR_GET_PDEATHSIG>` to `report`, waits for a line on the
    `release` FIFO, prints `done`."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.report = root / "git-report"
        self.release = root / "git-release"
        os.mkfifo(self.release)
        script = self.bin / "git"
        script.write_text(
            f"#!{sys.executable} -IS\n"
            "import ctypes, os\n"
            "sig = ctypes.c_int()\n"
            "ctypes.CDLL(None).prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG\n"
            f"with open({str(self.report) + '.tmp'!r}, 'w') as f:\n"
            "    f.write(f'{os.getpid()} {sig.value}')\n"
            f"os.replace({str(self.report) + '.tmp'!r}, {str(self.report)!r})\n"
            f"with open({str(self.release)!r}) as f:\n"
            "    f.readline()\n"
            "print('done')\n"
        )
        script.chmod(0o755)

    def path(self) -> str:
        return f"{self.bin}{os.pathsep}{os.environ['PATH']}"

    def started(self) -> tuple[int, int] | None:
        """(pid, parent-death signal) once the git is running."""
        if not self.report.exists():
            return None
        pid, sig = self.report.read_text().split()
        return int(pid), int(sig)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


T = TypeVar("T")


def _start_bot(path: str, script: str, *args: str) -> subprocess.Popen[bytes]:
    """A bot process running `script`, the stand-in gits first on its PATH."""
    src = Path(pact_bot.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACT_", "GITHUB_"))}
    env.update(PATH=path, PYTHONPATH=str(src))
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(bot: subprocess.Popen[bytes], ready: Callable[[], T | None], never: str) -> T:
    """SIGKILL the bot once `ready()` gives a value (within 30 s, while the bot lives)."""
    try:
        deadline = time.monotonic() + 30
        while (value := ready()) is None:
            assert bot.poll() is None, bot.communicate()[1].decode()
            assert time.monotonic() < deadline, never
            time.sleep(0.02)
        return value
    finally:
        bot.kill()
        bot.communicate()


def _wait_gone(pid: int, outlived: str) -> None:
    deadline = time.monotonic() + 10  # the kernel's delivery, not a timing assumption
    while _alive(pid):
        assert time.monotonic() < deadline, outlived
        time.sleep(0.02)


@contextlib.contextmanager
def _reaped(fake: FakeGit) -> Iterator[None]:
    """Whatever the test found, no stand-in git outlives it."""
    try:
        yield
    finally:
        started = fake.started()
        if started and _alive(started[0]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(started[0], signal.SIGKILL)


@pytest.mark.parametrize(
    "how", ["run", "run on uvloop", "run_sync in a worker thread", "user_config"]
)
def test_a_git_dies_with_the_bot_that_was_sigkilled_while_it_ran(tmp_path: Path, how: str):
    fake = FakeGit(tmp_path)
    bot = _start_bot(fake.path(), _BOT, how, str(tmp_path))
    with _reaped(fake):
        git_pid, _ = _kill_when(bot, fake.started, "the bot never started git")
        _wait_gone(git_pid, f"git ({how}) outlived the SIGKILLed bot")


# A bot killed between fork and prctl: the child, held before arming until the bot is dead,
# would otherwise become an orphaned git no signal ever reaches.
_BOT_DYING_BEFORE_ARMING = """
import asyncio, os, sys, time
from pathlib import Path
from pact_bot.workspace import git

forked, cwd = Path(sys.argv[1]), Path(sys.argv[2])
bot, prctl = os.getpid(), git._prctl()

def late_prctl(option, value):  # runs in the child, between fork and exec
    forked.write_text(str(os.getpid()))
    while os.getppid() == bot:
        time.sleep(0.01)
    return prctl(option, value)

git._prctl = lambda: late_prctl
asyncio.run(git.GitRunner().run(["fetch", "--quiet", "origin"], cwd))
"""


def test_a_git_whose_bot_died_before_it_was_armed_never_runs(tmp_path: Path):
    fake = FakeGit(tmp_path)
    forked = tmp_path / "forked"
    bot = _start_bot(fake.path(), _BOT_DYING_BEFORE_ARMING, str(forked), str(tmp_path))
    with _reaped(fake):

        def child_pid() -> int | None:
            text = forked.read_text() if forked.exists() else ""
            return int(text) if text else None

        child = _kill_when(bot, child_pid, "the bot never forked git")
        _wait_gone(child, "the orphaned child went on to run git")
        assert fake.started() is None, "git ran after its bot had died"


async def test_a_git_run_from_a_worker_thread_runs_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The signal follows the thread that forked: git from an `asyncio.to_thread` worker
    has it armed and still runs until it ends by itself."""
    fake = FakeGit(tmp_path)
    monkeypatch.setenv("PATH", fake.path())
    with _reaped(fake):
        running = asyncio.ensure_future(
            asyncio.to_thread(GitRunner().run_sync, ["ls-files", "-z"], tmp_path)
        )
        deadline = time.monotonic() + 30
        while (started := fake.started()) is None:
            assert not running.done(), running.result()
            assert time.monotonic() < deadline, "git never started"
            await asyncio.sleep(0.02)
        git_pid, death_signal = started
        assert death_signal == signal.SIGKILL

        await asyncio.to_thread(fake.release.write_text, "go\n")
        code, out, _ = await asyncio.wait_for(running, 30)

        assert (code, out) == (0, "done\n")
        assert not _alive(git_pid)


# A bot that fetches into acme/demo's mirror under its lock, on `serve`'s loop or the worker's.
_MIRROR_BOT = """
import asyncio, sys
from pathlib import Path
from pact_bot.workspace import Workspace

loop, data = sys.argv[1], Path(sys.argv[2])
fetch = Workspace(data).update_mirror("acme/demo", "https://github.invalid/acme/demo.git", None)
if loop == "uvloop":
    import uvloop
    uvloop.run(fetch)
else:
    asyncio.run(fetch)
"""


class HelperStartingGit:
    """`bin/git`: succeeds at once, except a `fetch` while `blocking` exists: that one leaves
    `shallow.lock` in the mirror, starts a helper (forks, and like git closes no descriptor)
    that writes its pid to `helper` and lives on for a minute, and blocks."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.blocking = root / "git-blocks"
        self.helper = root / "git-helper"
        script = self.bin / "git"
        script.write_text(
            f"#!{sys.executable} -IS\n"
            "import os, sys, time\n"
            f"if 'fetch' in sys.argv and os.path.exists({str(self.blocking)!r}):\n"
            "    open('shallow.lock', 'w').close()\n"
            "    if os.fork() == 0:\n"
            f"        with open({str(self.helper) + '.tmp'!r}, 'w') as f:\n"
            "            f.write(str(os.getpid()))\n"
            f"        os.replace({str(self.helper) + '.tmp'!r}, {str(self.helper)!r})\n"
            "        time.sleep(60)\n"
            "        os._exit(0)\n"
            "    time.sleep(3600)\n"
        )
        script.chmod(0o755)

    def path(self) -> str:
        return f"{self.bin}{os.pathsep}{os.environ['PATH']}"

    def helper_pid(self) -> int | None:
        return int(self.helper.read_text()) if self.helper.exists() else None


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_git_helper_that_outlives_a_sigkilled_bot_keeps_the_mirror_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, loop: str
):
    """The death signal reaches the bot's git, not what git started: until that helper
    is gone the restarted bot neither takes the mirror's lock nor clears its lock files,
    and a job that waits too long fails saying who holds the lock."""
    fake = HelperStartingGit(tmp_path)
    fake.blocking.touch()
    data = tmp_path / "data"
    mirror = data / "mirrors" / "acme" / "demo.git"
    mirror.mkdir(parents=True)
    (mirror / "HEAD").write_text("ref: refs/heads/main\n")
    bot = _start_bot(fake.path(), _MIRROR_BOT, loop, str(data))
    try:
        helper = _kill_when(bot, fake.helper_pid, "the bot's fetch never started its helper")
        fake.blocking.unlink()  # the restarted bot's gits succeed at once
        monkeypatch.setenv("PATH", fake.path())
        clock = FakeClock()
        restarted = Workspace(data, mirror_lock_wait=60, clock=clock)

        fetching = asyncio.create_task(
            restarted.update_mirror("acme/demo", "https://github.invalid/acme/demo.git", None)
        )
        deadline = time.monotonic() + 30
        while not fetching.done():  # it waits on the fake clock (and /proc, in a thread)
            assert time.monotonic() < deadline, "the restarted bot waited without end"
            await clock.advance(1)
        with pytest.raises(WorkspaceError, match=rf"locked by .*\(pid {helper}\)"):
            fetching.result()
        assert _alive(helper)
        assert (mirror / "shallow.lock").exists()
        busy = [r for r in caplog.records if r.getMessage() == "mirror lock busy"]
        assert [r.__dict__["seconds"] for r in busy] == [30]
        assert any(f"(pid {helper})" in h for h in busy[0].__dict__["holders"])

        os.kill(helper, signal.SIGKILL)
        _wait_gone(helper, "the helper outlived SIGKILL")
        await asyncio.wait_for(
            restarted.update_mirror("acme/demo", "https://github.invalid/acme/demo.git", None), 30
        )
        assert not (mirror / "shallow.lock").exists()
    finally:
        if (pid := fake.helper_pid()) and _alive(pid):
            os.kill(pid, signal.SIGKILL)
