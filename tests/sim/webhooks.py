"""Webhook deliveries as GitHub sends them.

Bodies start from GitHub's real example payloads (tests/fixtures/github-webhooks); the
simulator swaps in its own repository, issue, pull request, comment, review, sender and
installation and keeps every other field. Each delivery is signed (``X-Hub-Signature-256``
and the legacy sha1 ``X-Hub-Signature``) and POSTed by a background sender thread, so an
API answer never waits on the receiver. The delivery log keeps status and duration;
``redeliver`` sends the same body under the same ``X-GitHub-Delivery`` id, as GitHub does.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx

FIXTURES_ENV = "PACT_WEBHOOK_FIXTURES"
DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github-webhooks"
HOOKSHOT = "GitHub-Hookshot/abc1234"


def fixtures_dir() -> Path:
    return Path(os.environ.get(FIXTURES_ENV, DEFAULT_FIXTURES)) / "api.github.com"


@cache
def _template(event: str, action: str) -> str:
    """The example payload for ``event.action``; for an action without an example (e.g.
    pull_request.edited) the event's first example, whose action ``payload`` replaces."""
    folder = fixtures_dir() / event
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no example payloads for {event!r} in {folder.parent}; set {FIXTURES_ENV} to the "
            "github-webhooks fixtures directory (tests/fixtures/github-webhooks)"
        )
    path = folder / f"{action}.payload.json"
    if not path.exists():
        path = sorted(folder.glob("*.payload.json"))[0]
    return path.read_text()


def payload(event: str, action: str, objects: dict[str, Any]) -> dict[str, Any]:
    """The fixture payload for ``event.action`` with ``objects`` put in place of its own
    (a value of None removes the key)."""
    body: dict[str, Any] = json.loads(_template(event, action))
    body["action"] = action
    body.pop("organization", None)
    body.pop("enterprise", None)
    for key, value in objects.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = copy.deepcopy(value)
    return body


def sign(secret: str, body: bytes) -> tuple[str, str]:
    """(X-Hub-Signature-256, X-Hub-Signature) for ``body``."""
    sha256 = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return f"sha256={sha256}", f"sha1={sha1}"


@dataclass
class Delivery:
    """One attempt to deliver one event; a redelivery is a new attempt with the same id."""

    id: str
    event: str
    action: str | None
    body: bytes
    headers: dict[str, str]
    url: str | None = None
    redelivery: bool = False
    status: int | None = None
    duration: float | None = None
    error: str | None = None
    response_body: str = ""
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Queues deliveries and POSTs them, in order, from one background thread."""

    def __init__(self, secret: str, hook_id: int, target_id: int, timeout: float = 10.0) -> None:
        self.secret = secret
        self.hook_id = hook_id
        self.target_id = target_id
        self.url: str | None = None
        self.deliveries: list[Delivery] = []
        self._timeout = timeout
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    def send(self, event: str, body: dict[str, Any]) -> Delivery:
        raw = json.dumps(body, separators=(",", ":")).encode()
        delivery_id = str(uuid.uuid4())
        return self._enqueue(
            Delivery(
                id=delivery_id,
                event=event,
                action=body.get("action"),
                body=raw,
                headers=self._headers(event, delivery_id, raw),
            )
        )

    def redeliver(self, delivery_id: str) -> Delivery:
        original = next(d for d in self.deliveries if d.id == delivery_id)
        return self._enqueue(
            Delivery(
                id=original.id,
                event=original.event,
                action=original.action,
                body=original.body,
                headers=dict(original.headers),
                redelivery=True,
            )
        )

    def _headers(self, event: str, delivery_id: str, raw: bytes) -> dict[str, str]:
        sig256, sig1 = sign(self.secret, raw)
        return {
            "Content-Type": "application/json",
            "User-Agent": HOOKSHOT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(self.target_id),
            "X-Hub-Signature": sig1,
            "X-Hub-Signature-256": sig256,
        }

    def _enqueue(self, delivery: Delivery) -> Delivery:
        delivery.url = self.url
        with self._lock:
            self.deliveries.append(delivery)
        self._queue.put(delivery)
        return delivery

    def wait(self, timeout: float = 10.0) -> list[Delivery]:
        """Block until every queued delivery has been attempted; returns the log."""
        deadline = time.monotonic() + timeout
        for delivery in list(self.deliveries):
            if not delivery.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"webhook delivery {delivery.id} still pending")
        return list(self.deliveries)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, trust_env=False) as client:  # no proxies
            while (delivery := self._queue.get()) is not None:
                self._post(client, delivery)

    def _post(self, client: httpx.Client, delivery: Delivery) -> None:
        start = time.monotonic()
        try:
            if delivery.url is None:
                delivery.error = "no webhook URL configured"
                return
            response = client.post(delivery.url, content=delivery.body, headers=delivery.headers)
            delivery.status = response.status_code
            delivery.response_body = response.text[:2000]
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        finally:
            delivery.duration = time.monotonic() - start
            delivery.done.set()
