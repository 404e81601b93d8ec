"""How an outbound call ends before its form: unanswered, busy, rejected, failed, hung up
once answered, the ring deadline, an operator's cancel; each with one submission."""

from __future__ import annotations

from typing import Any

import pytest

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.model import ClosingPhase, State

from .outbound_kit import CCID, SID, Dialled, outbound_forms


@pytest.fixture(name="forms", scope="module")
def _forms(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return outbound_forms(tmp_path_factory.mktemp("outbound") / "forms")


def one_submission(call: Dialled) -> Any:
    (submission,) = call.submissions
    assert submission["session_id"] == SID and submission["call"]["direction"] == "outgoing"
    return submission


@pytest.mark.parametrize(
    ("cause", "outcome", "state"),
    [
        ("timeout", "no_answer", State.ABANDONED),
        ("no_answer", "no_answer", State.ABANDONED),
        ("user_busy", "busy", State.ABANDONED),
        ("call_rejected", "rejected", State.ABANDONED),
        ("not_found", "failed", State.FAILED),
    ],
)
def test_a_call_never_answered_ends_with_the_hangups_cause(
    forms: Any, cause: str, outcome: str, state: State
) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallInitiated, direction="outgoing")
    call.send(E.CallHangup, cause=cause, source="callee")
    assert call.actions() == [C.DIAL]
    s = call.session
    assert (s.state, s.outcome, s.status, s.hangup_cause) == (state, outcome, "abandoned", cause)
    assert (s.closing_phase, s.call_alive, s.deadline) == (ClosingPhase.DONE, False, None)
    submission = one_submission(call)
    assert (submission["status"], submission["outcome"], submission["amd"]) == (
        "abandoned",
        outcome,
        None,
    )
    assert submission["fields"]["name"] == {
        "source": None,
        "attempts": 0,
        "errors": ["was not collected"],
    }
    call.send(E.CallAnswered)  # nothing reopens it
    assert call.actions() == [C.DIAL] and len(call.submissions) == 1


def test_a_hangup_first_for_a_busy_number_needs_no_call_initiated(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallHangup, cause="user_busy")
    assert call.session.call.call_control_id == CCID
    assert one_submission(call)["outcome"] == "busy"


def test_the_ring_deadline_without_a_word_from_the_call_is_no_answer(forms: Any) -> None:
    """Nothing ever came (the dial may still be on its way): no_answer, nothing to hang up;
    if the call then turns up, it is hung up, since nobody waits for it."""
    call = Dialled(forms["warranty"])
    call.fire()
    assert call.actions() == [C.DIAL]
    assert (call.session.outcome, call.session.closing_phase) == ("no_answer", ClosingPhase.DONE)
    assert one_submission(call)["outcome"] == "no_answer"
    call.send(E.CallInitiated, direction="outgoing")
    assert call.actions() == [C.DIAL, C.HANGUP]
    assert call.session.call.call_control_id == CCID
    call.send(E.CallAnswered)
    assert call.actions() == [C.DIAL, C.HANGUP] and len(call.submissions) == 1


def test_the_ring_deadline_of_a_ringing_call_hangs_it_up(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallInitiated, direction="outgoing")
    call.fire()
    assert call.actions() == [C.DIAL, C.HANGUP]
    assert call.session.outcome == "no_answer"
    call.send(E.CallHangup, cause="originator_cancel")
    assert call.session.closing_phase == ClosingPhase.DONE and len(call.submissions) == 1


def test_a_refused_dial_is_failed_with_telnyxs_reason(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    refused = E.CommandFailed(
        id="~failed",
        call_control_id=call.session.call.call_control_id,
        at=1001.0,
        seq=1,
        action=C.DIAL,
        code="10015",
        detail="Invalid value for connection_id",
    )
    call.feed(refused)
    s = call.session
    assert (s.state, s.outcome, s.status, s.call_alive) == (
        State.FAILED,
        "failed",
        "abandoned",
        False,
    )
    assert s.notes[-1]["action"] == C.DIAL and s.notes[-1]["code"] == "10015"
    assert s.notes[-1]["detail"] == "Invalid value for connection_id"
    assert one_submission(call)["outcome"] == "failed"
    assert s.deadline is None and call.actions() == [C.DIAL]


def test_a_hangup_whose_cause_leaves_it_open_waits_for_what_may_still_come(
    forms: Any,
) -> None:
    """normal_clearing before call.answered arrived: maybe answered (webhooks reorder), so
    the grace deadline decides; a late detection of a machine makes it voicemail."""
    call = Dialled(forms["warranty"])
    call.send(E.CallHangup, cause="normal_clearing")
    assert call.session.state == State.DIALING and call.submissions == []
    call.send(E.CallAnswered)
    call.send(E.MachineDetectionEnded, result="machine")
    assert call.actions() == [C.DIAL]  # nothing can be spoken on a call that is gone
    assert one_submission(call)["outcome"] == "voicemail"


@pytest.mark.parametrize(
    ("before", "outcome"),
    [([], "no_answer"), ([E.CallAnswered], "abandoned")],
)
def test_the_grace_deadline_settles_an_open_hangup(
    forms: Any, before: list[type[E.Event]], outcome: str
) -> None:
    call = Dialled(forms["warranty"])
    for cls in before:
        call.send(cls)
    call.send(E.CallHangup, cause="normal_clearing")
    assert call.submissions == []
    call.fire()
    assert one_submission(call)["outcome"] == outcome
    assert call.actions() == [C.DIAL]


def test_hung_up_while_detection_was_pending_is_abandoned(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    call.send(E.CallHangup, cause="normal_clearing", source="callee")
    call.send(E.MachineDetectionEnded, result="human")
    assert one_submission(call)["outcome"] == "abandoned"
    assert call.session.state == State.ABANDONED and call.actions() == [C.DIAL]


def test_hung_up_during_the_form_ends_as_an_inbound_call_does(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    call.send(E.MachineDetectionEnded, result="human")
    call.send(E.CallHangup, cause="normal_clearing")
    assert call.session.state == State.CLOSING
    call.fire()
    submission = one_submission(call)
    assert (submission["status"], submission["outcome"], submission["amd"]) == (
        "abandoned",
        "abandoned",
        "human",
    )


def test_a_call_gone_while_ringing_is_no_answer(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallInitiated, direction="outgoing")
    call.feed(E.CallStatus(id="~status", call_control_id=CCID, at=1010.0, alive=False))
    assert one_submission(call)["outcome"] == "no_answer"


@pytest.mark.parametrize("known", [True, False])
def test_an_operator_cancels_a_ringing_call(forms: Any, known: bool) -> None:
    call = Dialled(forms["warranty"])
    if known:
        call.send(E.CallInitiated, direction="outgoing")
    ccid = call.session.call.call_control_id
    call.feed(E.Cancel(id="~cancel", call_control_id=ccid, at=1005.0))
    assert call.actions() == ([C.DIAL, C.HANGUP] if known else [C.DIAL])
    submission = one_submission(call)
    assert (submission["status"], submission["outcome"]) == ("abandoned", "abandoned")


def test_an_operator_cancels_while_detection_is_pending(forms: Any) -> None:
    call = Dialled(forms["warranty"])
    call.send(E.CallAnswered)
    call.feed(E.Cancel(id="~cancel", call_control_id=CCID, at=1005.0))
    assert call.actions() == [C.DIAL, C.SPEAK]  # the cancelled message, then the hangup
    assert one_submission(call)["outcome"] == "abandoned"
