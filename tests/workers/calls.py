"""The engine tests' kit: the real store with a door to hold a commit at, an engine on
the fixture forms, and a call's webhooks made from the fixtures by the adapter's parser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from collector.adapters.store.sqlite import SqliteStore
from collector.adapters.telephony import webhooks
from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.commands import Command
from collector.core.session.decide import Decision
from collector.core.session.model import Session
from collector.core.session.step import Policy
from collector.records import StoredSession
from collector.workers.engine import Engine, Router

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NUMBER = "+13125550001"
SINKS = ["jsonl", "crm"]
ANSWERS = {"name": "Maria Gonzalez", "email": "maria.gonzalez@example.com", "age": 36}


class Held:
    """The real store as the engine's StepStore, with a door: `hold()` makes the next
    commit wait until released. Notes which steps it was asked to serialise."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.steps: list[tuple[str, str]] = []  # (call, the step's last event id)
        self._door: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    def hold(self) -> asyncio.Event:
        self._door, self.waiting = asyncio.Event(), asyncio.Event()
        return self._door

    shared = False

    async def session_by_call(self, call_control_id: str) -> Session | None:
        return await self.store.session_by_call(call_control_id)

    async def stored_by_call(self, call_control_id: str) -> StoredSession | None:
        return await self.store.stored_by_call(call_control_id)

    async def record_seen(self, event_id: str, call_control_id: str, at: float) -> bool:
        return await self.store.record_seen(event_id, call_control_id, at)

    async def record_dead(self, *args: Any, **kw: Any) -> bool:
        return await self.store.record_dead(*args, **kw)

    def step_rows(
        self,
        session: Session,
        commands: Iterable[Command] = (),
        submission: dict[str, Any] | None = None,
        sinks: Iterable[str] = (),
        version: int | None = None,
    ) -> Any:
        self.steps.append((session.call.call_control_id, session.event_ids[-1]))
        return self.store.step_rows(session, commands, submission, sinks, version)

    async def commit_rows(self, rows: Any) -> int:
        door, self._door = self._door, None
        if door is not None:
            self.waiting.set()
            await door.wait()
        return await self.store.commit_rows(rows)


def make_engine(store: Any) -> tuple[Engine, list[tuple[str, Decision]]]:
    """A fresh engine (nothing cached) and the decisions its listener hears."""
    engine = Engine(
        store=store,
        forms=load_forms(FIXTURES / "forms"),
        router=Router(numbers={NUMBER: "contact"}),
        policy=Policy(hangup_grace_seconds=5.0),
        sinks_for=lambda form, status: list(SINKS),
    )
    heard: list[tuple[str, Decision]] = []
    engine.listeners.append(lambda event, decision: heard.append((event.id, decision)))
    return engine, heard


def webhook(name: str, event_id: str, ccid: str, at: float, **payload: Any) -> E.Event:
    """A fixture webhook for this call, through the adapter's parser."""
    doc = json.loads((FIXTURES / "telnyx" / f"{name}.json").read_text())
    doc["data"]["id"] = event_id
    doc["data"]["payload"].update(call_control_id=ccid, **payload)
    _, event = webhooks.parse(orjson.dumps(doc), at=at)
    assert isinstance(event, E.Event)
    return event


async def answered(engine: Engine, store: SqliteStore, ccid: str, at: float = 1000.0) -> str:
    """Run a call up to its AI gather; returns the gather's client_state (as echoed)."""
    initiated = webhook("call.initiated", f"{ccid}-init", ccid, at, to=NUMBER)
    assert await engine.handle(initiated) == "applied"
    assert await engine.handle(webhook("call.answered", f"{ccid}-ans", ccid, at + 1)) == "applied"
    session = await store.session_by_call(ccid)
    assert session is not None
    gather = (await store.commands_for(session.id))[-1]
    assert gather.action == "gather_using_ai"
    return str(gather.body["client_state"])


def partial(ccid: str, state: str, event_id: str, at: float, **results: Any) -> E.Event:
    return webhook(
        "call.ai_gather.partial_results",
        event_id,
        ccid,
        at,
        client_state=state,
        partial_results=results,
    )


def ended(ccid: str, state: str, event_id: str, at: float, result: dict[str, Any]) -> E.Event:
    return webhook("call.ai_gather.ended", event_id, ccid, at, client_state=state, result=result)


async def stored(store: SqliteStore, ccid: str) -> Session:
    session = await store.session_by_call(ccid)
    assert session is not None
    return session


async def actions(store: SqliteStore, ccid: str) -> list[tuple[int, str]]:
    return [(c.seq, c.action) for c in await store.commands_for((await stored(store, ccid)).id)]


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)
