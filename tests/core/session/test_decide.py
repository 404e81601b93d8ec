"""decide() as tables of event sequences: every rule of the call flow, no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.core.forms import load_forms
from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.client_state import decode
from collector.core.session.decide import Decision, Policy, decide
from collector.core.session.model import CallInfo, Session, State

FORMS = Path(__file__).resolve().parents[2] / "fixtures" / "forms"
CCID = "v3:test-call"
POLICY = Policy(hangup_grace_seconds=5, session_timeout_seconds=1800)


@pytest.fixture(name="forms", scope="module")
def _forms() -> Any:
    return load_forms(FORMS)


def new_session(form: str | None = "contact") -> Session:
    return Session(
        id="sess-1",
        form=form,
        call=CallInfo(call_control_id=CCID, **{"from": "+13125550143"}, to="+13125550199"),
        started_at=1000.0,
        updated_at=1000.0,
    )


class Call:
    """Feeds events to decide() and keeps what came out, like the engine does."""

    def __init__(self, forms: Any, form: str | None = "contact") -> None:
        self.form = forms[form] if form else None
        self.session = new_session(form)
        self.commands: list[C.Command] = []
        self.submissions: list[dict[str, Any]] = []
        self.t = 1000.0
        self.n = 0

    def cs(self, attempt: int | None = None, kind: str = "ai") -> E.ClientState:
        a = self.session.attempt if attempt is None else attempt
        return E.ClientState(session_id=self.session.id, kind=kind, attempt=a)

    def feed(self, event: E.Event) -> Decision:
        d = decide(self.session, event, self.form, POLICY)
        self.session = d.session
        self.commands.extend(d.commands)
        if d.submission is not None:
            self.submissions.append(d.submission)
        return d

    def ev(self, cls: type[E.Event], eid: str | None = None, **kw: Any) -> E.Event:
        self.n += 1
        self.t += 1
        return cls(id=eid or f"evt-{self.n}", call_control_id=CCID, at=self.t, **kw)

    def start(self) -> None:
        self.feed(
            self.ev(E.CallInitiated, direction="incoming", from_="+13125550143", to="+13125550199")
        )
        self.feed(self.ev(E.CallAnswered))

    def ended(
        self, result: dict[str, Any] | None, attempt: int | None = None, **kw: Any
    ) -> Decision:
        return self.feed(
            self.ev(
                E.AiGatherEnded,
                status=kw.pop("status", "valid"),
                result=result,
                client_state=self.cs(attempt),
                **kw,
            )
        )

    def actions(self) -> list[str]:
        return [c.action for c in self.commands]


GOOD = {"name": "Maria Gonzalez", "email": "maria@example.com", "age": 36}


def test_inbound_call_is_answered_then_gathered_with_the_forms_parameters(forms: Any) -> None:
    """call.initiated answers; call.answered starts gather_using_ai with the form's schema."""
    call = Call(forms)
    call.start()
    assert call.actions() == [C.ANSWER, C.GATHER_USING_AI]
    gather = call.commands[1].body
    assert gather["parameters"] == forms["contact"].parameters
    assert gather["send_partial_results"] is True
    assert gather["send_message_history_updates"] is True
    assert gather["greeting"] == "Hi! I'll take your name, email address and age."
    state = decode(gather["client_state"])
    assert state is not None and state.session_id == "sess-1" and state.attempt == 1
    assert call.session.state == State.GATHERING


def test_command_ids_are_deterministic_per_session_and_sequence() -> None:
    """The same decision always yields the same command_id; a retry mints a new one."""
    cmd = C.Command(action=C.ANSWER, seq=1)
    assert cmd.command_id("s") == C.Command(action=C.HANGUP, seq=1).command_id("s")
    assert cmd.command_id("s") != cmd.command_id("t")
    assert cmd.command_id("s") != cmd.command_id("s", retry=1)


