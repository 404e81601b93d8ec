"""The fake Telnyx, driven by the real SDK over loopback HTTP, webhooks verified as Telnyx's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import telnyx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from collector.simulator.caller import ScriptedCaller, question_for, speak_value
from collector.simulator.fake_telnyx import FakeTelnyx
from collector.simulator.script import CallScript, ScriptError
from collector.simulator.signing import generate_keypair, sign

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "telnyx"
VOICE = "Telnyx.KokoroTTS.af"
TO = "+13125550199"
GATHER_STATE = "eyJmbG93IjoiaW50YWtlX3YxIiwic3RlcCI6ImFpX2dhdGhlciIsImF0dGVtcHQiOjF9"
PARAMETERS = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Caller's full name", "examples": ["Ana Ruiz"]},
        "date_of_birth": {
            "type": "string",
            "format": "date",
            "description": "Date of birth, YYYY-MM-DD",
            "examples": ["1990-01-31"],
        },
        "email": {"type": "string", "format": "email", "examples": ["ana@example.com"]},
        "reason_for_call": {"type": "string", "title": "Reason for your call"},
    },
    "required": ["name", "date_of_birth", "email", "reason_for_call"],
}
ANSWERS = {
    "name": "Maria Gonzalez",
    "date_of_birth": "1987-04-12",
    "email": "maria.gonzalez@example.com",
    "reason_for_call": "Reschedule physiotherapy appointment to next week",
}


# -- harness: the fake and a verifying receiver, each under uvicorn on an ephemeral port --------


@dataclass
class Receiver:
    """Records every verified webhook; answers 500 to the first `fail[event_type]` deliveries."""

    public_key: str = ""
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    async def hook(self, request: Request) -> Response:
        raw = await request.body()
        try:
            verify_webhook_signature(raw.decode("utf-8"), dict(request.headers), self.public_key)
        except WebhookVerificationError as exc:
            self.bad_signatures.append(str(exc))
            return Response(status_code=401)
        envelope = json.loads(raw)
        self.envelopes.append(envelope)
        event_type = envelope["data"]["event_type"]
        if self.fail.get(event_type, 0) > 0:
            self.fail[event_type] -= 1
            return Response(status_code=500)
        return Response(status_code=204)

    def types(self, ccid: str | None = None) -> list[str]:
        return [e["data"]["event_type"] for e in self.of(ccid)]

    def of(self, ccid: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.envelopes
            if (ccid is None or e["data"]["payload"]["call_control_id"] == ccid)
            and (event_type is None or e["data"]["event_type"] == event_type)
        ]

    def payload(self, ccid: str, event_type: str) -> dict[str, Any]:
        (envelope,) = self.of(ccid, event_type)
        return envelope["data"]["payload"]


@dataclass
class Harness:
    fake: FakeTelnyx
    receiver: Receiver
    client: telnyx.AsyncTelnyx

    async def wait_for(self, ccid: str, event_type: str, count: int = 1) -> None:
        """Wait until the receiver has `count` events of `event_type` for the call."""
        async with asyncio.timeout(10):
            while len(self.receiver.of(ccid, event_type)) < count:
                await asyncio.sleep(0.002)

    async def answered_call(self, script: Any = None) -> str:
        ccid = await self.fake.place_call(TO, script=script)
        await self.fake.idle()
        await self.client.calls.actions.answer(ccid, command_id=str(uuid.uuid4()))
        await self.fake.idle()
        return ccid


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[int]:
    sock = _socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def harness(
    pace: float = 0.005, mount: bool = False, strict: bool = True
) -> AsyncIterator[Harness]:
    receiver = Receiver()
    receiver_app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    async with _serving(receiver_app) as receiver_port:
        fake = FakeTelnyx(f"http://127.0.0.1:{receiver_port}/hook", pace=pace, strict=strict)
        receiver.public_key = fake.public_key_b64
        app: Any = fake.asgi_app()
        prefix = "/v2"
        if mount:
            app = Starlette(routes=[Mount("/_sandbox/telnyx", app=fake.asgi_app())])
            prefix = "/_sandbox/telnyx/v2"
        async with _serving(app) as port:
            client = telnyx.AsyncTelnyx(
                api_key="KEY_test", base_url=f"http://127.0.0.1:{port}{prefix}", max_retries=0
            )
            try:
                yield Harness(fake, receiver, client)
            finally:
                await client.close()
                await fake.aclose()
        assert receiver.bad_signatures == []


def run(test: Callable[[Harness], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with harness(**options) as h:
            await test(h)

    asyncio.run(main())


def fixture(event_type: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{event_type}.json").read_text())


def assert_shaped_like_fixture(envelope: dict[str, Any]) -> None:
    event_type = envelope["data"]["event_type"]
    expected = fixture(event_type)
    assert set(envelope) == {"data", "meta"}
    assert set(envelope["data"]) == set(expected["data"]), event_type
    assert set(envelope["data"]["payload"]) == set(expected["data"]["payload"]), event_type
    assert set(envelope["meta"]) == set(expected["meta"])
    assert envelope["data"]["record_type"] == "event"
    occurred = envelope["data"]["occurred_at"]
    assert occurred.endswith("Z") and len(occurred.split(".")[1]) == 7  # microseconds + Z


def unprocessable(exc: pytest.ExceptionInfo[telnyx.UnprocessableEntityError]) -> dict[str, Any]:
    (error,) = exc.value.body["errors"]  # type: ignore[index]
    return error


# -- the inbound happy path -----------------------------------------------------------------------


def test_inbound_call_runs_the_ai_gather_like_telnyx() -> None:
    """An answered inbound call's AI gather sends Telnyx's webhooks in order, shaped as Telnyx's."""

    async def test(h: Harness) -> None:
        ccid = await h.fake.place_call(TO, from_="+13125550143", script=ANSWERS)
        await h.fake.idle()
        assert h.receiver.types(ccid) == ["call.initiated"]
        assert h.receiver.payload(ccid, "call.initiated")["client_state"] is None
        await h.client.calls.actions.answer(ccid, command_id=str(uuid.uuid4()))
        history = [{"role": "assistant", "content": "Earlier question?"}]
        response = await h.client.calls.actions.gather_using_ai(
            ccid,
            parameters=PARAMETERS,
            greeting="Hi, thanks for calling Lakeside Clinic.",
            send_partial_results=True,
            send_message_history_updates=True,
            message_history=history,  # type: ignore[arg-type]
            client_state=GATHER_STATE,
            command_id=str(uuid.uuid4()),
        )
        await h.fake.idle()
        per_field = ["call.ai_gather.message_history_updated", "call.ai_gather.partial_results"]
        assert h.receiver.types(ccid) == [
            "call.initiated",
            "call.answered",
            "call.conversation.created",
            *per_field * 4,
            "call.ai_gather.ended",
            "call.conversation.ended",
        ]
        for envelope in h.receiver.of(ccid):
            assert_shaped_like_fixture(envelope)
            assert envelope["meta"] == {"attempt": 1, "delivered_to": h.fake.webhook_url}
        assert response.data is not None
        created = h.receiver.payload(ccid, "call.conversation.created")
        assert created["conversation_id"] == response.data.conversation_id
        assert created["client_state"] == GATHER_STATE
        ended = h.receiver.payload(ccid, "call.ai_gather.ended")
        assert ended["status"] == "valid"
        assert ended["result"] == ANSWERS
        assert ended["message_history"][0] == history[0]
        assert ended["message_history"][1]["content"].startswith("Hi, thanks for calling")
        assert ended["message_history"][1]["content"].endswith("What is your full name?")
        assert ended["message_history"][3]["content"] == "Thanks. What is your date of birth?"
        assert ended["message_history"][6]["content"] == ("maria dot gonzalez at example dot com.")
        partials = [e["data"]["payload"] for e in h.receiver.of(ccid, per_field[1])]
        assert partials[1]["partial_results"] == {
            "name": "Maria Gonzalez",
            "date_of_birth": "1987-04-12",
        }
        conversation = h.receiver.payload(ccid, "call.conversation.ended")
        assert [m["content"] for m in conversation["messages"]] == [
            m["content"] for m in ended["message_history"]
        ]
        payload = h.receiver.payload(ccid, "call.answered")
        assert payload["from"] == "+13125550143" and payload["to"] == TO
        assert [c.action for c in h.fake.commands(ccid)] == ["answer", "gather_using_ai"]
        assert h.fake.calls[ccid].event_types == h.receiver.types(ccid)
        assert h.fake.rejected == [] and h.fake.refused == []

    run(test)


