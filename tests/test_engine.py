"""The engine over a real SQLite store: redeliveries are spotted after a restart too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.step import Policy
from collector.workers.engine import Engine, Router

pytestmark = pytest.mark.anyio

FORMS = Path(__file__).resolve().parent / "fixtures" / "forms"
CCID = "v3:engine-test-call"


def engine_on(store: SqliteStore) -> Engine:
    """A fresh engine, as after a restart: nothing cached, everything from the store."""
    return Engine(
        store=store,
        forms=load_forms(FORMS),
        router=Router(numbers={}, default_form="contact"),
        policy=Policy(),
        sinks_for=lambda form, status: [],
    )


def initiated(event_id: str) -> E.CallInitiated:
    return E.CallInitiated(
        id=event_id, call_control_id=CCID, at=1000.0, from_="+13125550100", to="+13125550001"
    )


async def test_a_redelivered_event_is_a_duplicate_after_a_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "collector.db")
    await store.open()
    try:
        assert await engine_on(store).handle(initiated("ev-1")) == "applied"
        answered = E.CallAnswered(id="ev-2", call_control_id=CCID, at=1001.0)
        restarted = engine_on(store)
        assert await restarted.handle(initiated("ev-1")) == "duplicate"
        assert await restarted.handle(answered) == "applied"
        assert await engine_on(store).handle(answered) == "duplicate"
        session = await store.session_by_call(CCID)
        assert session is not None and session.event_ids == ["ev-1", "ev-2"]
        commands = await store.commands_for(session.id)
        assert [c.action for c in commands] == ["answer", "gather_using_ai"]
        assert [c.seq for c in commands] == [1, 2]
    finally:
        await store.close()
    # a session's events are deduplicated through the session, so they need no row of their own
    conn = sqlite3.connect(tmp_path / "collector.db")
    assert conn.execute("SELECT COUNT(*) FROM seen_events").fetchone()[0] == 0


async def test_events_of_unknown_calls_are_remembered_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "collector.db")
    await store.open()
    try:
        stray = E.CallHangup(id="ev-9", call_control_id="v3:never-seen", at=1000.0)
        assert await engine_on(store).handle(stray) == "unknown_call"
        assert await engine_on(store).handle(stray) == "duplicate"
        assert await store.session_by_call("v3:never-seen") is None  # no session made up
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "collector.db")
    seen = conn.execute("SELECT id, call_control_id, received_at FROM seen_events").fetchall()
    assert seen == [("ev-9", "v3:never-seen", 1000.0)]
