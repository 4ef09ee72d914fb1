"""The one way pact-bot starts a git process.

Every git process runs on a tree a job's agent has written, so git must execute nothing
the tree can name: no hooks, no fsmonitor, no filter, textconv, external diff or pager,
no submodule recursion (a nested repository's own config is the agent's), no transport
but https (plus the exact scheme of the clone URL in use, for the simulators and local
upstreams), and no config outside the repository's own (which the sandbox cannot write)
and these command-line settings. The environment holds what git needs and nothing of
the bot's: no API key, no webhook secret, no App key.

The installation token reaches git only through the environment of the one process that
talks to the remote (`GIT_CONFIG_*` setting `http.<url>.extraHeader`): never in a URL,
a config file, argv or an error message.

Every git dies with the bot (`PR_SET_PDEATHSIG`, Linux): a bot killed mid-fetch (OOM killer,
`kill -9`) leaves no git behind to write a mirror while the restarted bot clears that git's
lock files. The signal follows the thread that forked, so each git is forked from one that
outlives it: `run` from the event loop's thread (a cancelled run kills its git), `run_sync`
and `user_config` from the thread blocked in `subprocess.run` until the git is reaped. Git's
own helpers (remote-https, index-pack) are not signalled; they end when their pipes close,
and until then they hold whatever descriptor the git was given to hold (`hold_fds`): a git
run under a mirror's lock keeps that flock held while any process it started lives.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pact_bot.logs import redact
from pact_bot.workspace.errors import GitError

DEFAULT_IDENTITY = ("pact-bot[bot]", "pact-bot[bot]@users.noreply.github.com")

# What git needs to find itself, its certificates and proxies.
_PASS_ENV = (
    "PATH",
    "LANG",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)
# Schemes a clone URL may use; anything else (ssh, ext::, fd::) is never allowed.
_REMOTE_SCHEMES = ("https", "http", "file")

# `GitRunner.run`, or a test's wrapper of it: how the workspace modules start git.
RunGit = Callable[..., Awaitable[tuple[int, str, str]]]


@functools.cache
def empty_dir() -> Path:
    """A private empty directory: HOME, XDG config home and hooks path of every git."""
    return Path(tempfile.mkdtemp(prefix="pact-git-"))


def _hardening(remote_scheme: str | None) -> list[str]:
    settings = {
        "core.hooksPath": str(empty_dir()),
        "core.fsmonitor": "false",
        "core.untrackedCache": "false",
        "core.pager": "cat",
        "core.editor": ":",
        "core.askPass": "",
        "core.sshCommand": "false",
        "credential.helper": "",
        "diff.ignoreSubmodules": "all",
        "status.submoduleSummary": "false",
        "submodule.recurse": "false",
        "fetch.recurseSubmodules": "false",
        "push.recurseSubmodules": "no",
        "protocol.allow": "never",
        "protocol.https.allow": "always",
        # No automatic gc behind our back: the mirror cache runs it in the foreground.
        "gc.auto": "0",
        "maintenance.auto": "false",
    }
    if remote_scheme in _REMOTE_SCHEMES:
        settings[f"protocol.{remote_scheme}.allow"] = "always"
    args: list[str] = []
    for key, value in settings.items():
        args += ["-c", f"{key}={value}"]
    return args


_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[[int, int], int] | None:
    """libc's prctl, resolved once in the bot: the child only calls it. None off Linux."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _dies_with_bot() -> Callable[[], None] | None:
    """The `preexec_fn` of every git: SIGKILL when the bot's forking thread dies, and an
    exit right away if the bot died between fork and prctl (the git was already orphaned)."""
    prctl = _prctl()
    if prctl is None:
        return None
    bot = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != bot:
            os._exit(1)

    return arm


def auth_header(token: str) -> str:
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"Authorization: Basic {basic}"


@dataclass(frozen=True)
class Remote:
    """The remote one git process talks to; `token` only ever reaches its environment."""

    url: str
    token: str | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()


class GitRunner:
    """Runs hardened git processes with the bot's identity as author and committer."""

    def __init__(
        self, *, identity: tuple[str, str] = DEFAULT_IDENTITY, timeout: float = 900.0
    ) -> None:
        self.identity = identity
        self.timeout = timeout

    def env(self, remote: Remote | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        home = str(empty_dir())
        name, email = self.identity
        env.update(
            {
                "HOME": home,
                "XDG_CONFIG_HOME": home,
                "LC_ALL": "C",  # English messages: push rejections are recognised by text
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "SSH_ASKPASS": "",
                "GIT_SSH_COMMAND": "false",
                "GIT_PAGER": "cat",
                "PAGER": "cat",
                "GIT_EDITOR": ":",
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email,
            }
        )
        if remote is not None and remote.token:
            env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": f"http.{remote.url}.extraHeader",
                    "GIT_CONFIG_VALUE_0": auth_header(remote.token),
                }
            )
        return env

    def argv(self, args: Sequence[str], remote: Remote | None = None) -> list[str]:
        return ["git", *_hardening(remote.scheme if remote else None), *args]

    async def run(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        remote: Remote | None = None,
        stdin: str | None = None,
        check: bool = True,
        hold_fds: Sequence[int] = (),
    ) -> tuple[int, str, str]:
        """(code, stdout, stderr); a failure raises `GitError` when `check`. `hold_fds`
        stay open in the git and in every process it starts (git closes no descriptor)."""
        cmd = self.argv(args, remote)
        token = remote.token if remote else None
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=cwd,
            env=self.env(remote),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_dies_with_bot(),
            pass_fds=tuple(hold_fds),
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
            )
        except (TimeoutError, asyncio.CancelledError) as e:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if isinstance(e, TimeoutError):
                raise GitError(["git", *args], f"timed out after {self.timeout:.0f}s") from None
            raise
        code = proc.returncode or 0
        stderr = scrub(err.decode(errors="replace"), token)
        if check and code != 0:
            raise GitError(["git", *(scrub(a, token) for a in args)], stderr, code)
        return code, out.decode(errors="replace"), stderr

    def run_sync(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        check: bool = True,
        timeout: float = 120.0,
        hold_fds: Sequence[int] = (),
    ) -> tuple[int, str, str]:
        """The same, blocking, for threads; stdout keeps undecodable path bytes
        (surrogateescape). No remote: nothing run this way talks to the network."""
        try:
            proc = subprocess.run(
                self.argv(args),
                cwd=cwd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
                preexec_fn=_dies_with_bot(),
                pass_fds=tuple(hold_fds),
            )
        except subprocess.TimeoutExpired:
            raise GitError(["git", *args], f"timed out after {timeout:.0f}s") from None
        stderr = redact(proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise GitError(["git", *args], stderr, proc.returncode)
        return proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"), stderr


def user_config(repo: Path, key: str) -> str:
    """A value of the invoking user's own git config (global and system included): local
    mode's commit identity, read before the agent runs. Reading config runs nothing."""
    env = {k: os.environ[k] for k in (*_PASS_ENV, "HOME", "XDG_CONFIG_HOME") if k in os.environ}
    env["LC_ALL"] = "C"
    proc = subprocess.run(
        ["git", *_hardening(None), "config", "--default", "", "--get", key],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
        preexec_fn=_dies_with_bot(),
    )
    return proc.stdout.decode(errors="replace").strip() if proc.returncode == 0 else ""


def scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "[redacted]")
        text = text.replace(auth_header(token), "Authorization: [redacted]")
    return redact(text)


@functools.cache
def default_runner() -> GitRunner:
    """For callers outside a `Workspace` (agent tools, local mode): the same hardening."""
    return GitRunner()
