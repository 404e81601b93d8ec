"""The engine: applies events to sessions one call at a time, durably.

For each event: take the call's lock, load its session (memory, else the store), run
decide(), and save the event id, the new session, its commands and any submission with its
deliveries in one transaction. Only then is the event acknowledged, and only then do the
listeners (command outbox, delivery worker, timers, live streams) hear of it. Different
calls run concurrently; one call's events never interleave.

With a store that several instances share (`store.shared`: PostgreSQL), each step is
also versioned: it is written only if the call's stored session is still the version
the decision was made from (the session cache holds that version, and the step's own
statement checks it), else the store answers Conflict with the newer session, and
decide() runs again on it. So one call's events apply one at a time in one order across
instances, an event id applies once (the loser of two instances deciding the same event
at once finds its id in the winner's session: a duplicate), and a stale cache never
decides anything that is written. A redelivered event whose id a cached session already
holds is answered duplicate from the cache: ids never leave a session.

An event that fails for a reason its redelivery cannot change (decide() raises, the step
cannot be serialised, the store refuses its rows, the call's stored session cannot be read)
is recorded as a dead event and answered `dead`, so the webhook is acknowledged and it
never blocks its call. Anything else raised (the store is unavailable: locked, I/O errors)
propagates, and the webhook is answered 503 so that Telnyx redelivers it.
"""

from __future__ import annotations

import dataclasses
import re
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from collector.bounded import ByteLru, session_bytes
from collector.core.forms import DEFAULT_MESSAGES, Form
from collector.core.session import events as E
from collector.core.session.decide import Decision, Policy, decide
from collector.core.session.event_types import event_type_of
from collector.core.session.model import CallInfo, Session
from collector.core.session.outbound import pending_call_id
from collector.errors import StoreRefused
from collector.ports import StepStore
from collector.records import Conflict, StoredSession
from collector.workers.sync import KeyedLocks

log = structlog.get_logger("collector.engine")

SESSION_CACHE_BYTES = 64 * 1024 * 1024  # live sessions kept in memory (estimated bytes)
MAX_CONFLICTS = 25  # steps of one event that lost to another instance's, before a 503

Listener = Callable[[E.Event, Decision], None]  # hears each applied decision
SinkSelector = Callable[[Form, str], list[str]]


@dataclass(frozen=True, slots=True)
class Router:
    """Which form answers a call: the called number's form, else the default form."""

    numbers: Mapping[str, str]
    default_form: str | None = None
    extra: dict[str, str] | None = None  # sandbox: numbers the simulator registers

    def form_for(self, to: str) -> str | None:
        if self.extra and to in self.extra:
            return self.extra[to]
        return self.numbers.get(to, self.default_form)


