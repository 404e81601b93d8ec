"""The cluster's live view: what other instances on the same database applied, shown in
this instance's hub as if it had applied it.

With PostgreSQL, every committed step notifies channel `collector_session` with its
session's id (the payload stays far below PostgreSQL's 8,000 bytes). The composition root
hands the app a `Notices` callable that LISTENs on it; `ClusterView.run()` reads each
noticed session's row from the store and publishes through `Hub.show()` the events a
local decision would have: the same types, built and masked the same way.

A notice says which session, not what changed: the view keeps a small print of each
session as last shown (a hash per part the events are built from, and its version), here
or by the hub's own decisions, and shows only the parts that differ. So this instance's
own steps, notified back to it, show nothing twice, and notices that arrive while the
row was read are one read. An older version than the one shown is never shown. Nobody
watching, nothing is read. Sink deliveries are not steps and are not notified:
`delivery.updated` comes only from the instance that delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import structlog
from pydantic import BaseModel

from collector.bounded import ByteLru

if TYPE_CHECKING:
    from collector.core.session.model import Session
    from collector.ports import SessionStore
    from collector.web.live import Hub

log = structlog.get_logger("collector.live")

Notices = Callable[[Callable[[str], None]], Coroutine[Any, Any, None]]
"""Runs until cancelled, calling back with the id of each session a committed step
changed, on any instance (this one's included)."""

PARTS = ("state", "fields", "gather", "notes", "call", "conversation", "partial", "transcript")
CLUSTER_PRINTS = 20_000  # sessions whose print is kept
CLUSTER_PRINT_BYTES = 4 * 1024 * 1024
_PRINT_SIZE = 64 + 8 * len(PARTS) + 96  # about what one print and its key take


class Print(NamedTuple):
    """A session as last shown: its version, a hash per part, its submission."""

    version: tuple[float, int, int]
    parts: tuple[int, ...]
    submission_id: str | None


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.__dict__
    raise TypeError(type(value).__name__)


def _hash(value: Any) -> int:
    return hash(orjson.dumps(value, default=_plain))


def print_of(s: Session) -> Print:
    """The print of a session: what its live events are built from, hashed by part."""
    return Print(
        version=(s.updated_at, len(s.event_ids), s.command_seq),
        parts=(
            hash(s.state),
            _hash(s.fields),
            _hash((s.gather, s.attempt)),
            len(s.notes),  # notes and the conversation only grow
            _hash((s.call, s.call_alive, s.hangup_cause)),
            len(s.conversation),
            _hash(s.partial),
            hash(tuple((m.role, m.content, m.attempt) for m in s.transcript)),
        ),
        submission_id=s.submission_id,
    )


def changed(before: Print | None, now: Print, s: Session) -> set[str]:
    """The parts that differ (from nothing: every part that holds something)."""
    empty = {"notes": not s.notes, "conversation": not s.conversation}
    # partial results cleared (a new gather) are no partial event, as in decide()
    empty |= {"partial": not s.partial, "transcript": not s.transcript}
    if before is None:
        return {p for p in PARTS if not empty.get(p, False)}
    return {
        p
        for p, a, b in zip(PARTS, before.parts, now.parts, strict=True)
        if a != b and not (p == "partial" and empty["partial"])
    }


class ClusterView:
    """Feeds the hub the sessions other instances changed (see the module's docstring)."""

    def __init__(
        self,
        hub: Hub,
        store: SessionStore,
        notices: Notices,
        *,
        max_bytes: int = CLUSTER_PRINT_BYTES,
        max_items: int = CLUSTER_PRINTS,
    ) -> None:
        self.hub = hub
        self.store = store
        self.notices = notices
        self._prints: ByteLru[str, Print] = ByteLru(max_bytes, max_items)
        self._dirty: dict[str, None] = {}  # noticed, not yet read (an ordered set)
        self._wake: asyncio.Event | None = None
        self.shown = 0  # remote updates shown
        hub.on_applied = self.applied

    def memory(self) -> dict[str, int]:
        return {"live_cluster_prints": self._prints.bytes}

    def limits(self) -> dict[str, int]:
        return {"live_cluster_prints": self._prints.max_bytes}

    def applied(self, s: Session) -> bool:
        """A decision of this instance, about to be shown: remember it; False when a later
        version of the session was shown already."""
        now = print_of(s)
        before = self._prints.get(s.id)
        if before is not None and now.version < before.version:
            return False
        self._prints.put(s.id, now, _PRINT_SIZE)
        return True

    def noticed(self, session_id: str) -> None:
        """A step on some instance changed this session."""
        if not self.hub.watched or not session_id:
            return
        self._dirty[session_id] = None
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Listen and show, until cancelled."""
        self._wake = wake = asyncio.Event()
        listening: asyncio.Task[None] = asyncio.create_task(
            self.notices(self.noticed), name="cluster-notices"
        )
        try:
            while True:
                await wake.wait()
                wake.clear()
                while self._dirty:
                    session_id = next(iter(self._dirty))
                    del self._dirty[session_id]
                    try:
                        await self._show(session_id)
                    except Exception:
                        log.exception("cluster_show_failed", session_id=session_id)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    async def _show(self, session_id: str) -> None:
        s = await self.store.session(session_id)
        if s is None:
            return
        now = print_of(s)
        before = self._prints.get(session_id)
        if before is not None and now.version < before.version:
            return
        changes = changed(before, now, s)
        finalized = now.submission_id is not None and (
            before is None or before.submission_id != now.submission_id
        )
        if not changes and not finalized:
            return  # this instance's own step, or one shown already
        submission = None
        if finalized:
            assert now.submission_id is not None
            submission = await self.store.submission(now.submission_id)
            latest = self._prints.get(session_id)
            if latest is not None and latest is not before and now.version <= latest.version:
                return  # this instance applied a later step while the submission was read
        self._prints.put(session_id, now, _PRINT_SIZE)
        self.shown += 1
        self.hub.show(s, changes, submission)
