"""The workers of two instances on one PostgreSQL database (two stores, two pools): each
command sent once and in decided order whichever instance hears of it, each deadline fired
on one of them, each delivery made by one; leases renewed while work runs, and a claim
taken over once an instance stops renewing (a lease expiry on the one that stalled)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from collector.adapters.store.postgres import PostgresStore
from collector.adapters.telephony.control import TelnyxControl, make_client
from collector.core.session import events as E
from collector.core.session.commands import Command
from collector.core.session.model import CallInfo, DeadlineKind, Session
from collector.workers.deadlines import SharedTimers
from collector.workers.delivery import DeliveryWorker
from collector.workers.leases import Leases
from collector.workers.shared_outbox import SharedOutbox
from tests.harness import eventually, serve
from tests.pg import drop_schema, run_apart, scratch_database, scratch_schema
from tests.sinks.contract import make_submission

from .deliveries import Recorder
from .test_outbox import ScriptedTelnyx

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_database("collector_workers") as url:
        yield url


@pytest.fixture
async def pair(database: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Instances A and B: two stores on a schema of this test's own."""
    schema, url = await scratch_schema(database)
    a = PostgresStore(url, pool_size=4, instance="A")
    b = PostgresStore(url, pool_size=4, instance="B")
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        run_apart(lambda: drop_schema(database, schema))


def _session(n: int, **kw: Any) -> Session:
    fields: dict[str, Any] = {"started_at": 0.0, "updated_at": 0.0, **kw}
    return Session(id=f"s{n}", form="contact", call=CallInfo(call_control_id=f"v3:c{n}"), **fields)


async def _v(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


async def test_a_calls_commands_go_out_once_in_order_whichever_instance_hears(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """Both outboxes hear of every session's commands at once (as the instance that
    decided them and as one notified): each command reaches Telnyx once, each session's in
    decided order, and every row ends sent."""
    a = pair[0]
    api = ScriptedTelnyx([])
    now = time.time()
    async with serve(api.app()) as url:
        fed: list[E.Event] = []

        async def feed(ev: E.Event) -> None:
            fed.append(ev)

        outboxes = []
        for store in pair:
            control = TelnyxControl(make_client("KEY_test", f"{url}/v2", timeout=2))
            outboxes.append(SharedOutbox(store, store, Leases(store, 5.0), control, feed))
        sessions = {}
        for n in range(8):
            cmds = [
                Command(action=act, seq=i + 1, decided_at=now)
                for i, act in enumerate(["answer", "speak", "hangup"])
            ]
            await a.commit_step(_session(n), cmds)
            sessions[f"s{n}"] = cmds
        for outbox in outboxes:
            for sid in sessions:
                outbox.enqueue(sid, "", [Command(action="x", seq=0)])
        await eventually(lambda: _v(len(api.seen) >= 24), timeout=20)
        for outbox in outboxes:
            await eventually(lambda outbox=outbox: _v(outbox.pending() == 0))
        await asyncio.sleep(0.2)
        for outbox in outboxes:
            await outbox.close()
            await outbox.control.close()  # type: ignore[attr-defined]
    ids = [cid for _, cid in api.seen]
    assert len(ids) == len(set(ids)) == 24
    for sid, cmds in sessions.items():
        mine = [cid for cid in ids if cid in {c.command_id(sid) for c in cmds}]
        assert mine == [c.command_id(sid) for c in cmds]  # decided order
        assert {r.state for r in await a.commands_for(sid)} == {"sent"}
    assert fed == []


async def test_a_deadline_fires_on_one_instance(pair: tuple[PostgresStore, PostgresStore]) -> None:
    """Both instances know the deadline and wake for it: one of them fires it."""
    a = pair[0]
    fired: list[tuple[str, E.Timer]] = []
    timers = []
    for name, store in zip("AB", pair, strict=True):

        async def feed(ev: E.Event, name: str = name) -> None:
            assert isinstance(ev, E.Timer)
            fired.append((name, ev))

        timers.append(SharedTimers(store, Leases(store, 10.0), feed, poll_seconds=0.2))
    due = time.time() + 0.3
    for n in range(5):
        await a.commit_step(_session(n, deadline=due + n / 100, deadline_kind=DeadlineKind.GRACE))
    for t in timers:
        t.start()
        for n in range(5):
            t.wake_at(due + n / 100)
    await eventually(lambda: _v(len(fired) >= 5))
    await asyncio.sleep(0.6)  # polls of both come and go: nothing fires twice
    for t in timers:
        await t.close()
    assert sorted(ev.call_control_id for _, ev in fired) == [f"v3:c{n}" for n in range(5)]
    assert all(ev.id == f"~timer:grace:{ev.due}" and ev.kind == "grace" for _, ev in fired)
    assert all(time.time() >= ev.due for _, ev in fired)


async def test_each_delivery_is_made_by_one_instance(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a = pair[0]
    sinks = [Recorder(), Recorder()]
    workers = [
        DeliveryWorker(store, {"rec": sink}, claims=store, leases=Leases(store, 10.0))
        for store, sink in zip(pair, sinks, strict=True)
    ]
    for w in workers:
        w.start()
    for n in range(20):
        sub = make_submission(f"sub-{n}")
        await a.commit_step(_session(n), submission=sub, sinks=["rec"])
        for w in workers:
            w.kick()
    await eventually(lambda: _v(len(sinks[0].calls) + len(sinks[1].calls) >= 20))
    await asyncio.sleep(0.3)
    for w in workers:
        await w.close()
    delivered = sinks[0].ids() + sinks[1].ids()
    assert sorted(delivered) == sorted(f"sub-{n}" for n in range(20))
    assert {r.state for n in range(20) for r in await a.deliveries_for(f"sub-{n}")} == {"delivered"}


async def test_a_renewed_lease_is_kept_and_a_stalled_one_taken_over(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """While A's Leases renews, B cannot take A's command past its first lease; once A
    stops renewing, B takes it over when the lease runs out, and A counts the expiry."""
    a, b = pair
    expired: list[str] = []
    claimed: list[tuple[str, str | None]] = []
    leases = Leases(a, 0.6, on_claim=lambda k, t: claimed.append((k, t)), on_expiry=expired.append)
    await a.commit_step(_session(1), [Command(action="speak", seq=1)])
    until = leases.until()
    rows, _ = await a.claim_commands(time.time(), until)
    leases.hold("command", ((r.id, r.taken_from) for r in rows), until)
    assert claimed == [("command", None)]
    leases.start()
    await asyncio.sleep(1.5)  # past two of its leases
    assert (await b.claim_commands(time.time(), time.time() + 5))[0] == []
    await leases.close()  # A stalls: nothing renews its claim
    await asyncio.sleep(0.7)
    [taken], _ = await b.claim_commands(time.time(), time.time() + 5)
    assert (taken.id, taken.taken_from) == (rows[0].id, "A")
    leases.drop("command", rows[0].id)  # A's work ends late
    assert expired == ["command"]
