"""The ports: what the shell needs from the outside world, as protocols.

The workers (collector.workers) are typed against these and import no adapter; the
composition root (collector.runtime) builds the implementations and hands each worker
only the part it uses.

* `SessionStore`: the durable state of every call. SQLite implements it today
  (collector.adapters.store.sqlite.SqliteStore); tests/store/test_contract.py is what any
  other store must pass. Its parts `StepStore` (the engine's), `CommandStore` (the
  outbox's) and `DeliveryStore` (the delivery worker's) are what each worker is given.
* `CallControl`: sends one Telnyx command (collector.adapters.telephony.control).
* `Sink`: where a finished submission goes (collector.sinks, one module per type).
* `Clock`: the time now, in seconds since the epoch (`time.time`).
* `Feed`: how a worker hands an event it made (a timer, a command's outcome) back to the
  engine (`Engine.handle`).

The values they speak are core types (Session, Command, events) and collector.records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeAlias, runtime_checkable

from collector.core.session import events as E
from collector.core.session.commands import Command
from collector.core.session.model import Session
from collector.core.session.submission import Submission
from collector.records import CommandRow, DeadEventRow, DeliveryRow
from collector.sinks import Sink

__all__ = [
    "CallControl",
    "Clock",
    "CommandStore",
    "DeliveryStore",
    "Feed",
    "PreparedStep",
    "SessionStore",
    "Sink",
    "StepStore",
]

Clock: TypeAlias = Callable[[], float]
"""The time now in seconds since the epoch (`time.time`); tests pass their own."""

Feed: TypeAlias = Callable[[E.Event], Awaitable[Any]]
"""Apply one event to its call's session (`Engine.handle`); returns its outcome."""

PreparedStep: TypeAlias = Any
"""One decision serialised by a store's `step_rows()`, for that same store's
`commit_rows()`; what it holds is the store's own business."""


class CallControl(Protocol):
    """Sends Telnyx Call Control commands; the outbox decides what to send and when."""

    async def execute(
        self, call_control_id: str, action: str, body: dict[str, Any], command_id: str
    ) -> Any:
        """Send one action under `command_id` (Telnyx drops a repeat within 60 s); for
        `retrieve_status`, return whether the call is alive. Raise CommandRejected when
        Telnyx refused it for good, CommandTransient when it may not have arrived."""
        ...

    async def is_alive(self, call_control_id: str) -> bool:
        """Whether the call is still up (an unknown call is not); CommandTransient when
        that cannot be told now."""
        ...


@runtime_checkable
class StepStore(Protocol):
    """What the engine needs: a call's session, and one durable transaction per event."""

    async def session_by_call(self, call_control_id: str) -> Session | None:
        """The call's session as last committed (None: never seen); cheap, on the hot path."""
        ...

    async def record_seen(self, event_id: str, call_control_id: str, at: float) -> bool:
        """Durably note an event that reached no session; False if its id was noted before."""
        ...

    def step_rows(
        self,
        session: Session,
        commands: Iterable[Command] = (),
        submission: Submission | None = None,
        sinks: Iterable[str] = (),
    ) -> PreparedStep:
        """Serialise one decision, writing nothing; raise on a value that can never be
        stored (it would fail the same way on every redelivery)."""
        ...

    async def commit_rows(self, rows: PreparedStep) -> None:
        """Write one step_rows() in one transaction, returning once durable: the session
        (upserted by id, its event_ids included), its commands (a (session, seq) already
        stored is kept as it was), its submission and one pending delivery per sink (each
        kept if already stored). All or nothing. Raise StoreRefused when the rows themselves
        are refused (e.g. a second session for one call); anything else is the store's
        state now (locked, I/O) and worth retrying."""
        ...

    async def record_dead(
        self,
        event_id: str,
        call_control_id: str,
        event_type: str,
        stage: str,
        error: str,
        at: float,
        session_id: str | None = None,
    ) -> bool:
        """Durably keep an event that can never apply; False if its id was kept before."""
        ...


@runtime_checkable
class CommandStore(Protocol):
    """What the command outbox needs: the commands still to send, and their outcomes."""

    async def pending_commands(self, call_control_id: str | None = None) -> list[CommandRow]:
        """Pending commands (of one call, or all) ordered by call, then seq: decided order."""
        ...

    async def finish_command(
        self,
        session_id: str,
        seq: int,
        state: str,
        at: float,
        attempts: int,
        error: str | None = None,
    ) -> None:
        """Durably mark a command sent, failed or expired; a later mark replaces it."""
        ...


