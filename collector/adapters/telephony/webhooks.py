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

from collector.core.session import events as E
from collector.core.session.client_state import decode
from collector.errors import PayloadInvalid, SignatureInvalid

MAX_BODY_BYTES = 1024 * 1024

# Bounds on a JSON value taken from a webhook. The body parses up to orjson's 1,024 levels,
# but the session is stored through pydantic and orjson, which stop at about 255: a gathered
# value deeper than that could never be stored, and every redelivery would fail the same way.
# A gathered field value (`result`, `partial_results`) beyond any bound is replaced, for that
# field only, by E.TOO_LARGE, which the session treats as an invalid answer (it is asked
# again); everything else (transcript lines, insights, other strings) is truncated to fit.
MAX_JSON_DEPTH = 64  # levels of lists and objects within one value
MAX_STRING_CHARS = 16 * 1024  # characters of one string (an object key included)
MAX_LIST_ITEMS = 1000  # items of one list (or members of one object)


def fits(value: Any, depth: int = 0) -> bool:
    """Whether a JSON value is within MAX_JSON_DEPTH, MAX_STRING_CHARS and MAX_LIST_ITEMS."""
    if isinstance(value, str):
        return len(value) <= MAX_STRING_CHARS
    if isinstance(value, list):
        if depth >= MAX_JSON_DEPTH or len(value) > MAX_LIST_ITEMS:
            return False
        return all(fits(v, depth + 1) for v in value)
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH or len(value) > MAX_LIST_ITEMS:
            return False
        return all(len(k) <= MAX_STRING_CHARS and fits(v, depth + 1) for k, v in value.items())
    return True


def clip(value: Any, depth: int = 0) -> Any:
    """A JSON value cut to the bounds: strings and lists truncated, objects to their first
    MAX_LIST_ITEMS members, and anything nested deeper than MAX_JSON_DEPTH replaced by
    E.TOO_LARGE."""
    if isinstance(value, str):
        return value[:MAX_STRING_CHARS]
    if isinstance(value, list):
        if depth >= MAX_JSON_DEPTH:
            return dict(E.TOO_LARGE)
        return [clip(v, depth + 1) for v in value[:MAX_LIST_ITEMS]]
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            return dict(E.TOO_LARGE)
        items = (
            value.items() if len(value) <= MAX_LIST_ITEMS else list(value.items())[:MAX_LIST_ITEMS]
        )
        return {k[:MAX_STRING_CHARS]: clip(v, depth + 1) for k, v in items}
    return value


def _answers(value: Any) -> dict[str, Any]:
    """Gathered values by field: each beyond the bounds becomes E.TOO_LARGE, alone."""
    if not isinstance(value, dict):
        return {}
    return {
        k[:MAX_STRING_CHARS]: v if fits(v) else dict(E.TOO_LARGE)
        for k, v in (
            value.items() if len(value) <= MAX_LIST_ITEMS else list(value.items())[:MAX_LIST_ITEMS]
        )
    }


def verify(body: bytes, headers: Mapping[str, str], public_key: str) -> None:
    """Raise SignatureInvalid unless Telnyx signed this body within the last 300 s."""
    try:
        verify_webhook_signature(body, headers, public_key)
    except WebhookVerificationError as exc:
        raise SignatureInvalid(exc.message) from None
    except UnicodeDecodeError:
        raise PayloadInvalid("body is not valid JSON: not UTF-8") from None


def _line(message: dict[str, Any]) -> dict[str, Any]:
    """One transcript line cut to the bounds; a `role` or `content` that is not a string
    becomes its text, truncated (a line is kept, never dropped for its size)."""
    line: dict[str, Any] = clip(message, 1)  # an object stays an object
    for key in ("role", "content"):
        value = line.get(key)
        if value is not None and not isinstance(value, str):
            line[key] = str(value)[:MAX_STRING_CHARS]
    return line


def _history(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = payload.get("message_history")
    if not isinstance(value, list):
        return []
    return [_line(m) for m in value[:MAX_LIST_ITEMS] if isinstance(m, dict)]


def _str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value[:MAX_STRING_CHARS] if isinstance(value, str) else None


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
        partial_results=_answers(partial),
        message_history=_history(p),
    )


def _ended(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
    result = p.get("result")
    return E.AiGatherEnded(
        **c,
        status=_str(p, "status"),
        result=_answers(result) if isinstance(result, dict) else None,
        message_history=_history(p),
    )


def _conversation(event_type: str) -> Callable[[dict[str, Any], Mapping[str, Any]], E.Event]:
    keys = ("conversation_id", "assistant_id", "duration_sec", "reason", "llm_model")

    def build(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
        summary = {k: clip(p[k]) for k in keys if k in p and isinstance(p[k], str | int)}
        if event_type == "call.conversation_insights.generated":
            results = p.get("results")
            summary["insights"] = clip(results) if isinstance(results, list) else []
        return E.ConversationEvent(**c, event_type=event_type, summary=summary)

    return build


def _machine(
    cls: type[E.MachineDetectionEnded | E.MachineGreetingEnded], premium: bool
) -> Callable[[dict[str, Any], Mapping[str, Any]], E.Event]:
    """call.machine.*: the `result` as sent (decide maps a detection onto one vocabulary)."""

    def build(c: dict[str, Any], p: Mapping[str, Any]) -> E.Event:
        return cls(**c, result=_str(p, "result"), premium=premium)

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
    "call.machine.detection.ended": _machine(E.MachineDetectionEnded, premium=False),
    "call.machine.premium.detection.ended": _machine(E.MachineDetectionEnded, premium=True),
    "call.machine.greeting.ended": _machine(E.MachineGreetingEnded, premium=False),
    "call.machine.premium.greeting.ended": _machine(E.MachineGreetingEnded, premium=True),
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
