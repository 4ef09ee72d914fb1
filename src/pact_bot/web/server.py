"""`pact-bot serve`: uvicorn and the worker tasks in one event loop.

Public API: `serve(settings, host, port, grace_seconds=30.0)`. Port 0 binds a free port; the
log line `listening` carries `host` and `port` (tests and scripts read it). SIGTERM/SIGINT:
the server stops accepting, workers stop claiming, running jobs get `grace_seconds` to finish,
the rest are handed back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from collections.abc import Iterator

import uvicorn

from pact_bot.jobs.backends import open_queue
from pact_bot.jobs.model import Job
from pact_bot.jobs.worker import JobControl, JobOutcome, load_handler, run_workers
from pact_bot.logs import register_secrets
from pact_bot.settings import Settings
from pact_bot.web.app import create_app

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
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


async def _serve(settings: Settings, host: str, port: int, grace_seconds: float) -> None:
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
        timeout_graceful_shutdown=grace_seconds,
    )
    server = _Server(config, stop)
    workers: asyncio.Task[None] | None = None
    if settings.pact_workers > 0:
        current = {"handler": load_handler(settings)}

        async def handler(job: Job, control: JobControl) -> JobOutcome:
            return await current["handler"](job, control)

        web_changed = app.state.on_settings_changed

        def on_settings_changed(new: Settings) -> None:
            """The setup flow registered the App: jobs claimed from now on use it too."""
            web_changed(new)
            current["handler"] = load_handler(new)

        app.state.on_settings_changed = on_settings_changed
        workers = asyncio.create_task(
            run_workers(queue, handler, settings.pact_workers, stop, grace_seconds=grace_seconds)
        )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.01)
        if server.started:
            sock = server.servers[0].sockets[0]
            bound_host, bound_port = sock.getsockname()[:2]
            log.info(
                "listening",
                extra={"host": bound_host, "port": bound_port, "workers": settings.pact_workers},
            )
        await serving
    finally:
        stop.set()
        if workers is not None:
            await workers
        await queue.close()
        log.info("stopped")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def serve(settings: Settings, host: str, port: int, grace_seconds: float = 30.0) -> None:
    """uvloop + httptools when installed (they are dependencies; plain asyncio/h11 otherwise)."""
    loop_factory = None
    if _has("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(settings, host, port, grace_seconds))