def test_outbound_call_is_not_answered_by_us(forms: Any) -> None:
    """An outgoing call.initiated needs no answer command; call.answered starts the gather."""
    call = Call(forms)
    call.feed(call.ev(E.CallInitiated, direction="outgoing"))
    assert call.commands == []
    call.feed(call.ev(E.CallAnswered))
    assert call.actions() == [C.GATHER_USING_AI]


def test_valid_result_completes_then_speaks_goodbye_then_hangs_up(forms: Any) -> None:
    """A valid result finalizes as completed, speaks the closing line and hangs up after it."""
    call = Call(forms)
    call.start()
    call.ended(GOOD)
    assert len(call.submissions) == 1
    sub = call.submissions[0]
    assert sub["status"] == "completed"
    assert sub["data"] == GOOD
    assert sub["errors"] == []
    assert sub["fields"]["email"] == {
        "value": "maria@example.com",
        "source": "ai",
        "attempts": 1,
        "errors": [],
    }
    assert sub["attempts"] == 1
    assert call.actions()[-1] == C.SPEAK
    assert call.session.state == State.COMPLETED
    call.feed(call.ev(E.SpeakEnded, status="completed"))
    assert call.actions()[-1] == C.HANGUP
    call.feed(call.ev(E.CallHangup, cause="normal_clearing"))
    assert call.session.deadline is None
    assert len(call.submissions) == 1


def test_closing_speech_without_speak_ended_hangs_up_on_the_timer(forms: Any) -> None:
    """When no call.speak.ended comes, the stored speech deadline hangs up (at most 8 s)."""
    call = Call(forms)
    call.start()
    call.ended(GOOD)
    s = call.session
    assert s.deadline_kind == "speech" and s.deadline is not None
    assert s.deadline - s.updated_at <= 8
    call.feed(call.ev(E.Timer, kind="speech", due=s.deadline))
    assert call.actions()[-1] == C.HANGUP


def test_duplicate_event_changes_nothing(forms: Any) -> None:
    """A repeated data.id is reported as a duplicate and yields no commands."""
    call = Call(forms)
    first = call.ev(E.CallInitiated, eid="dup-1")
    call.feed(first)
    d = call.feed(first)
    assert d.duplicate and d.commands == []
    assert call.actions() == [C.ANSWER]


def test_events_the_shell_makes_are_known_by_their_type_not_their_id(forms: Any) -> None:
    """A Synthetic event (timer, command outcome, lookup, cancel) is never recorded as seen
    nor called a duplicate, whatever its id; a webhook is, whatever its id looks like."""
    assert {cls.__name__ for cls in E.SYNTHETIC_EVENTS} == {
        "Timer",
        "CommandFailed",
        "CallStatus",
        "Cancel",
        "Dial",
    }
    assert all(issubclass(cls, E.Synthetic) for cls in E.SYNTHETIC_EVENTS)
    assert not any(issubclass(cls, E.Synthetic) for cls in E.WEBHOOK_EVENTS)
    call = Call(forms)
    call.start()
    timer = call.ev(E.Timer, eid="t-1", kind="timeout", due=call.session.deadline)
    call.feed(timer)
    assert "t-1" not in call.session.event_ids
    assert not call.feed(timer).duplicate  # judged by the deadline, not by the id
    webhook = call.ev(E.AiGatherHistory, eid="~h", message_history=[])
    call.feed(webhook)
    assert "~h" in call.session.event_ids and call.feed(webhook).duplicate


def test_partial_results_update_the_live_view_only_for_the_current_attempt(forms: Any) -> None:
    """Partials of the running gather fill `partial`; an earlier attempt's only the transcript."""
    call = Call(forms)
    call.start()
    d = call.feed(
        call.ev(
            E.AiGatherPartial,
            partial_results={"name": "Maria"},
            client_state=call.cs(),
            message_history=[
                {"role": "assistant", "content": "Your name?"},
                {"role": "user", "content": "Maria"},
            ],
        )
    )
    assert call.session.partial == {"name": "Maria"}
    assert {"partial", "transcript"} <= d.changes
    d = call.feed(
        call.ev(E.AiGatherPartial, partial_results={"name": "Zed"}, client_state=call.cs(attempt=7))
    )
    assert call.session.partial == {"name": "Maria"}


