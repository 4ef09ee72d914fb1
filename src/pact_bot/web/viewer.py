"""The run viewer: `/jobs` (jobs of repositories you can write to) and `/jobs/<id>` (one job:
its trigger, state, timeline, cost and tokens, and its transcript as the agent writes it).

Every page needs a GitHub sign-in (`signin.py`); a job is shown only to people who can push
to its repository, asked of GitHub with their own token. `/jobs/<id>/events` streams the
transcript's new records as server-sent events (each an escaped HTML fragment, which
`/static/viewer.js` appends), plus the job's state, until the job has finished.

`pact_bot.web.links.job_url(settings, job_id)` is the link other parts put in comments and
check runs (re-exported here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pact_bot.agent.transcript import transcript_path
from pact_bot.jobs.model import TERMINAL, Job, Queue
from pact_bot.settings import Settings
from pact_bot.web import signin
from pact_bot.web.links import job_url as job_url  # the link other parts put in comments
from pact_bot.web.session import Session
from pact_bot.web.signin import NO_STORE, SignedOut, login_redirect, page
from pact_bot.web.transcript_html import (
    TranscriptView,
    esc,
    read_complete_lines,
    usage_totals,
)

log = logging.getLogger(__name__)

LIST_LIMIT = 200
PARALLEL_CHECKS = 8  # permission questions to GitHub at once, per page view
POLL_SECONDS = 0.5
STATE_EVERY = 2.0  # seconds between job-state checks of a stream
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0  # a stream ends after this; EventSource reconnects (Last-Event-ID)


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _queue(request: Request) -> Queue:
    return request.app.state.queue  # type: ignore[no-any-return]


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "—"


def _state_badge(job: Job, element_id: str = "") -> str:
    attr = f" id={element_id}" if element_id else ""
    return f"<span class='state {esc(job.state.value)}'{attr}>{esc(job.state.value)}</span>"


def _trigger(job: Job) -> str:
    task = job.task or {}
    what = str(task.get("trigger") or "")
    command = task.get("command")
    if command:
        what = f"{what} /pact {command}".strip()
    return f"{job.kind.value}" + (f" ({what})" if what else "")


def _github_link(settings: Settings, job: Job) -> str:
    if job.number is None:
        return esc(job.repo)
    href = f"{settings.web_url}/{job.repo}/issues/{job.number}"
    return f"<a href='{esc(href)}'>{esc(job.repo)}#{job.number}</a>"


def _http_url(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


class _Unavailable(Exception):
    pass


async def _allowed_repos(request: Request, session: Session, repos: set[str]) -> set[str]:
    auth = signin.auth_of(request)
    settings = _settings(request)
    names = sorted(repos)
    gate = asyncio.Semaphore(PARALLEL_CHECKS)

    async def check(repo: str) -> bool:
        async with gate:
            return await auth.can_write(settings, session, repo)

    answers = await asyncio.gather(*(check(r) for r in names), return_exceptions=True)
    allowed = set()
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, SignedOut):
            raise answer
        if isinstance(answer, BaseException):
            log.warning("permission check failed", extra={"error": type(answer).__name__})
            raise _Unavailable from None
        if answer:
            allowed.add(name)
    return allowed


def _signed_out(request: Request) -> Response:
    """GitHub refused the viewer's token (revoked, expired): forget it, sign in again."""
    signin.forget(request)
    return login_redirect(request)


def _unavailable(session: Session) -> Response:
    return page(
        "GitHub did not answer",
        "<p class=err>pact-bot could not ask GitHub which repositories you can write to. "
        "Reload in a moment.</p>",
        502,
        session=session,
    )


