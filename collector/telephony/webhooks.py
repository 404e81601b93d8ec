"""Verify Telnyx webhooks and turn them into domain events.

Verification uses the SDK's own Ed25519 verifier over the raw bytes. Parsing reads only the
fields we use into small frozen events (the SDK's `unwrap` builds models of every event
type, about 1.3 ms an event). Dispatch is on `data.event_type` from the raw JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from collector.errors import PayloadInvalid, SignatureInvalid
from collector.session import events as E
from collector.session.client_state import decode

MAX_BODY_BYTES = 1024 * 1024


def verify(body: bytes, headers: Mapping[str, str], public_key: str) -> None:
    """Raise SignatureInvalid unless Telnyx signed this body within the last 300 s."""
    try:
        verify_webhook_signature(body, headers, public_key)
    except WebhookVerificationError as exc:
        raise SignatureInvalid(exc.message) from None
    except UnicodeDecodeError:
        raise PayloadInvalid("body is not valid JSON: not UTF-8") from None


def _history(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = payload.get("message_history")
    if not isinstance(value, list):
        return []
    return [m for m in value if isinstance(m, dict)]


def _str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) else None


def _common(data: Mapping[str, Any], payload: Mapping[str, Any], at: float) -> dict[str, Any]:
    return {
        "id": data["id"],
        "call_control_id": payload["call_control_id"],
        "at": at,
        "occurred_at": _str(data, "occurred_at"),
        "client_state": decode(payload.get("client_state")),
    }


def _initiated(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
    return E.CallInitiated(
        **c,
        direction=_str(p, "direction") or "incoming",
        from_=_str(p, "from") or "",
        to=_str(p, "to") or "",
        call_leg_id=_str(p, "call_leg_id"),
        call_session_id=_str(p, "call_session_id"),
        connection_id=_str(p, "connection_id"),
    )


def _partial(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
    partial = p.get("partial_results")
    return E.AiGatherPartial(
        **c,
        partial_results=partial if isinstance(partial, dict) else {},
        message_history=_history(p),
    )


def _ended(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
    result = p.get("result")
    return E.AiGatherEnded(
        **c,
        status=_str(p, "status"),
        result=result if isinstance(result, dict) else None,
        message_history=_history(p),
    )


def _conversation(event_type: str) -> Callable[[dict[str, Any], Mapping[str, Any]], E.Event]:
    keys = ("conversation_id", "assistant_id", "duration_sec", "reason", "llm_model")

    def build(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
        summary = {k: p[k] for k in keys if k in p and isinstance(p[k], str | int)}
        if event_type == "call.conversation_insights.generated":
            insights = p.get("insight_group_id"), p.get("results")
            summary["insights"] = insights[1] if isinstance(insights[1], list) else []
        return E.ConversationEvent(**c, event_type=event_type, summary=summary)

    return build


PARSERS: dict[str, Callable[[dict[str, Any], Mapping[str, Any]], E.Event]] = {
    "call.initiated": _initiated,
    "call.answered": lambda c, p: E.CallAnswered(**c),
    "call.ai_gather.partial_results": _partial,
    "call.ai_gather.message_history_updated": lambda c, p: E.AiGatherHistory(
        **c, message_history=_history(p)
    ),
    "call.ai_gather.ended": _ended,
    "call.gather.ended": lambda c, p: E.KeypadGatherEnded(
        **c, digits=_str(p, "digits") or "", status=_str(p, "status") or ""
    ),
    "call.speak.ended": lambda c, p: E.SpeakEnded(**c, status=_str(p, "status")),
    "call.hangup": lambda c, p: E.CallHangup(
        **c, cause=_str(p, "hangup_cause"), source=_str(p, "hangup_source")
    ),
    "call.conversation.created": _conversation("call.conversation.created"),
    "call.conversation.ended": _conversation("call.conversation.ended"),
    "call.conversation_insights.generated": _conversation("call.conversation_insights.generated"),
}


class Unhandled:
    """A well-formed webhook of a type we do not act on: acknowledged and logged."""

    __slots__ = ("event_type", "id")

    def __init__(self, event_id: str, event_type: str) -> None:
        self.id = event_id
        self.event_type = event_type


def parse(body: bytes, at: float | None = None) -> tuple[str, E.Event | Unhandled]:
    """Parse a verified body into (event_type, event). Raise PayloadInvalid with a reason."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadInvalid(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadInvalid("body is not a JSON object")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise PayloadInvalid("missing object 'data'")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadInvalid("missing string 'data.id'")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise PayloadInvalid("missing string 'data.event_type'")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise PayloadInvalid("missing object 'data.payload'")
    build = PARSERS.get(event_type)
    if build is None:
        return event_type, Unhandled(event_id, event_type)
    ccid = payload.get("call_control_id")
    if not isinstance(ccid, str) or not ccid:
        raise PayloadInvalid("missing string 'data.payload.call_control_id'")
    return event_type, build(_common(data, payload, time.time() if at is None else at), payload)