def test_updates_are_sent_only_when_asked_for() -> None:
    """Without send_partial_results / send_message_history_updates only the ends arrive."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call(ANSWERS)
        await h.client.calls.actions.gather_using_ai(ccid, parameters=PARAMETERS)
        await h.fake.idle()
        assert h.receiver.types(ccid)[2:] == [
            "call.conversation.created",
            "call.ai_gather.ended",
            "call.conversation.ended",
        ]

    run(test)


def test_unscripted_caller_answers_with_the_schema_examples() -> None:
    """With no script, each field gets its first example; a field with none stays unanswered."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        await h.client.calls.actions.gather_using_ai(ccid, parameters=PARAMETERS)
        await h.fake.idle()
        ended = h.receiver.payload(ccid, "call.ai_gather.ended")
        assert ended["status"] == "invalid"
        assert ended["result"] == {
            "name": "Ana Ruiz",
            "date_of_birth": "1990-01-31",
            "email": "ana@example.com",
        }
        assert ended["message_history"][-1] == {"role": "user", "content": "I'm not sure."}

    run(test)


def test_attempts_and_silent_fields_play_a_reask() -> None:
    """Attempt N uses attempts[N-1] over answers; a silent field is never answered."""

    async def test(h: Harness) -> None:
        script = {
            "answers": ANSWERS,
            "attempts": [{"email": "maria at example"}],
            "silent": ["reason_for_call"],
        }
        ccid = await h.answered_call(script)
        await h.client.calls.actions.gather_using_ai(ccid, parameters=PARAMETERS)
        await h.fake.idle()
        email_only = {"type": "object", "properties": {"email": {"type": "string"}}}
        reask = {**email_only, "required": ["email"]}
        first = h.receiver.payload(ccid, "call.ai_gather.ended")
        await h.client.calls.actions.gather_using_ai(ccid, parameters=reask)
        await h.fake.idle()
        second = h.receiver.of(ccid, "call.ai_gather.ended")[1]["data"]["payload"]
        assert first["status"] == "invalid"
        assert first["result"]["email"] == "maria at example"
        assert "reason_for_call" not in first["result"]
        assert first["message_history"][-1]["content"] == "Sorry, I'd rather not say."
        assert second["status"] == "valid"
        assert second["result"] == {"email": "maria.gonzalez@example.com"}

    run(test)