def test_telnyx_status_valid_is_not_trusted(forms: Any) -> None:
    """A bad email with status=valid is still re-asked: we validate ourselves."""
    call = Call(forms)
    call.start()
    call.ended({**GOOD, "email": "maria at example"}, status="valid")
    assert call.submissions == []
    assert call.actions()[-1] == C.GATHER_USING_AI


def test_telnyx_status_invalid_with_a_valid_result_completes(forms: Any) -> None:
    """status=invalid with a result that passes our validation completes."""
    call = Call(forms)
    call.start()
    call.ended(GOOD, status="invalid")
    assert call.submissions[0]["status"] == "completed"


def test_reask_asks_only_the_wrong_field_with_the_conversation(forms: Any) -> None:
    """An invalid email gets one new gather for the email only, with message_history."""
    call = Call(forms)
    call.start()
    history = [
        {"role": "assistant", "content": "Hi! What's your name?"},
        {"role": "user", "content": "Maria"},
    ]
    call.ended({**GOOD, "email": "maria.example.com"}, message_history=history)
    reask = call.commands[-1]
    assert reask.action == C.GATHER_USING_AI
    params = reask.body["parameters"]
    assert list(params["properties"]) == ["email"]
    assert params["required"] == ["email"]
    assert params["properties"]["email"]["format"] == "email"
    assert reask.body["message_history"] == history
    assert "@" in reask.body["greeting"]
    assert "Could you spell your email address" in reask.body["greeting"]
    assert "maria.example.com" not in reask.body["greeting"]
    assert decode(reask.body["client_state"]).attempt == 2
    # the corrected answer completes, the other fields kept
    call.ended(
        {"email": "maria@example.com"},
        attempt=2,
        message_history=history + [{"role": "user", "content": "maria at example dot com"}],
    )
    sub = call.submissions[0]
    assert sub["status"] == "completed"
    assert sub["data"] == GOOD
    assert sub["attempts"] == 2
    assert sub["fields"]["email"]["attempts"] == 2
    assert sub["fields"]["email"]["errors"][0] == "seems to be missing the @"
    assert sub["fields"]["name"]["attempts"] == 1
    # the transcript holds both attempts in order, without repeating what we sent
    assert [m["content"] for m in sub["transcript"]] == [
        "Hi! What's your name?",
        "Maria",
        "maria at example dot com",
    ]


def test_field_still_wrong_after_its_attempts_and_no_keypad_is_incomplete(forms: Any) -> None:
    """An email wrong twice ends incomplete, naming /email in errors, data without it."""
    call = Call(forms)
    call.start()
    call.ended({**GOOD, "email": "nope"})
    call.ended({"email": "still nope"}, attempt=2)
    sub = call.submissions[0]
    assert sub["status"] == "incomplete"
    assert [e["pointer"] for e in sub["errors"]] == ["/email"]
    assert "email" not in sub["data"] and sub["data"]["name"] == "Maria Gonzalez"
    assert "still nope" not in str(sub["errors"])


def test_digits_field_falls_back_to_the_keypad(forms: Any) -> None:
    """age (max_attempts 1, dtmf) goes to gather_using_speak with its bounds; digits complete."""
    call = Call(forms)
    call.start()
    call.ended({**GOOD, "age": 400})
    keypad = call.commands[-1]
    assert keypad.action == C.GATHER_USING_SPEAK
    assert keypad.body["maximum_digits"] == 3
    assert "Please enter your age" in keypad.body["payload"]
    assert keypad.body["voice"]
    assert call.session.state == State.KEYPAD
    call.feed(
        call.ev(
            E.KeypadGatherEnded, digits="42", status="valid", client_state=call.cs(kind="keypad")
        )
    )
    sub = call.submissions[0]
    assert sub["status"] == "completed"
    assert sub["data"]["age"] == 42
    assert sub["fields"]["age"]["source"] == "keypad"


