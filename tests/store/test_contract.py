"""The SessionStore contract (collector.ports): what every store does, whatever its
database. Each test runs once per store in conftest.STORES, on a real, empty store."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from collector.core.session.commands import Command
from collector.core.session.model import CallInfo, DeadlineKind, Session, State
from collector.errors import StoreRefused
from collector.ports import (
    ClaimStore,
    CommandStore,
    DeliveryStore,
    Notices,
    SessionStore,
    StepStore,
)

pytestmark = pytest.mark.anyio

NOW = 10**10  # every delivery made below is due by then


def session(n: int, **kw: Any) -> Session:
    fields: dict[str, Any] = {
        "id": f"s{n}",
        "form": "contact",
        "call": CallInfo(call_control_id=f"v3:c{n}"),
        "started_at": 1000.0 + n,
        "updated_at": 1000.0 + n,
    }
    return Session(**{**fields, **kw})


def submission(sid: str, status: str = "completed") -> dict[str, Any]:
    return {"submission_id": sid, "form": "contact", "status": status, "data": {"n": 1}}


async def finished(store: SessionStore, n: int, sinks: list[str]) -> dict[str, Any]:
    """Session n, completed, with submission sub-n delivered to nothing yet."""
    sub = submission(f"sub-{n}")
    await store.commit_step(session(n, state=State.COMPLETED), submission=sub, sinks=sinks)
    return sub


def _shape(params: list[inspect.Parameter]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in params]


async def test_the_store_has_every_method_of_the_port_with_its_signature(
    store: SessionStore,
) -> None:
    for port in (StepStore, CommandStore, DeliveryStore, SessionStore):
        assert isinstance(store, port)
    names = [
        n for n in dir(SessionStore) if not n.startswith("_") and callable(getattr(SessionStore, n))
    ]
    assert len(names) == 28
    shared_ports = (ClaimStore, Notices) if store.shared else ()
    for port in shared_ports:  # a store that several instances share claims and notifies
        assert isinstance(store, port)
        names += [n for n in dir(port) if not n.startswith("_") and callable(getattr(port, n))]
    assert store.shared == (len(names) == 28 + 8)
    for name in names:
        port = next(p for p in (SessionStore, *shared_ports) if hasattr(p, name))
        ours, theirs = getattr(port, name), getattr(store, name)
        port_params = list(inspect.signature(ours).parameters.values())[1:]  # without self
        assert _shape(list(inspect.signature(theirs).parameters.values())) == _shape(port_params), (
            name
        )
        assert inspect.iscoroutinefunction(theirs) == inspect.iscoroutinefunction(ours), name
    assert await store.writable()


# -- sessions and events ---------------------------------------------------------------------


async def test_session_round_trips_and_is_found_by_call(store: SessionStore) -> None:
    """What is saved is what is loaded, by id and by call_control_id."""
    s = session(1, state=State.GATHERING, partial={"name": "Maria"})
    await store.commit_step(s)
    assert await store.session_by_call("v3:c1") == s
    assert await store.session("s1") == s
    assert await store.session("nope") is None
    assert await store.session_by_call("v3:nope") is None


async def test_a_session_keeps_its_event_ids_and_a_later_step_replaces_it(
    store: SessionStore,
) -> None:
    """The event ids are how a redelivery is spotted: they are saved with the session."""
    await store.commit_step(session(1, event_ids=["e1"]))
    later = session(1, event_ids=["e1", "e2"], state=State.GATHERING, updated_at=2000.0)
    await store.commit_rows(store.step_rows(later))
    loaded = await store.session_by_call("v3:c1")
    assert loaded == later and loaded is not None and loaded.event_ids == ["e1", "e2"]


async def test_each_step_answers_the_version_stored_by_call_reads(store: SessionStore) -> None:
    """commit_rows() answers the session's new version and stored_by_call() reads it back;
    a store several instances share counts up from 1, one process's own keeps none (0)."""
    assert await store.stored_by_call("v3:c1") is None
    first = await store.commit_step(session(1, event_ids=["e1"]), version=0)
    stored = await store.stored_by_call("v3:c1")
    assert stored is not None and stored.session == session(1, event_ids=["e1"])
    assert stored.version == first
    later = session(1, event_ids=["e1", "e2"], state=State.GATHERING)
    second = await store.commit_rows(store.step_rows(later, version=stored.version))
    again = await store.stored_by_call("v3:c1")
    assert again is not None and again.session == later and again.version == second
    assert (first, second) == ((1, 2) if store.shared else (0, 0))
    unversioned = await store.commit_step(session(1, state=State.COMPLETED))
    assert unversioned == (3 if store.shared else 0)


