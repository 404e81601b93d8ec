"""The records the store hands the workers and the edges: plain values, no database.

A store (collector.ports.SessionStore) builds them from its rows; the workers, the web edge
and the CLI read them. They live here, beside the ports, so that nothing but a store
imports collector.adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.core.session.model import Session
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
    # a shared store's claim (ClaimStore.claim_commands): the retry the command was last
    # sent under and when that send's confirm window opened (None: at decided_at), and
    # the instance whose lease ran out before this claim (None: nobody's)
    retry: int = 0
    window_start: float | None = None
    taken_from: str | None = None


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
    taken_from: str | None = None  # a claim: the instance whose lease ran out before it


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


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as last committed, with the version the store gave that commit (a store
    that keeps no versions, one process's own, says 0)."""

    session: Session
    version: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """A versioned step not written: the call's stored session is no longer the version
    the decision was made from. `current` is what is stored now (None: no session), as
    the step's own statement saw it: decide again from it."""

    current: StoredSession | None


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    """A session's deadline that has passed, claimed by this instance to fire."""

    session_id: str
    call_control_id: str
    kind: str
    due: float
    taken_from: str | None = None  # the instance whose lease ran out before this claim
