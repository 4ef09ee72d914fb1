"""`POST /webhook`: verify, parse the few fields we need, decide, record durably, answer.

The contract (docs/architecture.md, "Ingress"): 503 while the App is not fully configured
(webhook secret, App id, private key); 413 over
`PACT_MAX_BODY_BYTES` (Content-Length checked first, a streamed body cut off at the limit);
401 on a missing or wrong `X-Hub-Signature-256` (the sha1 header alone is refused); 400 on
missing `X-GitHub-Event`/`X-GitHub-Delivery` or a body that is not a JSON object; 200 for
`ping`, for redeliveries and for events that start nothing; 202 once the job is committed.
A delivery is a duplicate when its id (GitHub's redelivery) or its raw body (a captured
signed body replayed under a new id: the signature does not cover the id; compared by the
body's HMAC-SHA256, the verified signature itself) was seen. Events that may start a job are
validated from the raw bytes straight into their model (`github.payloads.parse_json`);
only other events and bodies that model refuses are decoded whole.
A comment or review from a sender whose `author_association` is not OWNER, MEMBER or
COLLABORATOR starts nothing (200, `triggers.route` decides); triggers over the per-sender or
per-repository window (`web.ratelimit`) answer 200 `rate limited` — GitHub never retries, so
a 429 would gain nothing. Both are counted in `pact_webhook_triggers_dropped_total`.
Nothing here calls GitHub or the model: a comment-triggered code or revise job whose key
already has a queued or running job comes with an `ack` reply job (recorded first, in the
same transaction, delivery id `<delivery>:ack`) that a worker answers with 👀 while the job
waits; a job that starts at once reacts itself.

`web.app.create_app` mounts `WebhookEndpoint.asgi`: no Request/Response objects on the hot
path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from pact_bot import metrics
from pact_bot.github.payloads import parse_json
from pact_bot.jobs.model import Enqueued, Job, Queue
from pact_bot.logs import log_line
from pact_bot.settings import Settings
from pact_bot.triggers import (
    ROUTED_EVENTS,
    BotIdentity,
    Decision,
    TriggerConfig,
    route,
    route_event,
)
from pact_bot.web.ratelimit import TriggerLimits

log = logging.getLogger(__name__)

# Events whose routing reads the per-repository label/command.
_CONFIGURABLE = frozenset({"issues", "issue_comment"})


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex>` of the raw body, compared in constant time."""
    return _verified_digest(secret, body, header) is not None


def _verified_digest(secret: bytes, body: bytes, header: str | None) -> str | None:
    """The body's HMAC-SHA256 (hex) when the header carries it, else None.

    It doubles as the body's fingerprint for replay dedupe (`body_sha256`): equal bodies
    give equal values under the one secret, a keyed hash is as collision-resistant as a
    plain sha256, and it saves hashing 14 KB a second time per delivery. (A body recorded as
    a plain sha256 before this version is not matched by hash after an upgrade; its id is.)
    """
    if not header or not header.startswith("sha256="):
        return None
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return digest if hmac.compare_digest(digest.encode(), header[7:].encode()) else None


@functools.lru_cache(maxsize=512)
def _delivery_counter(event: str, outcome: str) -> Any:
    """The labelled child, looked up once per (event, outcome) rather than per delivery."""
    return metrics.deliveries.labels(event=event, outcome=outcome)


class _TooLarge(Exception):
    pass


class _Headers:
    """The five request headers we read, picked out of the ASGI scope in one pass."""

    __slots__ = ("content_length", "delivery", "event", "sha1", "sha256")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.content_length: str | None = None
        self.delivery: str | None = None
        self.event: str | None = None
        self.sha256: str | None = None
        self.sha1: str | None = None
        for name, value in raw:
            attr = _WANTED.get(name.lower())
            if attr is not None:
                setattr(self, attr, value.decode("latin-1"))


_WANTED = {
    b"content-length": "content_length",
    b"x-github-delivery": "delivery",
    b"x-github-event": "event",
    b"x-hub-signature-256": "sha256",
    b"x-hub-signature": "sha1",
}
_JSON_HEADERS = [(b"content-type", b"application/json")]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]  # starlette.types.Receive
Send = Callable[[dict[str, Any]], Awaitable[None]]