# -- keypad, speech, hangup -----------------------------------------------------------------------


def test_keypad_speak_and_hangup() -> None:
    """Keypad gathers send one dtmf per key; speak and hangup send their events; then 90018."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call({"keypad": ["19870412#", "1"]})
        body = {"payload": "Key in your date of birth.", "voice": VOICE}
        await h.client.calls.actions.gather_using_speak(ccid, **body, maximum_digits=8)
        await h.client.calls.actions.gather(ccid, maximum_digits=1, valid_digits="12")
        await h.client.calls.actions.gather(ccid, maximum_digits=1)  # nothing scripted
        await h.client.calls.actions.speak(ccid, payload="Goodbye.", voice=VOICE)
        await h.fake.idle()
        await h.client.calls.actions.hangup(ccid, command_id=str(uuid.uuid4()))
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.speak(ccid, payload="Too late.", voice=VOICE)
        assert unprocessable(exc)["code"] == "90018"
        assert unprocessable(exc)["title"] == "Call has already ended"
        await h.fake.idle()
        types = h.receiver.types(ccid)
        assert types[2:] == [
            *["call.dtmf.received"] * 8,  # the 8th digit ends it: maximum_digits
            "call.gather.ended",
            "call.dtmf.received",
            "call.gather.ended",
            "call.gather.ended",
            "call.speak.started",
            "call.speak.ended",
            "call.hangup",
        ]
        digits = [e["data"]["payload"]["digit"] for e in h.receiver.of(ccid, "call.dtmf.received")]
        assert "".join(digits) == "198704121"
        ends = [e["data"]["payload"] for e in h.receiver.of(ccid, "call.gather.ended")]
        assert [(p["digits"], p["status"]) for p in ends] == [
            ("19870412", "valid"),
            ("1", "valid"),
            ("", "timeout"),
        ]
        for event_type in ("call.dtmf.received", "call.gather.ended", "call.hangup"):
            assert_shaped_like_fixture(h.receiver.of(ccid, event_type)[0])
        assert_shaped_like_fixture(h.receiver.of(ccid, "call.speak.ended")[0])
        hangup = h.receiver.payload(ccid, "call.hangup")
        assert (hangup["hangup_source"], hangup["hangup_cause"]) == ("callee", "normal_clearing")
        status = (await h.client.calls.retrieve_status(ccid)).data
        assert status is not None and status.is_alive is False and status.end_time is not None
        assert [r.problems for r in h.fake.refused] == [["90018: Call has already ended"]]

    run(test)


def test_keypad_script_by_field_matches_the_prompt() -> None:
    """A keypad object maps fields to digits, found from the prompt's words."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call({"keypad": {"date_of_birth": "19870412", "pin": "4321"}})
        await h.client.calls.actions.gather_using_ai(ccid, parameters=PARAMETERS)
        await h.fake.idle()
        pin = {"payload": "Please enter your PIN.", "voice": VOICE, "maximum_digits": 4}
        dob = {"payload": "Enter your date of birth as 8 digits.", "voice": VOICE}
        await h.client.calls.actions.gather_using_speak(ccid, **pin)
        await h.client.calls.actions.gather_using_speak(ccid, **dob, maximum_digits=8)
        await h.fake.idle()
        ends = [e["data"]["payload"]["digits"] for e in h.receiver.of(ccid, "call.gather.ended")]
        assert ends == ["4321", "19870412"]

    run(test)


