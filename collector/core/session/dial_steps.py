"""Steps of an outbound call before its form: the dial, the ringing, who answered (machine
detection), the voicemail, and the ends of a call that never reached the form (no answer,
busy, rejected, failed)."""

from __future__ import annotations

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.asks import start_first_gather
from collector.core.session.finish import (
    NEVER_ANSWERED,
    closing_speech,
    end_before_form,
    hang_up,
    outcome_before_form,
)
from collector.core.session.model import ClosingPhase, DeadlineKind, FieldState, Message, State
from collector.core.session.step import Turn

# the dial


def dial(t: Turn, ev: E.Dial) -> None:
    """A fresh outbound session dials, once: what it knows in advance (variables, prefilled
    fields, the resumed session's answers and conversation), then the dial command and
    the ring deadline. Without a form nothing is dialled: failed."""
    s = t.s
    if s.command_seq or s.call.direction != "outgoing":
        t.note("dial_ignored")
        return
    s.variables = dict(ev.variables)
    s.machine_detection = ev.answering_machine_detection
    s.call.from_, s.call.to = ev.from_, ev.to
    s.call.connection_id = ev.connection_id or s.call.connection_id
    if t.form is None:
        s.call_alive = False
        s.closing_phase = ClosingPhase.DONE
        end_before_form(t, "failed")
        return
    _carry(t, ev.resume)
    _prefill(t, ev)
    body = {
        "connection_id": ev.connection_id,
        "from": ev.from_,
        "to": ev.to,
        "answering_machine_detection": ev.answering_machine_detection,
        "timeout_secs": ev.ring_timeout_seconds,
    }
    t.command(C.DIAL, body, kind="dial")
    t.set_state(State.DIALING)
    t.set_deadline(DeadlineKind.RING, t.at + ev.ring_timeout_seconds + t.policy.ring_grace_seconds)
    t.change("fields", "transcript", "call")


def _carry(t: Turn, resume: E.Resume | None) -> None:
    """The resumed session's valid answers (still valid for this form) and conversation;
    this session's gathers are numbered after its."""
    if resume is None:
        return
    assert t.form is not None
    t.s.resumed_from = resume.session_id
    t.s.attempt = max(t.s.attempt, resume.attempt)
    t.s.transcript = [Message(role=r, content=c, attempt=a) for r, c, a in resume.transcript]
    for name, field in resume.fields.items():
        if not _fits(t, name, field.value):
            t.note("resumed_field_dropped", field=name)
            continue
        t.s.fields[name] = FieldState(
            value=field.value,
            has_value=True,
            valid=True,
            source=field.source,
            attempts=field.attempts,
            attempt=field.attempt,
            errors=list(field.errors),
            resumed_from=field.session_id or resume.session_id,
        )


def _prefill(t: Turn, ev: E.Dial) -> None:
    """Values given in advance, each valid for its field, are kept and never asked."""
    for name, value in ev.prefill.items():
        if not _fits(t, name, value):
            t.note("prefill_refused", field=name)
            continue
        t.s.fields[name] = FieldState(value=value, has_value=True, valid=True, source="prefill")


def _fits(t: Turn, name: str, value: object) -> bool:
    assert t.form is not None
    if name not in t.form.fields or E.is_too_large(value):
        return False
    return not t.form.validate_field(name, value)


# the call rings, is answered, and someone (or something) answers


def call_ids(t: Turn, ev: E.CallInitiated) -> None:
    """The outbound call's ids, from its call.initiated (whenever it comes)."""
    if t.s.call.direction != "outgoing":
        return
    call = t.s.call
    for attr in ("call_leg_id", "call_session_id", "connection_id"):
        value = getattr(ev, attr)
        if value and getattr(call, attr) != value:
            setattr(call, attr, value)
            t.change("call")


def answered(t: Turn, ev: E.CallAnswered) -> None:
    """Answered: wait a little to hear who answered (without detection: the form starts)."""
    t.set_state(State.ANSWERED)
    if not t.s.call_alive:
        return  # already hung up: the grace deadline decides
    if t.s.machine_detection in (None, "disabled"):
        _start_form(t)
        return
    t.set_deadline(DeadlineKind.DETECTION, t.at + t.policy.machine_detection_seconds)


def detected(t: Turn, ev: E.MachineDetectionEnded) -> None:
    """Who answered (detection ends only on an answered call, call.answered or not yet):
    a person, or not sure, starts the form; a machine gets the voicemail."""
    t.s.amd = ev.answered_by
    t.note("answered_by", result=ev.result, premium=ev.premium)
    t.change("amd")
    t.set_state(State.ANSWERED)
    if not t.s.call_alive:
        _end(t, outcome_before_form(t))
    elif t.s.amd in (E.MACHINE, E.FAX):
        _machine(t)
    else:
        _start_form(t)