class WebhookEndpoint:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        bot: BotIdentity,
        config_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.bot = bot
        secret = settings.github_webhook_secret
        self.secret = secret.get_secret_value().encode() if secret else None
        # A job recorded without App credentials could never run: refuse it, so GitHub's
        # delivery log shows the failure and the delivery can be redelivered once set.
        self.missing = settings.missing_app_vars()
        self.max_body = settings.pact_max_body_bytes
        self.config_ttl = config_ttl
        self._configs: dict[str, tuple[float, TriggerConfig]] = {}
        self.limits = TriggerLimits(
            settings.pact_rate_limit_sender,
            settings.pact_rate_limit_repo,
            settings.pact_rate_window_seconds,
            clock,
        )

    async def asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The endpoint as a bare ASGI app: no Request/Response objects on the hot path."""
        status, body = await self.handle(_Headers(scope["headers"]), receive)
        payload = orjson.dumps(body)
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def __call__(self, request: Request) -> Response:
        """The same endpoint as a starlette request handler."""
        status, body = await self.handle(_Headers(request.scope["headers"]), request.receive)
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def handle(self, headers: _Headers, receive: Receive) -> tuple[int, dict[str, Any]]:
        """Answer one delivery: (status, JSON body). Logs one line and updates the metrics."""
        started = time.perf_counter()
        event = headers.event or ""
        fields: dict[str, Any] = {"delivery_id": headers.delivery, "event": event or None}
        status, outcome, body = await self._handle(headers, receive, fields)
        latency = time.perf_counter() - started
        metrics.webhook_latency.observe(latency)
        # only a signed delivery names its event: anyone can send headers, and every label
        # value is a new time series
        verified = status not in (401, 413, 503)
        _delivery_counter((event or "none") if verified else "unverified", outcome).inc()
        fields["outcome"] = outcome
        fields["status"] = status
        fields["latency_ms"] = round(latency * 1000, 2)
        log_line(log, logging.WARNING if status >= 500 else logging.INFO, "delivery", fields)
        return status, body

    async def _handle(
        self, headers: _Headers, receive: Receive, fields: dict[str, Any]
    ) -> tuple[int, str, dict[str, Any]]:
        if self.secret is None or self.missing:
            return (
                503,
                "not_configured",
                {
                    "error": "pact-bot is not configured as a GitHub App yet: "
                    f"{', '.join(self.missing)} not set (see / for what is missing)"
                },
            )
        try:
            raw = await self._read_body(headers, receive)
        except _TooLarge:
            return 413, "rejected", {"error": f"body over {self.max_body} bytes"}
        body_sha256 = _verified_digest(self.secret, raw, headers.sha256)
        if body_sha256 is None:
            reason = (
                "X-Hub-Signature-256 is required (sha1 signatures are not accepted)"
                if headers.sha256 is None
                else "signature does not match"
            )
            return 401, "rejected", {"error": reason}
        event, delivery_id = fields["event"], fields["delivery_id"]
        if not event or not delivery_id:
            return 400, "rejected", {"error": "X-GitHub-Event and X-GitHub-Delivery are required"}
        ev = None
        if event in ROUTED_EVENTS:
            # The common case: validate the raw body straight into the event's model.
            # Anything it refuses takes the general path below, which says why.
            try:  # (not contextlib.suppress: its object costs more than the try)
                ev = parse_json(event, raw)
            except ValidationError:
                ev = None
        if ev is not None:
            fields["action"] = ev.action
            fields["repo"] = ev.repository.full_name if ev.repository else None
            config = await self._trigger_config(event, fields["repo"])
            decision = route_event(event, ev, self.bot, config, delivery_id=delivery_id)
        else:
            early = await self._decide_from_dict(event, delivery_id, raw, fields)
            if not isinstance(early, Decision):
                return early
            decision = early
        fields["reason"] = decision.reason
        if decision.job is None:
            if not await self.queue.record_delivery(delivery_id, body_sha256=body_sha256):
                return 200, "duplicate", {"ok": True, "duplicate": True}
            if decision.dropped is not None:
                metrics.triggers_dropped.labels(reason=decision.dropped).inc()
            return 200, "ignored", {"ok": True, "reason": decision.reason}

        job = decision.job
        # Not recorded as seen: once the window has room, a redelivery from GitHub's
        # delivery log (same id) starts the job.
        over = self.limits.take(job.repo, job.sender)
        if over is not None:
            fields["reason"] = f"rate limited ({over})"
            metrics.triggers_dropped.labels(reason=f"rate_limited_{over}").inc()
            return 200, "rate_limited", {"ok": True, "reason": "rate limited"}
        # The ack only when the job would wait (its key has a queued or running job): the
        # backend decides and records it before the job, in the job's transaction; a job
        # that starts at once gets 👀 from its own worker. Its own delivery id
        # (`<delivery>:ack`) keeps it unique; a redelivery records neither.
        with_ack = getattr(self.queue, "enqueue_with_ack", None)
        try:
            if decision.make_ack is None:
                result = await self.queue.enqueue(job, body_sha256=body_sha256)
            elif with_ack is not None:  # the queue builds the ack only when it records one
                result = await with_ack(job, decision.make_ack, body_sha256=body_sha256)
            else:  # a queue without it: the ack always, first
                assert decision.ack is not None
                await self._record_ack(decision.ack, fields)
                result = await self.queue.enqueue(job, body_sha256=body_sha256)
        except BaseException:
            self.limits.give_back(job.repo, job.sender)
            raise
        if result is Enqueued.duplicate_delivery:
            self.limits.give_back(job.repo, job.sender)  # a coalesced one keeps its slot:
            return 200, "duplicate", {"ok": True, "duplicate": True}  # it may have an ack
        if result is Enqueued.coalesced:
            return 200, "coalesced", {"ok": True, "coalesced": True}
        fields["job_id"] = job.id
        fields["kind"] = str(job.kind)
        return 202, "accepted", {"ok": True, "job_id": job.id, "kind": str(job.kind)}

    async def _decide_from_dict(
        self, event: str, delivery_id: str, raw: bytes, fields: dict[str, Any]
    ) -> Decision | tuple[int, str, dict[str, Any]]:
        """Events that start nothing, pings, and bodies the event's model refused: decode
        the whole body, then route it (or answer at once)."""
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 400, "rejected", {"error": "body is not JSON"}
        if not isinstance(payload, dict):
            return 400, "rejected", {"error": "body is not a JSON object"}
        action = payload.get("action")
        repo = payload.get("repository")
        fields["action"] = action if isinstance(action, str) else None
        name = repo.get("full_name") if isinstance(repo, dict) else None
        fields["repo"] = name if isinstance(name, str) else None  # the models say the rest
        if event == "ping":
            return 200, "ping", {"ok": True, "event": "ping"}
        config = await self._trigger_config(event, fields["repo"])
        try:
            return route(event, payload, self.bot, config, delivery_id=delivery_id)
        except ValidationError as e:
            where = ".".join(str(x) for x in e.errors()[0]["loc"])
            return 400, "rejected", {"error": f"payload of {event} is malformed at {where}"}

    async def _record_ack(self, ack: Job, fields: dict[str, Any]) -> None:
        try:
            await self.queue.enqueue(ack)
        except Exception:
            log.exception("could not record the acknowledgement", extra=fields)

    async def _read_body(self, headers: _Headers, receive: Receive) -> bytes:
        """The raw body; stops reading (413) as soon as it is over the limit."""
        if headers.content_length is not None:
            try:
                if int(headers.content_length) > self.max_body:
                    raise _TooLarge
            except ValueError:
                pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; verification of a partial body fails
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _trigger_config(self, event: str, repo: str | None) -> TriggerConfig:
        if event not in _CONFIGURABLE or not repo:
            return TriggerConfig()
        now = time.monotonic()
        cached = self._configs.get(repo)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            raw = await self.queue.get_repo_config(repo)
        except Exception:
            log.exception("cannot read the repository's trigger config", extra={"repo": repo})
            raw = None
        config = TriggerConfig.from_repo_config(raw)
        if len(self._configs) > 10_000:
            self._configs.clear()
        self._configs[repo] = (now + self.config_ttl, config)
        return config