def test_commands_need_an_answered_known_call() -> None:
    """Before answer a gather gets 90034; an unknown call_control_id gets 90015."""

    async def test(h: Harness) -> None:
        ccid = await h.fake.place_call(TO)
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.gather_using_ai(ccid, parameters=PARAMETERS)
        assert unprocessable(exc)["code"] == "90034"
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.answer("v3:nope")
        assert unprocessable(exc)["code"] == "90015"
        assert h.fake.requests == []
        assert h.fake.rejected == []

    run(test)


def test_invalid_body_is_refused_and_recorded() -> None:
    """An unknown key gets Telnyx's 422 with a pointer, lands in `rejected`, and is not acted on."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.speak(
                ccid, payload="Hi", voice=VOICE, extra_body={"bogus": 1}
            )
        error = unprocessable(exc)
        assert error["code"] == "10015"
        assert error["title"] == "Bad Request"
        assert error["detail"] == "/bogus: unknown key"
        assert error["source"] == {"pointer": "/bogus"}
        (rejected,) = h.fake.rejected
        assert (rejected.call_control_id, rejected.action) == (ccid, "speak")
        assert rejected.problems == ["/bogus: unknown key"]
        await h.fake.idle()
        assert h.fake.commands(ccid, "speak") == []
        assert "call.speak.started" not in h.receiver.types(ccid)

    run(test)


def test_lenient_fake_records_bad_bodies_but_acts() -> None:
    """With strict=False a bad body is recorded in `rejected` and still acted on."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        await h.client.calls.actions.speak(ccid, payload="Hi", voice=VOICE, extra_body={"x": 1})
        await h.fake.idle()
        assert [r.problems for r in h.fake.rejected] == [["/x: unknown key"]]
        assert h.receiver.types(ccid)[-2:] == ["call.speak.started", "call.speak.ended"]

    run(test, strict=False)


