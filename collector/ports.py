"""The ports: what the shell needs from the outside world, as protocols.

The workers (collector.workers) are typed against these and import no adapter; the
composition root (collector.runtime) builds the implementations and hands each worker
only the part it uses.

* `SessionStore`: the durable state of every call, in SQLite
  (collector.adapters.store.sqlite.SqliteStore) or PostgreSQL (.postgres.PostgresStore);
  tests/store/test_contract.py is what any store must pass. Its parts `StepStore` (the
  engine's), `CommandStore` (the outbox's) and `DeliveryStore` (the delivery worker's)
  are what each worker is given.
* `ClaimStore` and `Notices`: what a store that several instances share (`shared`: the
  PostgreSQL one) adds, so that each piece of work is done by one instance at a time
  under a lease, and the workers of every instance wake when there is work.
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
from collector.records import (
    CommandRow,
    Conflict,
    DeadEventRow,
    DeadlineRow,
    DeliveryRow,
    StoredSession,
)
from collector.sinks import Sink

__all__ = [
    "NOTICE_COMMAND",
    "NOTICE_DEADLINE",
    "NOTICE_DELIVERY",
    "NOTICE_SESSION",
    "CallControl",
    "ClaimStore",
    "Clock",
    "CommandStore",
    "DeliveryStore",
    "Feed",
    "NoticeCallback",
    "Notices",
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

    shared: bool
    """Whether several instances may use the store's database at once (PostgreSQL): its
    steps are then versioned (commit_rows answers Conflict to a decision made from a
    state that is no longer the stored one) and it is a ClaimStore and Notices. False
    (SQLite): one process owns the database; the engine's per-call lock alone keeps one
    call's steps apart, and the store keeps no versions."""

    async def session_by_call(self, call_control_id: str) -> Session | None:
        """The call's session as last committed (None: never seen); cheap, on the hot path."""
        ...

    async def stored_by_call(self, call_control_id: str) -> StoredSession | None:
        """The call's session as last committed, with its version (None: never seen)."""
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
        version: int | None = None,
    ) -> PreparedStep:
        """Serialise one decision, writing nothing; raise on a value that can never be
        stored (it would fail the same way on every redelivery). `version` is the
        StoredSession.version the decision was made from (0: the call had no session);
        None writes whatever is stored."""
        ...

    async def commit_rows(self, rows: PreparedStep) -> int | Conflict:
        """Write one step_rows() in one transaction, returning once durable: the session
        (upserted by id, its event_ids included), its commands (a (session, seq) already
        stored is kept as it was), its submission and one pending delivery per sink (each
        kept if already stored). All or nothing. Returns the session's new version. A
        shared store writes nothing and returns Conflict when the step has a version and
        the call's stored session is no longer at it (another instance's step came first,
        or made the call's session); one that is not shared returns 0, never Conflict.
        Raise StoreRefused when the rows themselves are refused (e.g. an unversioned second
        session for one call); anything else is the store's state now (locked, I/O) and
        worth retrying."""
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
    """What the command outbox needs: the commands still to send, and their outcomes (and
    a dial's session, to tell whether its call is still to be placed)."""

    async def session(self, session_id: str) -> Session | None:
        """A session by its id, as last committed."""
        ...

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
        version: int | None = None,
    ) -> int | Conflict:
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


NOTICE_SESSION = "collector_session"  # a step committed: the session's id
NOTICE_COMMAND = "collector_command"  # a step decided commands: the session's id
NOTICE_DELIVERY = "collector_delivery"  # deliveries became due: the submission's id
NOTICE_DEADLINE = "collector_deadline"  # a step set a deadline: when it is due

NoticeCallback: TypeAlias = Callable[[str | None], None]
"""Hears one notice: its id, or None when notices may have been missed (look again)."""


@runtime_checkable
class ClaimStore(Protocol):
    """What the workers of several instances sharing one store need (PostgreSQL): work
    claimed by one instance under a lease (FOR UPDATE SKIP LOCKED), renewed while the work
    is in flight, and claimable by any instance once it runs out. finish_command() and
    update_delivery() let go of a command's or a delivery's claim; a step that changes a
    session's deadline lets go of the deadline's. Times are the callers' clocks (seconds
    since the epoch): instances' clocks must agree to well within a lease."""

    instance: str
    """This instance's id, which its claims are recorded under (unique per process)."""

    async def claim_commands(
        self, now: float, until: float, *, session_id: str | None = None, limit: int = 100
    ) -> tuple[list[CommandRow], float | None]:
        """Claim until `until` every pending command of each session (at most `limit`
        sessions; or of the one given) whose first pending command is unclaimed, its lease
        run out by `now`, or this instance's: the session's pending commands in decided
        order. A command is never claimable while an earlier one of its session is
        pending. Also: when a claim of another instance runs out next (None: none)."""
        ...

    async def reissue_command(
        self, session_id: str, seq: int, retry: int, window_start: float
    ) -> None:
        """Durably note that a command goes out again under `retry` (a fresh command_id)
        with its confirm window open from `window_start`: whoever takes it over sends it
        under that same id (CommandRow.retry, .window_start)."""
        ...

    async def claim_deliveries(
        self, now: float, until: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        """Claim until `until` at most `limit` pending deliveries due by `now` that are
        unclaimed or their lease run out, earliest due first, each with its submission;
        and when the next one not claimable now may be (None: none)."""
        ...

    async def claim_deadlines(
        self, now: float, until: float, limit: int = 100
    ) -> tuple[list[DeadlineRow], float | None]:
        """Claim until `until` at most `limit` session deadlines passed by `now` that are
        unclaimed or their lease run out, earliest first; and when the next one not
        claimable now may be (None: none)."""
        ...

    async def finish_deadline(self, session_id: str, due: float, fired: bool) -> None:
        """A claimed deadline was fed to the engine (`fired`: it stays claimed for good, so
        a deadline its step did not move is never fired again) or could not be (the claim
        is let go). Nothing if the session's deadline is no longer `due`."""
        ...

    async def renew(self, kind: str, keys: list[Any], until: float) -> set[Any]:
        """Extend this instance's claims of `kind` (command, delivery: row ids; deadline:
        session ids) on work not yet done to `until`; returns the keys it still holds."""
        ...

    async def release(self) -> int:
        """Let go of every claim of this instance on work not done (a clean stop), so
        another instance need not wait for the leases; returns how many."""
        ...


@runtime_checkable
class Notices(Protocol):
    """Notices between the instances sharing a store (PostgreSQL LISTEN/NOTIFY): a hint
    that there is work or news, never the work itself; polling stays as the safety net."""

    async def listen(self, channel: str, callback: NoticeCallback, *, own: bool = False) -> None:
        """Call `callback` with the id of each notice on `channel` from another instance
        (`own`: this one's too), and with None whenever the listening connection was lost
        and is back. Notices are sent once their step has committed."""
        ...
