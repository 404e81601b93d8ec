"""Masking holds at every moment of whole calls: SSE, API views and the call page.

Each call runs through the real app in sandbox mode (the simulator plays Telnyx and the
caller). A watcher records every live event, and a poller takes the API view of the
session and its call page again and again while the webhooks arrive (0.2 s apart), so
every state the session passes through is seen. No sensitive value may appear in any of
them in any form; and the transcript as shown is monotone (masking.py's rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from collector.core.session.model import CallInfo, Gather, Message, Session, State
from collector.web import masking
from collector.web.live import LIVE_HISTORY_BYTES, SUBSCRIBER_QUEUE_BYTES, Hub
from collector.web.masking import SENSITIVE_LINE, Masker
from tests.harness import eventually
from tests.web.conftest import FIXTURES, TERMINAL, Server, sandbox_server
from tests.web.test_live import Watcher

pytestmark = pytest.mark.anyio

IDENTITY = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Identity check",
    "type": "object",
    "x-collector": {"max_attempts": 2},
    "properties": {
        "name": {"type": "string", "title": "name", "minLength": 2, "examples": ["Maria Gonzalez"]},
        "dob": {
            "type": "string",
            "format": "date",
            "title": "date of birth",
            "examples": ["1980-03-04"],
            "x-collector": {"sensitive": True},
        },
        "maiden": {
            "type": "string",
            "title": "mother's maiden name",
            "examples": ["Whitfield"],
            "x-collector": {"sensitive": True},
        },
        "email": {
            "type": "string",
            "format": "email",
            "title": "email address",
            "examples": ["maria@example.com"],
        },
        "pin": {
            "type": "string",
            "pattern": "^[0-9]{4}$",
            "title": "PIN",
            "examples": ["4321"],
            "x-collector": {
                "sensitive": True,
                "max_attempts": 1,
                "dtmf": {"prompt": "Enter your PIN.", "minimum_digits": 4, "maximum_digits": 4},
            },
        },
    },
    "required": ["name", "dob", "maiden", "email", "pin"],
}

SAY = {
    "dob": "I was born March fourth nineteen eighty, the 4th of March 1980, so 03/04/1980.",
    "maiden": "It's Whitfield.",
    "pin": "four three two one",
}
# every form in which a sensitive answer could show
FORBIDDEN = [
    "1980-03-04",
    "March 4, 1980",
    "March fourth",
    "nineteen eighty",
    "4th of March",
    "03/04/1980",
    "whitfield",
    "4321",
    "4 3 2 1",
    "four three two one",
]


@asynccontextmanager
async def identity_server(tmp: Path) -> AsyncIterator[Server]:
    forms = tmp / "forms"
    shutil.copytree(FIXTURES / "forms", forms)
    (forms / "identity.json").write_text(json.dumps(IDENTITY), encoding="utf-8")
    async with sandbox_server(tmp, pace=0.2, forms=forms) as server:
        yield server


class Recorder:
    """Every API view and call page of one session, taken as fast as they come."""

    def __init__(self, server: Server, sid: str) -> None:
        self.server = server
        self.sid = sid
        self.views: list[dict[str, Any]] = []
        self.pages: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            view = (await self.server.client.get(f"/api/sessions/{self.sid}")).json()
            self.views.append(view)
            page = await self.server.client.get(f"/calls/{self.sid}")
            self.pages.append(page.text)
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def until_terminal(self) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            if self.views and self.views[-1]["state"] in TERMINAL:
                return self.views[-1]
            return None

        view = await eventually(done, timeout=40)
        await asyncio.sleep(0.3)  # a few more looks after the end (late history, goodbye)
        return view


# Ids and times are random and may hold any digits ("4321" inside an event id): they
# carry no answer, so they are taken out before looking for one.
_IDS = re.compile(
    r'"(?:id|session_id|submission_id|call_control_id|call_session_id|call_leg_id|'
    r'command_id|at|started_at|updated_at|ended_at)": ?(?:"[^"]*"|[0-9.]+)'
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
    r"|v3:[A-Za-z0-9_-]+"
    r"|\b\d{4}-\d{2}-\d{2}[T ][0-9:.]+Z?"
)


def assert_nothing_sensitive(texts: list[str]) -> None:
    for text in texts:
        low = _IDS.sub("", text).lower()
        for form in FORBIDDEN:
            assert form.lower() not in low, f"{form!r} shown: {text[:300]}"


def assert_monotone(views: list[dict[str, Any]]) -> None:
    """A line once shown keeps its text; a line once masked stays masked."""
    first: dict[int, str] = {}
    for view in views:
        for i, line in enumerate(view["transcript"]):
            before = first.setdefault(i, line["content"])
            if before == SENSITIVE_LINE:
                assert line["content"] == SENSITIVE_LINE, (i, line)
            else:
                assert line["content"] == before, (i, before, line)


async def run_call(server: Server, script: dict[str, Any], *, cancel: bool = False) -> Any:
    async with Watcher(server.client, "/api/events") as watcher:
        sid = (await server.simulate("identity", script))["session_id"]
        async with Recorder(server, sid) as rec:
            if cancel:

                async def heard() -> bool:  # name, date of birth and maiden name said
                    return any(
                        v["state"] == "gathering"
                        and sum(m["role"] == "user" for m in v["transcript"]) >= 3
                        for v in rec.views[-1:]
                    )

                await eventually(heard, timeout=20)
                response = await server.client.post(f"/api/sessions/{sid}/cancel")
                # under load the call may end on its own first (409); masking is checked either way
                assert response.status_code in (202, 409), response.text
            final = await rec.until_terminal()
        await asyncio.sleep(0.2)
    events = [json.dumps(e.data, ensure_ascii=False) for e in watcher.events]
    assert any(json.loads(e)["session_id"] == sid for e in events)
    views = [json.dumps(v, ensure_ascii=False) for v in rec.views]
    assert_nothing_sensitive(events + views + rec.pages)
    assert_monotone(rec.views)
    return final, rec, watcher


async def test_cancel_mid_gather_never_shows_a_sensitive_answer(tmp_path: Path) -> None:
    async with identity_server(tmp_path) as server:
        final, _rec, _ = await run_call(server, {"say": SAY}, cancel=True)
        assert final["state"] in ("abandoned", "completed", "incomplete")
        users = [m for m in final["transcript"] if m["role"] == "user"]
        assert users and all(m["content"] == SENSITIVE_LINE for m in users)
        [result] = server.results()  # the sink has the unmasked transcript
        said = " ".join(m["content"] for m in result["transcript"])
        assert "Whitfield" in said  # the sink gets the unmasked transcript


async def test_hang_up_mid_gather_keeps_unattributed_lines_masked(tmp_path: Path) -> None:
    async with identity_server(tmp_path) as server:
        script = {"say": SAY, "hangup": "during_gather", "hangup_after": 3}
        final, _rec, _ = await run_call(server, script)
        assert final["state"] == "abandoned"
        assert all(
            m["content"] == SENSITIVE_LINE for m in final["transcript"] if m["role"] == "user"
        )
        # long after the end, still masked
        again = await server.session(final["id"])
        assert again["transcript"] == final["transcript"]


async def test_a_re_ask_shows_non_sensitive_lines_and_never_masks_them_later(
    tmp_path: Path,
) -> None:
    async with identity_server(tmp_path) as server:
        script = {
            "say": {**SAY, "email": "maria at example"},
            "attempts": [{"email": "maria at example"}, {"email": "maria@example.com"}],
            "keypad": {"pin": "4321"},
        }
        script["say"] = dict(SAY)
        final, rec, _watcher = await run_call(server, script)
        assert final["attempts"] >= 2
        second = [m for m in final["transcript"] if m["role"] == "user" and m["attempt"] == 2]
        assert second and all(m["content"] != SENSITIVE_LINE for m in second), final["transcript"]
        # the line shown in the re-ask appeared shown the first time it appeared, and stayed
        shown = second[0]["content"]
        index = final["transcript"].index(second[0])
        seen = [
            v["transcript"][index]["content"] for v in rec.views if len(v["transcript"]) > index
        ]
        assert seen and set(seen) == {shown}


async def test_keypad_digits_of_a_sensitive_field_never_show(tmp_path: Path) -> None:
    async with identity_server(tmp_path) as server:
        script = {"say": {k: v for k, v in SAY.items() if k != "pin"}, "silent": ["pin"]}
        script["keypad"] = {"pin": "4321"}
        final, _rec, _ = await run_call(server, script)
        assert final["fields"]["pin"]["source"] in ("keypad", "confirmed")
        keypad = [m for m in final["transcript"] if m["content"].startswith("[keypad]")]
        assert not keypad  # shown as SENSITIVE_LINE
        assert any(m["content"] == SENSITIVE_LINE for m in final["transcript"])


# -- cost and memory ------------------------------------------------------------------------


def _session(**kw: Any) -> Session:
    return Session(
        id="big",
        form="identity",
        state=State.GATHERING,
        attempt=1,
        call=CallInfo(call_control_id="c1"),
        started_at=1.0,
        updated_at=2.0,
        gather=Gather(kind="ai", attempt=1, fields=list(IDENTITY["properties"])),
        **kw,
    )


def _identity_form(tmp_path: Path) -> Any:
    from collector.core.forms import load_forms

    (tmp_path / "identity.json").write_text(json.dumps(IDENTITY), encoding="utf-8")
    return load_forms(tmp_path)["identity"]


def test_a_sensitive_list_of_90000_strings_compiles_nothing_and_masks_every_line(
    tmp_path: Path,
) -> None:
    form = _identity_form(tmp_path)
    s = _session(
        partial={"maiden": [f"name{i}" for i in range(90_000)]},
        transcript=[
            Message(role="assistant", content="What is your maiden name?", attempt=1),
            Message(role="user", content="name5", attempt=1),
        ],
    )
    before = masking.stats.compilations
    for _ in range(200):  # 200 events, each seen by a viewer
        m = Masker.for_session(s, form)
    assert masking.stats.compilations == before  # too large to match: no pattern at all
    assert m.overflow and m.pattern is None
    assert m.line("assistant", "What is your maiden name?", 1) == SENSITIVE_LINE
    assert m.text("note: name5") == masking.MASK


def test_patterns_are_compiled_once_per_session_state_and_stay_small(tmp_path: Path) -> None:
    form = _identity_form(tmp_path)
    s = _session(partial={"maiden": [f"name{i}" for i in range(masking.MAX_LEAVES - 1)]})
    before = masking.stats.compilations
    for _ in range(200):
        m = Masker.for_session(s, form)
    assert masking.stats.compilations == before + 1
    assert m.pattern is not None and len(m.pattern.pattern) < 64 * 1024
    s.partial["dob"] = "1980-03-04"  # a new value: one more compilation, then none
    for _ in range(50):
        m = Masker.for_session(s, form)
    assert masking.stats.compilations == before + 2
    assert m.text("born the fourth of March") == f"born {masking.MASK}"


async def test_live_history_and_queues_stay_under_their_byte_limits() -> None:
    hub = Hub({})
    sub = hub.subscribe()  # never reads: its queue fills up
    line = "x" * 900_000
    for i in range(120):
        hub.publish("session.transcript", f"s{i % 7}", {"lines": [line]})
        assert hub.ring_bytes <= LIVE_HISTORY_BYTES
        assert sub.queued_bytes <= SUBSCRIBER_QUEUE_BYTES
    assert hub.memory()["live_history"] == hub.ring_bytes <= LIVE_HISTORY_BYTES
    assert 0 < len(hub.since(0)) < 120
    # the slow subscriber catches up from the ring: the newest events, in order, no repeats
    got: list[int] = []

    async def read() -> None:
        async for event in sub.events():
            if event.id > 0:
                got.append(event.id)
            if event.id == hub.last_id:
                return

    await asyncio.wait_for(read(), 10)
    assert got == sorted(set(got)) and got[-1] == hub.last_id
    hub.unsubscribe(sub)


async def test_metrics_show_bytes_held_per_cache(tmp_path: Path) -> None:
    async with identity_server(tmp_path) as server:
        text = (await server.anon.get("/metrics")).text
        for cache in (
            "engine_sessions",
            "live_history",
            "live_subscriber_queues",
            "masker_patterns",
        ):
            assert f'collector_memory_bytes{{cache="{cache}"}}' in text
            assert f'collector_memory_limit_bytes{{cache="{cache}"}}' in text