def test_unknown_action_is_404() -> None:
    """An action the fake does not implement answers 404."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        with pytest.raises(telnyx.NotFoundError):
            await h.client.calls.actions.transfer(ccid, to="+13125550111")

    run(test)


def test_repeated_command_id_is_acknowledged_but_not_acted_on() -> None:
    """A second command with the same command_id gets the same 200 and no new webhooks."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call(ANSWERS)
        command_id = str(uuid.uuid4())
        first = await h.client.calls.actions.gather_using_ai(
            ccid, parameters=PARAMETERS, command_id=command_id
        )
        again = await h.client.calls.actions.gather_using_ai(
            ccid, parameters=PARAMETERS, command_id=command_id
        )
        await h.fake.idle()
        assert first.data is not None and again.data is not None
        assert again.data.conversation_id == first.data.conversation_id
        assert h.receiver.types(ccid).count("call.ai_gather.ended") == 1
        assert len(h.fake.commands(ccid, "gather_using_ai")) == 1
        assert [d.command_id for d in h.fake.duplicates] == [command_id]

    run(test)


def test_failed_delivery_is_redelivered_with_the_same_id() -> None:
    """A receiver's 500 gets the same event again, same data.id, attempt 2, signed afresh."""

    async def test(h: Harness) -> None:
        h.receiver.fail["call.answered"] = 1
        ccid = await h.answered_call()
        answered = h.receiver.of(ccid, "call.answered")
        assert [e["meta"]["attempt"] for e in answered] == [1, 2]
        assert answered[0]["data"] == answered[1]["data"]
        attempts = [(d.event_type, d.attempt, d.status_code) for d in h.fake.deliveries]
        assert ("call.answered", 1, 500) in attempts
        assert ("call.answered", 2, 204) in attempts
        assert h.fake.undelivered == []

    run(test)


def test_unreachable_receiver_is_given_up_after_three_redeliveries() -> None:
    """Four attempts in all, then the event is listed as undelivered."""

    async def test(h: Harness) -> None:
        h.fake.webhook_url = "http://127.0.0.1:9/nowhere"  # the discard port: refused
        ccid = await h.fake.place_call(TO)
        await h.fake.idle()
        assert [d.attempt for d in h.fake.deliveries] == [1, 2, 3, 4]
        assert all(d.status_code is None and d.error for d in h.fake.deliveries)
        (envelope,) = h.fake.undelivered
        assert envelope["data"]["payload"]["call_control_id"] == ccid
        assert envelope["meta"]["attempt"] == 4

    run(test)


# -- stopping and hanging up mid-way --------------------------------------------------------------


def test_gather_stop_ends_a_running_ai_gather() -> None:
    """gather_stop ends an AI gather at once with what it had, status invalid."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call(ANSWERS)
        await h.client.calls.actions.gather_using_ai(
            ccid, parameters=PARAMETERS, send_partial_results=True
        )
        await h.wait_for(ccid, "call.ai_gather.partial_results")
        await h.client.calls.actions.stop_gather(ccid)
        await h.fake.idle()
        types = h.receiver.types(ccid)
        assert types[-2:] == ["call.ai_gather.ended", "call.conversation.ended"]
        ended = h.receiver.payload(ccid, "call.ai_gather.ended")
        assert (ended["status"], ended["result"]) == ("invalid", {"name": "Maria Gonzalez"})
        assert h.receiver.types(ccid).count("call.ai_gather.partial_results") == 1

    run(test, pace=0.1)


def test_gather_stop_cancels_a_keypad_gather() -> None:
    """gather_stop ends a running keypad gather with status cancelled."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call({"keypad": ["123456"]})
        await h.client.calls.actions.gather(ccid, maximum_digits=6)
        await h.wait_for(ccid, "call.dtmf.received", 2)
        await h.client.calls.actions.stop_gather(ccid)
        await h.fake.idle()
        ended = h.receiver.payload(ccid, "call.gather.ended")
        assert (ended["status"], ended["digits"]) in {("cancelled", "1"), ("cancelled", "12")}
        assert h.receiver.types(ccid).count("call.dtmf.received") == 2

    run(test, pace=0.1)


