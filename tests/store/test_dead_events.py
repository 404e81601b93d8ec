"""Dead events in the SQLite store: the migration, dedupe, pages, pruning, and the engine
recording a step SQLite refuses (over a real file, nothing mocked)."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

import pytest

from collector.adapters.store.migrations import MIGRATIONS
from collector.adapters.store.sqlite import STORE_REFUSALS, SqliteStore
from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.step import Policy
from collector.workers.engine import Engine, Router, describe_failure

pytestmark = pytest.mark.anyio

FORMS = Path(__file__).resolve().parent.parent / "fixtures" / "forms"
CCID = "v3:dead-events-call"


async def open_store(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    return store


async def test_a_version_2_database_gains_the_dead_events_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:2]):
        conn.executescript("BEGIN;" + script + f"; PRAGMA user_version = {number + 1}; COMMIT;")
    conn.close()
    store = await open_store(path)
    try:
        assert await store.record_dead("ev-1", CCID, "call.hangup", "decide", "boom", 5.0)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3
    assert conn.execute("SELECT event_id, stage FROM dead_events").fetchall() == [
        ("ev-1", "decide")
    ]


async def test_dead_events_are_kept_once_listed_newest_first_and_pruned(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "collector.db")
    try:
        for n in range(5):
            fresh = await store.record_dead(
                f"ev-{n}", CCID, "call.hangup" if n % 2 else "call.answered", "decide", "x", n
            )
            assert fresh
        assert not await store.record_dead("ev-1", CCID, "call.hangup", "store", "y", 99.0)
        rows = await store.list_dead_events()
        assert [r.event_id for r in rows] == ["ev-4", "ev-3", "ev-2", "ev-1", "ev-0"]
        assert rows[3].stage == "decide" and rows[3].error == "x"  # the first record stands
        page = await store.list_dead_events(limit=2, before=(rows[1].received_at, rows[1].id))
        assert [r.event_id for r in page] == ["ev-2", "ev-1"]
        hangups = await store.list_dead_events(event_type="call.hangup")
        assert [r.event_id for r in hangups] == ["ev-3", "ev-1"]
        assert [r.event_id for r in await store.list_dead_events(since=3.0)] == ["ev-4", "ev-3"]
        # retention_days, like other history: ev-0 and ev-1 are older than a day before now
        await store.prune(now=2.5 + 86400, retention_days=1)
        assert [r.event_id for r in await store.list_dead_events()] == ["ev-4", "ev-3"]
    finally:
        await store.close()


def test_a_failure_is_described_without_its_values() -> None:
    try:
        int("maria@example.com 3125550143")
    except ValueError as exc:
        text = describe_failure(exc)
    assert text.startswith("ValueError: invalid literal for int() with base 10: '…'")
    assert "maria" not in text and "test_dead_events.py" in text


async def test_a_step_sqlite_refuses_is_dead_and_the_calls_later_events_apply(
    tmp_path: Path,
) -> None:
    """A form without an id makes a submission SQLite refuses (form is NOT NULL, so its
    delivery has no submission to refer to): the same on every redelivery, so the event
    that finalizes is dead, and the next one still applies."""
    forms = dict(load_forms(FORMS))
    broken = copy.copy(forms["contact"])
    object.__setattr__(broken, "id", None)
    forms["contact"] = broken
    dead: list[str] = []
    store = await open_store(tmp_path / "collector.db")
    try:
        engine = Engine(
            store=store,
            forms=forms,
            router=Router(numbers={}, default_form="contact"),
            policy=Policy(),
            sinks_for=lambda form, status: ["jsonl"],
        )
        engine.on_dead = dead.append
        at = 1000.0
        assert await engine.handle(E.CallInitiated(id="e1", call_control_id=CCID, at=at)) == (
            "applied"
        )
        assert await engine.handle(E.CallAnswered(id="e2", call_control_id=CCID, at=at)) == (
            "applied"
        )
        result = {"name": "Maria Gonzalez", "email": "maria@example.com", "age": 36}
        ended = E.AiGatherEnded(id="e3", call_control_id=CCID, at=at + 1, result=result)
        assert await engine.handle(ended) == "dead"
        assert await engine.handle(ended) == "duplicate"  # a redelivery: the same failure
        assert dead == ["call.ai_gather.ended"]
        rows = await store.list_dead_events()
        assert [(r.event_id, r.stage, r.event_type) for r in rows] == [
            ("e3", "store", "call.ai_gather.ended")
        ]
        assert rows[0].error.startswith("IntegrityError: ")
        assert "Maria" not in rows[0].error
        session = await store.session_by_call(CCID)
        assert session is not None and "e3" not in session.event_ids
        assert session.state.value == "gathering"  # as it was before the dead event
        hangup = E.CallHangup(id="e4", call_control_id=CCID, at=at + 2)
        assert await engine.handle(hangup) == "applied"
        session = await store.session_by_call(CCID)
        assert session is not None and "e4" in session.event_ids
    finally:
        await store.close()
    assert issubclass(sqlite3.IntegrityError, STORE_REFUSALS)
