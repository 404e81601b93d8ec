"""The live event hub: decisions and deliveries become server-sent events.

The engine calls `Hub.on_decision` after each decision is durably saved, and the delivery
worker calls `Hub.on_delivery` after each delivery attempt. Both are synchronous, cheap and
never raise: they build the masked payload of the change once, give it the next global id,
append it to a bounded ring buffer and put it, without waiting, in each subscriber's
bounded queue.

Event types (`data` is one JSON object; every event has an `id:`):

  session.updated     state, fields, gather, notes, call or conversation changed
                      (and once when a session is created)
  session.partial     the AI reported partial results of the current gather
  session.transcript  lines were added or changed: `from` (index) and `lines`
  session.finalized   the submission was built: status, outcome, amd, data (masked),
                      errors
  delivery.updated    a sink delivery was delivered, retried or declared dead

Ids are integers that only grow, also across restarts (they start from the clock in
microseconds). A client that reconnects with `Last-Event-ID` gets every buffered event after
that id (the per-session stream filters them), then the live ones. A subscriber whose queue
fills up (a slow client) catches up from the ring buffer instead of losing events.

Memory is bounded by bytes as well as by count (a transcript line can be 900 KB): the ring
buffer keeps at most LIVE_HISTORY_EVENTS events and LIVE_HISTORY_BYTES bytes, each
subscriber's queue at most SUBSCRIBER_QUEUE_EVENTS and SUBSCRIBER_QUEUE_BYTES (past that
it catches up from the ring), and what the hub remembers per session (the transcript as
last shown, the form and state for deliveries) at most LIVE_SESSION_MEMORY_BYTES. Sizes
are the memory of the events' JSON text; /metrics shows them (collector_memory_bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from collector.bounded import ByteLru
from collector.core.session import events as E
from collector.web.presentation import (
    Masker,
    field_views,
    gather_view,
    iso,
    transcript_view,
)

if TYPE_CHECKING:
    from collector.core.forms import Form
    from collector.core.session.decide import Decision
    from collector.core.session.model import Session
    from collector.core.session.submission import Submission
    from collector.records import DeliveryRow

log = structlog.get_logger("collector.live")

TYPES = (
    "session.updated",
    "session.partial",
    "session.transcript",
    "session.finalized",
    "delivery.updated",
)
_UPDATE_CHANGES = frozenset({"state", "fields", "gather", "notes", "call", "conversation"})
_DELIVERY_STATE = {"delivered": "delivered", "retried": "pending", "dead": "dead"}

LIVE_HISTORY_EVENTS = 10_000  # events kept for Last-Event-ID catch-up
LIVE_HISTORY_BYTES = 32 * 1024 * 1024  # ... and at most this many bytes of them
SUBSCRIBER_QUEUE_EVENTS = 1_000  # a subscriber's queue, past which it reads the ring
SUBSCRIBER_QUEUE_BYTES = 4 * 1024 * 1024
LIVE_SESSION_MEMORY = 20_000  # sessions whose shown transcript / form and state are kept
LIVE_SESSION_MEMORY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One published event: its id, the session it is about, its type and JSON text."""

    id: int
    session_id: str
    type: str
    data: str

    @property
    def size(self) -> int:
        """The memory its JSON text takes (2 bytes a character once it holds a "•")."""
        return sys.getsizeof(self.data)


_WAKE = LiveEvent(0, "", "", "")  # no event: wakes a subscriber to catch up from the ring


@dataclass(eq=False)
class Subscriber:
    """One client's stream: a bounded queue, an optional session filter, a position."""

    hub: Hub
    session_id: str | None
    queue: asyncio.Queue[LiveEvent]
    last_id: int
    backlog: list[LiveEvent] = field(default_factory=list)
    overflowed: bool = False
    closed: bool = False
    queued_bytes: int = 0  # the size of what waits in `queue`

    def matches(self, event: LiveEvent) -> bool:
        return self.session_id is None or event.session_id == self.session_id

    async def events(self) -> AsyncIterator[LiveEvent]:
        """The backlog, then live events, in id order, without repeats."""
        while not self.closed:
            if self.backlog:
                batch, self.backlog = self.backlog, []
                for event in batch:
                    if event.id > self.last_id:
                        self.last_id = event.id
                        yield event
                continue
            if self.overflowed and self.queue.empty():
                # the queue filled up and dropped events: read them from the ring buffer
                self.overflowed = False
                self.backlog = self.hub.since(self.last_id, self.session_id)
                continue
            event = await self.queue.get()
            self.queued_bytes -= event.size
            if event.id > self.last_id:
                self.last_id = event.id
                yield event


WATCH_GRACE_SECONDS = 300.0