async def test_a_second_session_for_a_call_is_refused_and_leaves_nothing(
    store: SessionStore,
) -> None:
    """Refused rows raise StoreRefused (the same every time): none of the step is kept."""
    first = session(1)
    await store.commit_step(first)
    other = first.model_copy(update={"id": "s-other"})
    rows = store.step_rows(other, [Command(action="answer", seq=1)], submission("x"), ["a"])
    with pytest.raises(StoreRefused):
        await store.commit_rows(rows)
    assert await store.session_by_call("v3:c1") == first
    assert await store.session("s-other") is None
    assert await store.pending_commands() == []
    assert await store.submission("x") is None


async def test_a_step_that_cannot_be_serialised_raises_before_writing(
    store: SessionStore,
) -> None:
    with pytest.raises(TypeError):
        store.step_rows(session(1), submission={**submission("x"), "data": {1j}})
    assert await store.session("s1") is None


async def test_seen_and_dead_events_are_kept_once(store: SessionStore) -> None:
    assert await store.record_seen("e1", "v3:c1", 5.0)
    assert not await store.record_seen("e1", "v3:c1", 6.0)
    assert await store.record_dead("e2", "v3:c1", "call.hangup", "decide", "boom", 5.0, "s1")
    assert not await store.record_dead("e2", "v3:c1", "call.hangup", "store", "again", 6.0)
    [row] = await store.list_dead_events()
    assert (row.event_id, row.stage, row.error, row.session_id) == ("e2", "decide", "boom", "s1")


async def test_dead_events_are_listed_newest_first_filtered_and_paged(
    store: SessionStore,
) -> None:
    for n in range(5):
        kind = "call.hangup" if n % 2 else "call.answered"
        await store.record_dead(f"ev-{n}", "v3:c1", kind, "decide", "x", float(n))
    rows = await store.list_dead_events()
    assert [r.event_id for r in rows] == ["ev-4", "ev-3", "ev-2", "ev-1", "ev-0"]
    page = await store.list_dead_events(limit=2, before=(rows[1].received_at, rows[1].id))
    assert [r.event_id for r in page] == ["ev-2", "ev-1"]
    assert [r.event_id for r in await store.list_dead_events(event_type="call.hangup")] == [
        "ev-3",
        "ev-1",
    ]
    assert [r.event_id for r in await store.list_dead_events(since=3.0)] == ["ev-4", "ev-3"]


async def test_sessions_are_listed_newest_first_filtered_and_paged(store: SessionStore) -> None:
    for n in range(4):
        await store.commit_step(session(n, state=State.COMPLETED if n % 2 else State.GATHERING))
    await store.commit_step(session(9, form="other"))
    listed = await store.list_sessions()
    assert [s.id for s in listed] == ["s9", "s3", "s2", "s1", "s0"]
    last = listed[1]
    page = await store.list_sessions(limit=2, before=(last.started_at, last.id))
    assert [s.id for s in page] == ["s2", "s1"]
    assert [s.id for s in await store.list_sessions(state="completed")] == ["s3", "s1"]
    assert [s.id for s in await store.list_sessions(form="other")] == ["s9"]
    assert [s.id for s in await store.list_sessions(since=1002.0, form="contact")] == [
        "s3",
        "s2",
    ]
    assert await store.count_sessions_by_state() == {"completed": 2, "gathering": 2, "initiated": 1}


async def test_only_sessions_with_a_deadline_are_restored_for_the_timers(
    store: SessionStore,
) -> None:
    await store.commit_step(session(1, deadline=1500.0, deadline_kind=DeadlineKind.TIMEOUT))
    await store.commit_step(session(2))
    [restored] = await store.sessions_with_deadlines()
    assert restored.id == "s1" and restored.deadline == 1500.0


