"""The command outbox and a `dial`, against the fake Telnyx over real HTTP through the SDK:
sent once, retried under its own command_id only, never under a fresh one (a second call),
not sent once its session has its call or has ended, failed when it is too late."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.adapters.telephony.control import TelnyxControl, make_client
from collector.core.session import events as E
from collector.core.session.commands import Command
from collector.core.session.model import State
from collector.core.session.outbound import pending_call_id, start
from collector.simulator.fake_telnyx import FakeTelnyx
from collector.workers.outbox import CommandOutbox
from tests.harness import eventually, serve

from .conftest import Clock
from .dialling import POLICY, dial_event, outbound_forms

pytestmark = pytest.mark.anyio

SID = "sess-dial"
PENDING = pending_call_id(SID)


@dataclass
class Dialler:
    fake: FakeTelnyx
    store: SqliteStore
    outbox: CommandOutbox
    fed: list[E.Event]
    command: Command

    def dials(self) -> list[str | None]:
        return [c.command_id for c in self.fake.requests if c.action == "dial"]

    async def state(self) -> str:
        (row,) = await self.store.commands_for(SID)
        return row.state


@asynccontextmanager
async def dialler(
    tmp_path: Path, clock: Clock, decided: float, confirm_within: float = 45.0
) -> AsyncIterator[Dialler]:
    """A stored outbound session decided at `decided` with its dial pending, an outbox."""
    fake = FakeTelnyx("http://127.0.0.1:9/unused", pace=0.0)
    fake.script_for_number("+13125550190", {"callee": "busy"})
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    decision = start(SID, dial_event(SID, decided), outbound_forms()["warranty"], POLICY)
    await store.commit_step(decision.session, decision.commands)
    fed: list[E.Event] = []

    async def feed(event: E.Event) -> None:
        fed.append(event)

    async with serve(fake.asgi_app()) as api:
        control = TelnyxControl(make_client("KEY_test", f"{api}/v2", timeout=2))
        outbox = CommandOutbox(store, control, feed, clock=clock, confirm_within=confirm_within)
        try:
            yield Dialler(fake, store, outbox, fed, decision.commands[0])
        finally:
            await outbox.close()
            await control.close()
            await store.close()
            await fake.aclose()


async def _v(value: object) -> object:
    return value


async def test_a_restored_dial_is_sent_once_under_its_command_id(
    tmp_path: Path, clock: Clock
) -> None:
    async with dialler(tmp_path, clock, decided=clock.now - 5) as d:
        assert await d.outbox.restore() == 1
        await eventually(lambda: _v(d.outbox.pending() == 0))
        assert d.dials() == [d.command.command_id(SID)]
        assert await d.state() == "sent" and d.fed == []


async def test_a_throttled_dial_is_retried_under_the_same_command_id_only(
    tmp_path: Path, clock: Clock
) -> None:
    async with dialler(tmp_path, clock, decided=clock.now) as d:
        d.fake.faults.arm(503, action="dial", count=2)
        d.outbox.enqueue(SID, PENDING, [d.command])
        await eventually(lambda: _v(d.outbox.pending() == 0), timeout=20)
        assert [f.command_id for f in d.fake.faults.spent] == [d.command.command_id(SID)] * 2
        assert d.dials() == [d.command.command_id(SID)]
        (row,) = await d.store.commands_for(SID)
        assert (row.state, row.attempts) == ("sent", 3)


async def test_a_dial_past_its_window_is_failed_never_reissued(
    tmp_path: Path, clock: Clock
) -> None:
    async with dialler(tmp_path, clock, decided=clock.now - 50) as d:
        d.outbox.enqueue(SID, PENDING, [d.command])
        await eventually(lambda: _v(d.outbox.pending() == 0))
        assert d.dials() == [] and d.fake.calls == {}
        assert await d.state() == "expired"
        (failed,) = d.fed
        assert isinstance(failed, E.CommandFailed)
        assert (failed.call_control_id, failed.action, failed.seq) == (PENDING, "dial", 1)
        assert "ring twice" in failed.detail


async def test_a_dial_that_keeps_failing_transiently_stops_at_the_window(
    tmp_path: Path, clock: Clock
) -> None:
    async with dialler(tmp_path, clock, decided=clock.now, confirm_within=2.0) as d:
        d.fake.faults.arm(503, action="dial", count=1000)
        d.outbox.enqueue(SID, PENDING, [d.command])
        await eventually(lambda: _v(len(d.fake.faults.spent) >= 2), timeout=10)
        clock.advance(3)  # past the window: no send under any id, the session hears
        await eventually(lambda: _v(d.outbox.pending() == 0), timeout=10)
        assert {f.command_id for f in d.fake.faults.spent} == {d.command.command_id(SID)}
        assert d.dials() == [] and await d.state() == "expired"
        assert [type(e).__name__ for e in d.fed] == ["CommandFailed"]


async def test_a_dial_whose_session_heard_from_the_call_or_ended_is_not_sent(
    tmp_path: Path, clock: Clock
) -> None:
    async with dialler(tmp_path, clock, decided=clock.now - 50) as d:
        session = await d.store.session(SID)
        assert session is not None
        session.call.call_control_id = "v3:it-went-through"  # a webhook came meanwhile
        await d.store.commit_step(session)
        d.outbox.enqueue(SID, PENDING, [d.command])
        await eventually(lambda: _v(d.outbox.pending() == 0))
        assert d.dials() == [] and await d.state() == "sent" and d.fed == []
    (tmp_path / "ended").mkdir()
    async with dialler(tmp_path / "ended", clock, decided=clock.now) as d:
        session = await d.store.session(SID)
        assert session is not None
        ended = session.model_copy(update={"state": State.ABANDONED, "outcome": "no_answer"})
        await d.store.commit_step(ended)
        d.outbox.enqueue(SID, PENDING, [d.command])
        await eventually(lambda: _v(d.outbox.pending() == 0))
        assert d.dials() == [] and await d.state() == "expired" and d.fed == []
