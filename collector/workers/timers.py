"""Timers: the deadline stored on each session, fed back to the engine when it passes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from collector.core.session import events as E
from collector.core.session.model import Session
from collector.ports import Clock, Feed

log = structlog.get_logger("collector.timers")


class Timers:
    """At most one pending timer per call: the session's current deadline."""

    def __init__(self, feed: Feed, clock: Clock = time.time) -> None:
        self.feed = feed
        self.clock = clock
        self._handles: dict[str, tuple[float, asyncio.TimerHandle, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def track(self, session: Session) -> None:
        """(Re)arm the call's timer for the session's deadline, or disarm it.

        The session timeout moves forward with every event; its timer is left where it is
        and, when it fires early, decide() ignores it and the timer is armed again at the
        deadline the session has by then. That saves a cancel and a new handle per event.
        """
        ccid = session.call.call_control_id
        current = self._handles.get(ccid)
        due, kind = session.deadline, session.deadline_kind
        keep = (
            current is not None
            and due is not None
            and (current[0] == due or (kind == "timeout" == current[2] and current[0] < due))
        )
        if keep:
            return
        if current is not None:
            current[1].cancel()
            del self._handles[ccid]
        if due is None or kind is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, due - self.clock())
        handle = loop.call_later(delay, self._fire, ccid, kind, due)
        self._handles[ccid] = (due, handle, kind)

    def _fire(self, ccid: str, kind: str, due: float) -> None:
        self._handles.pop(ccid, None)
        event = E.Timer(
            id=f"~timer:{kind}:{due}", call_control_id=ccid, at=self.clock(), kind=kind, due=due
        )
        task = asyncio.create_task(self._run(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, event: E.Timer) -> None:
        try:
            await self.feed(event)
        except Exception:
            log.exception("timer_failed", call_control_id=event.call_control_id, kind=event.kind)
            # try again shortly: a deadline must not be lost to a passing store error
            loop = asyncio.get_running_loop()
            handle = loop.call_later(1.0, self._fire, event.call_control_id, event.kind, event.due)
            self._handles[event.call_control_id] = (event.due, handle, event.kind)

    def __len__(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        for _, handle, _ in self._handles.values():
            handle.cancel()
        self._handles.clear()