# -- the command outbox ------------------------------------------------------------------------


async def test_commands_are_pending_in_decided_order_until_finished(store: SessionStore) -> None:
    speak = Command(action="speak", seq=2, body={"payload": "hi"}, decided_at=2.0)
    await store.commit_step(session(2), [Command(action="answer", seq=1, decided_at=1.0)])
    await store.commit_step(session(1), [Command(action="answer", seq=1, decided_at=1.0), speak])
    pending = await store.pending_commands()
    assert [(c.call_control_id, c.seq) for c in pending] == [
        ("v3:c1", 1),
        ("v3:c1", 2),
        ("v3:c2", 1),
    ]
    one = await store.pending_commands("v3:c1")
    assert [(c.action, c.body, c.session_id) for c in one] == [
        ("answer", {}, "s1"),
        ("speak", {"payload": "hi"}, "s1"),
    ]
    assert one[1].command_id == speak.command_id("s1") and one[1].decided_at == 2.0
    await store.finish_command("s1", 1, "sent", 3.0, 1)
    await store.finish_command("s1", 2, "failed", 4.0, 2, "422 bad")
    await store.finish_command("s1", 2, "expired", 5.0, 3, "gone")  # a later mark replaces
    assert [(c.call_control_id, c.seq) for c in await store.pending_commands()] == [("v3:c2", 1)]
    done = await store.commands_for("s1")
    assert [(c.seq, c.state, c.attempts, c.last_error) for c in done] == [
        (1, "sent", 1, None),
        (2, "expired", 3, "gone"),
    ]


async def test_a_replayed_step_keeps_the_commands_as_first_stored(store: SessionStore) -> None:
    """A crash before the ack replays the step: its commands are not stored twice."""
    await store.commit_step(session(1), [Command(action="answer", seq=1, decided_at=1.0)])
    await store.finish_command("s1", 1, "sent", 2.0, 1)
    await store.commit_step(session(1), [Command(action="answer", seq=1, decided_at=1.0)])
    [command] = await store.commands_for("s1")
    assert command.state == "sent"
    assert await store.pending_commands() == []


# -- submissions and deliveries -------------------------------------------------------------------


async def test_submission_and_its_deliveries_are_written_together(store: SessionStore) -> None:
    """A finalizing step writes the submission and one pending delivery per sink."""
    sub = await finished(store, 1, ["a", "b"])
    assert await store.submission("sub-1") == sub
    due, nxt = await store.poll_deliveries(now=NOW)
    assert sorted(r.sink for r in due) == ["a", "b"] and nxt is None
    assert all(r.submission == sub and r.key == "sub-1" and not r.replay for r in due)
    assert all(r.state == "pending" and r.attempts == 0 for r in due)
    # a replay of the same step (crash before the ack) adds nothing
    await finished(store, 1, ["a", "b"])
    assert len((await store.poll_deliveries(now=NOW))[0]) == 2
    assert [r.submission for r in await store.deliveries_for("sub-1")] == [None, None]


async def test_a_retried_delivery_is_due_again_at_its_time(store: SessionStore) -> None:
    await finished(store, 1, ["a"])
    await finished(store, 2, ["a"])
    first, second = (await store.poll_deliveries(now=NOW))[0]
    await store.update_delivery(
        first.id, state="pending", attempts=1, at=5.0, next_at=NOW + 60, error="503"
    )
    due, nxt = await store.poll_deliveries(now=NOW)
    assert [r.id for r in due] == [second.id] and nxt == NOW + 60
    assert [r.id for r in (await store.poll_deliveries(now=NOW + 60, limit=1))[0]] == [second.id]
    await store.update_delivery(second.id, state="delivered", attempts=1, at=7.0)
    assert [r.id for r in (await store.poll_deliveries(now=NOW + 60))[0]] == [first.id]
    [landed] = await store.deliveries_for("sub-2")
    assert (landed.state, landed.delivered_at, landed.last_error) == ("delivered", 7.0, None)
    [retried] = await store.deliveries_for("sub-1")
    assert (retried.attempts, retried.last_error, retried.next_at) == (1, "503", NOW + 60)
    assert await store.delivery_stats() == ({("a", "delivered"): 1, ("a", "pending"): 1}, 1001.0)


