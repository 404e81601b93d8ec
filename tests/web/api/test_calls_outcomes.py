"""Every way an outbound call ends, through the admin API against the sandbox: who the
dialled number reaches (the script's callee), the commands sent, the outcome and amd in
the session and in the one submission, variables spoken, and a dial Telnyx refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.core.session.commands import DIAL, Command
from tests.web.api.outbound import (
    GOODBYE,
    GREETING,
    TO,
    VOICEMAIL,
    actions,
    dial,
    dialled,
    fake,
    outbound_server,
    over,
)
from tests.web.conftest import Server

pytestmark = pytest.mark.anyio


def _spoken(server: Server, view: dict[str, Any]) -> list[str]:
    return [c.body["payload"] for c in dialled(server, view) if c.action == "speak"]


def _one_submission(server: Server, sid: str) -> dict[str, Any]:
    (line,) = [r for r in server.results() if r["session_id"] == sid]
    return line


async def test_a_person_answers_and_fills_the_form_with_the_variables_spoken(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        sid = await dial(server, script={"callee": "person", "answers": {"name": "Li Wei"}})
        view = await over(server, sid)
        assert (view["state"], view["outcome"], view["amd"]) == ("completed", "completed", "human")
        assert actions(server, view) == ["dial", "gather_using_ai", "speak", "hangup"]
        (gather,) = [c for c in dialled(server, view) if c.action == "gather_using_ai"]
        assert gather.body["greeting"] == GREETING
        assert _spoken(server, view) == [GOODBYE]
        sub = _one_submission(server, sid)
        assert sub["data"] == {
            "name": "Li Wei",
            "email": "maria@example.com",
            "serial": "AB1234",
            "rating": 4,
        }
        assert (sub["status"], sub["outcome"], sub["amd"]) == ("completed", "completed", "human")
        assert sub["call"]["direction"] == "outgoing"
        assert sub["transcript"][0]["content"].startswith(GREETING)
        assert not any("{" in line["content"] for line in sub["transcript"])
        assert fake(server).rejected == []


async def test_a_voicemail_box_gets_the_forms_message_once_its_greeting_ends(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        sid = await dial(server, script={"callee": "voicemail"})
        view = await over(server, sid)
        assert (view["state"], view["status"], view["outcome"], view["amd"]) == (
            "abandoned",
            "abandoned",
            "voicemail",
            "machine",
        )
        assert actions(server, view) == ["dial", "speak", "hangup"]
        assert _spoken(server, view) == [VOICEMAIL]
        sub = _one_submission(server, sid)
        assert (sub["status"], sub["outcome"], sub["amd"], sub["data"]) == (
            "abandoned",
            "voicemail",
            "machine",
            {},
        )
        assert view["fields_filled"] == 0


async def test_without_a_voicemail_message_a_machine_is_hung_up_on_at_once(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        sid = await dial(server, form="plain", variables={}, script={"callee": "voicemail"})
        view = await over(server, sid)
        assert (view["outcome"], view["amd"]) == ("voicemail", "machine")
        assert actions(server, view) == ["dial", "hangup"]
        assert _one_submission(server, sid)["outcome"] == "voicemail"


@pytest.mark.parametrize(
    ("callee", "outcome", "cause"),
    [
        ("no_answer", "no_answer", "timeout"),
        ("busy", "busy", "user_busy"),
        ("rejected", "rejected", "call_rejected"),
    ],
)
async def test_a_call_nobody_answers_ends_with_its_outcome_and_only_the_dial_sent(
    tmp_path: Path, callee: str, outcome: str, cause: str
) -> None:
    async with outbound_server(tmp_path) as server:
        sid = await dial(server, script={"callee": callee})
        view = await over(server, sid)
        assert (view["state"], view["status"], view["outcome"], view["amd"]) == (
            "abandoned",
            "abandoned",
            outcome,
            None,
        )
        assert view["call"]["hangup_cause"] == cause
        assert actions(server, view) == ["dial"]
        assert [c["action"] for c in view["commands"]] == ["dial"]
        sub = _one_submission(server, sid)
        assert (sub["status"], sub["outcome"], sub["amd"]) == ("abandoned", outcome, None)
        assert sub["call"]["to"] == TO


async def test_a_dial_telnyx_refuses_fails_with_its_detail_and_places_no_call(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        fake(server).faults.arm(422, action="dial")
        sid = await dial(server)
        view = await server.finished(sid)
        assert (view["state"], view["status"], view["outcome"]) == ("failed", "abandoned", "failed")
        (command,) = view["commands"]
        assert (command["action"], command["state"]) == ("dial", "failed")
        assert "10015" in command["last_error"]
        (note,) = [n for n in view["notes"] if n["kind"] == "command_failed"]
        assert (note["action"], note["code"]) == ("dial", "10015")
        assert fake(server).calls == {} and fake(server).requests == []
        assert view["call"]["call_control_id"] == f"dial:{sid}"
        assert _one_submission(server, sid)["outcome"] == "failed"


async def test_a_throttled_dial_is_retried_under_its_own_command_id_and_rings_once(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        fake(server).faults.arm(429, action="dial", count=2)
        sid = await dial(server)
        view = await over(server, sid, timeout=30)
        assert view["outcome"] == "completed"
        command_id = Command(DIAL, 1).command_id(sid)
        spent = [f.command_id for f in fake(server).faults.spent]
        assert spent == [command_id, command_id]
        dials = [c for c in fake(server).requests if c.action == "dial"]
        assert [c.command_id for c in dials] == [command_id]
        assert view["commands"][0]["attempts"] == 3


async def test_each_outcome_reaches_the_sessions_list(tmp_path: Path) -> None:
    async with outbound_server(tmp_path) as server:
        sids = {}
        for i, callee in enumerate(["person", "voicemail", "busy"]):
            sids[callee] = await dial(server, to=f"+1312555020{i}", script={"callee": callee})
        for sid in sids.values():
            await over(server, sid)
        listed = (await server.client.get("/api/sessions")).json()["sessions"]
        by_id = {s["id"]: (s["status"], s["outcome"], s["amd"]) for s in listed}
        assert by_id == {
            sids["person"]: ("completed", "completed", "human"),
            sids["voicemail"]: ("abandoned", "voicemail", "machine"),
            sids["busy"]: ("abandoned", "busy", None),
        }
        voicemail = (await server.client.get("/api/sessions", params={"state": "abandoned"})).json()
        assert {s["id"] for s in voicemail["sessions"]} == {sids["voicemail"], sids["busy"]}
