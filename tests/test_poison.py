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
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.adapters.telephony import webhooks
from collector.core.session import events as E
from collector.simulator.script import CallScript
from collector.workers import engine
from tests.harness import bare_env, eventually
from tests.live_stack import FIXTURES, NUMBER, Stack, live_stack

TOKEN = "poison-test-admin-token"

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


# -- dead events -------------------------------------------------------------------------


def admin_stack(tmp_path: Path) -> Any:
    """live_stack with a known admin token, so the test can read /api/events/dead."""
    return live_stack(tmp_path, admin_token=TOKEN)


async def _dead_listed(stack: Stack, **query: str) -> list[dict[str, Any]]:
    r = await stack.client.get(f"{stack.url}/api/events/dead", params=query)
    assert r.status_code == 200, r.text
    return r.json()["dead_events"]


async def _dead_metric(stack: Stack) -> dict[str, float]:
    text = (await stack.client.get(f"{stack.url}/metrics")).text
    return {
        s.labels["type"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "collector_dead_events"
        for s in family.samples
        if s.name == "collector_dead_events_total"
    }


def _cli_dead(tmp: Path) -> subprocess.CompletedProcess[str]:
    env = bare_env()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "collector.cli",
            "events",
            "dead",
            "--config",
            str(tmp / "collector.toml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _statuses(stack: Stack, ccid: str) -> set[int | None]:
    return {d.status_code for d in stack.fake.deliveries if d.call_control_id == ccid}


async def test_an_event_decide_raises_on_is_acknowledged_kept_as_dead_and_the_call_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.decide
    failed: list[str] = []

    def decide(session: Any, event: E.Event, *args: Any) -> Any:
        if isinstance(event, E.AiGatherPartial) and not failed:
            failed.append(event.id)
            raise RuntimeError("cannot use 'Maria Gonzalez' or 3125550143")
        return real(session, event, *args)

    monkeypatch.setattr(engine, "decide", decide)
    async with admin_stack(tmp_path) as stack:
        ccid = await stack.fake.place_call(to=NUMBER)
        subs = await eventually(lambda: _done(stack))
        assert subs[0]["status"] == "completed"  # the call's later events applied
        assert subs[0]["data"]["name"] == "Maria Gonzalez"
        assert failed and _statuses(stack, ccid) == {200}  # the dead one too: no 503
        dead = await _dead_listed(stack)
        assert len(dead) == 1
        row = dead[0]
        session = await stack.runtime.store.session_by_call(ccid)
        assert session is not None and failed[0] not in session.event_ids
        assert row["event_id"] == failed[0]
        assert row["event_type"] == "call.ai_gather.partial_results"
        assert row["call_control_id"] == ccid and row["session_id"] == session.id
        assert row["stage"] == "decide"
        assert row["error"].startswith("RuntimeError: cannot use '…' or …")
        assert "Maria" not in row["error"] and "3125550143" not in row["error"]
        assert "test_poison.py" in row["error"]  # where it was raised
        assert row["received_at"].endswith("Z")
        assert await _dead_listed(stack, type="call.hangup") == []
        assert await _dead_metric(stack) == {"call.ai_gather.partial_results": 1.0}
        # a duplicate of the dead webhook is answered 200 and counted once
        body = {
            "data": {
                "id": failed[0],
                "event_type": "call.ai_gather.partial_results",
                "payload": {"call_control_id": ccid, "partial_results": {}},
            }
        }
        failed.clear()
        r = await stack.post(json.dumps(body).encode())
        assert r.status_code == 200
        assert len(await _dead_listed(stack)) == 1
        assert await _dead_metric(stack) == {"call.ai_gather.partial_results": 1.0}
        cli = _cli_dead(tmp_path)  # reads the store beside the running server
        assert cli.returncode == 0, cli.stderr
        lines = cli.stdout.strip().splitlines()
        assert len(lines) == 1
        assert f"\tcall.ai_gather.partial_results\t{row['event_id']}\t{ccid}\tdecide\t" in lines[0]


async def test_a_step_that_cannot_be_stored_is_dead_not_503_and_the_hangup_still_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue as found: with the edge's depth bound lifted, a 300-deep answer reaches
    the store, which cannot serialise it. Those events are dead (200), not 503 forever."""
    monkeypatch.setattr(webhooks, "MAX_JSON_DEPTH", 10_000)
    async with admin_stack(tmp_path) as stack:
        script = CallScript.parse({"attempts": [{"name": nested(300)}]})
        ccid = await stack.fake.place_call(to=NUMBER, script=script)
        await eventually(lambda: _any(stack.fake.events(ccid, "call.ai_gather.ended")))
        dead = await eventually(lambda: _dead_listed(stack))
        await stack.fake.idle()
        assert _statuses(stack, ccid) == {200}
        assert {d["stage"] for d in dead} == {"serialise"}
        assert "call.ai_gather.ended" in {d["event_type"] for d in dead}
        assert all("depth" in d["error"] for d in dead), dead
        await stack.fake.hangup_call(ccid)
        subs = await eventually(lambda: _done(stack))
        assert subs[0]["status"] == "abandoned"  # the call was not stuck behind its poison
        metric = await _dead_metric(stack)
        assert sum(metric.values()) == len(await _dead_listed(stack))


async def _any(value: Any) -> Any:
    return value


async def test_a_store_that_is_really_down_still_answers_503(tmp_path: Path) -> None:
    async with admin_stack(tmp_path) as stack:
        ccid = "v3:poison-locked"
        body = _webhook("call.initiated", "locked-1", ccid, to=NUMBER)
        blocker = sqlite3.connect(tmp_path / "collector.db", isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            r = await stack.post(body)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "store_unavailable"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        r = await stack.post(body)  # Telnyx redelivers: now it applies
        assert r.status_code == 200
        assert await stack.runtime.store.session_by_call(ccid) is not None
        assert await _dead_listed(stack) == []
        assert await _dead_metric(stack) == {}
