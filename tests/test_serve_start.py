"""`pact-bot serve` starts its workers only once it listens and has frozen its start-up
objects: a job's objects frozen with them would never be collected."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from pact_bot.jobs.backends import open_queue
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.worker import JobControl, JobOutcome
from pact_bot.settings import Settings
from pact_bot.web import server


async def test_a_queued_job_runs_only_after_the_start_up_objects_are_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        pact_database_url=f"sqlite:///{tmp_path / 'queue.db'}",
        pact_data_dir=tmp_path / "data",
        pact_workers=1,
    )
    queue = open_queue(settings)
    await queue.open()
    await queue.enqueue(
        Job(
            kind=JobKind.code,
            key=Job.key_for("octo/repo", 1),
            repo="octo/repo",
            number=1,
            delivery_id=str(uuid.uuid4()),
            sender="alice",
            task={"fingerprint": "code::"},
        )
    )
    await queue.close()

    events: list[str] = []
    handled = asyncio.Event()
    monkeypatch.setattr(server, "_freeze_startup_objects", lambda: events.append("frozen"))
    real_startup = server._Server.startup

    async def slow_startup(self: Any, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.5)  # room for a worker that did not wait to claim the job
        await real_startup(self, *args, **kwargs)

    monkeypatch.setattr(server._Server, "startup", slow_startup)

    async def handler(job: Job, control: JobControl) -> JobOutcome:
        events.append("job")
        handled.set()
        return JobOutcome(JobState.succeeded)

    serving = asyncio.create_task(
        server._serve_one(settings, "127.0.0.1", 0, 1.0, lambda _: handler, None)
    )
    try:
        await asyncio.wait_for(handled.wait(), 30)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    assert events == ["frozen", "job"]
