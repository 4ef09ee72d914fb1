"""The floor of our stack: a bare starlette route that verifies the HMAC and parses the JSON.

Run: `python bench/peers/floor/app.py PORT` with WEBHOOK_SECRET set. Same stack as
`pact-bot serve`: uvicorn on uvloop + httptools, one process, no access log, and the same JSON
parser (orjson), so the ratio measures what pact-bot adds (routing, the durable insert, the
log line, metrics), not library choices.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET = os.environ["WEBHOOK_SECRET"].encode()


async def webhook(request: Request) -> Response:
    body = await request.body()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    given = request.headers.get("x-hub-signature-256", "")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return Response(status_code=401)
    if not isinstance(orjson.loads(body), dict):
        return Response(status_code=400)
    return Response(b'{"ok":true}', status_code=202, media_type="application/json")


app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
    )
