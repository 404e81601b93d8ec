"""The records the store hands the workers and the edges: plain values, no database.

A store (collector.ports.SessionStore) builds them from its rows; the workers, the web edge
and the CLI read them. They live here, beside the ports, so that nothing but a store
imports collector.adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.core.session.submission import Submission


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
    state: str  # pending | sent | failed | expired
    attempts: int
    decided_at: float
    last_error: str | None


@dataclass(slots=True)
class DeliveryRow:
    """One submission on its way to one sink."""

    id: int
    submission_id: str
    sink: str
    key: str
    replay: bool
    state: str  # pending | delivered | dead
    attempts: int
    next_at: float
    created_at: float
    delivered_at: float | None
    last_error: str | None
    submission: Submission | None  # the body, where the query read it (due deliveries)


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
