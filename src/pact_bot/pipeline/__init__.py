"""The worker's handler: one function per job kind, behind `build_handler(settings)`.

    handler = build_handler(settings)          # Handler = (Job, JobControl) -> JobOutcome
    handler = build_handler(settings, runtime=Runtime(settings, workspace=...))  # tests

`HANDLERS` maps each `JobKind` to an `async (runtime, job, control) -> JobOutcome`.
Code jobs are `pipeline.code`; revise jobs `pipeline.revise`; reply jobs (/pact help,
status, cancel) `pipeline.commands`; spec checks `pipeline.spec_check`. `register(kind,
fn)` replaces one; an unknown kind raises NotImplementedError (a failed job).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pact_bot.jobs.model import Job, JobKind
from pact_bot.settings import Settings

if TYPE_CHECKING:
    from pact_bot.jobs.worker import Handler, JobControl, JobOutcome
    from pact_bot.pipeline.runtime import Runtime

KindHandler = Callable[["Runtime", Job, "JobControl"], Awaitable["JobOutcome"]]


async def _code(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    from pact_bot.pipeline.code import handle_code

    return await handle_code(runtime, job, control)


async def _revise(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    from pact_bot.pipeline.revise import handle_revise

    return await handle_revise(runtime, job, control)


async def _reply(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    from pact_bot.pipeline.commands import handle_reply

    return await handle_reply(runtime, job, control)


async def _spec_check(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    from pact_bot.pipeline.spec_check import handle_spec_check

    return await handle_spec_check(runtime, job, control)


async def _not_yet(runtime: Runtime, job: Job, control: JobControl) -> JobOutcome:
    # Extension point: revise (pipeline/revise.py), reply (/pact help|status|cancel) and
    # spec_check (the "Implement" check run on spec PRs) are issue 5's.
    raise NotImplementedError(f"{job.kind} jobs are not implemented yet")


def _default_handlers() -> dict[JobKind, KindHandler]:
    return {
        JobKind.code: _code,
        JobKind.revise: _revise,
        JobKind.reply: _reply,
        JobKind.spec_check: _spec_check,
    }


HANDLERS: dict[JobKind, KindHandler] = _default_handlers()


def register(kind: JobKind, fn: KindHandler) -> None:
    """Install the handler of a job kind (used by the modules that add kinds)."""
    HANDLERS[kind] = fn


def build_handler(settings: Settings, *, runtime: Runtime | None = None) -> Handler:
    from pact_bot.pipeline.runtime import Runtime

    rt = runtime or Runtime(settings)

    async def handle(job: Job, control: JobControl) -> JobOutcome:
        fn = HANDLERS.get(job.kind, _not_yet)
        return await fn(rt, job, control)

    return handle


__all__ = ["HANDLERS", "build_handler", "register"]
