"""Amazon Bedrock and Google Vertex AI in front of the Anthropic simulator.

The `anthropic` SDK's `AsyncAnthropicBedrock` and `AsyncAnthropicVertex` talk to these routes
unchanged (point them at `sim.base_url` with ANTHROPIC_BEDROCK_BASE_URL /
ANTHROPIC_VERTEX_BASE_URL, or the matching pact-bot settings). Each route checks the cloud's
request shape and credentials, then hands a plain Messages request to the simulator's own
handler, so policies, faults, validation and usage records apply exactly as on
`/v1/messages`; answers are translated back into the cloud's shape.

Bedrock: `POST /model/{modelId}/invoke` and `/invoke-with-response-stream`. The body has no
`model` and no `stream`, and carries `anthropic_version` (`bedrock-2023-05-31`, or the dated
API version SDK 2.x sends). The SigV4 `Authorization` header must name the `bedrock` service
and `cloud.aws_region`, and its signature is recomputed with botocore from
`cloud.aws_secret_access_key`. Errors have Bedrock's shape (`{"message"}` plus
`x-amzn-ErrorType`). Streams are AWS event-stream frames whose payload is
`{"bytes": base64(event json)}`.

Vertex: `POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict`
(`:streamRawPredict` streams SSE as the Messages API does; `count-tokens:rawPredict` counts).
The body has no `model` (except for counting), `anthropic_version` (`vertex-2023-10-16` or
the SDK's dated one), and `Authorization: Bearer` must hold a token issued by `POST /token`,
the OAuth JWT-bearer grant google-auth uses for a service-account key: the assertion's RS256
signature is verified with the account's public key. `cloud.service_account_file(dir)` writes
the key file whose `token_uri` points here. Errors have Google's shape.

Model ids map to the simulator's: Bedrock `[geo.]anthropic.<id>[-YYYYMMDD]-vN[:M]`, Vertex
`<id>[@YYYYMMDD]`. Records: `cloud.calls` (`CloudCall`: provider, path, status, body as the
cloud received it, auth-header summary without secrets), `cloud.tokens_issued`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
import struct
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
_DATED_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# google-auth always names Google's own token endpoint as the assertion's audience.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_BEDROCK_ID = re.compile(
    r"^(?:[a-z]{2,4}\.)?anthropic\.(claude-[a-z0-9-]+?)(?:-\d{8})?-v\d+(?::\d+)?$"
)
_VERTEX_ID = re.compile(r"^(claude-[a-z0-9-]+?)(?:@\d{8})?$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
_BEDROCK_ERRORS = {
    400: "ValidationException",
    401: "AccessDeniedException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    529: "ServiceUnavailableException",
}
_GOOGLE_STATUS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


@dataclass
class CloudCall:
    provider: str  # "bedrock" | "vertex" | "oauth"
    path: str
    status: int
    body: Any
    auth: str  # e.g. "AWS4-HMAC-SHA256 AKIA…/us-east-1/bedrock", "Bearer", ""


class _Reject(Exception):
    def __init__(self, status: int, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass
class CloudSim:
    """Bedrock and Vertex routes over an `AnthropicSim` (its `_messages`/`_count_tokens`)."""

    sim: Any
    aws_region: str = "us-east-1"
    vertex_project: str = "pact-sim-project"
    aws_access_key_id: str = field(
        default_factory=lambda: (
            "AKIASIM"
            + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(13))
        )
    )
    aws_secret_access_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    calls: list[CloudCall] = field(default_factory=list)
    tokens_issued: int = 0
    _tokens: dict[str, float] = field(default_factory=dict)
    _accounts: dict[str, Any] = field(default_factory=dict)  # key id -> public key
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self) -> list[Route]:
        return [
            Route("/model/{model_id}/invoke", self._bedrock, methods=["POST"]),
            Route("/model/{model_id}/invoke-with-response-stream", self._bedrock, methods=["POST"]),
            Route(
                "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{spec}",
                self._vertex,
                methods=["POST"],
            ),
            Route("/token", self._token, methods=["POST"]),
        ]

    def reset(self) -> None:
        with self._lock:
            self.calls = []
            self.tokens_issued = 0
            self._tokens = {}

    # ---- credentials for the host under test ---------------------------------------------
    def aws_env(self) -> dict[str, str]:
        """Static AWS keys and region (the endpoint: ANTHROPIC_BEDROCK_BASE_URL=sim.base_url)."""
        return {
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
            "AWS_REGION": self.aws_region,
        }

    def service_account_file(self, directory: Path, project: str | None = None) -> Path:
        """A service-account key file whose `token_uri` is this simulator's `/token`."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        with self._lock:
            self._accounts[key_id] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": project or self.vertex_project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": f"pact-bot@{project or self.vertex_project}.iam.gserviceaccount.com",
            "client_id": "100000000000000000001",
            "auth_uri": f"{self.sim.base_url}/auth",
            "token_uri": f"{self.sim.base_url}/token",
        }
        path = directory / "service-account.json"
        path.write_text(json.dumps(info))
        return path

    def vertex_env(self, key_file: Path) -> dict[str, str]:
        return {
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
            "CLOUD_ML_REGION": "us-east5",
            "ANTHROPIC_VERTEX_PROJECT_ID": self.vertex_project,
            "ANTHROPIC_VERTEX_BASE_URL": f"{self.sim.base_url}/v1",
        }

    def _record(self, call: CloudCall) -> CloudCall:
        with self._lock:
            self.calls.append(call)
        return call

    # ---- OAuth token endpoint ----------------------------------------------------------
    async def _token(self, request: Request) -> Response:
        import jwt

        form = await request.form()
        call = self._record(CloudCall("oauth", "/token", 0, dict(form), ""))
        assertion = str(form.get("assertion", ""))
        try:
            if form.get("grant_type") != JWT_BEARER:
                raise _Reject(400, "unsupported_grant_type")
            header = jwt.get_unverified_header(assertion)
            public = self._accounts.get(str(header.get("kid")))
            if public is None:
                raise _Reject(400, "invalid_grant: unknown key id")
            claims = jwt.decode(
                assertion,
                public,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
            if "cloud-platform" not in str(claims.get("scope", "")):
                raise _Reject(400, "invalid_scope")
        except jwt.PyJWTError as e:
            call.status = 400
            return JSONResponse(
                {"error": "invalid_grant", "error_description": f"Invalid JWT: {e}"},
                status_code=400,
            )
        except _Reject as e:
            call.status = e.status
            return JSONResponse({"error": e.message}, status_code=e.status)
        token = "ya29.sim-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.time() + 3600
            self.tokens_issued += 1
        call.status = 200
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    # ---- Bedrock ---------------------------------------------------------------------------
    async def _bedrock(self, request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        model_id = request.path_params["model_id"]
        stream = request.url.path.endswith("/invoke-with-response-stream")
        auth = request.headers.get("authorization", "")
        m = _AUTH.match(auth)
        summary = f"AWS4-HMAC-SHA256 {m['akid']}/{m['region']}/{m['service']}" if m else ""
        call = self._record(CloudCall("bedrock", request.url.path, 0, body, summary))
        try:
            self._check_sigv4(request, raw, m)
            if not isinstance(body, dict):
                raise _Reject(400, "Malformed input request, please reformat your input")
            if "model" in body or "stream" in body:
                raise _Reject(400, "extraneous key [model/stream] is not permitted")
            version = body.get("anthropic_version")
            if version != BEDROCK_VERSION and not _DATED_VERSION.match(str(version)):
                raise _Reject(400, f"invalid anthropic_version: {version!r}")
            model = _BEDROCK_ID.match(model_id)
            if not model:
                raise _Reject(400, "The provided model identifier is invalid.")
        except _Reject as e:
            call.status = e.status
            return _bedrock_error(e.status, e.message, e.kind)
        inner = {k: v for k, v in body.items() if k != "anthropic_version"}
        inner["model"] = model[1]
        if stream:
            inner["stream"] = True
        response = await self.sim._messages(_forward(request, "/v1/messages", inner, self.sim))
        call.status = response.status_code
        if response.status_code != 200:
            err = _error_of(response)
            return _bedrock_error(response.status_code, err.get("message", ""), "")
        if not stream:
            return response
        assert isinstance(response, StreamingResponse)
        return StreamingResponse(
            _event_stream(response.body_iterator),
            media_type="application/vnd.amazon.eventstream",
            headers={"x-amzn-requestid": response.headers.get("request-id", "")},
        )

    def _check_sigv4(self, request: Request, raw: bytes, m: re.Match[str] | None) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        if m is None:
            raise _Reject(
                403, "Missing Authentication Token", "MissingAuthenticationTokenException"
            )
        if m["service"] != "bedrock":
            raise _Reject(
                403,
                "Credential should be scoped to correct service: 'bedrock'",
                "InvalidSignatureException",
            )
        if m["region"] != self.aws_region:
            raise _Reject(
                403,
                f"Credential should be scoped to a valid region, not '{m['region']}'",
                "InvalidSignatureException",
            )
        if m["akid"] != self.aws_access_key_id:
            raise _Reject(
                403,
                "The security token included in the request is invalid.",
                "UnrecognizedClientException",
            )
        stamp = request.headers.get("x-amz-date", "")
        if not stamp.startswith(m["date"]):
            raise _Reject(
                403, "Date in Credential scope does not match", "InvalidSignatureException"
            )
        signed = m["signed"].split(";")
        headers = {h: request.headers.get(h, "") for h in signed}
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        url = f"http://{request.headers.get('host', '')}{raw_path.decode()}"
        if query:
            url += "?" + query.decode()
        aws = AWSRequest(method=request.method, url=url, headers=headers, data=raw)
        aws.context["timestamp"] = stamp
        signer = SigV4Auth(
            Credentials(self.aws_access_key_id, self.aws_secret_access_key), "bedrock", m["region"]
        )
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        if not secrets.compare_digest(expected, m["sig"]):
            raise _Reject(
                403,
                "The request signature we calculated does not match the signature you provided.",
                "InvalidSignatureException",
            )

    # ---- Vertex --------------------------------------------------------------------------
    async def _vertex(self, request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        spec = request.path_params["spec"]
        model_id, _, method = spec.rpartition(":")
        auth = request.headers.get("authorization", "")
        call = self._record(
            CloudCall("vertex", request.url.path, 0, body, "Bearer" if auth else "")
        )
        try:
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            expires = self._tokens.get(token)
            if expires is None or expires < time.time():
                raise _Reject(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                )
            if request.path_params["project"] != self.vertex_project:
                raise _Reject(403, f"Permission denied on project {request.path_params['project']}")
            if method not in ("rawPredict", "streamRawPredict"):
                raise _Reject(404, f"unknown method {method!r}")
            if not isinstance(body, dict):
                raise _Reject(400, "Invalid JSON payload received.")
            version = body.get("anthropic_version")
            if version != VERTEX_VERSION and not _DATED_VERSION.match(str(version)):
                raise _Reject(400, f"invalid anthropic_version: {version!r}")
            counting = model_id == "count-tokens"
            if counting:
                model = _VERTEX_ID.match(str(body.get("model", "")))
            else:
                if "model" in body:
                    raise _Reject(400, "model must be in the URL, not the body")
                if bool(body.get("stream")) != (method == "streamRawPredict"):
                    raise _Reject(400, f"{method} does not match stream={body.get('stream')}")
                model = _VERTEX_ID.match(model_id)
            if not model:
                raise _Reject(404, f"Publisher model {model_id} not found.")
        except _Reject as e:
            call.status = e.status
            status = _GOOGLE_STATUS.get(e.status, "INVALID_ARGUMENT")
            return JSONResponse(
                {"error": {"code": e.status, "message": e.message, "status": status}},
                status_code=e.status,
            )
        inner = {k: v for k, v in body.items() if k != "anthropic_version"}
        inner["model"] = model[1]
        path = "/v1/messages/count_tokens" if counting else "/v1/messages"
        handler = self.sim._count_tokens if counting else self.sim._messages
        response = await handler(_forward(request, path, inner, self.sim))
        call.status = response.status_code
        return response


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _forward(request: Request, path: str, body: dict[str, Any], sim: Any) -> Request:
    """The same connection, as a first-party Messages request to the simulator's handler."""
    data = json.dumps(body).encode()
    headers = [
        (k, v)
        for k, v in request.scope["headers"]
        if k.lower() not in (b"authorization", b"content-length", b"x-api-key")
    ]
    headers += [
        (b"x-api-key", sim.api_key.encode()),
        (b"anthropic-version", b"2023-06-01"),
        (b"content-length", str(len(data)).encode()),
    ]
    scope = {**request.scope, "path": path, "raw_path": path.encode(), "headers": headers}
    sent = False
    outer = request.receive

    async def receive() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await outer()

    return Request(scope, receive)


def _error_of(response: Response) -> dict[str, Any]:
    try:
        return json.loads(bytes(response.body)).get("error") or {}
    except (ValueError, AttributeError):
        return {}


def _bedrock_error(status: int, message: str, kind: str) -> JSONResponse:
    kind = kind or _BEDROCK_ERRORS.get(status, "InternalServerException")
    return JSONResponse(
        {"message": message},
        status_code=503 if status == 529 else status,
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
    )


# ---- AWS event-stream framing -------------------------------------------------------------
def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v


def event_frame(payload: bytes, event_type: str = "chunk") -> bytes:
    """One event-stream message: prelude (lengths + CRC), string headers, payload, CRC."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


def chunk_frame(event: dict[str, Any]) -> bytes:
    data = base64.b64encode(json.dumps(event).encode()).decode()
    return event_frame(json.dumps({"bytes": data}).encode())


async def _event_stream(sse: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """Re-frame the simulator's SSE events; an `error` event travels as a chunk too."""
    buffer = b""
    async for piece in sse:
        buffer += piece if isinstance(piece, bytes) else str(piece).encode()
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            for line in block.decode().splitlines():
                if line.startswith("data: "):
                    yield chunk_frame(json.loads(line[6:]))