def test_keypad_timeout_leaves_the_field_invalid(forms: Any) -> None:
    """No digits: the field stays invalid and the submission is incomplete."""
    call = Call(forms)
    call.start()
    call.ended({**GOOD, "age": 400})
    call.feed(call.ev(E.KeypadGatherEnded, digits="", status="timeout"))
    assert call.submissions[0]["status"] == "incomplete"
    assert call.submissions[0]["errors"][0]["pointer"] == "/age"


def test_hangup_before_ai_gather_ended_still_yields_the_full_result(forms: Any) -> None:
    """Telnyx reorders: a hangup first waits the grace window for the result."""
    call = Call(forms)
    call.start()
    call.feed(call.ev(E.CallHangup, cause="normal_clearing"))
    assert call.session.state == State.CLOSING
    assert call.session.deadline_kind == "grace"
    assert call.submissions == []
    call.ended(GOOD)
    assert call.submissions[0]["status"] == "completed"
    assert call.submissions[0]["data"] == GOOD
    assert C.SPEAK not in call.actions() and C.HANGUP not in call.actions()


def test_hangup_mid_gather_without_result_is_abandoned_with_valid_partials(forms: Any) -> None:
    """After the grace window, the session finalizes abandoned with what validated."""
    call = Call(forms)
    call.start()
    call.feed(
        call.ev(
            E.AiGatherPartial,
            partial_results={"name": "Maria Gonzalez", "email": "bad"},
            client_state=call.cs(),
        )
    )
    call.feed(call.ev(E.CallHangup))
    due = call.session.deadline
    call.feed(call.ev(E.Timer, kind="grace", due=due))
    sub = call.submissions[0]
    assert sub["status"] == "abandoned"
    assert sub["data"] == {"name": "Maria Gonzalez"}
    assert {e["pointer"] for e in sub["errors"]} == {"/email", "/age"}


def test_stale_timer_is_ignored(forms: Any) -> None:
    """A timer for a deadline the session no longer has does nothing."""
    call = Call(forms)
    call.start()
    call.feed(call.ev(E.CallHangup))
    call.feed(call.ev(E.Timer, kind="grace", due=1.0))
    assert call.submissions == []


def test_finished_session_is_never_reopened(forms: Any) -> None:
    """Late partials and a second ended after finalize change no value."""
    call = Call(forms)
    call.start()
    call.ended(GOOD)
    before = call.submissions[0]
    call.feed(call.ev(E.AiGatherPartial, partial_results={"name": "Other"}, client_state=call.cs()))
    call.ended({**GOOD, "name": "Other"})
    assert len(call.submissions) == 1
    assert call.session.fields["name"].value == "Maria Gonzalez"
    assert before["data"]["name"] == "Maria Gonzalez"


def test_hangup_before_answer_is_abandoned(forms: Any) -> None:
    """A caller who hangs up before the gather starts gives an abandoned submission."""
    call = Call(forms)
    call.feed(call.ev(E.CallInitiated))
    call.feed(call.ev(E.CallHangup, cause="originator_cancel"))
    assert call.submissions[0]["status"] == "abandoned"
    assert call.submissions[0]["data"] == {}


def test_call_without_a_form_gets_a_polite_message_and_a_hangup(forms: Any) -> None:
    """No form: answer, speak the no-form message, hang up; no submission."""
    call = Call(forms, form=None)
    d = decide(
        call.session, call.ev(E.CallInitiated), None, POLICY, {"no_form": "Sorry, not set up."}
    )
    call.session = d.session
    assert [c.action for c in d.commands] == [C.ANSWER]
    d = decide(
        call.session, call.ev(E.CallAnswered), None, POLICY, {"no_form": "Sorry, not set up."}
    )
    assert [c.action for c in d.commands] == [C.SPEAK]
    assert d.commands[0].body["payload"] == "Sorry, not set up."
    assert d.session.state == State.FAILED and d.submission is None
    d2 = decide(d.session, call.ev(E.SpeakEnded), None, POLICY, {})
    assert [c.action for c in d2.commands] == [C.HANGUP]


