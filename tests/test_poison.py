"""Poison webhooks: values beyond the edge's bounds, and events that can never apply.

A gathered value nested 300 deep parses (orjson allows 1,024 levels) but could never be
stored (pydantic and orjson stop at about 255); a 100 KB string or a 5,000-item list is
not worth keeping either. Each is replaced, for its field only, by a marker the session
rejects, so the field is asked again and the call completes with its other answers. An
event that fails for a reason a redelivery cannot change is acknowledged and recorded as
a dead event (store, admin API, CLI, /metrics); a store that is really down still gets 503.

Every call here runs through the real server (live mode) against the fake Telnyx, with
signed webhooks, over a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import cli, engine
from collector.session import events as E
from collector.simulator.script import CallScript
from collector.telephony import webhooks
from tests.harness import eventually
from tests.live_stack import FIXTURES, NUMBER, Stack, live_stack

pytestmark = pytest.mark.anyio


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    inner = value
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return value


POISONS = {
    "nested 300 deep": nested(300),
    "a string of 100 KB": "x" * 100_000,
    "a list of 5,000 items": ["Maria"] * 5000,
}


async def _done(stack: Stack) -> list[dict[str, Any]] | None:
    subs = await stack.submissions()
    return subs or None


def _stored_bodies(tmp: Path) -> list[str]:
    conn = sqlite3.connect(tmp / "collector.db")
    try:
        return [r[0] for r in conn.execute("SELECT body FROM sessions")]
    finally:
        conn.close()


@pytest.mark.parametrize("poison", list(POISONS), ids=list(POISONS))
async def test_a_value_beyond_the_bounds_re_asks_only_its_field(
    tmp_path: Path, poison: str
) -> None:
    value = POISONS[poison]
    async with live_stack(tmp_path) as stack:
        script = CallScript.parse({"attempts": [{"name": value}, {}]})
        ccid = await stack.fake.place_call(to=NUMBER, script=script)
        subs = await eventually(lambda: _done(stack))
        gathers = stack.fake.commands(ccid, "gather_using_ai")
        assert len(gathers) == 2
        second = gathers[1].body
        assert list(second["parameters"]["properties"]) == ["name"]
        assert "was too long to use" in second["greeting"]
        sub = subs[0]
        assert sub["status"] == "completed"
        assert sub["data"] == {
            "name": "Maria Gonzalez",
            "email": "maria.gonzalez@example.com",
            "age": 36,
        }
        assert sub["fields"]["name"]["errors"] == ["was too long to use"]
        assert sub["fields"]["name"]["attempts"] == 2
        assert sub["fields"]["email"]["attempts"] == 1
        assert len(sub["transcript"]) > 0
        assert all(len(m["content"]) <= webhooks.MAX_STRING_CHARS for m in sub["transcript"])
        assert stack.fake.rejected == []
        events = await stack.client.get(f"{stack.url}/metrics")
        assert 'outcome="error"' not in events.text  # never a 503
        assert await stack.runtime.store.list_dead_events() == []
    # the huge value was never stored: only the marker, and transcript lines cut to the bound
    for body in _stored_bodies(tmp_path):
        assert len(body) < 100_000
        assert '"a":{"a":{"a":{"a":{"a"' not in body
        assert 'Maria","Maria","Maria","Maria' not in body


async def test_insights_and_transcript_lines_beyond_the_bounds_are_cut_not_refused(
    tmp_path: Path,
) -> None:
    async with live_stack(tmp_path) as stack:
        ccid = "v3:poison-insights"
        r = await stack.post(_webhook("call.initiated", "ins-1", ccid, to=NUMBER))
        assert r.status_code == 200
        results = [{"insight_id": "i", "result": nested(300)}, {"result": "y" * 50_000}]
        results += [{"r": 1}] * 2000
        r = await stack.post(
            _webhook("call.conversation_insights.generated", "ins-2", ccid, results=results)
        )
        assert r.status_code == 200
        history = [{"role": "user", "content": "z" * 100_000}]
        r = await stack.post(
            _webhook(
                "call.ai_gather.message_history_updated", "ins-3", ccid, message_history=history
            )
        )
        assert r.status_code == 200
        session = await stack.runtime.store.session_by_call(ccid)
        assert session is not None
        assert await stack.runtime.store.list_dead_events() == []
        assert {"ins-1", "ins-2", "ins-3"} <= set(session.event_ids)
        assert [len(m.content) for m in session.transcript] == [webhooks.MAX_STRING_CHARS]
        insights = session.conversation[-1]["insights"]
        assert len(insights) == webhooks.MAX_LIST_ITEMS
        assert len(insights[1]["result"]) == webhooks.MAX_STRING_CHARS
        depth, inner = 0, insights[0]["result"]
        while isinstance(inner, dict) and "a" in inner:
            depth, inner = depth + 1, inner["a"]
        assert E.is_too_large(inner) and depth < webhooks.MAX_JSON_DEPTH


def _webhook(event_type: str, event_id: str, ccid: str, **payload: Any) -> bytes:
    doc = json.loads((FIXTURES / "telnyx" / "call.initiated.json").read_text())
    doc["data"]["id"] = event_id
    doc["data"]["event_type"] = event_type
    doc["data"]["payload"] = {"call_control_id": ccid, **payload}
    return json.dumps(doc).encode()


def test_the_bounds_of_one_value() -> None:
    assert webhooks.fits(nested(webhooks.MAX_JSON_DEPTH))
    assert not webhooks.fits(nested(webhooks.MAX_JSON_DEPTH + 1))
    assert webhooks.fits("x" * webhooks.MAX_STRING_CHARS)
    assert not webhooks.fits("x" * (webhooks.MAX_STRING_CHARS + 1))
    assert webhooks.fits([1] * webhooks.MAX_LIST_ITEMS)
    assert not webhooks.fits([1] * (webhooks.MAX_LIST_ITEMS + 1))
    assert not webhooks.fits({"k" * (webhooks.MAX_STRING_CHARS + 1): 1})
    assert E.is_too_large(json.loads(json.dumps(E.TOO_LARGE)))  # survives being stored
    assert not E.is_too_large({"$collector": "too_large", "and": "more"})
