"""The engine and a dialled call, over the real SQLite store: the call's first webhooks find
its session by client_state (before the dial's response, in any order, repeated), the store
and the cache learn the real call_control_id, events of ours still addressed to the dial's
key reach the call, and a timer cannot interleave with the webhook that adopts the call."""

from __future__ import annotations

import asyncio

import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.core.session import events as E
from collector.core.session.outbound import pending_call_id

from .calls import Held, turns
from .dialling import begin, make_engine, outbound

pytestmark = pytest.mark.anyio

SID = "sess-out"
CCID = "v3:dialled-call"
PENDING = pending_call_id(SID)


async def _actions(store: SqliteStore) -> list[tuple[int, str]]:
    return [(c.seq, c.action) for c in await store.commands_for(SID)]


async def test_the_answer_before_call_initiated_finds_the_session_and_adopts_the_call(
    store: SqliteStore,
) -> None:
    engine, _ = make_engine(store)
    state = await begin(engine, SID)
    assert (await store.session_by_call(PENDING)) is not None
    # a restart between the dial and its webhooks: nothing cached, the store has it
    engine, heard = make_engine(store)
    answer = outbound("2.call.answered", "w-ans", CCID, 1001.0, state)
    assert await engine.handle(answer) == "applied"
    session = await store.session_by_call(CCID)
    assert session is not None and session.id == SID and session.call_known
    assert await store.session_by_call(PENDING) is None
    assert await engine.session_for_call(PENDING) is None  # the cache let go of the old key
    initiated = outbound("1.call.initiated", "w-init", CCID, 1000.5, state)
    detected = outbound(
        "3.call.machine.detection.ended", "w-amd", CCID, 1001.5, state, result="human"
    )
    assert await engine.handle(initiated) == "applied"
    assert await engine.handle(detected) == "applied"
    for again in (answer, initiated):  # Telnyx redelivers
        assert await engine.handle(again) == "duplicate"
    assert await _actions(store) == [(1, "dial"), (2, "gather_using_ai")]
    session = await store.session_by_call(CCID)
    assert session is not None
    assert (session.state.value, session.amd) == ("gathering", "human")
    assert session.call.call_leg_id == "c41d7e90-0b51-11f0-8c3e-02420aef0c17"
    assert [e for e, _ in heard] == ["w-ans", "w-init", "w-amd"]


async def test_detection_and_greeting_before_the_answer_still_leave_one_voicemail(
    store: SqliteStore,
) -> None:
    engine, _ = make_engine(store)
    state = await begin(engine, SID)
    order = [
        outbound("4.call.machine.greeting.ended", "w-greet", CCID, 1003.0, state),
        outbound("3.call.machine.detection.ended", "w-amd", CCID, 1002.0, state),
        outbound("2.call.answered", "w-ans", CCID, 1001.0, state),
        outbound("1.call.initiated", "w-init", CCID, 1000.5, state),
    ]
    for event in order + order:
        assert await engine.handle(event) in ("applied", "duplicate")
    assert await _actions(store) == [(1, "dial"), (2, "speak")]
    (speak,) = [c for c in await store.commands_for(SID) if c.action == "speak"]
    assert speak.body["payload"] == (
        "Hi Maria, this is Acme about your kettle. Please call us back."
    )
    session = await store.session_by_call(CCID)
    assert session is not None
    assert (session.outcome, session.amd, session.status) == ("voicemail", "machine", "abandoned")


async def test_events_of_ours_addressed_to_the_dial_reach_the_adopted_call(
    store: SqliteStore,
) -> None:
    engine, _ = make_engine(store)
    state = await begin(engine, SID)
    assert await engine.handle(outbound("1.call.initiated", "w-init", CCID, 1000.5, state)) == (
        "applied"
    )
    cancel = E.Cancel(id="~cancel:1", call_control_id=PENDING, at=1002.0)
    assert await engine.handle(cancel) == "applied"
    assert await _actions(store) == [(1, "dial"), (2, "hangup")]
    session = await store.session_by_call(CCID)
    assert session is not None and session.outcome == "abandoned"


async def test_a_ring_timer_waits_for_the_webhook_that_adopts_the_call(
    store: SqliteStore,
) -> None:
    state = await begin(make_engine(store)[0], SID)
    held = Held(store)
    engine, _ = make_engine(held)
    session = await store.session_by_call(PENDING)
    assert session is not None and session.deadline is not None
    door = held.hold()
    initiated = asyncio.create_task(
        engine.handle(outbound("1.call.initiated", "w-init", CCID, 1000.5, state))
    )
    await held.waiting.wait()  # decided, waiting to commit, with the dial's key held
    ring = E.Timer(
        id="~timer:ring",
        call_control_id=PENDING,
        at=session.deadline + 1,
        kind="ring",
        due=session.deadline,
    )
    timer = asyncio.create_task(engine.handle(ring))
    await turns()
    assert not timer.done()  # the same session: it waits
    door.set()
    assert await initiated == "applied"
    assert await timer == "applied"
    session = await store.session_by_call(CCID)
    assert session is not None
    assert "w-init" in session.event_ids and session.outcome == "no_answer"
    assert await _actions(store) == [(1, "dial"), (2, "hangup")]  # the ringing call hung up


async def test_an_outgoing_call_nobody_here_dialled_gets_no_session(store: SqliteStore) -> None:
    engine, heard = make_engine(store)
    stray = outbound("1.call.initiated", "w-stray", "v3:stray", 1000.0, "bm90IG91cnM=")
    assert await engine.handle(stray) == "unknown_call"
    assert await engine.handle(stray) == "duplicate"
    assert await store.session_by_call("v3:stray") is None and heard == []