def test_session_timeout_reconciles_and_finalizes_when_the_call_is_gone(forms: Any) -> None:
    """The timeout deadline asks for the call's status; a dead call finalizes abandoned."""
    call = Call(forms)
    call.start()
    assert call.session.deadline_kind == "timeout"
    call.feed(call.ev(E.Timer, kind="timeout", due=call.session.deadline))
    assert call.actions()[-1] == C.RETRIEVE_STATUS
    call.feed(call.ev(E.CallStatus, eid="~status", alive=False))
    assert call.submissions[0]["status"] == "abandoned"


def test_command_refused_because_the_call_is_gone_abandons(forms: Any) -> None:
    """90018 on the gather means the call is gone: abandoned, no hangup sent."""
    call = Call(forms)
    call.feed(call.ev(E.CallInitiated))
    call.feed(
        call.ev(E.CommandFailed, eid="~f1", seq=1, action=C.ANSWER, code="90018", call_gone=True)
    )
    assert call.submissions[0]["status"] == "abandoned"
    assert C.HANGUP not in call.actions()


def test_gather_refused_while_another_runs_is_stopped_and_reissued_once(forms: Any) -> None:
    """A 422 on gather_using_ai: gather_stop, then the gather again with a new command."""
    call = Call(forms)
    call.start()
    seq = call.commands[-1].seq
    call.feed(
        call.ev(
            E.CommandFailed,
            eid="~f2",
            seq=seq,
            action=C.GATHER_USING_AI,
            code="90046",
            detail="busy",
        )
    )
    assert call.actions()[-2:] == [C.GATHER_STOP, C.GATHER_USING_AI]
    assert call.commands[-1].body["parameters"] == forms["contact"].parameters
    seq2 = call.commands[-1].seq
    call.feed(call.ev(E.CommandFailed, eid="~f3", seq=seq2, action=C.GATHER_USING_AI, code="90046"))
    assert call.session.state == State.FAILED
    assert call.submissions[0]["status"] == "incomplete"


def test_confirmation_reads_back_masked_and_completes_on_1(forms: Any) -> None:
    """confirm: read-back with the sensitive PIN masked; 1 confirms every field."""
    call = Call(forms, form="secret")
    call.start()
    call.ended({"account": "123456", "pin": "4321"})
    confirm = call.commands[-1]
    assert confirm.action == C.GATHER_USING_SPEAK
    assert confirm.body["valid_digits"] == "12"
    assert "4321" not in confirm.body["payload"]
    assert "1 2 3 4 5 6" in confirm.body["payload"]
    assert call.session.state == State.CONFIRMING
    call.feed(
        call.ev(
            E.KeypadGatherEnded, digits="1", status="valid", client_state=call.cs(kind="confirm")
        )
    )
    sub = call.submissions[0]
    assert sub["status"] == "completed"
    assert {f["source"] for f in sub["fields"].values()} == {"confirmed"}


def test_cancel_stops_the_gather_says_goodbye_and_abandons(forms: Any) -> None:
    """An operator cancel: gather_stop, the cancelled message, hangup after it; abandoned."""
    call = Call(forms)
    call.start()
    call.feed(call.ev(E.Cancel, eid="~cancel"))
    assert call.actions()[-2:] == [C.GATHER_STOP, C.SPEAK]
    assert call.submissions[0]["status"] == "abandoned"
    call.ended(GOOD)  # the stopped gather's end arrives after: one outcome only
    assert len(call.submissions) == 1


