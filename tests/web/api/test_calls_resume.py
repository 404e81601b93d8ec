"""Outbound calls that know part of the form in advance, through the admin API against the
sandbox: prefilled fields are never asked, and a call that resumes a half-filled session
asks only what is missing and delivers one submission holding every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.api.outbound import dial, dialled, outbound_server, over
from tests.web.conftest import Server, assert_error

pytestmark = pytest.mark.anyio


def _gathers(server: Server, view: dict[str, Any]) -> list[dict[str, Any]]:
    return [c.body for c in dialled(server, view) if c.action == "gather_using_ai"]


def _asked(server: Server, view: dict[str, Any]) -> set[str]:
    return {name for body in _gathers(server, view) for name in body["parameters"]["properties"]}


async def test_prefilled_fields_are_never_asked_and_say_where_they_came_from(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        sid = await dial(server, prefill={"serial": "ZX9876", "rating": 5})
        view = await over(server, sid)
        assert view["outcome"] == "completed"
        assert _asked(server, view) == {"name", "email"}
        (first,) = _gathers(server, view)
        assert first["parameters"]["required"] == ["name", "email"]
        assert view["fields"]["serial"]["source"] == "prefill"
        assert view["fields"]["serial"]["attempts"] == 0
        (sub,) = [r for r in server.results() if r["session_id"] == sid]
        assert sub["data"] == {
            "name": "Maria Gonzalez",
            "email": "maria@example.com",
            "serial": "ZX9876",
            "rating": 5,
        }
        assert sub["fields"]["serial"]["source"] == sub["fields"]["rating"]["source"] == "prefill"
        assert not any("serial" in line["content"].lower() for line in sub["transcript"])


async def test_a_resumed_call_asks_only_what_is_missing_and_delivers_one_merged_submission(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        first = await dial(
            server,
            script={"answers": {"name": "Li Wei"}, "hangup": "during_gather", "hangup_after": 1},
        )
        half = await over(server, first)
        assert (half["state"], half["outcome"]) == ("abandoned", "abandoned")
        assert half["fields"]["name"]["valid"] and not half["fields"]["email"]["valid"]

        second = await dial(server, resume=first, script={"answers": {"email": "li@example.com"}})
        view = await over(server, second)
        assert (view["outcome"], view["resumed_from"]) == ("completed", first)
        assert _asked(server, view) == {"email", "serial", "rating"}
        (gather,) = _gathers(server, view)
        history = [m["content"] for m in gather["message_history"]]
        assert any("Li Wei" in line for line in history)  # the AI hears the earlier call
        assert view["fields"]["name"]["source"] == "ai" and view["fields"]["name"]["valid"]

        subs = [r for r in server.results() if r["session_id"] == second]
        assert len(subs) == 1
        (merged,) = subs
        assert merged["resumed_from"] == first
        assert merged["data"] == {
            "name": "Li Wei",
            "email": "li@example.com",
            "serial": "AB1234",
            "rating": 4,
        }
        assert merged["fields"]["name"]["resumed_from"] == {"session_id": first, "attempt": 1}
        assert "resumed_from" not in merged["fields"]["email"]
        assert merged["attempts"] == 2  # the earlier call's gather, then this call's

        refused = await server.client.post(
            "/api/calls",
            json={"to": view["call"]["to"], "form": "warranty", "resume": second},
        )
        assert "is completed" in assert_error(refused, 422, "invalid_call")["error"]["message"]
