"""More of the SessionStore contract, run once per store (conftest.STORES): values kept
exactly as written, the orders the workers rely on, steps that repeat or race, values a
store cannot take, a restart over the same database, and the pruning edges."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from collector.core.session.commands import Command
from collector.core.session.model import CallInfo, DeadlineKind, FieldState, State
from collector.errors import StoreRefused
from collector.ports import SessionStore
from tests.store.test_contract import NOW, finished, session, submission

pytestmark = pytest.mark.anyio

DAY = 86400.0


# -- values kept as written -------------------------------------------------------------------


async def test_bodies_come_back_with_their_keys_in_the_order_written(store: SessionStore) -> None:
    """A form's fields (and a submission's keys) keep their order through the store."""
    names = ["zip", "name", "a", "email_address", "b"]
    s = session(1, fields={n: FieldState() for n in names}, partial={"z": 1, "a": 2})
    sub = {"submission_id": "sub-1", "form": "contact", "status": "completed"}
    sub["data"] = {n: i for i, n in enumerate(names)}
    await store.commit_step(s, submission=sub, sinks=["a"])
    loaded = await store.session("s1")
    assert (
        loaded is not None and list(loaded.fields) == names and list(loaded.partial) == ["z", "a"]
    )
    stored = await store.submission("sub-1")
    assert stored is not None and list(stored) == list(sub) and list(stored["data"]) == names
    [row] = (await store.poll_deliveries(now=NOW))[0]
    assert row.submission is not None and list(row.submission["data"]) == names


async def test_text_numbers_and_times_round_trip_exactly(store: SessionStore) -> None:
    """Any Unicode (a NUL inside JSON too), big integers and float times come back equal."""
    text = 'Zoë \U0001f600 \u0000 \\ "quoted" \u2028'
    at = 1712345678.123456
    s = session(1, partial={"note": text, "big": 2**62 + 1, "f": 0.1}, updated_at=at)
    body = {"payload": text, "n": -(2**63)}
    await store.commit_step(s, [Command(action="speak", seq=1, body=body, decided_at=at)])
    assert await store.session("s1") == s
    [command] = await store.commands_for("s1")
    assert command.body == body and command.decided_at == at
    sub = {**submission("sub-9"), "data": {"note": text}}
    await store.commit_step(session(9), submission=sub, sinks=["a"])
    assert await store.submission("sub-9") == sub


# -- orders -----------------------------------------------------------------------------------


async def test_pending_commands_are_ordered_by_call_bytes_then_seq_as_a_number(
    store: SessionStore,
) -> None:
    """Decided order within a call (seq 2 before 10), calls in byte order (B before a)."""
    calls = {"v3:a": 1, "v3:B": 2, "v3:a-1": 3}
    for ccid, n in calls.items():
        s = session(n, call=CallInfo(call_control_id=ccid))
        await store.commit_step(s, [Command(action="speak", seq=q) for q in (10, 2, 1)])
    pending = await store.pending_commands()
    assert [(c.call_control_id, c.seq) for c in pending] == [
        (ccid, q) for ccid in ("v3:B", "v3:a", "v3:a-1") for q in (1, 2, 10)
    ]
    assert [c.seq for c in await store.pending_commands("v3:a")] == [1, 2, 10]
    assert [c.seq for c in await store.commands_for("s1")] == [1, 2, 10]


async def test_sessions_on_one_start_time_page_by_id_in_byte_order(store: SessionStore) -> None:
    for sid in ("sB", "sa", "s_", "sA"):
        await store.commit_step(session(0, id=sid, call=CallInfo(call_control_id=f"v3:{sid}")))
    listed = [s.id for s in await store.list_sessions()]
    assert listed == ["sa", "s_", "sB", "sA"]
    page = await store.list_sessions(before=(1000.0, "s_"))
    assert [s.id for s in page] == ["sB", "sA"]
    assert [s.id for s in await store.list_sessions(limit=1)] == ["sa"]


async def test_deliveries_are_made_in_sink_order_and_replays_after(store: SessionStore) -> None:
    await finished(store, 1, ["c", "a", "b"])
    await store.replay("sub-1", "a", "k2", now=5.0)
    rows = await store.deliveries_for("sub-1")
    assert [(r.sink, r.key, r.replay) for r in rows] == [
        ("c", "sub-1", False),
        ("a", "sub-1", False),
        ("b", "sub-1", False),
        ("a", "k2", True),
    ]
    assert [r.id for r in rows] == sorted(r.id for r in rows)


# -- steps that repeat or race ----------------------------------------------------------------


async def test_a_seq_twice_in_one_step_keeps_the_first(store: SessionStore) -> None:
    first, again = Command(action="answer", seq=1), Command(action="hangup", seq=1)
    await store.commit_step(session(1), [first, again])
    assert [c.action for c in await store.commands_for("s1")] == ["answer"]


async def test_the_same_step_committed_twice_at_once_is_stored_once(store: SessionStore) -> None:
    s = session(1, state=State.COMPLETED, event_ids=["e1"])
    commands = [Command(action="hangup", seq=1)]
    sub = submission("sub-1")
    await asyncio.gather(*(store.commit_step(s, commands, sub, ["a", "b"]) for _ in range(2)))
    assert (await store.session_by_call("v3:c1")) == s
    assert len(await store.commands_for("s1")) == 1
    assert len(await store.deliveries_for("sub-1")) == 2


async def test_many_concurrent_steps_are_all_durable(store: SessionStore) -> None:
    await asyncio.gather(
        *(store.commit_step(session(i), [Command(action="answer", seq=1)]) for i in range(120))
    )
    assert await store.count_sessions_by_state() == {"initiated": 120}
    assert len(await store.pending_commands()) == 120


# -- values a store cannot take ---------------------------------------------------------------


async def test_a_number_past_64_bits_is_refused_and_leaves_nothing(store: SessionStore) -> None:
    rows = store.step_rows(session(1), [Command(action="answer", seq=2**64)])
    with pytest.raises(StoreRefused):
        await store.commit_rows(rows)
    assert await store.session("s1") is None and await store.pending_commands() == []
    await store.commit_step(session(1))  # the store goes on
    assert await store.session("s1") is not None


# -- a restart over the same database ----------------------------------------------------------


async def test_a_new_store_over_the_same_database_sees_everything(
    store: SessionStore, make_store: Callable[[], SessionStore]
) -> None:
    """What a store committed is there for the next one (a restart), and the schema is
    opened again, not made again."""
    timed = session(1, deadline=5000.0, deadline_kind=DeadlineKind.TIMEOUT, event_ids=["e1"])
    await store.commit_step(timed, [Command(action="answer", seq=1)])
    await finished(store, 2, ["a"])
    assert await store.record_seen("e9", "v3:c9", 1.0)
    await store.close()
    again = make_store()
    await again.open()
    try:
        assert await again.session_by_call("v3:c1") == timed
        assert [s.id for s in await again.sessions_with_deadlines()] == ["s1"]
        assert [c.seq for c in await again.pending_commands()] == [1]
        assert [r.submission_id for r in (await again.poll_deliveries(now=NOW))[0]] == ["sub-2"]
        assert not await again.record_seen("e9", "v3:c9", 2.0)
        assert await again.writable()
    finally:
        await again.close()


async def test_writable_is_false_once_closed_and_close_twice_is_fine(
    make_store: Callable[[], SessionStore],
) -> None:
    made = make_store()
    await made.open()
    assert await made.writable()
    await made.close()
    assert not await made.writable()
    await made.close()


# -- pruning ----------------------------------------------------------------------------------


async def test_prune_keeps_what_is_recent_has_a_deadline_or_is_live(store: SessionStore) -> None:
    now = 1000.0 + 40 * DAY
    await store.commit_step(
        session(1, state=State.COMPLETED, deadline=9.0e9, deadline_kind=DeadlineKind.GRACE)
    )
    await store.commit_step(session(2, state=State.COMPLETED, updated_at=now - DAY))
    await store.commit_step(session(3, state=State.GATHERING))
    await store.record_seen("recent", "v3:c9", now - 3600)
    await store.record_seen("stale", "v3:c9", now - 2 * DAY)
    await store.record_dead("d-recent", "v3:c9", "call.hangup", "decide", "x", now - DAY)
    assert await store.prune(now=now, retention_days=30) == 0
    assert [s.id for s in await store.list_sessions()] == ["s3", "s2", "s1"]
    assert not await store.record_seen("recent", "v3:c9", now)
    assert await store.record_seen("stale", "v3:c9", now)  # forgotten after seen_days
    assert [r.event_id for r in await store.list_dead_events()] == ["d-recent"]
    assert await store.prune(now=now + 31 * DAY, retention_days=30, seen_days=0) == 1
    assert await store.session("s2") is None


async def test_prune_on_an_empty_store_removes_nothing(store: SessionStore) -> None:
    assert await store.prune(now=NOW, retention_days=30) == 0