def test_completed_form_hands_off_to_the_assistant_then_stops_it_after_max_seconds(
    forms: Any,
) -> None:
    """after: ai_assistant_start with non-sensitive values, add_messages; max_seconds stops it."""
    call = Call(forms, form="handoff")
    call.start()
    call.ended({"company": "Acme Logistics", "seats": 25, "budget": "20k"})
    assert call.submissions[0]["status"] == "completed"
    start, add = call.commands[-2:]
    assert (start.action, add.action) == (C.AI_ASSISTANT_START, C.AI_ASSISTANT_ADD_MESSAGES)
    assert start.body["assistant"]["id"] == "assistant-9c1f2e"
    assert start.body["assistant"]["dynamic_variables"] == {
        "campaign": "spring",
        "company": "Acme Logistics",
        "seats": 25,
    }
    assert "max_seconds" not in start.body
    assert "20k" not in str(add.body)
    assert call.session.deadline_kind == "assistant"
    assert call.session.deadline == call.session.updated_at + 120
    call.feed(
        call.ev(
            E.ConversationEvent, event_type="call.conversation.ended", summary={"duration_sec": 30}
        )
    )
    assert call.session.conversation[-1]["type"] == "call.conversation.ended"
    call.feed(call.ev(E.Timer, kind="assistant", due=call.session.deadline))
    assert call.actions()[-2:] == [C.AI_ASSISTANT_STOP, C.SPEAK]
    call.feed(call.ev(E.SpeakEnded))
    assert call.actions()[-1] == C.HANGUP
    assert len(call.submissions) == 1


def test_cancel_during_the_hand_off_stops_the_assistant(forms: Any) -> None:
    """An operator cancel while the assistant talks: ai_assistant_stop, goodbye, hangup."""
    call = Call(forms, form="handoff")
    call.start()
    call.ended({"company": "Acme Logistics", "seats": 25, "budget": "20k"})
    call.feed(call.ev(E.Cancel, eid="~c"))
    assert call.actions()[-2:] == [C.AI_ASSISTANT_STOP, C.SPEAK]
    assert call.submissions[0]["status"] == "completed"


def test_caller_hanging_up_during_the_hand_off_ends_it_quietly(forms: Any) -> None:
    """A hangup during the hand-off clears the deadline and sends nothing more."""
    call = Call(forms, form="handoff")
    call.start()
    call.ended({"company": "Acme Logistics", "seats": 25, "budget": "20k"})
    n = len(call.commands)
    call.feed(call.ev(E.CallHangup))
    assert len(call.commands) == n and call.session.deadline is None


def test_choose_field_asks_which_field_then_reasks_only_that_one(forms: Any) -> None:
    """confirm.choose_field: 2, then a plain gather picks the field; only it is asked again."""
    call = Call(forms, form="choose")
    call.start()
    call.ended({"street": "1 Main St", "city": "Chicgo"})
    call.feed(
        call.ev(
            E.KeypadGatherEnded, digits="2", status="valid", client_state=call.cs(kind="confirm")
        )
    )
    speak, gather = call.commands[-2:]
    assert (speak.action, gather.action) == (C.SPEAK, C.GATHER)
    assert "To change the city, press 2." in speak.body["payload"]
    assert gather.body["valid_digits"] == "12" and gather.body["maximum_digits"] == 1
    call.feed(
        call.ev(
            E.KeypadGatherEnded, digits="2", status="valid", client_state=call.cs(kind="choose")
        )
    )
    reask = call.commands[-1]
    assert reask.action == C.GATHER_USING_AI
    assert list(reask.body["parameters"]["properties"]) == ["city"]
    call.ended({"city": "Chicago"})
    # corrections are used up (max 1): the next read-back's 2 or 1 finishes
    call.feed(
        call.ev(
            E.KeypadGatherEnded, digits="1", status="valid", client_state=call.cs(kind="confirm")
        )
    )
    sub = call.submissions[0]
    assert sub["status"] == "completed"
    assert sub["data"] == {"street": "1 Main St", "city": "Chicago"}
    assert sub["fields"]["city"]["source"] == "confirmed"
