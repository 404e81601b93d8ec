"""POST /api/calls: what it refuses (a 422 naming the problem, nothing dialled) and what a
dialled call looks like in the admin API while it rings and once it is over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import eventually
from tests.live_stack import live_stack
from tests.web.api.outbound import (
    SANDBOX_FROM,
    TO,
    VARIABLES,
    actions,
    dial,
    fake,
    outbound_server,
    over,
)
from tests.web.conftest import Server, assert_error

pytestmark = pytest.mark.anyio


async def _refused(server: Server, body: Any, code: str = "invalid_call") -> str:
    response = await server.client.post("/api/calls", json=body)
    message: str = assert_error(response, 422, code)["error"]["message"]
    return message


async def _nothing_dialled(server: Server) -> None:
    assert fake(server).requests == []
    listed = (await server.client.get("/api/sessions")).json()
    assert listed["sessions"] == []


async def test_every_problem_is_a_422_naming_it_and_nothing_is_dialled(tmp_path: Path) -> None:
    async with outbound_server(tmp_path) as server:
        good = {"to": TO, "form": "warranty", "variables": VARIABLES}
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({**good, "to": "3125550190"}, ["to: must be a phone number in E.164 form"]),
            ({**good, "to": "+1 312 555 0190"}, ["to: "]),
            ({**good, "to": 13125550190}, ["to: "]),
            ({**good, "form": "nope"}, ["form: no form 'nope' (forms: plain, warranty)"]),
            ({"to": TO}, ["form: the id of a form is required"]),
            ({**good, "variables": {"first_name": "Maria"}}, ["{item}"]),
            ({**good, "variables": {}}, ["{first_name}", "{item}"]),
            ({**good, "variables": {**VARIABLES, "item": ["a"]}}, ["variables: item must be"]),
            ({**good, "variables": "Maria"}, ["variables: a JSON object"]),
            ({**good, "prefill": {"serial": "ab12"}}, ["prefill ", "/serial"]),
            ({**good, "prefill": {"colour": "red"}}, ["prefill ", "colour"]),
            ({**good, "prefill": ["AB1234"]}, ["prefill: a JSON object"]),
            ({**good, "resume": "no-such-session"}, ["resume: no session 'no-such-session'"]),
            ({**good, "resume": 7}, ["resume: the id of an earlier session"]),
            ({**good, "script": "busy"}, ["script: a JSON object"]),
            ({**good, "script": {"callee": "fax"}}, ["script: ", "callee"]),
            ({**good, "script": {"answers": {"nmae": "x"}}}, ["script: ", "did you mean 'name'"]),
            (
                {"to": "12", "form": "warranty", "prefill": {"serial": 5}},
                ["to: ", "{first_name}", "prefill "],
            ),
        ]
        for body, expected in cases:
            message = await _refused(server, body)
            for part in expected:
                assert part in message, (body, message)
        await _nothing_dialled(server)
        message = await _refused(server, {**good, "ring": 5}, "invalid_body")
        assert message == "unknown key(s): ring"
        assert (await _refused(server, [good], "invalid_body")) == "the body must be a JSON object"
        assert_error(await server.client.post("/api/calls", content=b"{"), 400, "invalid_json")
        assert_error(await server.anon.post("/api/calls", json=good), 401)
        await _nothing_dialled(server)


async def test_a_resume_must_be_an_unfinished_call_of_the_same_form_and_number(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path) as server:
        done = await dial(server)
        await server.finished(done)
        busy = await dial(server, to="+13125550191", script={"callee": "busy"})
        await server.finished(busy)
        live = await dial(server, to="+13125550192", script={"callee": "no_answer"})

        async def placed() -> bool:
            return (await server.session(live))["commands"][0]["state"] == "sent"

        await eventually(placed)
        sent = len(fake(server).requests)
        good = {"to": "+13125550191", "form": "warranty", "variables": VARIABLES}
        cases = [
            ({**good, "to": TO, "resume": done}, f"resume: session {done} is completed"),
            ({**good, "form": "plain", "resume": busy}, "is of form 'warranty', not 'plain'"),
            ({**good, "to": "+13125550199", "resume": busy}, "was a call with another number"),
            ({**good, "to": "+13125550192", "resume": live}, "is still in progress"),
        ]
        for body, expected in cases:
            assert expected in await _refused(server, body)
        assert len(fake(server).requests) == sent  # nothing more was dialled
        await server.finished(live)


async def test_without_outbound_settings_a_live_server_refuses_to_dial(tmp_path: Path) -> None:
    async with live_stack(tmp_path, admin_token="t0ken-for-the-outbound-test") as stack:
        response = await stack.client.post(
            f"{stack.url}/api/calls", json={"to": TO, "form": "contact"}
        )
        body = assert_error(response, 422, "outbound_not_configured")
        assert "[outbound]" in body["error"]["message"]
        assert stack.fake.requests == []


async def test_a_script_is_for_the_sandbox_only(tmp_path: Path) -> None:
    async with live_stack(tmp_path, admin_token="t0ken-for-the-outbound-test") as stack:
        stack.runtime.settings.outbound = _outbound()
        response = await stack.client.post(
            f"{stack.url}/api/calls",
            json={"to": TO, "form": "contact", "script": {"callee": "busy"}},
        )
        body = assert_error(response, 422, "invalid_call")
        assert "sandbox mode only" in body["error"]["message"]
        assert stack.fake.requests == []


def _outbound() -> Any:
    from collector.config import OutboundConfig

    return OutboundConfig(connection_id="conn-live", from_number="+13125550111")


async def test_a_dialled_call_rings_then_shows_its_direction_outcome_and_amd(
    tmp_path: Path,
) -> None:
    async with outbound_server(tmp_path, pace=0.1) as server:
        sid = await dial(server)
        view = await server.session(sid)
        assert view["state"] in ("dialing", "answered", "gathering")
        assert (view["status"], view["outcome"], view["terminal"]) == (None, None, False)
        assert view["call"]["direction"] == "outgoing"
        assert (view["call"]["from"], view["call"]["to"]) == (SANDBOX_FROM, TO)
        assert view["call"]["machine_detection"] == "detect"
        assert view["commands"][0]["action"] == "dial" and view["commands"][0]["seq"] == 1
        done = await over(server, sid)
        assert (done["state"], done["status"], done["outcome"], done["amd"]) == (
            "completed",
            "completed",
            "completed",
            "human",
        )
        assert done["call"]["call_control_id"].startswith("v3:")
        sub = done["submission"]
        assert (sub["status"], sub["outcome"], sub["amd"]) == ("completed", "completed", "human")
        assert sub["call"]["direction"] == "outgoing" and sub["call"]["to"] == TO
        assert actions(server, done) == ["dial", "gather_using_ai", "speak", "hangup"]
        listed = (await server.client.get("/api/sessions")).json()["sessions"]
        assert [(s["id"], s["outcome"], s["amd"]) for s in listed] == [(sid, "completed", "human")]
        assert server.results()[0]["outcome"] == "completed"


async def test_an_outbound_config_dials_with_its_connection_number_and_detection(
    tmp_path: Path,
) -> None:
    extra = (
        '[outbound]\nconnection_id = "${CONNECTION}"\nfrom_number = "+13125550177"\n'
        'answering_machine_detection = "premium"\nring_timeout_seconds = 45\n'
    )
    from tests.web.api.outbound import OUTBOUND_FORMS
    from tests.web.conftest import sandbox_server

    async with sandbox_server(
        tmp_path, pace=0.02, forms=OUTBOUND_FORMS, extra=extra, environ={"CONNECTION": "c-9"}
    ) as server:
        sid = await dial(server)
        done = await server.finished(sid)
        (sent,) = [c for c in fake(server).requests if c.action == "dial"]
        assert {k: v for k, v in sent.body.items() if k not in ("client_state", "command_id")} == {
            "connection_id": "c-9",
            "from": "+13125550177",
            "to": TO,
            "answering_machine_detection": "premium",
            "timeout_secs": 45,
        }
        assert done["amd"] == "human" and done["outcome"] == "completed"
        assert done["call"]["machine_detection"] == "premium"
