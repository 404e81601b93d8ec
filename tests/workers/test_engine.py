"""The engine over the real SQLite store, the fixture forms and the fixture webhooks.

Serialisation: one call's events never interleave (the test holds a commit at the store's
door and watches what the engine does meanwhile), different calls go on. Redelivery: an
event id applies once, its commands and submission are written once. Restart: a new
Engine on a new store object over the same file carries on where the last one stopped.
The session cache's byte bound, and dead events.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.adapters.telephony import webhooks
from collector.bounded import session_bytes
from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.client_state import decode
from collector.core.session.decide import Decision
from collector.core.session.step import Policy
from collector.workers import engine as engine_module
from collector.workers.engine import Engine, Router

from .calls import (
    ANSWERS,
    NUMBER,
    SINKS,
    Held,
    actions,
    answered,
    ended,
    make_engine,
    partial,
    stored,
    turns,
    webhook,
)

pytestmark = pytest.mark.anyio


# -- serialisation ---------------------------------------------------------------------


async def test_one_calls_events_wait_for_each_other_and_apply_in_arrival_order(
    store: SqliteStore,
) -> None:
    held = Held(store)
    engine, heard = make_engine(held)
    state = await answered(engine, store, "v3:a")
    door = held.hold()
    first = asyncio.create_task(engine.handle(partial("v3:a", state, "p1", 1002.0, name="Maria")))
    await held.waiting.wait()  # p1 is decided and waits to commit
    later = [
        asyncio.create_task(engine.handle(partial("v3:a", state, f"p{n}", 1002.0 + n, age=n)))
        for n in (2, 3, 4)
    ]
    await turns()
    # none of the later events was even decided while p1's step was not yet durable
    assert held.steps[-1] == ("v3:a", "p1")
    assert not any(t.done() for t in [first, *later])
    door.set()
    assert await asyncio.gather(first, *later) == ["applied"] * 4
    assert [eid for eid, _ in heard][-4:] == ["p1", "p2", "p3", "p4"]
    # each decision saw the one before it: decide() ran on the session p1..p(n-1) made
    for n, (_, decision) in enumerate(heard[-4:], start=1):
        assert decision.session.event_ids[-n:] == [f"p{k}" for k in range(1, n + 1)]
    session = await stored(store, "v3:a")
    assert session.event_ids[-4:] == ["p1", "p2", "p3", "p4"]
    assert session.partial == {"name": "Maria", "age": 4}  # the last partial's values
    assert engine.stats()["locked_calls"] == 0  # the call's lock went with its last waiter


async def test_another_call_goes_on_while_one_call_waits_for_its_commit(
    store: SqliteStore,
) -> None:
    held = Held(store)
    engine, _ = make_engine(held)
    state_a = await answered(engine, store, "v3:a")
    door = held.hold()
    blocked = asyncio.create_task(engine.handle(partial("v3:a", state_a, "a-p1", 1002.0, age=1)))
    await held.waiting.wait()
    # a whole other call, start to gather, while call A's commit is held
    state_b = await answered(engine, store, "v3:b", at=1001.0)
    assert await engine.handle(ended("v3:b", state_b, "b-end", 1003.0, result=ANSWERS)) == "applied"
    assert (await stored(store, "v3:b")).state == "completed"
    assert not blocked.done()
    assert "a-p1" not in (await stored(store, "v3:a")).event_ids
    door.set()
    assert await blocked == "applied"
    assert (await stored(store, "v3:a")).partial == {"age": 1}


# -- redelivery --------------------------------------------------------------------------


async def test_the_same_event_twice_at_once_applies_once_and_its_commands_are_written_once(
    store: SqliteStore,
) -> None:
    engine, heard = make_engine(store)
    ccid = "v3:twice"
    init = webhook("call.initiated", "init", ccid, 1000.0, to=NUMBER)
    answer = webhook("call.answered", "ans", ccid, 1001.0)
    assert await engine.handle(init) == "applied"
    outcomes = await asyncio.gather(engine.handle(answer), engine.handle(answer))
    assert sorted(outcomes) == ["applied", "duplicate"]
    assert await engine.handle(answer) == "duplicate"  # and again, later
    assert await actions(store, ccid) == [(1, "answer"), (2, "gather_using_ai")]
    assert [eid for eid, _ in heard] == ["init", "ans"]  # the outbox hears each once
    assert [len(d.commands) for _, d in heard] == [1, 1]


async def test_a_redelivered_final_event_makes_no_second_submission(store: SqliteStore) -> None:
    engine, heard = make_engine(store)
    ccid = "v3:final"
    state = await answered(engine, store, ccid)
    final = ended(ccid, state, "end", 1003.0, result=ANSWERS)
    assert await engine.handle(final) == "applied"
    session = await stored(store, ccid)
    [(_, decision)] = [h for h in heard if h[0] == "end"]
    assert decision.submission is not None and decision.submission["status"] == "completed"
    sid = decision.submission["submission_id"]
    before = await actions(store, ccid)
    assert await engine.handle(final) == "duplicate"
    assert await make_engine(store)[0].handle(final) == "duplicate"  # from the store, too
    assert await actions(store, ccid) == before
    assert sorted(r.sink for r in await store.deliveries_for(sid)) == sorted(SINKS)
    assert (await store.submission(sid)) == decision.submission
    assert [eid for eid, _ in heard].count("end") == 1
    assert (await stored(store, ccid)).model_dump() == session.model_dump()


async def test_a_store_error_that_is_not_a_refusal_propagates_and_the_redelivery_applies(
    db: Path,
) -> None:
    """A store that is down leaves no trace (not even in the engine's cache): the webhook
    is answered 503, and Telnyx's redelivery applies as if it were the first."""
    store = SqliteStore(db)
    await store.open()
    engine, heard = make_engine(store)
    try:
        state = await answered(engine, store, "v3:down")
        event = partial("v3:down", state, "p1", 1002.0, name="Maria")
        await store.close()
        with pytest.raises(RuntimeError, match="store is not open"):
            await engine.handle(event)
        await store.open()
        assert await engine.handle(event) == "applied"
        assert (await stored(store, "v3:down")).partial == {"name": "Maria"}
        assert [eid for eid, _ in heard].count("p1") == 1
    finally:
        await store.close()


# -- restart ------------------------------------------------------------------------------


async def test_a_new_engine_on_the_same_store_file_carries_on_where_the_last_stopped(
    db: Path,
) -> None:
    ccid = "v3:restart"
    store = SqliteStore(db)
    await store.open()
    try:
        engine, _ = make_engine(store)
        state = await answered(engine, store, ccid)
        assert await engine.handle(partial(ccid, state, "p1", 1002.0, name="Maria")) == "applied"
        hangup = webhook("call.hangup", "hup", ccid, 1003.0)
        assert await engine.handle(hangup) == "applied"  # mid-gather: wait for a late result
        before = await engine.session_for_call(ccid)
        assert before is not None and before.deadline_kind == "grace"
        commands = await store.commands_for(before.id)
    finally:
        await store.close()

    store = SqliteStore(db)  # the restart: a new store object and engine, nothing in memory
    await store.open()
    try:
        engine, heard = make_engine(store)
        loaded = await engine.session_for_call(ccid)
        assert loaded is not None and loaded.model_dump() == before.model_dump()
        # events applied before the restart are still duplicates; nothing is written again
        for event in (partial(ccid, state, "p1", 1002.0, name="Maria"), hangup):
            assert await engine.handle(event) == "duplicate"
        assert await store.commands_for(before.id) == commands
        assert heard == []
        # the deadline came back with the session, and its timer still ends the call
        [waiting] = await store.sessions_with_deadlines()
        assert (waiting.id, waiting.deadline) == (before.id, before.deadline)
        assert before.deadline is not None
        timer = E.Timer(
            id=f"~timer:grace:{before.deadline}",
            call_control_id=ccid,
            at=before.deadline,
            kind="grace",
            due=before.deadline,
        )
        assert await engine.handle(timer) == "applied"
        session = await stored(store, ccid)
        assert session.state == "abandoned"
        [(_, decision)] = heard
        assert decision.submission is not None
        assert decision.submission["data"] == {"name": "Maria"}
        sid = decision.submission["submission_id"]
        assert sorted(r.sink for r in await store.deliveries_for(sid)) == sorted(SINKS)
    finally:
        await store.close()


# -- the session cache -------------------------------------------------------------------


async def test_sessions_past_the_caches_byte_bound_are_evicted_and_reload_from_the_store(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe, _ = make_engine(store)
    await answered(probe, store, "v3:size")
    one = session_bytes(await stored(store, "v3:size"))
    bound = int(one * 1.5)  # room for one answered call, not two
    monkeypatch.setattr(engine_module, "SESSION_CACHE_BYTES", bound)
    engine, heard = make_engine(store)
    state_a = await answered(engine, store, "v3:a")
    assert [s.call.call_control_id for s in engine.cached_sessions()] == ["v3:a"]
    state_b = await answered(engine, store, "v3:b")
    assert [s.call.call_control_id for s in engine.cached_sessions()] == ["v3:b"]  # A left
    assert 0 < engine.memory()["engine_sessions"] <= bound
    # A comes back from the store: a redelivery is still spotted, the call goes on
    assert await engine.handle(webhook("call.answered", "v3:a-ans", "v3:a", 1001.0)) == "duplicate"
    assert await engine.handle(ended("v3:a", state_a, "a-end", 1003.0, ANSWERS)) == "applied"
    assert (await stored(store, "v3:a")).state == "completed"
    assert await actions(store, "v3:a") == [(1, "answer"), (2, "gather_using_ai"), (3, "speak")]
    assert engine.memory()["engine_sessions"] <= bound
    assert await engine.handle(partial("v3:b", state_b, "b-p1", 1002.0, age=7)) == "applied"
    assert (await stored(store, "v3:b")).partial == {"age": 7}
    assert [eid for eid, _ in heard][-2:] == ["a-end", "b-p1"]


async def test_a_session_bigger_than_the_whole_cache_is_not_kept_but_still_applies(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SESSION_CACHE_BYTES", 50_000)
    engine, _ = make_engine(store)
    state = await answered(engine, store, "v3:big")
    # four lines at the parser's bound for one string: more than the whole cache
    lines = [{"role": "user", "content": c * webhooks.MAX_STRING_CHARS} for c in "wxyz"]
    history = webhook(
        "call.ai_gather.message_history_updated",
        "h1",
        "v3:big",
        1002.0,
        client_state=state,
        message_history=lines,
    )
    assert await engine.handle(history) == "applied"
    assert engine.cached_sessions() == [] and engine.memory()["engine_sessions"] == 0
    assert await engine.handle(history) == "duplicate"  # judged from the store
    assert await engine.handle(partial("v3:big", state, "p1", 1003.0, age=9)) == "applied"
    session = await stored(store, "v3:big")
    assert session.partial == {"age": 9} and session.event_ids[-2:] == ["h1", "p1"]


# -- dead events ---------------------------------------------------------------------------


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_an_event_that_cannot_be_stored_is_dead_acknowledged_and_the_call_goes_on(
    store: SqliteStore,
) -> None:
    """Built past the webhook parser's bounds: 300 levels deep, which the session's JSON
    cannot hold. Every redelivery would fail the same way, so it is kept as dead."""
    engine, heard = make_engine(store)
    ccid = "v3:poison"
    state = await answered(engine, store, ccid)
    before = await stored(store, ccid)
    poison = E.AiGatherEnded(
        id="poison",
        call_control_id=ccid,
        at=1002.0,
        client_state=decode(state),  # the gather's, as Telnyx echoes it
        status="valid",
        result={"name": deep(300)},
    )
    assert await engine.handle(poison) == "dead"
    assert await engine.handle(poison) == "duplicate"  # its redelivery: acknowledged, once
    [row] = await store.list_dead_events()
    assert (row.event_id, row.call_control_id, row.session_id) == ("poison", ccid, before.id)
    assert (row.event_type, row.stage) == ("call.ai_gather.ended", "serialise")
    assert "depth" in row.error
    assert (await stored(store, ccid)).model_dump() == before.model_dump()  # untouched
    assert "poison" not in [eid for eid, _ in heard]
    # the call's next good event applies as if the dead one never came
    assert await engine.handle(ended(ccid, state, "good-end", 1003.0, ANSWERS)) == "applied"
    session = await stored(store, ccid)
    assert session.state == "completed" and "poison" not in session.event_ids
    assert [r.event_id for r in await store.list_dead_events()] == ["poison"]


async def test_a_stored_session_this_code_cannot_read_makes_its_events_dead(
    db: Path, store: SqliteStore
) -> None:
    engine, _ = make_engine(store)
    await answered(engine, store, "v3:broken")
    await answered(engine, store, "v3:fine", at=1000.5)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE sessions SET body = ? WHERE call_control_id = 'v3:broken'",
            ('{"id": 1, "call": "nonsense"}',),
        )
    conn.close()
    engine, heard = make_engine(store)  # a restart: the next read of the call is the store's
    hangup = webhook("call.hangup", "hup", "v3:broken", 1002.0)
    assert await engine.handle(hangup) == "dead"
    assert await engine.handle(hangup) == "duplicate"
    [row] = await store.list_dead_events()
    assert (row.event_id, row.stage, row.session_id) == ("hup", "load", None)
    assert row.error.startswith("ValidationError: ")
    assert heard == []
    # other calls are not held up by it
    other = webhook("call.hangup", "fine-hup", "v3:fine", 1002.0)
    assert await engine.handle(other) == "applied"
    assert (await stored(store, "v3:fine")).state == "closing"


async def test_events_of_a_call_nobody_knows_are_not_dead_and_synthetic_ones_never_duplicates(
    store: SqliteStore,
) -> None:
    engine, heard = make_engine(store)
    timer = E.Timer(
        id="~timer:grace:5.0", call_control_id="v3:nobody", at=5.0, kind="grace", due=5.0
    )
    assert await engine.handle(timer) == "unknown_call"
    assert await engine.handle(timer) == "unknown_call"  # no record kept of shell events
    assert await store.list_dead_events() == [] and heard == []


async def test_a_failing_listener_does_not_undo_the_step_or_silence_the_others(
    store: SqliteStore,
) -> None:
    engine, heard = make_engine(store)

    def broken(event: E.Event, decision: Decision) -> None:
        raise RuntimeError("listener bug")

    engine.listeners.insert(0, broken)
    init = webhook("call.initiated", "init", "v3:l", 1000.0, to=NUMBER)
    assert await engine.handle(init) == "applied"
    assert [eid for eid, _ in heard] == ["init"]
    assert await actions(store, "v3:l") == [(1, "answer")]


# -- a redelivery after a restart, through the store alone -------------------------------

FIXTURE_FORMS = Path(__file__).resolve().parents[1] / "fixtures" / "forms"
RESTART_CCID = "v3:engine-test-call"


def engine_on(store: SqliteStore) -> Engine:
    """A fresh engine, as after a restart: nothing cached, everything from the store."""
    return Engine(
        store=store,
        forms=load_forms(FIXTURE_FORMS),
        router=Router(numbers={}, default_form="contact"),
        policy=Policy(),
        sinks_for=lambda form, status: [],
    )


def initiated(event_id: str) -> E.CallInitiated:
    return E.CallInitiated(
        id=event_id,
        call_control_id=RESTART_CCID,
        at=1000.0,
        from_="+13125550100",
        to="+13125550001",
    )


async def test_a_redelivered_event_is_a_duplicate_after_a_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "collector.db")
    await store.open()
    try:
        assert await engine_on(store).handle(initiated("ev-1")) == "applied"
        answered = E.CallAnswered(id="ev-2", call_control_id=RESTART_CCID, at=1001.0)
        restarted = engine_on(store)
        assert await restarted.handle(initiated("ev-1")) == "duplicate"
        assert await restarted.handle(answered) == "applied"
        assert await engine_on(store).handle(answered) == "duplicate"
        session = await store.session_by_call(RESTART_CCID)
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
