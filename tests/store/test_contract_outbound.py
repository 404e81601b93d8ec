"""The store contract for outbound calls, on every store of conftest.STORES: a session
keyed by its dial (outbound.pending_call_id) until its call's first webhook is saved again
under the call's real call_control_id, in a plain or a versioned step."""

from __future__ import annotations

import pytest

from collector.core.session.commands import Command
from collector.core.session.model import CallInfo, Session, State
from collector.core.session.outbound import pending_call_id
from collector.ports import SessionStore
from collector.records import StoredSession

pytestmark = pytest.mark.anyio

SID = "s-out"
PENDING = pending_call_id(SID)


def _dialling() -> Session:
    return Session(
        id=SID,
        form="warranty",
        state=State.DIALING,
        call=CallInfo(call_control_id=PENDING, direction="outgoing", to="+13125550190"),
        started_at=1000.0,
        updated_at=1000.0,
        command_seq=1,
    )


async def test_a_session_saved_under_its_calls_real_id_is_found_by_it_only(
    store: SessionStore,
) -> None:
    await store.commit_step(_dialling(), [Command("dial", 1, {"to": "+13125550190"}, 1000.0)])
    found = await store.stored_by_call(PENDING)
    assert found is not None and found.session.id == SID
    adopted = found.session.model_copy(deep=True)
    adopted.call.call_control_id = "v3:real"
    adopted.state = State.ANSWERED
    adopted.command_seq = 2
    await store.commit_step(
        adopted, [Command("gather_using_ai", 2, {}, 1001.0)], version=found.version
    )
    assert await store.session_by_call(PENDING) is None
    assert await store.stored_by_call(PENDING) is None
    now = await store.stored_by_call("v3:real")
    assert isinstance(now, StoredSession)
    assert (now.session.id, now.session.state) == (SID, State.ANSWERED)
    again = await store.session(SID)
    assert again is not None and again.call.call_control_id == "v3:real"
    # the dial's own row keeps the key it was decided under; later ones have the call's
    rows = {r.seq: r.call_control_id for r in await store.pending_commands()}
    assert rows == {1: PENDING, 2: "v3:real"}
    assert [r.seq for r in await store.pending_commands(PENDING)] == [1]


async def test_an_unversioned_save_moves_the_session_to_its_calls_id_too(
    store: SessionStore,
) -> None:
    await store.commit_step(_dialling())
    adopted = _dialling()
    adopted.call.call_control_id = "v3:other"
    await store.commit_step(adopted)
    assert await store.session_by_call(PENDING) is None
    found = await store.session_by_call("v3:other")
    assert found is not None and found.id == SID