class Engine:
    """Serialises each call's events through decide() and the store."""

    def __init__(
        self,
        *,
        store: StepStore,
        forms: Mapping[str, Form],
        router: Router,
        policy: Policy,
        sinks_for: SinkSelector,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        cache_size: int = 20000,
    ) -> None:
        self.store = store
        self.forms = forms
        self.router = router
        self.policy = policy
        self.sinks_for = sinks_for
        self.new_id = new_id
        self.listeners: list[Listener] = []
        # live sessions and their versions, bounded by count and by bytes (a transcript
        # line can be 900 KB)
        self._cache: ByteLru[str, StoredSession] = ByteLru(SESSION_CACHE_BYTES, cache_size)
        self._cache_size = cache_size
        self._locks = KeyedLocks()
        self.on_dead: Callable[[str], None] | None = None  # a fresh dead event, by type
        self._moved: dict[str, str] = {}  # a dialled call's dial key -> its call_control_id

    async def handle(self, event: E.Event) -> str:
        """Apply one event; returns its outcome (applied, duplicate, unknown_call, dead).

        A dialled call's webhook whose call_control_id no session has yet goes to the
        session its client_state names while that is keyed by the dial (both keys locked);
        an event of ours addressed to the dial's key after the call's id was adopted goes
        to the call's id."""
        pending = self._pending_key(event)
        async with self._locks.hold(event.call_control_id):
            if pending is None:
                outcome = await self._apply(event, None)
            else:
                async with self._locks.hold(pending):
                    outcome = await self._apply(event, pending)
        moved = self._moved.get(event.call_control_id)
        if outcome == "unknown_call" and moved is not None and isinstance(event, E.Synthetic):
            return await self.handle(dataclasses.replace(event, call_control_id=moved))
        return outcome

    async def begin(self, session: Session, event: E.Event) -> str:
        """Apply the first event of a session the shell made (an outbound call's Dial, its
        session keyed by outbound.pending_call_id); duplicate if that key has one."""
        ccid = session.call.call_control_id
        async with self._locks.hold(ccid):
            if await self.store.stored_by_call(ccid) is not None:
                return "duplicate"
            outcome = await self._decide(StoredSession(session, 0), event, True)
        return outcome if isinstance(outcome, str) else "duplicate"

    def _pending_key(self, event: E.Event) -> str | None:
        """The dial's key of the session a webhook's client_state names, when no cached
        session has the webhook's call_control_id yet (a dialled call's first webhooks)."""
        cs = event.client_state
        if cs is None or not cs.session_id or isinstance(event, E.Synthetic):
            return None
        if self._cache.get(event.call_control_id) is not None:
            return None
        return pending_call_id(cs.session_id)

    async def session_for_call(self, call_control_id: str) -> Session | None:
        """The call's session as last committed (a shared store's: as stored, not cached)."""
        if not self.store.shared:
            cached = self._cache.get(call_control_id)
            if cached is not None:
                return cached.session
        return await self.store.session_by_call(call_control_id)

    def form_of(self, session: Session) -> Form | None:
        return self.forms.get(session.form) if session.form else None

    async def _apply(self, event: E.Event, pending: str | None) -> str:
        ccid = event.call_control_id
        stored = self._cache.get(ccid)
        fresh = stored is None
        for _ in range(MAX_CONFLICTS):
            if fresh:
                try:
                    stored = await self.store.stored_by_call(ccid)
                    if stored is None and pending is not None:  # still keyed by the dial
                        stored = await self.store.stored_by_call(pending)
                except ValidationError as exc:  # a stored session this code cannot read
                    return await self._dead(event, None, "load", exc)
            outcome = await self._attempt(event, stored, fresh)
            if not isinstance(outcome, Conflict):
                return outcome
            # another instance's step came first: decide again on what it stored
            stored, fresh = outcome.current, outcome.current is None
            if stored is not None:
                self._remember(stored)
        raise RuntimeError(f"call {ccid}: every step lost to another's ({MAX_CONFLICTS} tries)")

    async def _attempt(
        self, event: E.Event, stored: StoredSession | None, fresh: bool
    ) -> str | Conflict:
        ccid = event.call_control_id
        if stored is None:
            # a call we did not dial is not taken for an incoming one
            if not isinstance(event, E.CallInitiated) or event.direction == "outgoing":
                if not isinstance(event, E.Synthetic):
                    new = await self.store.record_seen(event.id, ccid, event.at)
                    return "unknown_call" if new else "duplicate"
                return "unknown_call"
            try:
                stored = StoredSession(self._new_session(event), 0)
            except Exception as exc:
                return await self._dead(event, None, "decide", exc)
        # what bound_contextvars does, without its snapshot of the whole context per event
        tokens = structlog.contextvars.bind_contextvars(
            call_control_id=ccid, form=stored.session.form
        )
        try:
            return await self._decide(stored, event, fresh)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _decide(self, stored: StoredSession, event: E.Event, fresh: bool) -> str | Conflict:
        session = stored.session
        # a shared store's cached session may be stale: fail only on the stored one
        stale = self.store.shared and not fresh
        form = self.form_of(session)
        if session.form and form is None:
            log.error("form_missing")
        try:  # decide() is pure: what it raises on, it raises on at every redelivery
            decision = decide(session, event, form, self.policy, DEFAULT_MESSAGES)
            if decision.duplicate:
                return "duplicate"
            sinks: list[str] = []
            if decision.submission is not None and form is not None:
                sinks = self.sinks_for(form, decision.submission["status"])
        except Exception as exc:
            if stale:
                return Conflict(None)
            return await self._dead(event, session, "decide", exc)
        try:
            rows = self.store.step_rows(
                decision.session, decision.commands, decision.submission, sinks, stored.version
            )
        except Exception as exc:  # a value pydantic or orjson cannot write, every time
            if stale:
                return Conflict(None)
            return await self._dead(event, session, "serialise", exc)
        try:
            version = await self.store.commit_rows(rows)
        except StoreRefused as exc:  # other store errors propagate: a 503, redelivered
            return await self._dead(event, session, "store", exc.__cause__ or exc)
        except ValidationError as exc:  # the newer stored session cannot be read
            return await self._dead(event, session, "load", exc)
        if isinstance(version, Conflict):
            return version
        self._remember(StoredSession(decision.session, version))
        adopted = decision.session.call.call_control_id
        if adopted != session.call.call_control_id:  # a dialled call's id, from its webhook
            self._cache.pop(session.call.call_control_id, None)
            self._moved[session.call.call_control_id] = adopted
            if len(self._moved) > self._cache_size:
                del self._moved[next(iter(self._moved))]
        for listener in self.listeners:
            try:
                listener(event, decision)
            except Exception:
                log.exception("listener_failed", listener=getattr(listener, "__name__", "?"))
        return "applied"

    async def _dead(
        self, event: E.Event, session: Session | None, stage: str, exc: BaseException
    ) -> str:
        """Record an event that can never apply; the session stays as it was."""
        event_type = event_type_of(event)
        error = describe_failure(exc)
        log.error(
            "event_dead",
            event_type=event_type,
            event_id=event.id,
            call_control_id=event.call_control_id,
            stage=stage,
            error=error,
        )
        fresh = await self.store.record_dead(
            event.id,
            event.call_control_id,
            event_type,
            stage,
            error,
            event.at,
            session_id=session.id if session is not None else None,
        )
        if not fresh:
            return "duplicate"
        if self.on_dead is not None:
            try:
                self.on_dead(event_type)
            except Exception:
                log.exception("dead_listener_failed")
        return "dead"

    def _new_session(self, event: E.CallInitiated) -> Session:
        form_id = self.router.form_for(event.to)
        if form_id is not None and form_id not in self.forms:
            log.error("routed_form_unknown", form=form_id, to=event.to)
            form_id = None
        if form_id is None:
            log.error(
                "no_form_for_call",
                call_control_id=event.call_control_id,
                to=event.to,
                hint="add the number under [routing.numbers] or set routing.default_form",
            )
        form = self.forms.get(form_id) if form_id else None
        return Session(
            id=self.new_id(),
            form=form_id,
            form_version=form.version if form else None,
            call=CallInfo(
                call_control_id=event.call_control_id,
                call_leg_id=event.call_leg_id,
                call_session_id=event.call_session_id,
                connection_id=event.connection_id,
                **{"from": event.from_},
                to=event.to,
                direction=event.direction,
            ),
            started_at=event.at,
            updated_at=event.at,
        )

    def _remember(self, stored: StoredSession) -> None:
        session = stored.session
        ccid = session.call.call_control_id
        if session.terminal and session.deadline is None:
            self._cache.pop(ccid, None)
            return
        # the least recently used go first once a limit is passed; the store has them
        self._cache.put(ccid, stored, session_bytes(session))

    def cached_sessions(self) -> list[Session]:
        return [stored.session for stored in self._cache.values()]

    def memory(self) -> dict[str, int]:
        """Bytes held now by the session cache (for /metrics)."""
        return {"engine_sessions": self._cache.bytes}

    def stats(self) -> dict[str, Any]:
        return {"cached_sessions": len(self._cache), "locked_calls": len(self._locks)}


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LONG_NUMBER = re.compile(r"\d{4,}")
MAX_ERROR_CHARS = 500


def describe_failure(exc: BaseException) -> str:
    """What went wrong, without the values: the exception's type, its message with quoted
    text and long numbers cut (they may be a caller's answer), and where it was raised."""
    if isinstance(exc, ValidationError):
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
    else:
        message = str(exc)
    message = _LONG_NUMBER.sub("…", _QUOTED.sub("'…'", message))
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        path = last.filename.replace("\\", "/")
        at = path.rfind("/collector/")
        path = path[at + 1 :] if at >= 0 else path.rsplit("/", 1)[-1]
        text += f" (at {path}:{last.lineno} in {last.name})"
    return text[:MAX_ERROR_CHARS]
