"""What a store that several instances share does beyond the contract, run once per store
in conftest.SHARED with two store objects (two pools: two instances) on one database:
versioned steps, one event applied once when two instances get it at the same moment
(through two real engines), notices from one instance heard by the other, and one prune
at a time. Claims are in test_shared_claims.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from collector.adapters.store.postgres_sql import PRUNE_LOCK_KEY
from collector.core.session.commands import Command
from collector.core.session.model import DeadlineKind, State
from collector.ports import NOTICE_COMMAND, NOTICE_DEADLINE, NOTICE_DELIVERY, NOTICE_SESSION
from collector.records import Conflict, StoredSession
from tests.store.test_contract import session, submission
from tests.workers.calls import NUMBER, answered, make_engine, partial, webhook

pytestmark = pytest.mark.anyio


# -- versioned steps ----------------------------------------------------------------------


async def test_a_step_from_a_version_no_longer_stored_writes_nothing(pair: Any) -> None:
    """Two instances decide from version 1: the first step writes (2), the second gets
    Conflict with what the first stored, and none of its commands or submission."""
    a, b = pair
    assert await a.commit_step(session(1, event_ids=["e1"]), version=0) == 1
    mine = session(1, event_ids=["e1", "e2"], state=State.GATHERING)
    theirs = session(1, event_ids=["e1", "e3"], state=State.COMPLETED)
    assert await a.commit_step(mine, [Command(action="speak", seq=1)], version=1) == 2
    lost = await b.commit_step(
        theirs, [Command(action="hangup", seq=1)], submission("sub-1"), ["x"], version=1
    )
    assert lost == Conflict(StoredSession(mine, 2))
    assert [c.action for c in await b.commands_for("s1")] == ["speak"]
    assert await b.submission("sub-1") is None and await b.deliveries_for("sub-1") == []
    assert await b.commit_step(theirs, version=2) == 3  # decided again from version 2


async def test_a_new_session_for_a_call_that_has_one_is_a_conflict(pair: Any) -> None:
    """Two instances get call.initiated at once and each makes a session: the second
    insert writes nothing and answers the first's session."""
    a, b = pair
    first = session(1, event_ids=["init"])
    assert await a.commit_step(first, [Command(action="answer", seq=1)], version=0) == 1
    other = first.model_copy(update={"id": "s-other"})
    assert await b.commit_step(other, [Command(action="answer", seq=1)], version=0) == Conflict(
        StoredSession(first, 1)
    )
    assert await b.session("s-other") is None and len(await b.pending_commands()) == 1


# -- one event applied once across instances ------------------------------------------------


async def test_the_same_events_on_two_instances_at_once_apply_once(pair: Any) -> None:
    """Every webhook of a call delivered to both instances at the same moment, each
    through its own engine (its own cache, its own per-process lock): each applies on
    one and is a duplicate on the other; the call's session holds each id once, and each
    command is stored once."""
    a, b = pair
    one, heard_a = make_engine(a)
    two, heard_b = make_engine(b)
    ccid = "v3:twice"
    init = webhook("call.initiated", "init", ccid, 1000.0, to=NUMBER)
    assert sorted(await asyncio.gather(one.handle(init), two.handle(init))) == [
        "applied",
        "duplicate",
    ]
    ans = webhook("call.answered", "ans", ccid, 1001.0)
    assert sorted(await asyncio.gather(one.handle(ans), two.handle(ans))) == [
        "applied",
        "duplicate",
    ]
    state = str((await a.commands_for((await a.session_by_call(ccid)).id))[-1].body["client_state"])
    for n in range(12):
        ev = partial(ccid, state, f"p{n}", 1002.0 + n, age=n)
        engines = (one, two) if n % 2 else (two, one)  # either may be first
        assert sorted(await asyncio.gather(*(e.handle(ev) for e in engines))) == [
            "applied",
            "duplicate",
        ], n
    stored = await a.session_by_call(ccid)
    assert stored is not None
    assert stored.event_ids == ["init", "ans", *(f"p{n}" for n in range(12))]
    assert stored.partial == {"age": 11}
    assert len(heard_a) + len(heard_b) == 14  # each event decided once where it applied
    seqs = [c.seq for c in await a.commands_for(stored.id)]
    assert seqs == sorted(set(seqs))


