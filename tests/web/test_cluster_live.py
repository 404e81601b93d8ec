"""The live view is the cluster's: two real server processes on one PostgreSQL database, a
call's webhooks all sent to A, and B's event stream shows A's updates (the same events,
masked the same way), read from the row a NOTIFY names. B's admin API lists the call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.simulator.fake_telnyx import FakeTelnyx
from tests.harness import eventually, free_port, healthy, serve, start_server, telnyx_env
from tests.pg import scratch_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

FORMS = Path(__file__).resolve().parent.parent / "fixtures" / "forms"
TOKEN = "cluster-admin-token-0123456789"
NUMBER = "+13125550002"  # the secret form: a sensitive PIN, a keypad read-back
PIN = "4321"  # the caller's answer (the form's example)


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("collector_cluster") as url:
        yield url


@dataclass
class Instance:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start(folder: Path, name: str, database: str, env: dict[str, str]) -> Instance:
    cwd = folder / name
    cwd.mkdir()
    (cwd / "collector.toml").write_text(
        f'forms_dir = "{FORMS}"\n'
        f'database_url = "{database}"\n'
        f'admin_token = "{TOKEN}"\n'
        "hangup_grace_seconds = 0.5\n"
        f'[routing.numbers]\n"{NUMBER}" = "secret"\n'
        '[[sinks]]\ntype = "jsonl"\npath = "results.jsonl"\n'
    )
    port = free_port()
    return Instance(name, port, start_server(cwd, port, env))


@dataclass
class Stream:
    """What one instance's /api/events stream said: (arrival, event) in order."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    open: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, session_id: str, type_: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        return [
            (t, e)
            for t, e in self.events
            if e["session_id"] == session_id and (type_ is None or e["type"] == type_)
        ]


@asynccontextmanager
async def watching(url: str) -> AsyncIterator[Stream]:
    stream = Stream()

    async def read() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=None), headers=headers) as client,
            client.stream("GET", f"{url}/api/events") as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    stream.open.set()
                elif line.startswith("data:"):
                    stream.events.append((time.monotonic(), json.loads(line[5:])))

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(stream.open.wait(), 10)
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _same(event: dict[str, Any]) -> dict[str, Any]:
    """An event without what may differ between instances: its id, and which parts
    changed with the note that came with them (B may show two quick steps as one)."""
    return {k: v for k, v in event.items() if k not in ("id", "changes", "note")}


def _transcript(stream: Stream, sid: str) -> list[dict[str, Any]]:
    """The transcript as the stream's transcript events built it."""
    lines: list[dict[str, Any]] = []
    for _, e in stream.of(sid, "session.transcript"):
        lines = lines[: e["from"]] + e["lines"]
        assert len(lines) == e["length"]
    return lines


async def test_an_update_applied_on_one_instance_reaches_the_stream_of_another(
    tmp_path: Path, database: str
) -> None:
    holder: dict[str, str] = {}
    fake = FakeTelnyx(lambda: holder["a"] + "/webhooks/telnyx", pace=0.05)
    instances: list[Instance] = []
    async with serve(fake.asgi_app()) as telnyx_url:
        env = telnyx_env(fake.public_key_b64, telnyx_url)
        try:
            a = _start(tmp_path, "a", database, env)
            instances.append(a)
            await eventually(lambda: healthy(a.url, "/readyz"), timeout=30)  # A made the schema
            b = _start(tmp_path, "b", database, env)
            instances.append(b)
            await eventually(lambda: healthy(b.url, "/readyz"), timeout=30)
            holder["a"] = a.url
            async with watching(a.url) as on_a, watching(b.url) as on_b:
                ccid = await fake.place_call(to=NUMBER, from_="+13125550142")

                async def finished_on_b() -> bool:
                    sessions = {e["session_id"] for _, e in on_a.events}
                    return any(
                        on_b.of(sid, "session.finalized") and _ended(on_a, on_b, sid)
                        for sid in sessions
                    )

                await eventually(finished_on_b, timeout=60, interval=0.05)
                await fake.idle()
                await asyncio.sleep(1.0)  # anything late reaches B by now
                async with httpx.AsyncClient(
                    base_url=b.url, headers={"Authorization": f"Bearer {TOKEN}"}
                ) as admin:
                    listed = (await admin.get("/api/sessions")).json()["sessions"]
        finally:
            for instance in instances:
                instance.proc.send_signal(signal.SIGTERM)
            for instance in instances:
                instance.proc.wait(timeout=30)
    (sid,) = {e["session_id"] for _, e in on_a.events}
    assert [s["id"] for s in listed] == [sid]
    assert all(e["session_id"] == sid for _, e in on_b.events)
    kinds = ("session.updated", "session.partial", "session.finalized")
    shown_a = [_same(e) for _, e in on_a.of(sid) if e["type"] in kinds]
    shown_b = [_same(e) for _, e in on_b.of(sid) if e["type"] in kinds]
    # every update B showed is one A showed, in A's order; the call's whole course is there
    assert _in_order(shown_b, shown_a), (shown_b, shown_a)
    states = [e["state"] for e in shown_b if e["type"] == "session.updated"]
    assert states[0] == "initiated" and states[-1] == "completed"
    assert {"gathering", "confirming"} <= set(states)
    for type_ in kinds:
        assert on_b.of(sid, type_), type_
        assert _same(on_b.of(sid, type_)[-1][1]) == _same(on_a.of(sid, type_)[-1][1]), type_
    assert _transcript(on_b, sid) == _transcript(on_a, sid) != []
    final = on_b.of(sid, "session.finalized")[-1][1]
    assert final["status"] == "completed" and final["data"]["pin"] != PIN
    assert PIN not in json.dumps([e for _, e in on_b.events])  # masked as on A
    assert len(on_b.of(sid, "session.finalized")) == 1
    # how long after A's stream an update reached B's (reported, not asserted)
    lags = [
        1000 * (tb - _arrival(on_a, sid, eb, tb)) for tb, eb in on_b.of(sid) if eb["type"] in kinds
    ]
    print(
        f"\ncluster live view: {len(lags)} of {len(shown_a)} events on B; lag behind A"
        f" median {statistics.median(lags):.1f} ms, max {max(lags):.1f} ms ({ccid})"
    )


def _ended(on_a: Stream, on_b: Stream, sid: str) -> bool:
    """B shows what A last showed of the session (its goodbye and hangup included)."""
    last_a = on_a.of(sid, "session.updated")
    last_b = on_b.of(sid, "session.updated")
    return (
        bool(last_a and last_b)
        and last_a[-1][1]["call"]["alive"] is False
        and _same(last_a[-1][1]) == _same(last_b[-1][1])
    )


def _in_order(part: list[dict[str, Any]], whole: list[dict[str, Any]]) -> bool:
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


def _arrival(stream: Stream, sid: str, event: dict[str, Any], by: float) -> float:
    """When `stream` showed what B showed as `event` at `by` (the latest before then)."""
    times = [t for t, e in stream.of(sid) if _same(e) == _same(event)]
    assert times, event
    return max([t for t in times if t <= by] or times[:1])
