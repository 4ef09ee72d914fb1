"""pact-bot serve | worker | code | jobs | setup | doctor | db.

Commands import their implementation lazily so `pact-bot --help` stays instant.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pact_bot import __version__
from pact_bot.logs import setup_logging
from pact_bot.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from pact_bot.jobs.worker import Handler

HandlerFactory = Callable[[Settings], "Handler"]


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        click.echo(f"pact-bot: configuration error: {e}", err=True)
        sys.exit(2)


def _private_settings() -> Settings:
    """Settings for a command that runs jobs: umask 077, nothing private in the sandbox."""
    from pact_bot.startup import secure_start

    settings = _settings()
    try:
        secure_start(settings)
    except ConfigError as e:
        click.echo(f"pact-bot: refusing to start: {e}", err=True)
        sys.exit(2)
    return settings


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A start-up refusal found late (e.g. an unmigrated database) is one line, no traceback."""
    try:
        yield
    except ConfigError as e:
        click.echo(f"pact-bot: {e}", err=True)
        sys.exit(2)


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default="json",
    show_default=True,
    help="JSON lines for machines, console for people.",
)


@click.group()
@click.version_option(__version__, prog_name="pact-bot")
def main() -> None:
    """A GitHub App that implements specs through pull requests."""


def _handler_factory(ctx: click.Context) -> HandlerFactory:
    """The job handler of `serve` and `worker`: the pipeline's, unless the program that
    runs this CLI passes its own (`main(obj={"handler_factory": ...})`, e.g. a test)."""
    factory = (ctx.obj or {}).get("handler_factory")
    if factory is None:
        from pact_bot.pipeline.handlers import build_handler

        factory = build_handler
    return factory


@main.command()
@click.option("--host", default=None, help="Bind address (default PACT_HOST).")
@click.option("--port", type=int, default=None, help="Port (default PACT_PORT).")
@click.option(
    "--web-processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes answering webhooks on the port (default PACT_WEB_PROCESSES).",
)
@log_format_option
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    web_processes: int | None,
    log_format: str,
) -> None:
    """Run the webhook server and PACT_WORKERS worker tasks (plus PACT_REPLY_WORKERS that take
    only quick jobs: replies, the "Implement" button)."""
    setup_logging(log_format)
    settings = _private_settings()
    if web_processes is not None:
        settings = settings.model_copy(update={"pact_web_processes": web_processes})
    from pact_bot.web.server import serve as run

    with _one_line_errors():
        run(
            settings,
            host=host or settings.pact_host,
            port=settings.pact_port if port is None else port,
            handler_factory=_handler_factory(ctx),
        )


@main.command()
@click.option("--concurrency", type=int, default=1, show_default=True)
@log_format_option
@click.pass_context
def worker(ctx: click.Context, concurrency: int, log_format: str) -> None:
    """Run jobs from the queue (no web server): --concurrency workers, plus PACT_REPLY_WORKERS
    that take only quick jobs (replies, the "Implement" button)."""
    setup_logging(log_format)
    from pact_bot.jobs.worker import run_worker_process

    settings = _private_settings()
    with _one_line_errors():
        run_worker_process(settings, concurrency, _handler_factory(ctx))


@main.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--repo", "repo_dir", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--instructions", default="", help="Extra instructions for the agent.")
def code(specs: tuple[str, ...], repo_dir: Path, instructions: str) -> None:
    """Implement specs in a local repository: a new branch with one commit."""
    setup_logging("console", level="WARNING")
    from pact_bot.pipeline.local import run_local

    sys.exit(run_local(_private_settings(), list(specs), repo_dir, instructions))


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--state", default=None, help="queued, running, succeeded, failed, cancelled")
@click.pass_context
def jobs(ctx: click.Context, as_json: bool, state: str | None) -> None:
    """List jobs from the configured database."""
    if ctx.invoked_subcommand is None:
        settings = _settings()
        from pact_bot.jobs.cli_output import list_jobs

        with _one_line_errors():
            sys.exit(list_jobs(settings, as_json=as_json, state=state))


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--transcript", is_flag=True, help="Print the agent conversation.")
def jobs_show(job_id: str, as_json: bool, transcript: bool) -> None:
    """Show one job, optionally with its transcript."""
    from pact_bot.jobs.cli_output import Renderer, show_job

    render: Renderer | None = None
    if transcript:  # the agent's renderer: jobs/ does not import the agent
        from pact_bot.agent.transcript import render_transcript

        render = render_transcript
    with _one_line_errors():
        sys.exit(show_job(_settings(), job_id, as_json=as_json, transcript=render))


@main.command()
@click.option("--org", default=None, help="Register the App on this organisation.")
def setup(org: str | None) -> None:
    """Print the URL that registers the GitHub App from app.yml."""
    from pact_bot.web.setup_cli import print_setup_instructions

    sys.exit(print_setup_instructions(_settings(), org=org))


@main.command()
def doctor() -> None:
    """Check the configuration end to end, one line per check."""
    from pact_bot.doctor import run_doctor

    sys.exit(run_doctor(_settings()))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the schema (idempotent)."""
    from pact_bot.jobs.backends import migrate

    sys.exit(migrate(_settings()))


if __name__ == "__main__":
    main()
