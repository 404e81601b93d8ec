"""An outbound call through decide(): the dial, who answered (machine detection in any
order), the voicemail, and every way such a call ends."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest
from telnyx.resources.calls.calls import AsyncCallsResource

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.client_state import decode
from collector.core.session.event_types import event_type_of
from collector.core.session.model import ClosingPhase, DeadlineKind, State
from collector.core.session.outbound import pending_call_id
from collector.core.telnyx_params import check_params

from .outbound_kit import CCID, FROM, GOOD, POLICY, SID, TO, Dialled, outbound_forms


@pytest.fixture(name="forms", scope="module")
def _forms(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return outbound_forms(tmp_path_factory.mktemp("outbound") / "forms")


# -- the dial -----------------------------------------------------------------------------


def test_the_dial_is_one_command_the_sdk_takes(forms: Any) -> None:
    """state dialing, one `dial` whose body the SDK's types and calls.dial accept, under a
    command_id derived from the session (Telnyx drops a repeated dial)."""
    call = Dialled(forms["warranty"], ring_timeout_seconds=25)
    s = call.session
    assert (s.state, s.call.direction, s.call.call_control_id) == (
        State.DIALING,
        "outgoing",
        pending_call_id(SID),
    )
    assert not s.call_known
    (dial,) = call.commands
    assert (dial.action, dial.seq) == (C.DIAL, 1)
    assert dial.body == {
        "connection_id": "2287104733592061441",
        "from": FROM,
        "to": TO,
        "answering_machine_detection": "detect",
        "timeout_secs": 25,
        "client_state": dial.body["client_state"],
    }
    assert decode(dial.body["client_state"]) == E.ClientState(session_id=SID, kind="dial")
    command_id = dial.command_id(SID)
    assert command_id == C.Command(action=C.DIAL, seq=1).command_id(SID)
    assert check_params("dial", {**dial.body, "command_id": command_id}) == []
    kwargs = {**C.dial_kwargs(dial.body), "command_id": command_id}
    assert set(kwargs) == {
        "connection_id",
        "from_",
        "to",
        "answering_machine_detection",
        "timeout_secs",
        "client_state",
        "command_id",
    }
    inspect.signature(AsyncCallsResource.dial).bind(None, **kwargs)  # calls.dial takes them
    assert (s.deadline_kind, s.deadline) == (DeadlineKind.RING, 1000 + 25 + 30)


def test_a_dial_without_a_form_fails_and_dials_nothing() -> None:
    call = Dialled(None)
    assert call.commands == [] and call.submissions == []
    assert (call.session.state, call.session.outcome) == (State.FAILED, "failed")
    assert call.session.deadline is None


def test_the_start_is_decided_once(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    d = call.feed(call.dial)
    assert d.commands == [] and call.session.state == State.DIALING


def test_the_first_webhook_brings_the_call_whatever_it_is(forms: Any) -> None:
    """call.answered before call.initiated: the session takes the call_control_id from the
    first, its ids from call.initiated whenever it comes; neither sends anything."""
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    s = call.session
    assert (s.call.call_control_id, s.call_known, s.state) == (CCID, True, State.ANSWERED)
    assert (s.deadline_kind, s.deadline) == (DeadlineKind.DETECTION, call.t + 5)
    call.send(E.CallInitiated, direction="outgoing", call_session_id="cs-1", call_leg_id="l-1")
    assert (call.session.call.call_session_id, call.session.call.call_leg_id) == ("cs-1", "l-1")
    assert call.actions() == [C.DIAL]


# -- who answered, in every order -----------------------------------------------------------


def _events(call: Dialled, *kinds: str, amd: str = "human") -> list[E.Event]:
    made = {
        "initiated": lambda: call.ev(E.CallInitiated, direction="outgoing", call_session_id="cs"),
        "answered": lambda: call.ev(E.CallAnswered),
        "detection": lambda: call.ev(E.MachineDetectionEnded, result=amd),
        "greeting": lambda: call.ev(E.MachineGreetingEnded, result="ended"),
    }
    return [made[k]() for k in kinds]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["initiated", "answered", "detection"]))
)
def test_a_person_starts_the_form_whatever_the_order(forms: Any, order: tuple[str, ...]) -> None:
    call = Dialled(forms["warranty"])
    for event in _events(call, *order):
        call.feed(event)
    assert call.actions() == [C.DIAL, C.GATHER_USING_AI]
    assert call.session.state == State.GATHERING and call.session.amd == E.HUMAN
    gather = call.last(C.GATHER_USING_AI)
    assert gather["parameters"] == forms["warranty"].parameters
    assert gather["greeting"] == "Hi Maria, this is Acme calling about your kettle."
    assert check_params("gather_using_ai", gather) == []
    call.gather_ends(GOOD)
    (submission,) = call.submissions
    assert (submission["status"], submission["outcome"], submission["amd"]) == (
        "completed",
        "completed",
        "human",
    )
    assert submission["call"] == {
        "call_control_id": CCID,
        "call_session_id": "cs",
        "from": FROM,
        "to": TO,
        "direction": "outgoing",
    }
    assert call.last(C.SPEAK)["payload"] == "Thanks Maria, goodbye."


@pytest.mark.parametrize("result", ["not_sure", "silence", "human_business"])
def test_not_sure_starts_the_form_too(forms: Any, result: str) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    call.send(E.MachineDetectionEnded, result=result, premium=result != "not_sure")
    assert call.actions() == [C.DIAL, C.GATHER_USING_AI]


def test_no_detection_in_time_starts_the_form_and_a_late_one_is_only_recorded(
    forms: Any,
) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    assert call.actions() == [C.DIAL]
    call.fire()
    assert call.actions() == [C.DIAL, C.GATHER_USING_AI]
    assert call.session.amd is None
    call.send(E.MachineDetectionEnded, result="machine")
    assert call.actions() == [C.DIAL, C.GATHER_USING_AI]  # the form goes on
    assert call.session.amd == E.MACHINE and call.session.state == State.GATHERING


def test_without_detection_the_form_starts_on_the_answer(forms: Any) -> None:
    call = Dialled(forms["warranty"], answering_machine_detection="disabled")
    assert call.commands[0].body["answering_machine_detection"] == "disabled"
    call.send(E.CallAnswered)
    assert call.actions() == [C.DIAL, C.GATHER_USING_AI]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["answered", "detection", "greeting"]))
)
def test_a_machine_gets_the_message_after_its_greeting_whatever_the_order(
    forms: Any, order: tuple[str, ...]
) -> None:
    """Detection before or after the answer, the greeting's end before or after the
    detection: the message is spoken once, after both, then the call is hung up."""
    call = Dialled(forms["warranty"])
    for event in _events(call, *order, amd="machine"):
        call.feed(event)
    assert call.actions() == [C.DIAL, C.SPEAK]
    speak = call.last(C.SPEAK)
    assert speak["payload"] == "Hi Maria, this is Acme about your kettle. Please call us back."
    assert check_params("speak", speak) == []
    s = call.session
    assert (s.state, s.outcome, s.status, s.amd) == (
        State.ABANDONED,
        "voicemail",
        "abandoned",
        "machine",
    )
    (submission,) = call.submissions
    assert (submission["status"], submission["outcome"], submission["amd"]) == (
        "abandoned",
        "voicemail",
        "machine",
    )
    assert submission["data"] == {} and submission["attempts"] == 0
    call.send(E.SpeakEnded, status="completed")
    assert call.actions() == [C.DIAL, C.SPEAK, C.HANGUP]
    call.send(E.CallHangup, cause="normal_clearing")
    assert call.session.closing_phase == ClosingPhase.DONE and len(call.submissions) == 1


def test_a_long_message_is_heard_to_its_end_before_the_hangup(forms: Any) -> None:
    """Without call.speak.ended, the hangup waits the message's whole estimated length."""
    call = Dialled(forms["warranty"])
    for event in _events(call, "answered", "detection", "greeting", amd="machine"):
        call.feed(event)
    assert call.session.deadline_kind == DeadlineKind.SPEECH
    assert call.session.deadline is not None and call.session.deadline > call.t + 5
    call.fire()
    assert call.actions() == [C.DIAL, C.SPEAK, C.HANGUP]


