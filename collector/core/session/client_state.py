"""Encoding of the `client_state` we hand Telnyx and get back on later webhooks."""

from __future__ import annotations

import base64
import binascii

import orjson

from collector.core.session.events import ClientState


def encode(state: ClientState) -> str:
    """Base64 of compact JSON, as Telnyx requires (valid base64)."""
    raw = {"s": state.session_id, "k": state.kind, "a": state.attempt}
    return base64.b64encode(orjson.dumps(raw)).decode("ascii")


def decode(value: object) -> ClientState | None:
    """Decode defensively: Telnyx may echo a value that is not ours (or none at all)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = orjson.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("s"), str):
        return None
    attempt = raw.get("a")
    kind = raw.get("k")
    return ClientState(
        session_id=raw["s"],
        kind=kind if isinstance(kind, str) else "",
        attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0,
    )