def test_caller_hangs_up_during_the_gather() -> None:
    """`hangup_after` hangs up mid-gather: call.hangup, then a late ai_gather.ended."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call({"answers": ANSWERS, "hangup_after": 1})
        await h.client.calls.actions.gather_using_ai(
            ccid, parameters=PARAMETERS, send_partial_results=True
        )
        await h.fake.idle()
        assert h.receiver.types(ccid)[2:] == [
            "call.conversation.created",
            "call.ai_gather.partial_results",
            "call.hangup",
            "call.ai_gather.ended",
            "call.conversation.ended",
        ]
        hangup = h.receiver.payload(ccid, "call.hangup")
        assert hangup["hangup_source"] == "caller"
        ended = h.receiver.payload(ccid, "call.ai_gather.ended")
        assert (ended["status"], ended["result"]) == ("invalid", {"name": "Maria Gonzalez"})
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.hangup(ccid)
        assert unprocessable(exc)["code"] == "90018"

    run(test)


def test_caller_hangs_up_before_answer() -> None:
    """`hangup: before_answer` rings, then hangs up; answering gets 90018."""

    async def test(h: Harness) -> None:
        ccid = await h.fake.place_call(TO, script={"hangup": "before_answer"})
        await h.fake.idle()
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.answer(ccid)
        assert unprocessable(exc)["code"] == "90018"
        assert h.receiver.types(ccid) == ["call.initiated", "call.hangup"]
        assert h.receiver.payload(ccid, "call.hangup")["hangup_cause"] == "originator_cancel"

    run(test)


def test_hangup_call_and_client_state_update() -> None:
    """The caller's hang-up carries the client_state last set with a PUT client_state_update."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        state = base64.b64encode(b'{"step":"goodbye"}').decode()
        await h.client.calls.actions.update_client_state(ccid, client_state=state)
        await h.client.calls.actions.speak(ccid, payload="One moment.", voice=VOICE)
        await h.wait_for(ccid, "call.speak.started")
        await h.fake.hangup_call(ccid)
        await h.fake.idle()
        assert h.receiver.types(ccid)[-3:] == [
            "call.speak.started",
            "call.hangup",
            "call.speak.ended",
        ]
        hangup = h.receiver.payload(ccid, "call.hangup")
        assert (hangup["client_state"], hangup["hangup_source"]) == (state, "caller")
        assert h.receiver.payload(ccid, "call.speak.ended")["status"] == "call_hangup"
        assert h.fake.calls[ccid].alive is False

    run(test, pace=0.1)


# -- outbound -------------------------------------------------------------------------------------


def test_dial_rings_the_scripted_number() -> None:
    """dial returns the ids at once, then call.initiated (outgoing) and call.answered."""

    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550111", {"name": "Li Wei"})
        h.fake.script_for_number("+13125550112", {"hangup": "before_answer"})
        dialed = await h.client.calls.dial(
            connection_id="conn-1",
            from_="+13125550100",
            to="+13125550111",
            client_state=GATHER_STATE,
            command_id=str(uuid.uuid4()),
        )
        assert dialed.data is not None
        ccid = dialed.data.call_control_id
        assert ccid.startswith("v3:") and dialed.data.is_alive is False
        assert dialed.data.record_type == "call"
        await h.fake.idle()
        assert h.receiver.types(ccid) == ["call.initiated", "call.answered"]
        initiated = h.receiver.payload(ccid, "call.initiated")
        assert (initiated["direction"], initiated["state"]) == ("outgoing", "bridging")
        assert (initiated["from"], initiated["to"]) == ("+13125550100", "+13125550111")
        assert initiated["client_state"] == GATHER_STATE
        assert initiated["connection_id"] == "conn-1"
        one_field = {"type": "object", "properties": {"name": {"type": "string"}}}
        await h.client.calls.actions.gather_using_ai(
            ccid, parameters={**one_field, "required": ["name"]}
        )
        await h.fake.idle()
        assert h.receiver.payload(ccid, "call.ai_gather.ended")["result"] == {"name": "Li Wei"}

        missed = await h.client.calls.dial(
            connection_id="conn-1", from_="+13125550100", to="+13125550112"
        )
        assert missed.data is not None
        await h.fake.idle()
        gone = missed.data.call_control_id
        assert h.receiver.types(gone) == ["call.initiated", "call.hangup"]
        assert h.receiver.payload(gone, "call.hangup")["hangup_cause"] == "no_answer"
        assert h.fake.rejected == []

    run(test)