def test_no_greeting_end_in_time_leaves_the_message_anyway(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    call.send(E.MachineDetectionEnded, result="machine")
    s = call.session
    assert (s.closing_phase, s.deadline_kind) == (ClosingPhase.VOICEMAIL, DeadlineKind.GREETING)
    assert s.deadline == call.t + POLICY.voicemail_greeting_seconds
    call.fire()
    assert call.actions() == [C.DIAL, C.SPEAK]
    call.send(E.MachineGreetingEnded, result="beep_detected", premium=True)
    assert call.actions() == [C.DIAL, C.SPEAK]  # said once


def test_a_machine_without_a_message_is_hung_up_at_once(forms: Any) -> None:
    call = Dialled(forms["plain"])
    call.send(E.CallAnswered)
    call.send(E.MachineDetectionEnded, result="machine", premium=True)
    assert call.actions() == [C.DIAL, C.HANGUP]
    assert call.session.outcome == "voicemail" and len(call.submissions) == 1


def test_a_fax_gets_no_message(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.MachineGreetingEnded, result="ended")
    call.send(E.MachineDetectionEnded, result="fax_detected", premium=True)
    assert call.actions() == [C.DIAL, C.HANGUP]
    assert (call.session.outcome, call.session.amd) == ("voicemail", "fax")


def test_premium_events_are_named_as_telnyx_names_them() -> None:
    common: dict[str, Any] = {"id": "x", "call_control_id": CCID, "at": 1.0}
    assert event_type_of(E.MachineDetectionEnded(**common)) == "call.machine.detection.ended"
    assert event_type_of(E.MachineDetectionEnded(**common, premium=True)) == (
        "call.machine.premium.detection.ended"
    )
    assert event_type_of(E.MachineGreetingEnded(**common, premium=True)) == (
        "call.machine.premium.greeting.ended"
    )
    assert event_type_of(E.Dial(**common)) == "collector.dial"