class Hub:
    """Fans live events out to subscribers; keeps the last `capacity` for reconnects."""

    def __init__(
        self,
        forms: Mapping[str, Form],
        *,
        capacity: int = LIVE_HISTORY_EVENTS,
        queue_size: int = SUBSCRIBER_QUEUE_EVENTS,
        history_bytes: int = LIVE_HISTORY_BYTES,
        queue_bytes: int = SUBSCRIBER_QUEUE_BYTES,
        memory_bytes: int = LIVE_SESSION_MEMORY_BYTES,
        max_subscribers: int = 1_000,
        ping_seconds: float = 15.0,
        first_id: int | None = None,
    ) -> None:
        self.forms = forms
        self.capacity = capacity
        self.queue_size = queue_size
        self.history_bytes = history_bytes
        self.queue_bytes = queue_bytes
        self.max_subscribers = max_subscribers
        self.ping_seconds = ping_seconds
        start = int(time.time() * 1_000_000) if first_id is None else first_id
        self._ids = itertools.count(start)
        self.last_id = start - 1
        self._ring: deque[LiveEvent] = deque()
        self.ring_bytes = 0
        self._subscribers: set[Subscriber] = set()
        # per live session: the transcript as last shown, and (form, state) for deliveries
        self._shown: ByteLru[str, list[int]] = ByteLru(memory_bytes // 2, LIVE_SESSION_MEMORY)
        self._known: ByteLru[str, tuple[str | None, str]] = ByteLru(
            memory_bytes // 2, LIVE_SESSION_MEMORY
        )
        self.published = 0
        self._last_left = -math.inf  # monotonic time the last subscriber went away
        # each local decision's session, before it is shown: False when the cluster's view
        # (web/cluster.py) already showed a later version of it
        self.on_applied: Callable[[Session], bool] | None = None

    # -- subscribers ----------------------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def full(self) -> bool:
        return len(self._subscribers) >= self.max_subscribers

    def subscribe(self, session_id: str | None = None, after: int | None = None) -> Subscriber:
        """A new subscriber; with `after` (a Last-Event-ID), the buffered events after it."""
        sub = Subscriber(
            hub=self,
            session_id=session_id,
            queue=asyncio.Queue(self.queue_size),
            last_id=after if after is not None else self.last_id,
        )
        if after is not None:
            sub.backlog = self.since(after, session_id)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.closed = True
        self._subscribers.discard(sub)
        self._last_left = time.monotonic()

    @property
    def watched(self) -> bool:
        """Someone is subscribed, or was within WATCH_GRACE_SECONDS (and may reconnect).

        Building masked payloads costs about 40 us a decision; nobody watching, nobody pays.
        """
        return bool(self._subscribers) or time.monotonic() - self._last_left < WATCH_GRACE_SECONDS

    def since(self, after: int, session_id: str | None = None) -> list[LiveEvent]:
        """Buffered events with an id greater than `after`, optionally of one session."""
        if not self._ring or after >= self._ring[-1].id:
            return []
        skip = max(0, after - self._ring[0].id + 1)
        return [
            e
            for e in itertools.islice(self._ring, skip, None)
            if e.id > after and (session_id is None or e.session_id == session_id)
        ]

    def memory(self) -> dict[str, int]:
        """Bytes held now, by buffer (for /metrics)."""
        return {
            "live_history": self.ring_bytes,
            "live_subscriber_queues": sum(s.queued_bytes for s in self._subscribers),
            "live_session_memory": self._shown.bytes + self._known.bytes,
        }

    def limits(self) -> dict[str, int]:
        """The byte limit of each buffer (the queues' is per subscriber)."""
        return {
            "live_history": self.history_bytes,
            "live_subscriber_queues": self.queue_bytes,
            "live_session_memory": self._shown.max_bytes + self._known.max_bytes,
        }

    # -- publishing -----------------------------------------------------------------------

    def _buffer(self, event: LiveEvent) -> None:
        """Keep `event` for catch-up; the oldest go once a count or byte limit is passed."""
        ring = self._ring
        ring.append(event)
        self.ring_bytes += event.size
        while ring and (len(ring) > self.capacity or self.ring_bytes > self.history_bytes):
            self.ring_bytes -= ring.popleft().size

    def publish(self, type_: str, session_id: str, payload: dict[str, Any]) -> LiveEvent:
        """Number, buffer and fan out one event. Never blocks."""
        event_id = next(self._ids)
        body = {"id": event_id, "type": type_, "session_id": session_id, **payload}
        event = LiveEvent(event_id, session_id, type_, orjson.dumps(body).decode())
        self.last_id = event_id
        self._buffer(event)
        self.published += 1
        size = event.size
        for sub in self._subscribers:
            if not sub.matches(event) or sub.overflowed:
                continue  # one that overflowed reads everything after its position from the ring
            if sub.queued_bytes + size > self.queue_bytes:
                # it reads this one from the ring; wake it if it waits on an empty queue
                sub.overflowed = True
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(_WAKE)
                    sub.queued_bytes += _WAKE.size
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True
            else:
                sub.queued_bytes += size
        return event

    def on_decision(self, event: E.Event, decision: Decision) -> None:
        """engine.listeners: turn one saved decision into its live events."""
        if not self.watched:
            return
        try:
            if self.on_applied is not None and not self.on_applied(decision.session):
                return  # the cluster's view already showed a later version of it
            created = isinstance(event, E.CallInitiated) and not decision.changes
            self.show(decision.session, decision.changes, decision.submission, created=created)
        except Exception:
            log.exception("live_publish_failed", event_type=type(event).__name__)

    def on_delivery(self, sink: str, outcome: str, row: DeliveryRow) -> None:
        """runtime.delivery_listeners: one delivery attempt's outcome."""
        if not self.watched:
            return
        try:
            self._on_delivery(sink, outcome, row)
        except Exception:
            log.exception("live_publish_failed", sink=sink)

    def _remember(self, store: ByteLru[str, Any], key: str, value: Any) -> None:
        size = 64 + len(key) + (8 * len(value) if isinstance(value, list) else 64)
        store.put(key, value, size)

    def show(
        self,
        s: Session,
        changes: AbstractSet[str],
        submission: Submission | None = None,
        *,
        created: bool = False,
    ) -> None:
        """Publish the live events of a session as it now is: `changes` names what
        changed (decide()'s names), `submission` is the one it just finalized with."""
        if not changes and not created:
            return
        form = self.forms.get(s.form) if s.form else None
        masker = Masker.for_session(s, form)
        base = {
            "form": s.form,
            "state": s.state.value,
            "call_control_id": s.call.call_control_id,
            "at": iso(s.updated_at),
        }
        self._remember(self._known, s.id, (s.form, s.state.value))
        if created or changes & _UPDATE_CHANGES:
            payload = {
                **base,
                "changes": sorted(changes) if changes else ["created"],
                "terminal": s.terminal,
                "attempts": s.attempt,
                "gather": gather_view(s),
                "fields": field_views(s, form, masker),
                "fields_filled": s.filled(),
                "fields_total": len(form.fields) if form is not None else len(s.fields),
                "call": {
                    "from": s.call.from_,
                    "to": s.call.to,
                    "direction": s.call.direction,
                    "alive": s.call_alive,
                },
                "started_at": iso(s.started_at),
            }
            if "notes" in changes and s.notes:
                note = s.notes[-1]
                payload["note"] = {**masker.deep(note), "at": iso(note.get("at"))}
            self.publish("session.updated", s.id, payload)
        if "partial" in changes:
            self.publish(
                "session.partial",
                s.id,
                {**base, "partial": masker.values(s.partial), "gather": gather_view(s)},
            )
        if "transcript" in changes or (masker.active and changes & {"partial", "fields"}):
            # a value heard just now can change how earlier lines are masked
            self._publish_transcript(s.id, base, transcript_view(s, masker))
        if s.terminal and not s.call_alive:
            self._shown.pop(s.id, None)  # a late line is sent again from the start
        if submission is not None:
            sub = submission
            self.publish(
                "session.finalized",
                s.id,
                {
                    **base,
                    "status": sub.get("status"),
                    "outcome": sub.get("outcome"),
                    "amd": sub.get("amd"),
                    "submission_id": sub.get("submission_id"),
                    "data": masker.values(sub.get("data") or {}),
                    "errors": masker.deep(list(sub.get("errors") or [])),
                    "fields_filled": s.filled(),
                },
            )

    def _publish_transcript(
        self, session_id: str, base: dict[str, Any], lines: list[dict[str, Any]]
    ) -> None:
        shown = [hash((m["role"], m["content"], m["attempt"])) for m in lines]
        before = self._shown.get(session_id, [])
        start = 0
        for old, new in zip(before, shown, strict=False):
            if old != new:
                break
            start += 1
        if start == len(shown) == len(before):
            return
        self._remember(self._shown, session_id, shown)
        self.publish(
            "session.transcript",
            session_id,
            {**base, "from": start, "length": len(shown), "lines": lines[start:]},
        )

    def _on_delivery(self, sink: str, outcome: str, row: DeliveryRow) -> None:
        submission = row.submission
        if submission is None or not submission.get("session_id"):
            return
        session_id = submission["session_id"]
        form, state = self._known.get(session_id) or (submission.get("form"), None)
        self.publish(
            "delivery.updated",
            str(session_id),
            {
                "form": form,
                "state": state or submission.get("status"),
                "submission_id": row.submission_id,
                "sink": sink,
                "outcome": outcome,
                "delivery": {
                    "sink": sink,
                    "state": _DELIVERY_STATE.get(outcome, outcome),
                    "attempts": row.attempts + 1,
                },
                "at": iso(time.time()),
            },
        )

    def close(self) -> None:
        """End every stream (server shutdown)."""
        for sub in list(self._subscribers):
            self.unsubscribe(sub)
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(LiveEvent(-1, "", "", ""))
