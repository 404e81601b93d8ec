"""What an outbound call knows in advance: variables for what it says, prefilled fields
(never asked), and an earlier session it resumes (its answers kept, its conversation
passed on); the checks the shell makes before dialling; the stored session."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.model import FieldState, Session, State
from collector.core.session.outbound import (
    dial_problems,
    number_problem,
    resume_of,
    resume_problem,
)
from collector.core.telnyx_params import check_params

from .outbound_kit import CCID, GOOD, TO, Dialled, outbound_forms
from .test_model import OLD_SESSION_JSON


@pytest.fixture(name="forms", scope="module")
def _forms(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return outbound_forms(tmp_path_factory.mktemp("outbound") / "forms")


def answered_by_a_person(call: Dialled) -> None:
    call.send(E.CallAnswered)
    call.send(E.MachineDetectionEnded, result="human")


# -- prefill -------------------------------------------------------------------------------


def test_prefilled_fields_are_not_asked_and_say_so_in_the_submission(forms: Any) -> None:
    call = Dialled(forms["warranty"], prefill={"serial": "AB1234", "name": "Maria Gonzalez"})
    answered_by_a_person(call)
    gather = call.last(C.GATHER_USING_AI)
    assert list(gather["parameters"]["properties"]) == ["email", "rating"]
    assert gather["parameters"]["required"] == ["email"]
    assert check_params("gather_using_ai", gather) == []
    assert call.session.gather is not None and call.session.gather.fields == ["email", "rating"]
    call.gather_ends({"email": "maria@example.com", "serial": "ZZ9999"})  # not asked: ignored
    (submission,) = call.submissions
    assert submission["status"] == "completed"
    assert submission["data"] == {**GOOD, "serial": "AB1234"}
    assert submission["fields"]["serial"] == {
        "source": "prefill",
        "attempts": 0,
        "errors": [],
        "value": "AB1234",
    }
    assert submission["fields"]["email"]["source"] == "ai"


def test_a_prefilled_value_its_field_refuses_is_dropped_and_asked(forms: Any) -> None:
    call = Dialled(forms["warranty"], prefill={"serial": "bad", "shoe_size": 9})
    assert [n["kind"] for n in call.session.notes] == ["prefill_refused", "prefill_refused"]
    assert call.session.fields == {}
    answered_by_a_person(call)
    assert call.last(C.GATHER_USING_AI)["parameters"] == forms["warranty"].parameters


def test_a_call_prefilled_with_everything_required_asks_nothing(forms: Any) -> None:
    call = Dialled(forms["warranty"], prefill=GOOD)
    answered_by_a_person(call)
    assert call.actions() == [C.DIAL, C.SPEAK]
    (submission,) = call.submissions
    assert (submission["status"], submission["data"]) == ("completed", GOOD)


# -- variables -----------------------------------------------------------------------------


def test_variables_fill_what_the_call_says_and_a_missing_one_is_left_out(forms: Any) -> None:
    call = Dialled(forms["warranty"], variables={"item": "kettle"})
    answered_by_a_person(call)
    greeting = call.last(C.GATHER_USING_AI)["greeting"]
    assert greeting == "Hi , this is Acme calling about your kettle."
    call.gather_ends(GOOD)
    assert call.last(C.SPEAK)["payload"] == "Thanks , goodbye."
    assert call.session.variables == {"item": "kettle"}


def test_an_inbound_call_keeps_its_words_as_they_are(forms: Any) -> None:
    """A form without placeholders says exactly what it said before variables existed."""
    from collector.core.session.asks import ai_gather_body

    form = forms["plain"]
    assert ai_gather_body(form, form.parameters, variables={})["greeting"] == (
        "Hello, this is Acme."
    )
    assert ai_gather_body(forms["warranty"], form.parameters)["greeting"] == (
        "Hi {first_name}, this is Acme calling about your {item}."  # forms show: the template
    )


# -- the checks before dialling ------------------------------------------------------------


def test_dial_problems_name_each_reason_not_to_dial(forms: Any) -> None:
    form = forms["warranty"]
    assert dial_problems(form, TO, {"first_name": "Maria", "item": 3}, {"name": "Maria"}) == []
    assert dial_problems(form, "3125550188", {"first_name": "M", "x": [1]}, {"email": "a"}) == [
        "to: must be a phone number in E.164 form, like +13125550190",
        "variables: the form speaks {item} but the call gives it no value",
        "variables: x must be text or a number",
        "prefill /email: seems to be missing the @",
        "prefill /email: is not a valid email address",
    ]
    for bad in ("+0123", "+1 312 555 0188", "+1234567890123456", 13125550188, ""):
        assert number_problem(bad) is not None
    assert number_problem("+442071838750") is None


# -- resume --------------------------------------------------------------------------------


def half_filled(forms: Any) -> Session:
    """An earlier call: the name heard, the email wrong twice, then the caller hung up."""
    call = Dialled(forms["warranty"])
    answered_by_a_person(call)
    history = [
        {"role": "assistant", "content": "Hi Maria, this is Acme calling about your kettle."},
        {"role": "user", "content": "Maria Gonzalez, maria at"},
    ]
    call.gather_ends({"name": "Maria Gonzalez", "email": "maria"}, message_history=history)
    call.send(E.CallHangup, cause="normal_clearing")
    call.fire()  # the grace deadline
    assert call.session.status == "abandoned" and call.session.attempt == 2
    return call.session


def test_a_resumed_call_asks_only_what_is_missing_with_the_conversation_so_far(
    forms: Any,
) -> None:
    earlier = half_filled(forms)
    assert resume_problem(earlier, "warranty", TO) is None
    resume = resume_of(earlier)
    assert set(resume.fields) == {"name"}
    assert resume.fields["name"].attempt == 1 and resume.attempt == 2
    call = Dialled(forms["warranty"], sid="sess-again", resume=resume)
    assert call.session.resumed_from == earlier.id != call.session.id
    answered_by_a_person(call)
    gather = call.last(C.GATHER_USING_AI)
    assert list(gather["parameters"]["properties"]) == ["email", "serial", "rating"]
    assert gather["parameters"]["required"] == ["email", "serial"]
    assert gather["message_history"] == [
        {"role": m.role, "content": m.content} for m in earlier.transcript
    ]
    assert check_params("gather_using_ai", gather) == []
    assert call.session.attempt == 3  # numbered after the earlier call's two
    call.gather_ends({"email": "maria@example.com", "serial": "AB1234"})
    (submission,) = call.submissions
    assert (submission["status"], submission["data"]) == ("completed", GOOD)
    assert submission["resumed_from"] == earlier.id
    assert submission["fields"]["name"]["resumed_from"] == {"session_id": earlier.id, "attempt": 1}
    assert "resumed_from" not in submission["fields"]["email"]
    assert submission["attempts"] == 3
    assert [line["attempt"] for line in submission["transcript"]][:2] == [1, 1]


def test_a_resumed_value_the_form_no_longer_takes_is_asked_again(forms: Any) -> None:
    earlier = half_filled(forms)
    earlier.fields["name"] = FieldState(value="M", has_value=True, valid=True, attempts=1)
    call = Dialled(forms["warranty"], resume=resume_of(earlier))
    assert "name" not in call.session.fields
    assert call.session.notes[-1] == {
        "kind": "resumed_field_dropped",
        "at": 1000.0,
        "field": "name",
    }


def test_a_resume_of_a_resume_keeps_where_each_value_came_from(forms: Any) -> None:
    first = half_filled(forms)
    second = Dialled(forms["warranty"], sid="sess-2", resume=resume_of(first))
    second.send(E.CallHangup, cause="user_busy")
    again = resume_of(second.session)
    assert again.fields["name"].session_id == first.id
    third = Dialled(forms["warranty"], sid="sess-3", resume=again)
    assert third.session.fields["name"].resumed_from == first.id


def test_what_may_not_be_resumed_says_why(forms: Any) -> None:
    earlier = half_filled(forms)
    assert "not 'plain'" in (resume_problem(earlier, "plain", TO) or "")
    assert "another number" in (resume_problem(earlier, "warranty", "+13125550100") or "")
    done = Dialled(forms["warranty"], prefill=GOOD)
    answered_by_a_person(done)
    assert "completed" in (resume_problem(done.session, "warranty", TO) or "")
    live = Dialled(forms["warranty"])
    assert "in progress" in (resume_problem(live.session, "warranty", TO) or "")
    inbound = Session.model_validate_json(OLD_SESSION_JSON)  # a caller's number counts
    inbound.state = State.ABANDONED
    assert resume_problem(inbound, "contact", "+13125550143") is None


# -- the stored session --------------------------------------------------------------------


def test_an_old_session_without_the_outbound_fields_still_loads(forms: Any) -> None:
    raw = orjson.loads(OLD_SESSION_JSON)
    raw["fields"] = {"name": {"value": "Maria", "has_value": True, "valid": True, "attempts": 1}}
    old = Session.model_validate(raw)
    assert (old.variables, old.amd, old.machine_detection, old.resumed_from) == (
        {},
        None,
        None,
        None,
    )
    assert not old.greeting_ended and old.call_known and old.status is None
    assert (old.fields["name"].attempt, old.fields["name"].resumed_from) == (0, None)
    assert resume_of(old).fields["name"].attempt == old.attempt  # not known: the last one


def test_an_outbound_session_round_trips_through_its_stored_json(forms: Any) -> None:
    call = Dialled(
        forms["warranty"],
        sid="sess-json",
        prefill={"serial": "AB1234"},
        resume=resume_of(half_filled(forms)),
    )
    call.send(E.CallAnswered)
    call.send(E.MachineGreetingEnded, result="ended")
    stored = call.session.model_dump_json(by_alias=True)
    again = Session.model_validate_json(stored)
    assert again == call.session
    assert again.call.call_control_id == CCID and again.greeting_ended
    call.session = again
    call.send(E.MachineDetectionEnded, result="machine")
    assert call.actions()[-1] == C.SPEAK and call.session.outcome == "voicemail"
    assert call.submissions[0]["session_id"] == "sess-json"