async def jobs_list(request: Request) -> Response:
    """`GET /jobs`: the newest jobs of the repositories the viewer can push to."""
    session = signin.auth_of(request).session(request)
    if session is None:
        return login_redirect(request)
    jobs = await _queue(request).list(limit=LIST_LIMIT)
    try:
        allowed = await _allowed_repos(request, session, {j.repo for j in jobs})
    except SignedOut:
        return _signed_out(request)
    except _Unavailable:
        return _unavailable(session)
    visible = [j for j in jobs if j.repo in allowed]
    settings = _settings(request)
    if not visible:
        body = (
            "<p>No jobs of repositories you can write to. Label an issue "
            "<code>pact:code</code> or comment <code>/pact code</code> to start one.</p>"
        )
        return page("Jobs", body, session=session)
    rows = "".join(
        "<tr>"
        f"<td><a href='/jobs/{esc(j.id)}'><code>{esc(j.id)}</code></a></td>"
        f"<td>{_github_link(settings, j)}</td>"
        f"<td class=wide>{esc(_trigger(j))} by {esc(j.sender)}</td>"
        f"<td>{_state_badge(j)}</td>"
        f"<td class=wide>{esc(_when(j.created_at))}</td>"
        f"<td class=num>${j.cost_usd:.2f}</td>"
        "</tr>"
        for j in visible
    )
    body = (
        "<table class=jobs><thead><tr><th>Job</th><th>Where</th><th class=wide>Trigger</th>"
        "<th>State</th><th class=wide>Queued</th><th class=num>Cost</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return page("Jobs", body, session=session)


async def _visible_job(request: Request) -> tuple[Session, Job] | Response:
    session = signin.auth_of(request).session(request)
    if session is None:
        return login_redirect(request)
    job = await _queue(request).get(request.path_params["job_id"])
    if job is None:
        return page(
            "No such job", "<p class=err>There is no job with that id.</p>", 404, session=session
        )
    try:
        ok = await signin.auth_of(request).can_write(_settings(request), session, job.repo)
    except SignedOut:
        return _signed_out(request)
    except Exception as e:
        log.warning("permission check failed", extra={"error": type(e).__name__})
        return _unavailable(session)
    if not ok:
        return page(
            "Not yours to see",
            f"<p class=err>This job belongs to <code>{esc(job.repo)}</code>, and you "
            "(as signed in on GitHub) cannot push to it.</p>",
            403,
            session=session,
        )
    return session, job


def _timeline(job: Job, records: list[dict[str, Any]]) -> str:
    items: list[tuple[float, str]] = [(job.created_at, "queued")]
    if job.started_at:
        items.append((job.started_at, f"started (attempt {job.attempts})"))
    for rec in records:
        ts = float(rec.get("ts") or 0)
        kind = rec.get("kind")
        if kind == "start":
            items.append((ts, f"agent started ({rec.get('model', '?')})"))
        elif kind == "phase":
            items.append((ts, str(rec.get("phase", ""))))
        elif kind == "stop":
            items.append((ts, f"agent stopped: {rec.get('stop', '?')}"))
    if job.finished_at:
        items.append((job.finished_at, job.state.value))
    lis = "".join(f"<li>{esc(_when(ts))} — {esc(what)}</li>" for ts, what in items)
    return f"<ol class=timeline id=timeline>{lis}</ol>"


async def job_page(request: Request) -> Response:
    """`GET /jobs/<id>`."""
    found = await _visible_job(request)
    if isinstance(found, Response):
        return found
    session, job = found
    settings = _settings(request)
    path = transcript_path(settings.pact_data_dir, job.id)
    records, offset = await asyncio.to_thread(read_complete_lines, path)
    view = TranscriptView()
    entries = "".join(view.entry(r) for r in records)
    tokens = usage_totals(records)
    pr = _http_url(job.pr_url)
    facts = [
        ("Repository", _github_link(settings, job)),
        ("Trigger", f"{esc(_trigger(job))} by <strong>{esc(job.sender)}</strong>"),
        ("State", _state_badge(job, "state")),
        ("Cost", f"${job.cost_usd:.4f} over {job.turns} turns"),
        (
            "Tokens",
            f"{tokens['input_tokens']:,} in, {tokens['output_tokens']:,} out, "
            f"{tokens['cache_read_tokens']:,} cache read, "
            f"{tokens['cache_write_tokens']:,} cache write",
        ),
    ]
    if pr:
        facts.append(("Pull request", f"<a href='{esc(pr)}'>{esc(pr)}</a>"))
    if job.error:
        facts.append(("Error", f"<span class=err>{esc(job.error)}</span>"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    live = ""
    events = ""
    if job.state not in TERMINAL:
        events = f" data-events='/jobs/{esc(job.id)}/events?from={offset}'"
        live = "<p id=live>Live: new turns appear below.</p>"
    empty = "" if records else "<p class=muted id=empty>No transcript yet.</p>"
    body = (
        f"<dl class=facts>{dl}</dl><h2>Timeline</h2>{_timeline(job, records)}"
        f"<h2>Transcript</h2>{live}{empty}<div id=transcript{events}>{entries}</div>"
        "<script src='/static/viewer.js' defer></script>"
    )
    return page(f"Job {job.id}", body, session=session)


def _sse(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


async def job_events(request: Request) -> Response:
    """`GET /jobs/<id>/events`: new transcript entries and state changes, as they happen."""
    found = await _visible_job(request)
    if isinstance(found, Response):
        status = 401 if found.status_code in (302, 303) else found.status_code
        return Response(status_code=status, headers=NO_STORE)
    _, job = found
    settings = _settings(request)
    queue = _queue(request)
    path = transcript_path(settings.pact_data_dir, job.id)
    start = request.headers.get("last-event-id") or request.query_params.get("from") or "0"
    offset = int(start) if start.isdigit() else 0
    poll = float(getattr(request.app.state, "viewer_poll_seconds", POLL_SECONDS))

    async def stream() -> AsyncIterator[str]:
        nonlocal offset
        view = TranscriptView()
        if offset:  # earlier records, for the tool names their results refer to
            seen, _ = await asyncio.to_thread(read_complete_lines, path, 0, offset)
            for rec in seen:
                view.entry(rec)
        state = job.state
        began = last_state = last_sent = time.monotonic()
        yield "retry: 2000\n\n"
        yield _sse("state", state.value)  # the page may be older than the job's state
        while True:
            records, offset = await asyncio.to_thread(read_complete_lines, path, offset)
            for rec in records:
                fragment = view.entry(rec)
                if fragment:
                    yield _sse("entry", fragment, offset)
                    last_sent = time.monotonic()
            now = time.monotonic()
            if now - last_state >= STATE_EVERY or state in TERMINAL:
                last_state = now
                current = await queue.get(job.id)
                if current is not None and current.state != state:
                    state = current.state
                    yield _sse("state", state.value)
                if state in TERMINAL:
                    records, offset = await asyncio.to_thread(read_complete_lines, path, offset)
                    for rec in records:
                        if fragment := view.entry(rec):
                            yield _sse("entry", fragment, offset)
                    yield _sse("end", state.value)
                    return
            if now - began > STREAM_SECONDS:
                return
            if now - last_sent > KEEPALIVE_SECONDS:
                last_sent = now
                yield ": keepalive\n\n"
            await asyncio.sleep(poll)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**NO_STORE, "X-Accel-Buffering": "no"},
    )


routes = [
    Route("/jobs", jobs_list, methods=["GET"]),
    Route("/jobs/{job_id}", job_page, methods=["GET"]),
    Route("/jobs/{job_id}/events", job_events, methods=["GET"]),
]
