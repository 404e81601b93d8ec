"""The floor: a bare Starlette handler that only verifies and parses, under uvicorn.

    uvicorn bench.floor_app:app --port PORT     (TELNYX_PUBLIC_KEY set)

No store, no decide, no commands: what any webhook receiver on this stack must pay.
"""

from __future__ import annotations

import os

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

PUBLIC_KEY = os.environ["TELNYX_PUBLIC_KEY"]
OK = b'{"status":"ok"}'


async def webhook(request: Request) -> Response:
    body = await request.body()
    try:
        verify_webhook_signature(body, request.headers, PUBLIC_KEY)
    except WebhookVerificationError:
        return Response(status_code=401)
    orjson.loads(body)
    return Response(OK, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(OK, media_type="application/json")


app = Starlette(
    routes=[
        Route("/webhooks/telnyx", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