def test_assistant_hand_off_then_the_caller_leaves() -> None:
    """ai_assistant_start answers with a conversation_id; a second start gets 90061."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        started = await h.client.calls.actions.start_ai_assistant(
            ccid, assistant={"id": "assistant-1"}, greeting="Anything else?"
        )
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.start_ai_assistant(ccid, assistant={"id": "assistant-1"})
        assert unprocessable(exc)["code"] == "90061"
        await h.client.calls.actions.add_ai_assistant_messages(
            ccid, messages=[{"role": "user", "content": "hello"}]
        )
        await h.fake.idle()
        assert started.data is not None
        assert h.receiver.types(ccid)[2:] == [
            "call.conversation.created",
            "call.conversation.ended",
            "call.hangup",
        ]
        created = h.receiver.payload(ccid, "call.conversation.created")
        assert created["conversation_id"] == started.data.conversation_id

    run(test, pace=0.1)


# -- hosting ---------------------------------------------------------------------------------


def test_mounted_under_a_prefix() -> None:
    """Mounted at /_sandbox/telnyx, the SDK's base URL is .../_sandbox/telnyx/v2."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call()
        assert h.receiver.types(ccid) == ["call.initiated", "call.answered"]

    run(test, mount=True)


def test_place_call_from_another_event_loop() -> None:
    """A fake served on a thread's loop can be driven from the caller's own loop."""
    ports: dict[str, int] = {}
    receiver = Receiver()
    fake = FakeTelnyx(lambda: f"http://127.0.0.1:{ports['receiver']}/hook", pace=0.005)
    receiver.public_key = fake.public_key_b64
    receiver_app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    ready, stop = threading.Event(), threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with _serving(receiver_app) as rport, _serving(fake.asgi_app()) as fport:
                ports.update(receiver=rport, fake=fport)
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.01)

        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert ready.wait(10)

        async def drive() -> None:
            ccid = await fake.place_call(TO)
            await fake.idle()
            assert [e["data"]["event_type"] for e in receiver.envelopes] == ["call.initiated"]
            await fake.hangup_call(ccid)
            await fake.idle()

        asyncio.run(drive())
        assert receiver.types() == ["call.initiated", "call.hangup"]
    finally:
        stop.set()
        thread.join(10)


# -- signing, scripts, the caller's words (no HTTP) ------------------------------------------------


def test_sign_matches_the_sdk_verifier() -> None:
    """`sign` produces headers the SDK's verifier accepts, and a changed body fails."""
    key, public = generate_keypair()
    body = b'{"data":{"event_type":"call.answered"}}'
    headers = sign(body, key)
    verify_webhook_signature(body.decode(), headers, public)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(body.decode() + " ", headers, public)
    assert sign(body, key, timestamp=1700000000)["telnyx-timestamp"] == "1700000000"


def test_script_simple_and_rich_forms() -> None:
    """A plain object is field -> value; known top-level keys make it a rich script."""
    assert CallScript.parse({"name": "Ana"}).answers == {"name": "Ana"}
    rich = CallScript.parse({"answers": {"name": "Ana"}, "keypad": ["2", "1"], "hangup_after": 1})
    assert rich.answers == {"name": "Ana"} and rich.keypad == ["2", "1"]
    assert rich.hangs_up_during_gather
    assert CallScript.parse({"silent": ["email"]}).silent == ["email"]
    assert CallScript.parse(None) == CallScript()
    two = CallScript.parse({"answers": {"email": "good@x.io"}, "attempts": [{"email": "bad"}]})
    assert two.answers_for_attempt(1) == {"email": "bad"}
    assert two.answers_for_attempt(2) == {"email": "good@x.io"}


