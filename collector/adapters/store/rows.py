"""Rows of the outbox tables, as the workers see them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class CommandRow:
    """A Telnyx command waiting in (or done with) the outbox."""

    id: int
    session_id: str
    call_control_id: str
    seq: int
    action: str
    body: dict[str, Any]
    command_id: str
    state: str
    attempts: int
    decided_at: float
    last_error: str | None

    @classmethod
    def from_row(cls, r: Any) -> CommandRow:
        return cls(
            id=r["id"],
            session_id=r["session_id"],
            call_control_id=r["call_control_id"],
            seq=r["seq"],
            action=r["action"],
            body=orjson.loads(r["body"]),
            command_id=r["command_id"],
            state=r["state"],
            attempts=r["attempts"],
            decided_at=r["decided_at"],
            last_error=r["last_error"],
        )


@dataclass(slots=True)
class DeliveryRow:
    """One submission on its way to one sink."""

    id: int
    submission_id: str
    sink: str
    key: str
    replay: bool
    state: str
    attempts: int
    next_at: float
    created_at: float
    delivered_at: float | None
    last_error: str | None
    submission: dict[str, Any] | None

    @classmethod
    def from_row(cls, r: Any) -> DeliveryRow:
        body = r["submission"]
        return cls(
            id=r["id"],
            submission_id=r["submission_id"],
            sink=r["sink"],
            key=r["key"],
            replay=bool(r["replay"]),
            state=r["state"],
            attempts=r["attempts"],
            next_at=r["next_at"],
            created_at=r["created_at"],
            delivered_at=r["delivered_at"],
            last_error=r["last_error"],
            submission=orjson.loads(body) if body else None,
        )


@dataclass(slots=True)
class DeadEventRow:
    """An event acknowledged but never applied: why, and where it failed (no body)."""

    id: int
    event_id: str
    call_control_id: str
    session_id: str | None
    event_type: str
    stage: str  # load | decide | serialise | store
    error: str
    received_at: float

    @classmethod
    def from_row(cls, r: Any) -> DeadEventRow:
        return cls(
            id=r["id"],
            event_id=r["event_id"],
            call_control_id=r["call_control_id"],
            session_id=r["session_id"],
            event_type=r["event_type"],
            stage=r["stage"],
            error=r["error"],
            received_at=r["received_at"],
        )