async def test_dead_deliveries_can_be_requeued_and_submissions_replayed(
    store: SessionStore,
) -> None:
    """requeue() revives dead rows; replay() adds a new delivery under a new key."""
    await finished(store, 1, ["a"])
    [row] = (await store.poll_deliveries(now=NOW))[0]
    await store.update_delivery(row.id, state="dead", attempts=12, at=5.0, error="503")
    assert await store.poll_deliveries(now=NOW) == ([], None)
    assert [r.state for r in await store.list_deliveries()] == ["dead"]
    assert await store.requeue(now=6.0) == 1
    [again] = (await store.poll_deliveries(now=NOW))[0]
    assert again.attempts == 0 and again.state == "pending" and again.next_at == 6.0
    new_id = await store.replay("sub-1", "a", "key-2", now=7.0)
    rows = await store.deliveries_for("sub-1")
    assert [r.key for r in rows] == ["sub-1", "key-2"] and rows[1].replay and rows[1].id == new_id
    assert await store.replay("missing", "a", "key-3", now=8.0) is None


async def test_a_delivered_delivery_is_never_requeued(store: SessionStore) -> None:
    await finished(store, 1, ["a", "b"])
    a, b = (await store.poll_deliveries(now=NOW))[0]
    await store.update_delivery(a.id, state="delivered", attempts=1, at=5.0)
    await store.update_delivery(b.id, state="dead", attempts=3, at=5.0, error="x")
    assert await store.requeue(now=6.0, delivery_id=a.id) == 0
    assert await store.requeue(now=6.0, delivery_id=b.id) == 1
    assert [r.state for r in await store.list_deliveries(("pending", "dead", "delivered"))] == [
        "delivered",
        "pending",
    ]
    assert [r.sink for r in await store.list_deliveries(("pending",))] == [b.sink]


# -- housekeeping ------------------------------------------------------------------------------


async def test_prune_keeps_undelivered_submissions(store: SessionStore) -> None:
    """Old finished sessions go, unless a delivery of theirs is still pending."""
    await finished(store, 1, ["a"])
    await store.commit_step(session(2, state=State.COMPLETED))
    await store.commit_step(session(3))  # not finished
    removed = await store.prune(now=1000.0 + 40 * 86400, retention_days=30)
    assert removed == 1
    assert await store.session("s1") is not None  # pending delivery keeps it
    assert await store.session("s2") is None
    assert await store.session("s3") is not None


async def test_prune_forgets_a_delivered_sessions_rows_and_old_event_ids(
    store: SessionStore,
) -> None:
    await finished(store, 1, ["a"])
    await store.commit_step(session(1, state=State.COMPLETED), [Command(action="hangup", seq=1)])
    [row] = (await store.poll_deliveries(now=NOW))[0]
    await store.update_delivery(row.id, state="delivered", attempts=1, at=5.0)
    await store.record_seen("e1", "v3:c9", 1000.0)
    await store.record_dead("e2", "v3:c9", "call.hangup", "decide", "x", 1000.0)
    now = 1000.0 + 40 * 86400
    assert await store.prune(now=now, retention_days=30) == 1
    assert await store.session("s1") is None and await store.commands_for("s1") == []
    assert await store.submission("sub-1") is None and await store.deliveries_for("sub-1") == []
    assert await store.list_dead_events() == []
    assert await store.record_seen("e1", "v3:c9", now)  # forgotten: new again


async def test_ready_while_open_with_this_codes_schema_and_unavailable_once_closed(
    make_store: Any,
) -> None:
    """ready() (for /readyz): None on an open store whose schema this code made; once the
    store is let go, store_unavailable with a message, never an exception."""
    made = make_store()
    await made.open()
    assert await made.ready() is None
    await made.close()
    code, message = await made.ready()
    assert code == "store_unavailable" and message and "\n" not in message
