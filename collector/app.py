"""The Starlette application: webhook ingress, health, metrics (and the sandbox's fake).

HTTP contract of POST /webhooks/telnyx:
  413  body over 1 MiB
  401  missing or bad signature, or a timestamp outside 300 s (nothing changes)
  400  not JSON, not an object, no data.id / event_type / payload / call_control_id
  200  recorded durably (or a duplicate, or an event type we do not act on)
  503  the store could not record it: Telnyx will redeliver
Commands to Telnyx leave after the acknowledgement, from the outbox.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from collector.api import api_routes, install_error_handlers
from collector.auth import Auth
from collector.dashboard import dashboard_routes
from collector.errors import InboundError, PayloadTooLarge
from collector.live import Hub
from collector.runtime import Runtime
from collector.telephony.webhooks import MAX_BODY_BYTES, Unhandled, parse, verify

log = structlog.get_logger("collector.ingress")

_OK = b'{"status":"ok"}'


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The one error shape of every endpoint: {"error": {"code", "message"}}."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(runtime: Runtime) -> Starlette:
    """Build the ASGI app around a runtime; the lifespan starts and stops it."""

    async def telnyx_webhook(request: Request) -> Response:
        started = time.perf_counter()
        metrics = runtime.metrics
        event_type = "unknown"
        try:
            body = await read_body(request)
            verify(body, request.headers, runtime.public_key)
            event_type, event = parse(body)
        except InboundError as exc:
            metrics.events.labels(event_type, exc.code).inc()
            log.warning(
                "webhook_rejected", status=exc.status_code, reason=exc.reason, event_type=event_type
            )
            return error_response(exc.status_code, exc.code, exc.reason)
        except ClientDisconnect:
            return Response(status_code=400)
        if isinstance(event, Unhandled):
            metrics.events.labels(event_type, "unhandled").inc()
            log.info("webhook_unhandled", event_type=event_type, event_id=event.id)
            return Response(_OK, media_type="application/json")
        try:
            outcome = await runtime.engine.handle(event)  # binds call and form to its logs
        except Exception:
            metrics.events.labels(event_type, "error").inc()
            log.exception(
                "webhook_not_recorded", event_type=event_type, call_control_id=event.call_control_id
            )
            message = "the event could not be recorded; retry"
            return error_response(503, "store_unavailable", message)
        metrics.events.labels(event_type, outcome).inc()
        metrics.ack_seconds.observe(time.perf_counter() - started)
        if outcome != "applied":
            log.info(
                "webhook_" + outcome,
                event_type=event_type,
                event_id=event.id,
                call_control_id=event.call_control_id,
            )
        return Response(_OK, media_type="application/json")

    async def healthz(request: Request) -> Response:
        writable = await runtime.store.writable()
        body = {
            "status": "ok" if writable else "degraded",
            "store": "writable" if writable else "unwritable",
            "mode": runtime.mode,
        }
        return Response(
            orjson.dumps(body), status_code=200 if writable else 503, media_type="application/json"
        )

    async def metrics(request: Request) -> Response:
        payload = await runtime.metrics.render(runtime.store)
        return Response(payload, media_type="text/plain; version=0.0.4; charset=utf-8")

    # admin API, live streams and dashboard: behind the admin token (the webhook stays open)
    auth = Auth.for_runtime(runtime)
    hub = Hub(runtime.forms)
    runtime.engine.listeners.append(hub.on_decision)  # the engine isolates failures
    runtime.delivery_listeners.append(hub.on_delivery)

    routes = [
        Route("/webhooks/telnyx", telnyx_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *api_routes(runtime, hub, auth),
        *dashboard_routes(runtime, auth),
    ]
    if runtime.sandbox is not None:
        routes.append(Mount("/_sandbox/telnyx", app=runtime.sandbox.asgi_app()))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    install_error_handlers(app)
    app.state.runtime = runtime
    app.state.auth = auth
    app.state.hub = hub
    return app
