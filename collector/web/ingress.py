"""POST /webhooks/telnyx: verify, parse, record durably, acknowledge.

HTTP contract:
  413  body over 1 MiB
  401  missing or bad signature, or a timestamp outside 300 s (nothing changes)
  400  not JSON, not an object, no data.id / event_type / payload / call_control_id
  200  recorded durably (or a duplicate, an event type we do not act on, or a dead event:
       one that can never apply, recorded as such; see engine.py)
  503  the store could not record it (unavailable: locked, I/O errors): Telnyx will redeliver
Commands to Telnyx leave after the acknowledgement, from the outbox.

This is the one path every webhook takes, so it is a bare ASGI app: no Request or Response
objects, no routing or middleware layers, and only the two signature headers decoded. Its
responses are the ones Starlette would send (`error_body` renders errors as JSONResponse
does). The app (app.py) hands it POSTs to its path before Starlette's routing; Starlette
routes the same endpoint for everything else (a GET gets its 405 there).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from collector.adapters.telephony.webhooks import MAX_BODY_BYTES, Unhandled, parse, verify
from collector.errors import InboundError, PayloadTooLarge, SignatureInvalid
from collector.runtime import Runtime
from collector.web.body import ClientGone, read_body
from collector.web.digits import ascii_int

log = structlog.get_logger("collector.ingress")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PATH = "/webhooks/telnyx"
OK_BODY = b'{"status":"ok"}'
_SIGNATURE_HEADERS = (b"telnyx-signature-ed25519", b"telnyx-timestamp")


def error_body(code: str, message: str) -> bytes:
    """The one error shape of every endpoint, rendered exactly as Starlette's JSONResponse."""
    doc = {"error": {"code": code, "message": message}}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def respond(send: Send, status: int, body: bytes, json_body: bool = True) -> None:
    headers = [(b"content-length", str(len(body)).encode("ascii"))]
    if json_body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WebhookEndpoint:
    """The webhook endpoint of one runtime, as an ASGI app."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        declared: bytes | None = None
        signature: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _SIGNATURE_HEADERS:
                signature.setdefault(name.decode("latin-1"), value.decode("latin-1"))
            elif name == b"content-length":
                declared = value
        try:
            body = await read_body(receive, declared, MAX_BODY_BYTES)
        except ClientGone:
            await respond(send, 400, b"", json_body=False)
            return
        except PayloadTooLarge as exc:
            await respond(send, *self._refusal(exc, "unknown"))
            return
        await respond(send, *await self.handle(body, signature, started))

    async def handle(
        self, body: bytes, signature: dict[str, str], started: float
    ) -> tuple[int, bytes]:
        """Verify, parse and record one webhook; returns the status and body to answer."""
        runtime = self.runtime
        metrics = runtime.metrics
        event_type = "unknown"
        try:
            stamp = signature.get("telnyx-timestamp")
            if stamp is not None and ascii_int(stamp) is None:  # the SDK's int() takes "1_7..."
                raise SignatureInvalid("Invalid timestamp format: not ASCII digits")
            verify(body, signature, runtime.public_key)
            event_type, event = parse(body)
        except InboundError as exc:
            return self._refusal(exc, event_type)
        if isinstance(event, Unhandled):
            metrics.count(metrics.events, event_type, "unhandled")
            log.info("webhook_unhandled", event_type=event_type, event_id=event.id)
            return 200, OK_BODY
        try:
            outcome = await runtime.engine.handle(event)  # binds call and form to its logs
        except Exception:
            metrics.count(metrics.events, event_type, "error")
            log.exception(
                "webhook_not_recorded", event_type=event_type, call_control_id=event.call_control_id
            )
            return 503, error_body("store_unavailable", "the event could not be recorded; retry")
        metrics.count(metrics.events, event_type, outcome)
        metrics.ack_seconds.observe(time.perf_counter() - started)
        if outcome != "applied":
            log.info(
                "webhook_" + outcome,
                event_type=event_type,
                event_id=event.id,
                call_control_id=event.call_control_id,
            )
        return 200, OK_BODY

    def _refusal(self, exc: InboundError, event_type: str) -> tuple[int, bytes]:
        metrics = self.runtime.metrics
        metrics.count(metrics.events, event_type, exc.code)
        log.warning(
            "webhook_rejected", status=exc.status_code, reason=exc.reason, event_type=event_type
        )
        return exc.status_code, error_body(exc.code, exc.reason)