def test_script_errors_are_plain() -> None:
    """A misspelt rich key gets a did-you-mean; a bad value names its place."""
    with pytest.raises(ScriptError, match="did you mean 'attempts'"):
        CallScript.parse({"answers": {}, "atempts": []})
    with pytest.raises(ScriptError, match="/hangup"):
        CallScript.parse({"answers": {}, "hangup": "sometimes"})
    with pytest.raises(ScriptError, match="keypad"):
        CallScript.parse({"keypad": ["12x"]})


def test_questions_and_spoken_answers_are_natural() -> None:
    """Questions come from titles or descriptions; answers are spoken as people say them."""
    assert question_for("name", {"description": "Caller's full name"}) == (
        "What is your full name?"
    )
    assert question_for("dob", {"title": "Date of birth"}) == "What is your date of birth?"
    assert question_for("zip_code", {}) == "What is your zip code?"
    assert question_for("plan", {"enum": ["basic", "pro"]}) == (
        "What is your plan? You can say basic or pro."
    )
    assert question_for("x", {"description": "Which day suits you best?"}) == (
        "Which day suits you best?"
    )
    assert speak_value("1987-04-12", {"format": "date"}) == "April 12, 1987."
    assert speak_value(True) == "Yes."
    assert speak_value(["a", "b", "c"]) == "a, b and c."
    script = CallScript.parse({"answers": {"name": "Ana"}, "say": {"name": "It's Ana."}})
    plan = ScriptedCaller(script).plan_ai_gather({"properties": {"name": {}}, "required": ["name"]})
    assert (plan.turns[0].reply, plan.turns[0].value) == ("It's Ana.", "Ana")


# -- injected faults (faults.py) ------------------------------------------------------------------


def test_armed_status_fault_answers_once_and_does_not_apply() -> None:
    """`fake.faults.arm(429)`: the next command gets 429 and is not applied; the retry with
    the same command_id is applied once (it was never remembered)."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call(ANSWERS)
        h.fake.faults.arm(429)
        command_id = str(uuid.uuid4())
        with pytest.raises(telnyx.RateLimitError):
            await h.client.calls.actions.speak(
                ccid, payload="Hello", voice="female", command_id=command_id
            )
        assert h.fake.commands(ccid, "speak") == []
        await h.client.calls.actions.speak(
            ccid, payload="Hello", voice="female", command_id=command_id
        )
        await h.fake.idle()
        assert len(h.fake.commands(ccid, "speak")) == 1
        assert h.fake.duplicates == []
        assert [(s.fault.kind, s.action, s.command_id) for s in h.fake.faults.spent] == [
            (429, "speak", command_id)
        ]
        assert h.fake.faults.armed == []

    run(test)


def test_armed_timeout_applies_then_answers_late_and_the_retry_is_deduped() -> None:
    """`arm("timeout")`: the command takes effect, the response is held past the client's
    timeout; the retry with the same command_id is a deduped repeat."""

    async def test(h: Harness) -> None:
        ccid = await h.answered_call(ANSWERS)
        h.fake.faults.arm("timeout", action="speak", delay=2.0)
        command_id = str(uuid.uuid4())
        with pytest.raises(telnyx.APITimeoutError):
            await h.client.calls.actions.speak(
                ccid, payload="Hello", voice="female", command_id=command_id, timeout=0.2
            )
        await h.wait_for(ccid, "call.speak.ended")  # it was applied all the same
        await h.client.calls.actions.speak(
            ccid, payload="Hello", voice="female", command_id=command_id
        )
        await h.fake.idle()
        assert len(h.fake.commands(ccid, "speak")) == 1
        assert [d.command_id for d in h.fake.duplicates] == [command_id]

    run(test)


def test_arming_something_that_is_not_a_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="HTTP status"):
        FakeTelnyx("http://127.0.0.1:9/hook").faults.arm(200)