def detection_over(t: Turn, ev: E.Timer) -> None:
    """Nothing said who answered in time: the form starts anyway."""
    t.note("no_machine_detection")
    _start_form(t)


def late_detection(t: Turn, ev: E.MachineDetectionEnded) -> None:
    """A detection after the form started (on the deadline): recorded, nothing else."""
    t.note("answered_by", result=ev.result, premium=ev.premium)
    if t.s.amd is None:
        t.s.amd = ev.answered_by
        t.change("amd")


def greeting_heard(t: Turn, ev: E.MachineGreetingEnded) -> None:
    """The machine's greeting ended before we knew it was one: remembered."""
    t.s.greeting_ended = True


def _start_form(t: Turn) -> None:
    t.set_deadline(None, None)
    if t.form is None:  # gone since the dial (a restart without it)
        end_before_form(t, "failed")
        hang_up(t)
        return
    start_first_gather(t)


# a machine answered


def _machine(t: Turn) -> None:
    """Voicemail: the form's message once the greeting is over (a fax gets none); without
    one, hang up at once."""
    t.set_deadline(None, None)
    end_before_form(t, "voicemail")
    message = t.form.options.voicemail if t.form is not None and t.s.amd == E.MACHINE else None
    if not message:
        hang_up(t)
    elif t.s.greeting_ended:
        closing_speech(t, message, kind="voicemail", whole=True)
    else:
        t.s.closing_phase = ClosingPhase.VOICEMAIL
        t.set_deadline(DeadlineKind.GREETING, t.at + t.policy.voicemail_greeting_seconds)


def leave_message(t: Turn, ev: E.MachineGreetingEnded | E.Timer) -> None:
    """The greeting is over (or should be by now): the voicemail message, then hang up."""
    t.s.greeting_ended = True
    message = t.form.options.voicemail if t.form is not None else None
    if message:
        closing_speech(t, message, kind="voicemail", whole=True)
    else:
        hang_up(t)


# the call ends before the form


def hung_up_before_form(t: Turn, ev: E.CallHangup) -> None:
    """Hung up before the form: the outcome when it is certain (never answered: the cause
    says why; or we know who answered); else wait hangup_grace_seconds for the webhooks
    that may still say (Telnyx reorders them)."""
    waiting = not t.s.call_alive and t.s.deadline_kind == DeadlineKind.GRACE
    t.s.call_alive = False
    t.s.hangup_cause = ev.cause
    t.change("call")
    never_answered = t.s.state == State.DIALING and (ev.cause or "") in NEVER_ANSWERED
    if never_answered or t.s.amd is not None:
        _end(t, outcome_before_form(t))
    elif not waiting:
        t.set_deadline(DeadlineKind.GRACE, t.at + t.policy.hangup_grace_seconds)


def grace_over_before_form(t: Turn, ev: E.Timer) -> None:
    """No more came after the hangup: what is known decides."""
    _end(t, outcome_before_form(t))


def ring_over(t: Turn, ev: E.Timer) -> None:
    """No answer within the ring timeout: no_answer, and a ringing call is hung up."""
    t.note("ring_timeout")
    end_before_form(t, "no_answer")
    if t.s.call_known and t.s.call_alive:
        hang_up(t)
    else:
        _over(t)


def dial_refused(t: Turn, ev: E.CommandFailed) -> None:
    """Telnyx refused the dial for good: failed, with its reason in the notes."""
    t.note("command_failed", action=ev.action, code=ev.code, detail=ev.detail[:300])
    if ev.action != C.DIAL:
        return
    _end(t, "failed")


def cancel_dial(t: Turn, ev: E.Cancel) -> None:
    """An operator cancels a call that rings: abandoned, and the ringing call hung up."""
    t.note("cancelled", reason=ev.reason)
    end_before_form(t, "abandoned")
    if t.s.call_known and t.s.call_alive:
        hang_up(t)
    else:
        _over(t)


def late_call(t: Turn, ev: E.CallInitiated | E.CallAnswered) -> None:
    """A webhook of the call after its session ended without ever hearing of it (the ring
    deadline, a cancel): nobody is there to talk to, so the call is hung up."""
    if isinstance(ev, E.CallInitiated):
        call_ids(t, ev)
    if not t.adopted:
        return
    t.note("late_call")
    t.s.call_alive = True
    t.s.closing_phase = None
    hang_up(t)


def _end(t: Turn, outcome: str) -> None:
    t.s.call_alive = False
    end_before_form(t, outcome)
    _over(t)


def _over(t: Turn) -> None:
    t.s.call_alive = False
    t.s.closing_phase = ClosingPhase.DONE
    t.set_deadline(None, None)
    t.change("call")
