"""The worker's handler: one function per job kind, behind `build_handler(settings)`.

The process wiring (`cli`, `web.server`) builds it and hands it to `jobs.worker`, which
knows nothing of job kinds; tests build their own (`runtime=` with simulator settings, or
a handler of their own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.worker import Handler, JobControl, JobOutcome
from pact_bot.pipeline.code import handle_code
from pact_bot.pipeline.drift_check import handle_drift
from pact_bot.pipeline.reply import handle_reply
from pact_bot.pipeline.revise import handle_revise
from pact_bot.pipeline.runtime import Runtime
from pact_bot.pipeline.spec_check import handle_spec_check
from pact_bot.pipeline.test_job import handle_test
from pact_bot.settings import Settings

KindHandler = Callable[[Runtime, Job, JobControl], Awaitable[JobOutcome]]

HANDLERS: dict[JobKind, KindHandler] = {
    JobKind.code: handle_code,
    JobKind.revise: handle_revise,
    JobKind.reply: handle_reply,
    JobKind.spec_check: handle_spec_check,
    JobKind.drift: handle_drift,
    JobKind.test: handle_test,
}


def build_handler(settings: Settings, *, runtime: Runtime | None = None) -> Handler:
    rt = runtime or Runtime(settings)

    async def handle(job: Job, control: JobControl) -> JobOutcome:
        try:
            job.typed_task()  # the trigger → job contract, checked before any work
        except ValidationError as e:
            return JobOutcome(JobState.failed, error=f"invalid task: {e}")
        return await HANDLERS[job.kind](rt, job, control)

    return handle