async def test_different_events_of_one_call_on_two_instances_all_apply_in_one_order(
    pair: Any,
) -> None:
    """A call's events spread over two instances, many at once: none is lost (a decision
    from a stale cache is never written), and the stored order is one order."""
    a, b = pair
    one, _ = make_engine(a)
    two, _ = make_engine(b)
    state = await answered(one, a, "v3:spread")
    await two.handle(partial("v3:spread", state, "warm", 1001.5, age=0))  # two caches it
    events = [partial("v3:spread", state, f"q{n}", 1002.0 + n, age=n) for n in range(20)]
    outcomes = await asyncio.gather(*((one, two)[n % 2].handle(ev) for n, ev in enumerate(events)))
    assert outcomes == ["applied"] * 20
    stored = await a.session_by_call("v3:spread")
    assert stored is not None
    assert sorted(stored.event_ids[-20:]) == sorted(f"q{n}" for n in range(20))
    assert len(stored.event_ids) == len(set(stored.event_ids))


# -- notices ----------------------------------------------------------------------------------


async def test_a_committed_step_is_heard_by_the_other_instance(pair: Any) -> None:
    """B hears A's step on each channel it concerns (the session, its commands, its
    deliveries, a deadline other than the session timeout), by id, well within 500 ms;
    A does not hear its own unless it asks."""
    a, b = pair
    heard: dict[str, list[tuple[str, str | None]]] = {"a": [], "b": []}
    for channel in (NOTICE_SESSION, NOTICE_COMMAND, NOTICE_DELIVERY, NOTICE_DEADLINE):
        await b.listen(channel, lambda i, c=channel: heard["b"].append((c, i)))
    await a.listen(NOTICE_SESSION, lambda i: heard["a"].append(("own", i)), own=True)
    await a.listen(NOTICE_COMMAND, lambda i: heard["a"].append(("not own", i)))
    started = time.monotonic()
    due = 1234.5
    step = session(1, deadline=due, deadline_kind=DeadlineKind.GRACE, state=State.COMPLETED)
    await a.commit_step(step, [Command(action="hangup", seq=1)], submission("sub-1"), ["x"])
    while len(heard["b"]) < 4 and time.monotonic() - started < 2:
        await asyncio.sleep(0.005)
    assert time.monotonic() - started < 0.5
    assert sorted(heard["b"]) == sorted(
        [
            (NOTICE_SESSION, "s1"),
            (NOTICE_COMMAND, "s1"),
            (NOTICE_DELIVERY, "sub-1"),
            (NOTICE_DEADLINE, repr(due)),
        ]
    )
    await asyncio.sleep(0.05)
    assert heard["a"] == [("own", "s1")]
    heard["b"].clear()
    # a plain session timeout, no commands: the session channel only; a conflict: nothing
    await a.commit_step(session(2, deadline=9e9, deadline_kind=DeadlineKind.TIMEOUT), version=0)
    await b.commit_step(session(2), version=0)
    await asyncio.sleep(0.2)
    assert heard["b"] == [(NOTICE_SESSION, "s2")]


# -- housekeeping ---------------------------------------------------------------------------


async def test_one_instance_prunes_at_a_time(pair: Any, pg_url: str) -> None:
    """While another instance holds the prune's advisory lock, prune() does nothing."""
    a, _ = pair
    await a.commit_step(session(1, state=State.COMPLETED))
    later = 1000.0 + 40 * 86400
    other = await asyncpg.connect(pg_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", PRUNE_LOCK_KEY)
        assert await a.prune(now=later, retention_days=30) == 0
        assert await a.session("s1") is not None
        await other.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK_KEY)
    finally:
        await other.close()
    assert await a.prune(now=later, retention_days=30) == 1