@runtime_checkable
class DeliveryStore(Protocol):
    """What the delivery worker needs: the due deliveries, and each attempt's outcome."""

    async def poll_deliveries(
        self, now: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        """At most `limit` pending deliveries due by `now`, earliest due first, each with
        its submission; and when the next one not yet due falls due (None: none)."""
        ...

    async def update_delivery(
        self,
        row_id: int,
        *,
        state: str,
        attempts: int,
        at: float,
        next_at: float | None = None,
        error: str | None = None,
    ) -> None:
        """Durably record an attempt: its state, attempts and error (next_at None keeps
        the due time; `delivered` also sets delivered_at)."""
        ...


@runtime_checkable
class SessionStore(StepStore, CommandStore, DeliveryStore, Protocol):
    """The durable state of every call: sessions, seen and dead events, the command
    outbox, submissions and their deliveries. Every write is durable when it returns."""

    async def open(self) -> None:
        """Make the store ready (create or migrate its schema); first, before any other."""
        ...

    async def close(self) -> None:
        """Finish the writes under way and let go of the store."""
        ...

    async def writable(self) -> bool:
        """Whether a write commits right now, within a couple of seconds; never raises."""
        ...

    async def ready(self) -> tuple[str, str] | None:
        """None when the store answers now, within a couple of seconds, with the schema this
        code was built for; else why not, as (code, message): `store_unavailable`,
        `schema_outdated` (behind this code) or `schema_too_new`. Never raises; the
        message holds no password."""
        ...

    async def commit_step(
        self,
        session: Session,
        commands: Iterable[Command] = (),
        submission: Submission | None = None,
        sinks: Iterable[str] = (),
    ) -> None:
        """step_rows() then commit_rows(), in one call."""
        ...

    async def session(self, session_id: str) -> Session | None:
        """A session by its id, as last committed."""
        ...

    async def sessions_with_deadlines(self) -> list[Session]:
        """Every session with a deadline set (its timer is re-armed at start-up)."""
        ...

    async def list_sessions(
        self,
        *,
        state: str | None = None,
        form: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[Session]:
        """Newest first by (started_at, id), filtered; `before` is the last page's cursor."""
        ...

    async def count_sessions_by_state(self) -> dict[str, int]:
        """How many sessions are in each state (states with none are left out)."""
        ...

    async def commands_for(self, session_id: str) -> list[CommandRow]:
        """A session's commands in seq order, whatever their state."""
        ...

    async def submission(self, submission_id: str) -> Submission | None:
        """A submission's body, as stored."""
        ...

    async def deliveries_for(self, submission_id: str) -> list[DeliveryRow]:
        """A submission's deliveries in the order they were made (without the body)."""
        ...

    async def delivery_stats(self) -> tuple[dict[tuple[str, str], int], float | None]:
        """Deliveries by (sink, state), and when the oldest pending one was made."""
        ...

    async def list_deliveries(
        self, states: tuple[str, ...] = ("pending", "dead")
    ) -> list[DeliveryRow]:
        """Deliveries in these states, oldest first (without the body)."""
        ...

    async def requeue(self, now: float, delivery_id: int | None = None) -> int:
        """Make a delivery not yet delivered (without an id: every dead one) pending and
        due now with its attempts reset; returns how many."""
        ...

    async def replay(self, submission_id: str, sink: str, key: str, now: float) -> int | None:
        """A new pending delivery of a submission to a sink under a new key, marked replay;
        its id, or None for an unknown submission."""
        ...

    async def list_dead_events(
        self,
        *,
        event_type: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, int] | None = None,
    ) -> list[DeadEventRow]:
        """Newest first by (received_at, id), filtered; `before` is the last page's cursor."""
        ...

    async def prune(self, now: float, retention_days: float, seen_days: float = 1.0) -> int:
        """Forget seen event ids older than seen_days, and dead events and finished
        sessions (their commands, submission, deliveries) older than retention_days, but
        never a session with a deadline or a pending delivery; returns sessions removed."""
        ...
