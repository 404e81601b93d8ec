"""The live streams over real HTTP: event format, Last-Event-ID catch-up, clean-up, pings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from collector.web.live import TYPES, Hub
from tests.harness import eventually
from tests.web.conftest import Server, _settle

pytestmark = pytest.mark.anyio


@dataclass
class Sse:
    """One parsed server-sent event."""

    id: int | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


async def parse(response: httpx.Response) -> AsyncIterator[Sse]:
    """The events of an open text/event-stream response."""
    current = Sse()
    async for line in response.aiter_lines():
        if line == "":
            if current.data is not None or current.comments or current.retry is not None:
                yield current
            current = Sse()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            current.id = int(line[3:].strip())
        elif line.startswith("data:"):
            assert current.data is None, "one data line per event"
            current.data = json.loads(line[5:].strip())
        elif line.startswith("retry:"):
            current.retry = int(line[6:].strip())


class Watcher:
    """Reads a stream in the background, keeping every data event."""

    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None):
        self.client = client
        self.path = path
        self.headers = headers or {}
        self.events: list[Sse] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._open = asyncio.Event()

    async def _run(self) -> None:
        async with self.client.stream("GET", self.path, headers=self.headers) as response:
            self.status = response.status_code
            self._open.set()
            async for event in parse(response):
                self.comments.extend(event.comments)
                if event.data is not None:
                    self.events.append(event)

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._open.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def wait_for(self, predicate: Callable[[Sse], bool], timeout: float = 20) -> Sse:
        async def probe() -> Sse | None:
            return next((e for e in self.events if predicate(e)), None)

        return await eventually(probe, timeout=timeout)

    def types(self) -> list[str]:
        return [e.data["type"] for e in self.events if e.data]


async def test_a_simulated_call_streams_every_kind_of_event(server: Server) -> None:
    async with Watcher(server.client, "/api/events") as watcher:
        assert watcher.status == 200
        await eventually(lambda: _now(server.hub.subscriber_count == 1))
        sid = (await server.simulate("secret"))["session_id"]
        await watcher.wait_for(lambda e: e.data["type"] == "delivery.updated")
        await server.finished(sid)
    events = [e for e in watcher.events if e.data["session_id"] == sid]
    types = {e.data["type"] for e in events}
    assert types == set(TYPES)
    ids = [e.id for e in watcher.events]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(set(ids))
    for event in events:
        data = event.data
        assert data["id"] == event.id
        assert data["type"] in TYPES and data["session_id"] == sid
        assert data["form"] == "secret" and data["state"]
    partials = [e.data for e in events if e.data["type"] == "session.partial"]
    assert partials and any("account" in p["partial"] for p in partials)
    assert all(p["partial"].get("pin", "•••") == "•••" for p in partials)
    finalized = next(e.data for e in events if e.data["type"] == "session.finalized")
    assert finalized["status"] == "completed" and finalized["data"]["pin"] == "•••"
    assert finalized["outcome"] == "completed" and finalized["amd"] is None  # an inbound call
    delivered = next(e.data for e in events if e.data["type"] == "delivery.updated")
    assert delivered["delivery"] == {"sink": "jsonl", "state": "delivered", "attempts": 1}
    # the transcript's lines, patched in order, match the API's masked transcript
    lines: list[dict[str, Any]] = []
    for e in events:
        if e.data["type"] == "session.transcript":
            lines = lines[: e.data["from"]] + e.data["lines"]
            assert len(lines) == e.data["length"]
    assert lines == (await server.session(sid))["transcript"]
    text = json.dumps([e.data for e in watcher.events], ensure_ascii=False)
    assert "4321" not in text  # the sensitive PIN never reaches a stream
    await eventually(lambda: _now(server.hub.subscriber_count == 0))


async def test_reconnecting_with_last_event_id_gets_exactly_the_missed_events(
    server: Server,
) -> None:
    hub = server.hub
    async with Watcher(server.client, "/api/events") as steady:
        first = Watcher(server.client, "/api/events")
        async with first:
            await eventually(lambda: _now(hub.subscriber_count == 2))
            sid = (await server.simulate("contact"))["session_id"]
            seen = await first.wait_for(lambda e: e.data["type"] == "session.partial")
            last = seen.id
        # the first client went away mid-call: its subscriber is gone
        await eventually(lambda: _now(hub.subscriber_count == 1))
        await server.finished(sid)
        await _settle(server.runtime)
        await steady.wait_for(lambda e: e.id == hub.last_id)
        end = hub.last_id
        assert end > last
        async with Watcher(server.client, "/api/events", {"Last-Event-ID": str(last)}) as again:
            await again.wait_for(lambda e: e.id == end)
        missed = [(e.id, e.data) for e in steady.events if last < e.id <= end]
    caught_up = [(e.id, e.data) for e in again.events if e.id <= end]
    assert caught_up == missed
    assert all(i > last for i, _ in caught_up)
    assert [i for i, _ in caught_up] == list(range(last + 1, end + 1))
    assert "session.finalized" in {d["type"] for _, d in caught_up}
    await eventually(lambda: _now(hub.subscriber_count == 0))


async def test_a_session_stream_carries_only_its_session_and_resumes_too(server: Server) -> None:
    hub = server.hub
    a = (await server.simulate("contact"))["session_id"]
    b = (await server.simulate("contact"))["session_id"]
    async with Watcher(
        server.client, f"/api/sessions/{a}/events", {"Last-Event-ID": "0"}
    ) as only_a:
        await server.finished(a)
        await server.finished(b)
        await only_a.wait_for(lambda e: e.data["type"] == "delivery.updated")
    assert only_a.events and {e.data["session_id"] for e in only_a.events} == {a}
    mid = only_a.events[len(only_a.events) // 2].id
    async with Watcher(server.client, f"/api/sessions/{a}/events?last_event_id={mid}") as resumed:
        await resumed.wait_for(lambda e: e.data["type"] == "delivery.updated")
    end = only_a.events[-1].id
    assert [e.id for e in resumed.events if e.id <= end] == [
        e.id for e in only_a.events if e.id > mid
    ]
    missing = await server.client.get("/api/sessions/nope/events")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    await eventually(lambda: _now(hub.subscriber_count == 0))


async def test_heartbeats_keep_an_idle_stream_alive(server: Server) -> None:
    server.hub.ping_seconds = 0.1
    async with Watcher(server.client, "/api/events") as watcher:
        await eventually(
            lambda: _now(len([c for c in watcher.comments if c.startswith("ping")]) >= 2), timeout=5
        )
    assert watcher.events == []
    await eventually(lambda: _now(server.hub.subscriber_count == 0))


async def test_many_clients_come_and_go_without_leaking_subscribers(server: Server) -> None:
    hub = server.hub
    watchers = [Watcher(server.client, "/api/events") for _ in range(10)]
    for w in watchers:
        await w.__aenter__()
    await eventually(lambda: _now(hub.subscriber_count == 10))
    sid = (await server.simulate("contact"))["session_id"]
    await server.finished(sid)
    for w in watchers:
        await w.wait_for(lambda e: e.data["type"] == "session.finalized")
        await w.__aexit__(None, None, None)
    counts = {len(w.events) for w in watchers}
    assert len(counts) <= 2  # the same events each (one may already hold a late one)

    def until_finalized(w: Watcher) -> list[int | None]:
        ids = []
        for e in w.events:
            ids.append(e.id)
            if e.data and e.data["type"] == "session.finalized":
                break
        return ids

    first = until_finalized(watchers[0])
    assert len(first) >= 3 and first == sorted(set(first))  # ids only grow, none twice
    assert all(until_finalized(w) == first for w in watchers)  # every client saw every one
    assert all(e.data and e.data["session_id"] == sid for w in watchers for e in w.events)
    await eventually(lambda: _now(hub.subscriber_count == 0))


# -- the hub on its own --------------------------------------------------------------------


async def test_a_slow_subscriber_catches_up_from_the_ring_buffer() -> None:
    hub = Hub({}, queue_size=2, capacity=100, first_id=1)
    sub = hub.subscribe()
    for i in range(10):
        hub.publish("session.updated", f"s{i % 2}", {"n": i})
    got = []
    async for event in sub.events():
        got.append(event.id)
        if len(got) == 10:
            break
    assert got == list(range(1, 11))
    hub.unsubscribe(sub)
    assert hub.subscriber_count == 0


async def test_the_ring_buffer_is_bounded_and_filters_by_session() -> None:
    hub = Hub({}, capacity=5, first_id=100)
    for i in range(12):
        hub.publish("session.updated", "a" if i % 3 else "b", {"n": i})
    assert [e.id for e in hub.since(0)] == [107, 108, 109, 110, 111]
    assert [e.id for e in hub.since(109)] == [110, 111]
    assert [e.id for e in hub.since(105, "b")] == [109]
    assert hub.since(111) == [] and hub.since(10**12) == []
    sub = hub.subscribe("a", after=108)
    assert [e.id for e in sub.backlog] == [110, 111]


async def test_a_hub_listener_never_raises() -> None:
    hub = Hub({})
    hub.subscribe()  # watched: the listeners do their work (and must not raise)
    hub.on_decision(object(), object())  # type: ignore[arg-type]
    hub.on_delivery("jsonl", "delivered", object())  # type: ignore[arg-type]
    assert hub.published == 0


async def test_nobody_watching_costs_nothing_until_someone_subscribes() -> None:
    """With no subscriber (now or recently) decisions build no events; a viewer turns it on."""
    from pathlib import Path

    from collector.core.forms import load_forms
    from collector.core.session import events as E
    from collector.core.session.decide import decide
    from collector.core.session.model import CallInfo, Session

    forms = load_forms(Path(__file__).resolve().parent.parent / "fixtures" / "forms")
    session = Session(
        id="s", form="contact", call=CallInfo(call_control_id="v3:h"), started_at=0, updated_at=0
    )
    initiated = E.CallInitiated(id="i", call_control_id="v3:h", at=1)
    answered = E.CallAnswered(id="a", call_control_id="v3:h", at=2)
    first = decide(session, initiated, forms["contact"])
    second = decide(first.session, answered, forms["contact"])
    hub = Hub(forms)
    assert not hub.watched
    hub.on_decision(initiated, first)
    assert hub.published == 0
    sub = hub.subscribe()
    hub.on_decision(answered, second)
    assert hub.published > 0 and sub.queue.qsize() == hub.published
    hub.unsubscribe(sub)
    assert hub.watched  # a viewer who just left may come back with Last-Event-ID


async def _now(value: Any) -> Any:
    return value
