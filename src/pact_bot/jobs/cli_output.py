"""`pact-bot jobs` and `pact-bot jobs show ID` — the operator's view of the queue.

Exit codes: 0 ok, 1 unknown job, 2 bad argument. Reply jobs show their command as the kind
(`reply:status`, `reply:ack`, `reply:lost`…). A transcript (`PACT_DATA_DIR/transcripts/<job
id>.jsonl`) is printed with the renderer the CLI passes (the agent's, which this package
does not import), long tool inputs and results shortened to `SHORT` characters. Everything
printed from a job record or transcript passes through `pact_bot.terminal` first: it may
hold the agent's escape sequences.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pact_bot.jobs.backends import open_queue
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.settings import Settings
from pact_bot.terminal import printable, printable_json

SHORT = 300  # characters of a tool input or result shown in a transcript
ERROR_COLUMN = 60  # characters of a job's error in the list

Renderer = Callable[..., str]  # (path, max_block_chars=...) -> text


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _kind(job: Job) -> str:
    """`reply:<command>` for reply jobs (help, status, cancel, and pact-bot's own ack and
    lost notices), so an operator tells them from each other and from the real work."""
    command = job.task.get("command") if job.kind is JobKind.reply else None
    return f"{job.kind}:{command}" if isinstance(command, str) and command else str(job.kind)


def _run(settings: Settings, fn: Any) -> Any:
    async def main() -> Any:
        queue = open_queue(settings)
        await queue.open()
        try:
            return await fn(queue)
        finally:
            await queue.close()

    return asyncio.run(main())


def list_jobs(settings: Settings, as_json: bool = False, state: str | None = None) -> int:
    wanted: JobState | None = None
    if state is not None:
        try:
            wanted = JobState(state)
        except ValueError:
            names = ", ".join(s.value for s in JobState)
            print(f"pact-bot: unknown state {state!r} (one of: {names})", file=sys.stderr)
            return 2
    jobs: list[Job] = _run(settings, lambda q: q.list(state=wanted, limit=1000))
    if as_json:
        for job in jobs:
            print(printable_json(job.model_dump_json()))
        return 0
    if not jobs:
        print("no jobs" + (f" in state {state}" if state else ""))
        return 0
    rows = [
        tuple(
            printable(c)
            for c in (
                j.id,
                j.key,
                _kind(j),
                str(j.state),
                str(j.attempts),
                _when(j.created_at),
                (j.error or "").splitlines()[0][:ERROR_COLUMN] if j.error else "",
            )
        )
        for j in jobs
    ]
    header = ("ID", "KEY", "KIND", "STATE", "ATTEMPTS", "CREATED (UTC)", "ERROR")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def show_job(
    settings: Settings, job_id: str, as_json: bool = False, transcript: Renderer | None = None
) -> int:
    job: Job | None = _run(settings, lambda q: q.get(job_id))
    if job is None:
        print(f"pact-bot: no job with id {job_id!r}", file=sys.stderr)
        return 1
    if as_json:
        print(printable_json(job.model_dump_json(indent=2)))
    else:
        lines = [
            ("id", job.id),
            ("kind", _kind(job)),
            ("key", job.key),
            ("state", str(job.state) + (" (cancel requested)" if job.cancel_requested else "")),
            ("attempts", str(job.attempts)),
            ("worker", job.worker_id or "-"),  # host:pid:slot: `replyN` for the quick lane
            ("delivery", job.delivery_id),
            ("sender", job.sender),
            ("installation", str(job.installation_id or "-")),
            ("created", _when(job.created_at)),
            ("started", _when(job.started_at)),
            ("finished", _when(job.finished_at)),
            ("cost", f"${job.cost_usd:.4f}, {job.turns} turns"),
            ("pr", job.pr_url or "-"),
            ("error", job.error or "-"),
        ]
        for name, value in lines:
            print(f"{name + ':':<14}{printable(value)}")
        task = {k: v for k, v in job.task.items() if k not in ("body", "fingerprint")}
        print(f"{'task:':<14}{printable_json(json.dumps(task, default=str))}")
    if transcript is not None:
        print()
        print_transcript(settings.pact_data_dir / "transcripts" / f"{job.id}.jsonl", transcript)
    return 0


def print_transcript(path: Path, render: Renderer) -> None:
    """The agent's conversation as the loop recorded it, tool calls and results shortened."""
    if not path.exists():
        print(f"no transcript for this job ({path} does not exist)")
        return
    print(printable(render(path, max_block_chars=SHORT)), end="")
