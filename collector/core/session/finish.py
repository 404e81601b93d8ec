"""Ending a session: the one finalize, then the closing speech and hangup, or the hand-off."""

from __future__ import annotations

import copy
import json

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.answers import invalid_fields, take_value, valid_data
from collector.core.session.model import ClosingPhase, DeadlineKind, GatherKind, State
from collector.core.session.step import Turn
from collector.core.session.submission import build_submission
from collector.core.session.wording import label, speech_seconds


def finalize(
    t: Turn,
    status: str,
    state: State | None = None,
    outcome: str | None = None,
    goodbye: bool = True,
) -> None:
    """Give the session its outcome (`status` unless said) and build the submission, once;
    then say goodbye (or hand off to the assistant) if the call is still there."""
    if t.s.terminal:
        return
    assert t.form is not None
    g = t.s.gather
    if g is not None and g.kind == GatherKind.AI and t.s.partial:
        # the gather never ended: keep what the partial results offered
        for name in g.fields:
            if name in t.s.partial:
                take_value(t, name, t.s.partial, source="ai")
        t.s.partial = {}
    t.s.gather = None
    if status == "completed" and invalid_fields(t):
        status = "incomplete"  # the whole form is the verdict, root rules included
    if status == "completed" and t.form.validate(valid_data(t)):
        status = "incomplete"
    t.s.outcome = outcome or status
    t.s.ended_at = t.at
    t.set_state(state or State(status))
    if t.s.deadline_kind == DeadlineKind.GRACE:
        t.set_deadline(None, None)
    submission = build_submission(t.s, t.form, status, t.at)
    t.s.submission_id = submission["submission_id"]
    t.s.errors = [{"pointer": e["pointer"], "message": e["message"]} for e in submission["errors"]]
    t.d.submission = submission
    t.change("finalized")
    if t.s.call_alive and goodbye:
        if status == "completed" and t.form.options.after is not None:
            start_assistant(t)
            return
        key = "goodbye" if status == "completed" else "incomplete_goodbye"
        closing_speech(t, t.messages.get(key) or t.messages.get("goodbye", ""))


# why an outbound call that was never answered ended, by its hangup_cause
NEVER_ANSWERED = {
    "timeout": "no_answer",
    "no_answer": "no_answer",
    "originator_cancel": "no_answer",
    "user_busy": "busy",
    "call_rejected": "rejected",
    "not_found": "failed",
}


def outcome_before_form(t: Turn) -> str:
    """The outcome of an outbound call that ends before its form: a machine's is voicemail,
    a person's abandoned; an unanswered one's comes from the hangup cause (no_answer
    unless it says otherwise)."""
    if t.s.amd in (E.MACHINE, E.FAX):
        return "voicemail"
    if t.s.amd is not None or t.s.state == State.ANSWERED:
        return "abandoned"
    return NEVER_ANSWERED.get(t.s.hangup_cause or "", "no_answer")


def end_before_form(t: Turn, outcome: str) -> None:
    """An outbound call ends before its form: status abandoned, with its outcome (failed:
    state failed), and a submission all the same; no goodbye (nobody heard a form)."""
    state = State.FAILED if outcome == "failed" else State.ABANDONED
    if t.form is None:
        t.set_state(state)
        t.s.outcome = outcome
        t.s.ended_at = t.at
        return
    finalize(t, "abandoned", state=state, outcome=outcome, goodbye=False)


def start_assistant(t: Turn) -> None:
    """Hand the caller to a stored AI assistant, primed with what was collected."""
    assert t.form is not None and t.form.options.after is not None
    after = t.form.options.after
    body = copy.deepcopy(after.body)
    collected = {
        name: fs.value
        for name, fs in t.s.fields.items()
        if fs.valid and not t.form.fields[name].options.sensitive
    }
    assistant = body.setdefault("assistant", {})
    variables = dict(assistant.get("dynamic_variables") or {})
    for name, value in collected.items():
        ok = isinstance(value, str | int | float | bool)
        variables[name] = value if ok else json.dumps(value, ensure_ascii=False)
    assistant["dynamic_variables"] = variables
    t.command(C.AI_ASSISTANT_START, body, kind="assistant")
    summary = "; ".join(f"{label(t.form, n)}: {v}" for n, v in collected.items())
    note = f"The caller has just completed the form {t.form.title!r}. Collected: {summary}."
    t.command(
        C.AI_ASSISTANT_ADD_MESSAGES,
        {"messages": [{"role": "system", "content": note[:3000]}]},
        kind="assistant",
    )
    t.s.closing_phase = ClosingPhase.ASSISTANT
    if after.max_seconds:
        t.set_deadline(DeadlineKind.ASSISTANT, t.at + after.max_seconds)
    t.change("assistant")


def stop_assistant(t: Turn, message_key: str) -> None:
    t.command(C.AI_ASSISTANT_STOP, kind="assistant_stop")
    closing_speech(t, t.messages.get(message_key) or t.messages.get("goodbye", ""))


def closing_speech(t: Turn, text: str, kind: str = "goodbye", whole: bool = False) -> None:
    """Speak the last words (placeholders filled), then hang up (on call.speak.ended or
    the speech deadline: its estimated length, at most closing_speech_max_seconds unless
    the `whole` text must be heard, as a voicemail message)."""
    if not t.s.call_alive:
        return
    text = t.spoken(text)
    if not text:
        hang_up(t)
        return
    t.command(C.SPEAK, {"payload": text, **t.voice()}, kind=kind)
    t.s.closing_phase = ClosingPhase.GOODBYE
    delay = speech_seconds(text)
    if not whole:
        delay = min(t.policy.closing_speech_max_seconds, delay)
    t.set_deadline(DeadlineKind.SPEECH, t.at + delay)


def hang_up(t: Turn) -> None:
    if t.s.closing_phase in (ClosingPhase.HANGUP, ClosingPhase.DONE) or not t.s.call_alive:
        return
    t.command(C.HANGUP, kind="hangup")
    t.s.closing_phase = ClosingPhase.HANGUP
    t.set_deadline(None, None)
