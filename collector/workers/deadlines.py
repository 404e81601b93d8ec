"""Deadlines with a store several instances share: each fires on the one that claims it.

The session's deadline is in its row. Every instance claims the deadlines that have
passed (ClaimStore.claim_deadlines: FOR UPDATE SKIP LOCKED, under a lease) and feeds
each one it got to the engine as the Timer event timers.py would make; the step that
uses the deadline up sets the next one, which lets go of the claim; one the engine took
without moving it (a dead event) stays claimed for good, and one it could not take is let
go, to be claimed again. Should the Timer still reach the engine twice (a lease that
lapsed mid-step), decide() finds the deadline gone and does nothing: a Timer is judged
against the deadline it was made for.

It wakes when a deadline this instance knows of falls due (its own steps' deadlines,
through `track`; another instance's, through a notice), when a claim of another
instance runs out, and every few seconds as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from collector.core.session import events as E
from collector.core.session.model import Session
from collector.ports import ClaimStore, Clock, Feed
from collector.records import DeadlineRow
from collector.workers.leases import SAFETY_POLL_SECONDS, Alarm, Leases

log = structlog.get_logger("collector.timers")

CLAIM_LIMIT = 100
RETRY_SECONDS = 1.0  # a Timer the engine could not take: claimed again after this


class SharedTimers:
    """Claims the deadlines that have passed and feeds them back as Timer events."""

    def __init__(
        self,
        claims: ClaimStore,
        leases: Leases,
        feed: Feed,
        clock: Clock = time.time,
        *,
        poll_seconds: float = SAFETY_POLL_SECONDS,
    ) -> None:
        self.claims = claims
        self.leases = leases
        self.feed = feed
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._alarm = Alarm(clock)
        self._firing: dict[str, asyncio.Task[Any]] = {}  # by session id
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def track(self, session: Session) -> None:
        """A step of this instance set the session's deadline: wake when it is due."""
        if session.deadline is not None:
            self.wake_at(session.deadline)

    def notice(self, due: str | None) -> None:
        """Another instance set a deadline due at `due` (None: notices may have been lost)."""
        try:
            self.wake_at(float(due) if due is not None else self.clock())
        except ValueError:
            self.wake_at(self.clock())

    def wake_at(self, due: float) -> None:
        self._alarm.at(due)

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="deadlines")
        self._alarm.ring()  # the first poll: whatever is due already

    async def _run(self) -> None:
        while not self._stopping:
            await self._alarm.wait()
            now = self.clock()
            until = now + self.leases.seconds
            try:
                rows, nxt = await self.claims.claim_deadlines(now, until, limit=CLAIM_LIMIT)
            except Exception:
                log.exception("deadline_poll_failed")
                rows, nxt = [], now + RETRY_SECONDS
            self.leases.hold("deadline", ((r.session_id, r.taken_from) for r in rows), until)
            for row in rows:
                if row.session_id not in self._firing:
                    task = asyncio.create_task(self._fire(row))
                    self._firing[row.session_id] = task
            after = now + self.poll_seconds
            if len(rows) >= CLAIM_LIMIT:
                after = now
            elif nxt is not None:
                after = min(after, max(nxt, now + 0.1))  # past: one was locked, look again
            self.wake_at(after)

    async def _fire(self, row: DeadlineRow) -> None:
        event = E.Timer(
            id=f"~timer:{row.kind}:{row.due}",
            call_control_id=row.call_control_id,
            at=self.clock(),
            kind=row.kind,
            due=row.due,
        )
        fired = False
        try:
            await self.feed(event)
            fired = True
        except Exception:
            log.exception("timer_failed", call_control_id=row.call_control_id, kind=row.kind)
            self.wake_at(self.clock() + RETRY_SECONDS)  # let go below: claimed again soon
        finally:
            self._firing.pop(row.session_id, None)
            self.leases.drop("deadline", row.session_id)
        try:  # its step has moved the deadline (and let go), unless it failed or was dead
            await self.claims.finish_deadline(row.session_id, row.due, fired)
        except Exception:  # the lease runs out and it is fired again: decide() sees to that
            log.exception("deadline_not_finished", call_control_id=row.call_control_id)

    def __len__(self) -> int:
        return len(self._firing)

    async def close(self) -> None:
        self._stopping = True
        self._alarm.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        tasks = list(self._firing.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
