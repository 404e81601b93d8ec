"""Steps that end a call or follow its end: hangups, timers, call lookups, refused
commands, an operator's cancel, the closing speech and the hand-off."""

from __future__ import annotations

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.asks import start_ai_gather
from collector.core.session.finish import (
    closing_speech,
    end_before_form,
    finalize,
    hang_up,
    outcome_before_form,
    stop_assistant,
)
from collector.core.session.model import BEFORE_FORM, ClosingPhase, DeadlineKind, GatherKind, State
from collector.core.session.step import RECONCILE_RETRY_SECONDS, Turn

# the caller hangs up


def wait_for_late_result(t: Turn, ev: E.CallHangup) -> None:
    """Hung up while the AI gather runs: its result may still come (Telnyx reorders), so
    wait hangup_grace_seconds for it in `closing`."""
    _hung_up(t, ev)
    if t.form is None:
        _fail_without_form(t)
        return
    t.set_state(State.CLOSING)
    t.set_deadline(DeadlineKind.GRACE, t.at + t.policy.hangup_grace_seconds)


def abandon_on_hangup(t: Turn, ev: E.CallHangup) -> None:
    """Hung up with no AI gather running: the session ends abandoned with what it has."""
    _hung_up(t, ev)
    if t.form is None:
        _fail_without_form(t)
        return
    finalize(t, "abandoned")
    t.s.closing_phase = ClosingPhase.DONE


def record_hangup(t: Turn, ev: E.CallHangup) -> None:
    """A hangup while already waiting for the late result: its cause is kept."""
    _hung_up(t, ev)


def call_over(t: Turn, ev: E.CallHangup) -> None:
    """The call ends after the session did."""
    _hung_up(t, ev)
    t.s.closing_phase = ClosingPhase.DONE


def _hung_up(t: Turn, ev: E.CallHangup) -> None:
    t.s.call_alive = False
    t.s.hangup_cause = ev.cause
    t.change("call")


def _fail_without_form(t: Turn) -> None:
    t.set_state(State.FAILED)
    t.s.closing_phase = ClosingPhase.DONE


# deadlines (decide() has already checked that the Timer is for the deadline the session
# has, and cleared it)


def grace_over(t: Turn, ev: E.Timer) -> None:
    """No late result within the grace window: abandoned with what is valid so far."""
    finalize(t, "abandoned")
    t.s.closing_phase = ClosingPhase.DONE


def speech_over(t: Turn, ev: E.Timer | E.SpeakEnded) -> None:
    """The closing speech has ended (or should have by now): hang up."""
    hang_up(t)


def hand_off_over(t: Turn, ev: E.Timer) -> None:
    """The hand-off's max_seconds are up: stop the assistant, say goodbye."""
    if t.s.call_alive:
        stop_assistant(t, "goodbye")


def reconcile(t: Turn, ev: E.Timer) -> None:
    """A silent session: ask the shell to look the call up (the answer is a CallStatus)."""
    t.command(C.RETRIEVE_STATUS)
    t.set_deadline(DeadlineKind.TIMEOUT, t.at + RECONCILE_RETRY_SECONDS)


# what the shell reports


def call_looked_up(t: Turn, ev: E.CallStatus) -> None:
    """retrieve_status answered: a call that is gone ends the session abandoned."""
    if not ev.alive:
        _call_gone(t)


def call_looked_up_after_end(t: Turn, ev: E.CallStatus) -> None:
    if not ev.alive:
        _call_gone_after_end(t)


def gather_refused(t: Turn, ev: E.CommandFailed) -> None:
    """Telnyx refused the running gather's command (it may refuse while another gather
    still runs): the first time, stop whatever runs and issue the gather once more."""
    g = t.s.gather
    first_refusal = (
        not ev.call_gone
        and ev.action == C.GATHER_USING_AI
        and g is not None
        and g.kind == GatherKind.AI
        and g.seq == ev.seq
        and g.refusals == 0
        and t.form is not None
    )
    if not first_refusal:
        command_refused(t, ev)
        return
    assert g is not None and t.form is not None
    _note_failure(t, ev)
    t.command(C.GATHER_STOP, kind="stop")
    g.refusals += 1
    names = list(g.fields)
    params = t.form.parameters if names == t.form.first_fields else t.form.sub_parameters(names)
    start_ai_gather(t, names, params, greeting=None)
    assert t.s.gather is not None
    t.s.gather.refusals = 1


def command_refused(t: Turn, ev: E.CommandFailed) -> None:
    """A command refused for good: the call is gone (abandoned), or the session fails."""
    _note_failure(t, ev)
    if ev.call_gone:
        _call_gone(t)
        return
    if t.form is None:
        t.set_state(State.FAILED)
        return
    status = "abandoned" if t.s.state in (State.INITIATED, *BEFORE_FORM) else "incomplete"
    finalize(t, status, state=State.FAILED)


def command_failed_after_end(t: Turn, ev: E.CommandFailed) -> None:
    """After the end: a gone call is over; a goodbye that cannot be spoken hangs up."""
    _note_failure(t, ev)
    if ev.call_gone:
        _call_gone_after_end(t)
    elif ev.action == C.SPEAK and t.s.closing_phase == ClosingPhase.GOODBYE:
        hang_up(t)


def _note_failure(t: Turn, ev: E.CommandFailed) -> None:
    t.note("command_failed", action=ev.action, code=ev.code, detail=ev.detail[:300])


def _call_gone(t: Turn) -> None:
    t.s.call_alive = False
    t.change("call")
    if t.s.state in BEFORE_FORM:  # an outbound call that never reached the form
        end_before_form(t, outcome_before_form(t))
        t.s.closing_phase = ClosingPhase.DONE
        return
    if t.form is None:
        t.set_state(State.FAILED)
        return
    finalize(t, "abandoned")
    t.s.closing_phase = ClosingPhase.DONE


def _call_gone_after_end(t: Turn) -> None:
    t.s.call_alive = False
    t.change("call")
    t.s.closing_phase = ClosingPhase.DONE
    t.set_deadline(None, None)


# the operator


def cancel(t: Turn, ev: E.Cancel) -> None:
    """Stop a running gather, end abandoned with what the session has, say the cancelled
    message and hang up."""
    t.note("cancelled", reason=ev.reason)
    if t.s.gather is not None and t.s.call_alive:
        t.command(C.GATHER_STOP, kind="stop")
    t.s.gather = None
    if t.form is None:
        t.set_state(State.FAILED)
        closing_speech(t, t.messages.get("cancelled", ""))
        return
    alive = t.s.call_alive
    t.s.call_alive = False  # finalize without its own goodbye: ours follows
    finalize(t, "abandoned")
    t.s.call_alive = alive
    if alive:
        closing_speech(t, t.messages.get("cancelled", ""))


def cancel_hand_off(t: Turn, ev: E.Cancel) -> None:
    """A cancel during the hand-off stops the assistant (the submission stands)."""
    if t.s.call_alive:
        t.note("cancelled", reason=ev.reason)
        stop_assistant(t, "cancelled")


def record_conversation(t: Turn, ev: E.ConversationEvent) -> None:
    """call.conversation.* (the hand-off's): kept on the session, never in the submission."""
    t.s.conversation.append({"type": ev.event_type, "at": t.at, **ev.summary})
    t.change("conversation")
