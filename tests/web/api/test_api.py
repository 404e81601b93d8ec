"""The admin API over real HTTP against a sandbox-mode server (simulated calls)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import eventually
from tests.web.conftest import TERMINAL, Server, assert_error, sandbox_server

pytestmark = pytest.mark.anyio

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_forms_are_listed_with_their_exact_gather_parameters(server: Server) -> None:
    listed = (await server.client.get("/api/forms")).json()["forms"]
    by_id = {f["id"]: f for f in listed}
    assert {"contact", "secret"} <= set(by_id)
    assert by_id["secret"]["sensitive_fields"] == ["pin"]
    form = server.runtime.forms["contact"]
    detail = (await server.client.get("/api/forms/contact")).json()
    assert detail["version"] == form.version
    assert detail["parameters"] == form.parameters
    assert detail["required"] == ["name", "email", "age"]
    assert detail["field_options"]["age"]["keypad"] is True
    assert_error(await server.client.get("/api/forms/nope"), 404, "not_found")


async def test_sessions_page_newest_first_with_an_opaque_cursor(server: Server) -> None:
    placed = []
    for _ in range(5):
        placed.append((await server.simulate("contact"))["session_id"])
    for sid in placed:
        await server.finished(sid)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await server.client.get("/api/sessions", params=params)).json()
        assert set(body) == {"sessions", "next_cursor"}
        assert len(body["sessions"]) <= 2
        seen.extend(body["sessions"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [s["id"] for s in seen] == list(reversed(placed))  # newest first
    starts = [s["started_at"] for s in seen]
    assert starts == sorted(starts, reverse=True)
    item = seen[0]
    for key in (
        "id",
        "form",
        "state",
        "call",
        "started_at",
        "updated_at",
        "fields_filled",
        "fields_total",
    ):
        assert key in item
    assert set(item["call"]) >= {"call_control_id", "from", "to", "direction"}
    assert item["call"]["direction"] == "incoming"
    assert ISO_Z.match(item["started_at"]) and ISO_Z.match(item["updated_at"])
    assert item["state"] == "completed" and item["fields_filled"] == 3 and item["fields_total"] == 4
    # the default page holds all of them, and says there is nothing more
    everything = (await server.client.get("/api/sessions")).json()
    assert len(everything["sessions"]) == 5 and everything["next_cursor"] is None


async def test_sessions_filter_by_state_form_and_since(server: Server) -> None:
    a = (await server.simulate("contact"))["session_id"]
    b = (await server.simulate("secret"))["session_id"]
    await server.finished(a)
    await server.finished(b)

    async def ids(**params: Any) -> list[str]:
        response = await server.client.get("/api/sessions", params=params)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["sessions"]]

    assert await ids(form="secret") == [b]
    assert await ids(form="contact") == [a]
    assert await ids(form="nope") == []
    assert set(await ids(state="completed")) == {a, b}
    assert await ids(state="gathering") == []
    started_b = (await server.session(b))["started_at"]
    assert await ids(since=started_b) == [b]
    assert set(await ids(since="0")) == {a, b}
    assert await ids(since=str(int(time.time()) + 3600)) == []
    assert set(await ids(since="2020-01-01T00:00:00+02:00")) == {a, b}
    for params in (
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"state": "bogus"},
        {"since": "yesterday"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WzEsMl0"},  # [1,2]: JSON, but not a cursor
    ):
        assert_error(await server.client.get("/api/sessions", params=params), 400)


async def test_a_finished_session_shows_fields_transcript_submission_and_deliveries(
    server: Server,
) -> None:
    script = {"attempts": [{"email": "maria.gonzalez.example.com"}, {"email": "maria@example.com"}]}
    sid = (await server.simulate("contact", script))["session_id"]
    view = await server.finished(sid)
    assert view["state"] == "completed" and view["status"] == "completed"
    email = view["fields"]["email"]
    assert email["value"] == "maria@example.com" and email["valid"] is True
    assert email["attempts"] == 2 and email["source"] == "ai"
    assert email["errors"], "the first, wrong email left its problem on record"
    assert view["attempts"] == 2
    assert {line["attempt"] for line in view["transcript"]} == {1, 2}
    assert any(line["role"] == "user" for line in view["transcript"])
    sub = view["submission"]
    assert sub["status"] == "completed" and sub["data"]["email"] == "maria@example.com"
    assert sub["submission_id"] == server.results()[0]["submission_id"]
    [delivery] = view["deliveries"]
    assert delivery["sink"] == "jsonl" and delivery["state"] == "delivered"
    assert delivery["attempts"] == 1 and delivery["last_error"] is None
    assert ISO_Z.match(delivery["delivered_at"])
    assert [c["action"] for c in view["commands"]][:2] == ["answer", "gather_using_ai"]
    assert view["call"]["call_control_id"] and view["call"]["from"]
    assert_error(await server.client.get("/api/sessions/nope"), 404, "not_found")


async def test_sensitive_values_are_masked_in_the_api_but_not_in_the_sink(server: Server) -> None:
    sid = (await server.simulate("secret", {"account": "123456", "pin": "4321"}))["session_id"]
    view = await server.finished(sid)
    assert view["state"] == "completed"
    text = json.dumps(view, ensure_ascii=False)
    assert "4321" not in text and "4 3 2 1" not in text
    assert view["fields"]["pin"]["value"] == "•••" and view["fields"]["pin"]["sensitive"] is True
    assert view["fields"]["account"]["value"] == "123456"
    assert view["submission"]["data"] == {"account": "123456", "pin": "•••"}
    assert view["submission"]["fields"]["pin"]["value"] == "•••"
    pin_lines = [m for m in view["transcript"] if m["content"] == "••• (sensitive)"]
    assert pin_lines, view["transcript"]
    # the one gather asked for the PIN: every caller line of it is masked, the account
    # number's too (masking.py: a line is judged by its gather, not by what it seems to say)
    assert all(m["content"] == "••• (sensitive)" for m in view["transcript"] if m["role"] == "user")
    assert any(m["role"] == "assistant" and "•" not in m["content"] for m in view["transcript"])
    [result] = server.results()
    assert result["data"]["pin"] == "4321"  # the sinks get the real value
    listed = (await server.client.get("/api/sessions")).text
    assert "4321" not in listed


async def test_partial_results_show_while_the_call_is_mid_gather(slow_server: Server) -> None:
    server = slow_server
    sid = (await server.simulate("contact"))["session_id"]

    async def mid_gather() -> dict[str, Any] | None:
        view = await server.session(sid)
        if view["state"] == "gathering" and view["partial"]:
            return view
        assert view["state"] not in TERMINAL, "the call ended before a partial result was seen"
        return None

    view = await eventually(mid_gather, timeout=20, interval=0.03)
    assert view["gather"]["kind"] == "ai" and view["gather"]["attempt"] == 1
    name, value = next(iter(view["partial"].items()))
    assert view["fields"][name]["partial"] == value
    assert view["fields"][name]["status"] == "hearing"
    assert view["terminal"] is False
    assert (await server.finished(sid))["state"] == "completed"


async def test_cancel_stops_a_live_call_and_refuses_a_finished_one(slow_server: Server) -> None:
    server = slow_server
    sid = (await server.simulate("contact"))["session_id"]

    async def gathering() -> bool:
        return (await server.session(sid))["state"] == "gathering"

    await eventually(gathering, timeout=20, interval=0.03)
    response = await server.client.post(f"/api/sessions/{sid}/cancel", json={"reason": "test stop"})
    assert response.status_code == 202, response.text
    view = response.json()
    assert view["id"] == sid and view["state"] == "abandoned" and view["terminal"] is True
    assert any(n["kind"] == "cancelled" and n["reason"] == "test stop" for n in view["notes"])
    again = await server.client.post(f"/api/sessions/{sid}/cancel")
    assert_error(again, 409, "already_finished")
    assert_error(await server.client.post("/api/sessions/nope/cancel"), 404, "not_found")
    finished = await server.finished(sid)
    assert finished["submission"]["status"] == "abandoned"


async def test_cancel_checks_its_body(slow_server: Server) -> None:
    server = slow_server
    sid = (await server.simulate("contact"))["session_id"]
    bad = await server.client.post(f"/api/sessions/{sid}/cancel", content=b"{not json")
    assert_error(bad, 400, "invalid_json")
    assert_error(await server.client.post(f"/api/sessions/{sid}/cancel", json=[1]), 422)
    assert_error(await server.client.post(f"/api/sessions/{sid}/cancel", json={"x": 1}), 422)
    assert_error(
        await server.client.post(f"/api/sessions/{sid}/cancel", json={"reason": "x" * 201}), 422
    )
    assert (await server.client.post(f"/api/sessions/{sid}/cancel")).status_code == 202


async def test_simulate_places_a_call_and_refuses_bad_requests(server: Server) -> None:
    placed = await server.simulate("contact", {"name": "Ada Lovelace"})
    assert placed["call_control_id"] and placed["dashboard_url"] == f"/calls/{placed['session_id']}"
    view = await server.finished(placed["session_id"])
    assert view["fields"]["name"]["value"] == "Ada Lovelace"
    c = server.client
    assert_error(await c.post("/api/simulate", json={"form": "nope"}), 404, "not_found")
    assert_error(await c.post("/api/simulate", json={}), 422)
    assert_error(await c.post("/api/simulate", json={"form": 3}), 422)
    assert_error(await c.post("/api/simulate", json={"form": "contact", "answers": [1]}), 422)
    assert_error(await c.post("/api/simulate", json={"form": "contact", "extra": 1}), 422)
    assert_error(await c.post("/api/simulate", json=["contact"]), 422)
    assert_error(await c.post("/api/simulate", content=b"form=contact"), 400, "invalid_json")
    assert_error(await c.post("/api/simulate"), 400, "invalid_json")
    bad_script = {"form": "contact", "answers": {"answers": {}, "hangup": "never"}}
    assert_error(await c.post("/api/simulate", json=bad_script), 422, "invalid_answers")


async def test_simulate_is_refused_in_live_mode(tmp_path: Path) -> None:
    from collector.simulator.signing import generate_keypair, public_key_b64

    environ = {
        "TELNYX_API_KEY": "KEY_test",
        "TELNYX_PUBLIC_KEY": public_key_b64(generate_keypair()[0]),
        "TELNYX_BASE_URL": "http://127.0.0.1:9/v2",
    }
    async with sandbox_server(tmp_path, environ=environ) as server:
        assert server.runtime.mode == "live"
        assert_error(
            await server.client.post("/api/simulate", json={"form": "contact"}), 409, "not_sandbox"
        )
        listed = (await server.client.get("/api/sessions")).json()
        assert listed == {"sessions": [], "next_cursor": None}


async def test_errors_under_api_are_json_never_html(server: Server) -> None:
    c = server.client
    assert_error(await c.get("/api/nope"), 404, "not_found")
    assert_error(await c.get("/api/sessions/x/y/z"), 404)
    assert_error(await c.delete("/api/forms"), 405, "method_not_allowed")
    assert_error(await c.get("/api/simulate"), 405)
    assert_error(await c.put("/api/sessions/abc/cancel"), 405)
    assert_error(await server.anon.get("/api/nope"), 401, "unauthorized")
    # outside /api the other routes keep their own answers
    assert (await server.anon.get("/healthz")).status_code == 200
    assert (await c.get("/openapi.json")).json()["openapi"].startswith("3.")


async def test_a_failing_store_answers_500_json_not_a_traceback(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path) as server:
        await server.runtime.store.close()  # the store is gone: every read fails
        try:
            response = await server.client.get("/api/sessions")
            body = assert_error(response, 500, "internal_error")
            assert "Traceback" not in json.dumps(body)
        finally:
            await server.runtime.store.open()


async def test_concurrent_calls_each_get_their_own_session(server: Server) -> None:
    placed = await asyncio.gather(*(server.simulate("contact") for _ in range(4)))
    ids = {p["session_id"] for p in placed}
    assert len(ids) == 4
    for sid in ids:
        assert (await server.finished(sid))["state"] == "completed"
    assert len(server.results()) == 4


def test_since_includes_a_session_whose_shown_time_rounds_up() -> None:
    from collector.web.api import parse_since
    from collector.web.presentation import iso

    started = 1795475321.5860987  # shown as ...21.586099Z
    assert iso(started) == "2026-11-23T23:08:41.586099Z"
    assert parse_since(iso(started) or "") <= started
    assert parse_since("1700000000") == 1700000000.0
