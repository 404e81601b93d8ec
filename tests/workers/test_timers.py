"""Timers: the session's stored deadline comes back as a Timer event, on time."""

from __future__ import annotations

import asyncio
import time

import pytest

from collector.core.session import events as E
from collector.core.session.model import CallInfo, Session
from collector.workers.timers import Timers

pytestmark = pytest.mark.anyio


def _session(kind: str | None, due: float | None) -> Session:
    return Session(
        id="s",
        form="contact",
        call=CallInfo(call_control_id="v3:t"),
        started_at=0,
        updated_at=0,
        deadline=due,
        deadline_kind=kind,
    )


async def test_a_deadline_fires_once_as_a_timer_event() -> None:
    """The grace deadline comes back once, with its kind and due time."""
    fired: list[E.Timer] = []

    async def feed(ev: E.Event) -> None:
        fired.append(ev)  # type: ignore[arg-type]

    timers = Timers(feed)
    due = time.time() + 0.05
    timers.track(_session("grace", due))
    timers.track(_session("grace", due))  # the same deadline again: still one timer
    await asyncio.sleep(0.2)
    assert [(t.kind, t.due) for t in fired] == [("grace", due)]
    assert fired[0].call_control_id == "v3:t" and fired[0].id == f"~timer:grace:{due}"
    assert len(timers) == 0


async def test_a_moving_session_timeout_keeps_its_timer_and_a_nearer_deadline_replaces_it() -> None:
    """A later timeout keeps the armed timer; a grace deadline replaces it; None disarms."""
    fired: list[E.Timer] = []

    async def feed(ev: E.Event) -> None:
        fired.append(ev)  # type: ignore[arg-type]

    timers = Timers(feed)
    now = time.time()
    timers.track(_session("timeout", now + 0.1))
    timers.track(_session("timeout", now + 100))  # moved later: the early timer stays
    timers.track(_session("grace", now + 0.05))  # a different deadline replaces it
    await asyncio.sleep(0.2)
    assert [t.kind for t in fired] == ["grace"]
    timers.track(_session("timeout", now + 0.05))
    assert len(timers) == 1
    timers.track(_session(None, None))
    assert len(timers) == 0  # disarmed
    await asyncio.sleep(0.15)
    assert [t.kind for t in fired] == ["grace"]
    timers.close()
