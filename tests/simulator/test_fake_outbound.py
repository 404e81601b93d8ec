"""The fake Telnyx's outbound calls, driven by the real SDK's `calls.dial`: each kind of
callee (a person, a voicemail box, no answer, busy, rejected), machine detection's
webhooks by mode, one dial's own script, and dial faults."""

from __future__ import annotations

import uuid

import pytest
import telnyx

from collector.simulator.script import CallScript, ScriptError
from tests.simulator.test_fake_telnyx import GATHER_STATE, Harness, run, unprocessable

FROM = "+13125550100"
ONE_FIELD = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}


async def dial(h: Harness, to: str, command_id: str | None = None, **extra: object) -> str:
    dialed = await h.client.calls.dial(
        connection_id="conn-1",
        from_=FROM,
        to=to,
        client_state=GATHER_STATE,
        command_id=command_id or str(uuid.uuid4()),
        **extra,  # type: ignore[arg-type]
    )
    assert dialed.data is not None
    return dialed.data.call_control_id


def test_a_person_answers_and_detection_says_human() -> None:
    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550121", {"name": "Li Wei"})
        ccid = await dial(h, "+13125550121", answering_machine_detection="detect")
        await h.fake.idle()
        assert h.receiver.types(ccid) == [
            "call.initiated",
            "call.answered",
            "call.machine.detection.ended",
        ]
        detection = h.receiver.payload(ccid, "call.machine.detection.ended")
        assert detection["result"] == "human" and detection["client_state"] == GATHER_STATE
        await h.client.calls.actions.gather_using_ai(ccid, parameters=ONE_FIELD)
        await h.fake.idle()
        assert h.receiver.payload(ccid, "call.ai_gather.ended")["result"] == {"name": "Li Wei"}
        assert h.fake.rejected == []

    run(test)


def test_premium_detection_sends_the_premium_twins() -> None:
    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550122", {"callee": "voicemail"})
        person = await dial(h, "+13125550121", answering_machine_detection="premium")
        box = await dial(h, "+13125550122", answering_machine_detection="premium")
        await h.fake.idle()
        assert h.receiver.types(person)[-1] == "call.machine.premium.detection.ended"
        detection = h.receiver.payload(person, "call.machine.premium.detection.ended")
        assert detection["result"] == "human_residence"
        assert h.receiver.types(box)[-2:] == [
            "call.machine.premium.detection.ended",
            "call.machine.premium.greeting.ended",
        ]
        greeting = h.receiver.payload(box, "call.machine.premium.greeting.ended")
        assert greeting["result"] == "beep_detected"

    run(test)


def test_a_voicemail_box_takes_a_message_then_the_dialler_hangs_up() -> None:
    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550123", {"callee": "voicemail"})
        ccid = await dial(h, "+13125550123", answering_machine_detection="detect")
        await h.wait_for(ccid, "call.machine.greeting.ended")
        assert h.receiver.payload(ccid, "call.machine.detection.ended")["result"] == "machine"
        assert h.receiver.payload(ccid, "call.machine.greeting.ended")["result"] == (
            "beep_detected"
        )
        await h.client.calls.actions.speak(ccid, payload="Please call back.", voice="female")
        await h.wait_for(ccid, "call.speak.ended")
        await h.client.calls.actions.hangup(ccid)
        await h.fake.idle()
        assert h.receiver.types(ccid)[-3:] == [
            "call.speak.started",
            "call.speak.ended",
            "call.hangup",
        ]
        hangup = h.receiver.payload(ccid, "call.hangup")
        assert (hangup["hangup_cause"], hangup["hangup_source"]) == ("normal_clearing", "caller")

    run(test)


def test_a_voicemail_box_asked_questions_says_nothing() -> None:
    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550124", {"callee": "voicemail"})
        ccid = await dial(h, "+13125550124")  # no detection: the box is asked anyway
        await h.fake.idle()
        assert h.receiver.types(ccid) == ["call.initiated", "call.answered"]
        await h.client.calls.actions.gather_using_ai(ccid, parameters=ONE_FIELD)
        await h.fake.idle()
        ended = h.receiver.payload(ccid, "call.ai_gather.ended")
        assert (ended["status"], ended["result"]) == ("invalid", {})

    run(test)


@pytest.mark.parametrize(
    ("callee", "cause", "source", "sip"),
    [
        ("no_answer", "timeout", "unknown", "408"),
        ("busy", "user_busy", "callee", "486"),
        ("rejected", "call_rejected", "callee", "603"),
    ],
)
def test_a_callee_who_never_answers_hangs_up_with_its_cause(
    callee: str, cause: str, source: str, sip: str
) -> None:
    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550125", {"callee": callee})
        ccid = await dial(h, "+13125550125", answering_machine_detection="detect")
        await h.fake.idle()
        assert h.receiver.types(ccid) == ["call.initiated", "call.hangup"]
        hangup = h.receiver.payload(ccid, "call.hangup")
        assert (hangup["hangup_cause"], hangup["hangup_source"]) == (cause, source)
        assert hangup["sip_hangup_cause"] == sip and hangup["client_state"] == GATHER_STATE
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await h.client.calls.actions.speak(ccid, payload="Hello?", voice="female")
        assert unprocessable(exc)["code"] == "90018"

    run(test)


def test_one_dials_own_script_wins_over_the_numbers_and_is_spent_once() -> None:
    async def test(h: Harness) -> None:
        h.fake.script_for_number("+13125550126", {"callee": "busy"})
        own = str(uuid.uuid4())
        h.fake.script_for_dial(own, {"callee": "rejected"})
        first = await dial(h, "+13125550126", command_id=own)
        again = await dial(h, "+13125550126", command_id=own)  # a repeat: the same call
        other = await dial(h, "+13125550126")
        await h.fake.idle()
        assert again == first
        assert h.receiver.payload(first, "call.hangup")["hangup_cause"] == "call_rejected"
        assert h.receiver.payload(other, "call.hangup")["hangup_cause"] == "user_busy"
        assert [c.command_id for c in h.fake.duplicates] == [own]
        assert h.fake.dial_scripts == {}

    run(test)


def test_dial_faults_refuse_or_answer_late() -> None:
    async def test(h: Harness) -> None:
        h.fake.faults.arm(422, action="dial")
        with pytest.raises(telnyx.UnprocessableEntityError) as exc:
            await dial(h, "+13125550127")
        assert unprocessable(exc)["code"] == "10015"
        h.fake.faults.arm(503, action="dial")
        with pytest.raises(telnyx.InternalServerError):
            await dial(h, "+13125550127")
        assert h.fake.commands("", "dial") == [] and h.fake.calls == {}
        h.fake.faults.arm("timeout", action="dial", delay=0.3)
        late = await dial(h, "+13125550127")
        assert [c.action for c in h.fake.requests] == ["dial"]
        assert h.fake.calls[late].direction == "outgoing"

    run(test)


def test_the_callee_key_is_part_of_the_rich_script() -> None:
    assert CallScript.parse({"callee": "no_answer"}).callee == "no_answer"
    assert CallScript.parse({"answers": {"name": "Li"}}).callee == "person"
    with pytest.raises(ScriptError, match="callee"):
        CallScript.parse({"callee": "fax"})
