"""`pact-bot serve`: uvicorn and the worker tasks in one event loop.

Port 0 binds a free port; the log line `listening` carries `host` and `port` (tests and
scripts read it). SIGTERM/SIGINT: the server stops accepting, workers stop claiming, running
jobs get `GRACE_SECONDS` to finish, the rest are handed back to the queue.

`PACT_WEB_PROCESSES=N` (N > 1): one event loop is one core, and a delivery costs ~125 µs of
CPU, so N processes answer webhooks on one port, each with its own socket bound with
`SO_REUSEPORT` (the kernel spreads connections over them) and its own queue connection and
group commit (SQLite's write lock orders their transactions; the deliveries table's primary
key dedupes across them). Worker tasks run only in the first process, which spawns the
others, stops them (SIGTERM) when it stops, and takes them along when it is SIGKILLed
(`PR_SET_PDEATHSIG`). Their log lines carry `web_process` (0 = the first).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from pact_bot.jobs.backends import open_queue
from pact_bot.jobs.model import Job
from pact_bot.jobs.retention import Retention
from pact_bot.jobs.worker import Handler, JobControl, JobOutcome, run_workers, sweep_worktrees
from pact_bot.logs import ConsoleFormatter, log_context, register_secrets, setup_logging
from pact_bot.pipeline.handlers import build_handler
from pact_bot.settings import Settings
from pact_bot.web.app import create_app
from pact_bot.web.setup_token import announce_setup

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn, minus its habit of re-raising the signal after shutdown (it would kill the
    process before the workers' grace period)."""

    def __init__(self, config: uvicorn.Config, stop: asyncio.Event) -> None:
        super().__init__(config)
        self._stop = stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            self._stop.set()
            log.info("shutting down", extra={"signal": sig.name})

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def _lean_log_records() -> None:
    """Skip what our formatters never print (caller frame, thread, process): the logging
    docs' own optimisation, a few percent of each webhook's CPU."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _freeze_startup_objects() -> None:
    """Move everything allocated so far (modules, models, the app) out of the cyclic
    collector's reach. Each delivery allocates enough containers to start a collection every
    few deliveries, and every tenth of those a full one walked all ~100k startup objects:
    ~20 µs per delivery (a tenth of its CPU); after the freeze ~4 µs."""
    gc.freeze()


HandlerFactory = Callable[[Settings], Handler]


async def _serve(
    settings: Settings,
    host: str,
    port: int,
    grace_seconds: float,
    handler_factory: HandlerFactory | None,
    sock: socket.socket | None = None,
    web_process: int | None = None,
) -> None:
    if web_process is None:
        await _serve_one(settings, host, port, grace_seconds, handler_factory, sock)
    else:
        with log_context(web_process=web_process):
            await _serve_one(settings, host, port, grace_seconds, handler_factory, sock)


async def _serve_one(
    settings: Settings,
    host: str,
    port: int,
    grace_seconds: float,
    handler_factory: HandlerFactory | None,
    sock: socket.socket | None,
) -> None:
    _lean_log_records()
    register_secrets(settings.secrets())
    missing = settings.missing_app_vars()
    if missing:
        log.warning(
            "GitHub App not configured: /webhook answers 503 until these are set",
            extra={"missing": missing},
        )
    queue = open_queue(settings)
    await queue.open()
    stop = asyncio.Event()
    app = create_app(settings, queue)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http="httptools" if _has("httptools") else "h11",
        server_header=False,
        # uvicorn annotates int, and only hands it to asyncio.wait_for: seconds may be fractional
        timeout_graceful_shutdown=grace_seconds,  # type: ignore[arg-type]
    )
    server = _Server(config, stop)
    workers: asyncio.Task[None] | None = None
    listening = asyncio.Event()
    pruning: asyncio.Task[None] | None = None
    if settings.pact_workers > 0 and handler_factory is not None:
        current = {"handler": handler_factory(settings)}

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            return await current["handler"](job, control)

        web_changed = app.state.on_settings_changed

        def on_settings_changed(new: Settings) -> None:
            """The setup flow registered the App: jobs claimed from now on use it too."""
            web_changed(new)
            current["handler"] = handler_factory(new)

        app.state.on_settings_changed = on_settings_changed

        async def work() -> None:
            # Not before the freeze: a job's objects frozen with the start-up's would
            # never be collected.
            await listening.wait()
            if stop.is_set():
                return
            await sweep_worktrees(settings)
            await run_workers(
                queue,
                handler,
                settings.pact_workers,
                stop,
                grace_seconds=grace_seconds,
                lanes=settings.pact_reply_workers,
            )

        workers = asyncio.create_task(work())
        pruning = asyncio.create_task(Retention.from_settings(settings, queue).run(stop))
    serving = asyncio.create_task(server.serve(sockets=[sock] if sock else None))
    try:
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.01)
        if server.started:
            sock = server.servers[0].sockets[0]
            bound_host, bound_port = sock.getsockname()[:2]
            log.info(
                "listening",
                extra={
                    "host": bound_host,
                    "port": bound_port,
                    "workers": settings.pact_workers,
                    "reply_workers": settings.pact_reply_workers if settings.pact_workers else 0,
                },
            )
            if missing:
                announce_setup(settings, bound_host, bound_port)
            _freeze_startup_objects()
            listening.set()
        await serving
    finally:
        stop.set()
        listening.set()
        if workers is not None:
            await workers
        if pruning is not None:
            await pruning
        await queue.close()
        log.info("stopped")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop + httptools when installed (they are dependencies; plain asyncio/h11 otherwise)."""
    loop_factory = None
    if _has("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)


def _shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes of this user may bind too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the first one dies, however it dies (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)


def _log_setup() -> tuple[str, str]:
    root = logging.getLogger()
    console = any(isinstance(h.formatter, ConsoleFormatter) for h in root.handlers)
    return "console" if console else "json", logging.getLevelName(root.level)


def _web_process(
    settings: Settings,
    host: str,
    port: int,
    grace_seconds: float,
    index: int,
    log_setup: tuple[str, str],
    parent: int,
) -> None:
    """Entry point of web process `index` >= 1 (spawned: a fresh interpreter)."""
    _die_with_parent(parent)
    setup_logging(*log_setup)
    sock = _shared_port_socket(host, port)
    _run(_serve(settings, host, port, grace_seconds, None, sock=sock, web_process=index))


GRACE_SECONDS = 30.0  # what a running job gets to finish after SIGTERM


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    handler_factory: HandlerFactory = build_handler,
) -> None:
    """One process, or `settings.pact_web_processes` sharing the port (module docstring).
    Only the first process runs workers, with the handler `handler_factory` builds (again
    when the setup flow registers the App)."""
    grace_seconds = GRACE_SECONDS
    processes = settings.pact_web_processes
    if processes == 1:
        _run(_serve(settings, host, port, grace_seconds, handler_factory))
        return
    sock = _shared_port_socket(host, port)
    port = sock.getsockname()[1]  # port 0: the others bind the one the first got
    web_only = settings.model_copy(update={"pact_workers": 0})
    spawn = multiprocessing.get_context("spawn")
    others = [
        spawn.Process(
            target=_web_process,
            args=(web_only, host, port, grace_seconds, i, _log_setup(), os.getpid()),
            name=f"pact-bot-web-{i}",
        )
        for i in range(1, processes)
    ]
    for p in others:
        p.start()
    try:
        _run(_serve(settings, host, port, grace_seconds, handler_factory, sock=sock, web_process=0))
    finally:
        for p in others:
            if p.is_alive():
                p.terminate()
        for p in others:
            p.join(grace_seconds + 5)
            if p.is_alive():
                p.kill()
                p.join()
