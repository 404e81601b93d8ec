"""decide(session, event) -> Decision: every rule of the call flow, with no I/O.

Theory of operation
-------------------
A session moves forward only:

    initiated -> answered -> gathering <-> keypad / confirming -> completed | incomplete
                                     \\-> closing (hung up mid-gather, waiting for the result)
    any non-terminal state -> abandoned (call gone) | failed (no form, command refused)

* `call.initiated` (incoming) -> answer. `call.answered` -> gather_using_ai for the form.
* AI-gather webhooks of the *current* attempt update the live view; those of an earlier
  attempt (by `client_state`) only go to the transcript.
* `call.ai_gather.ended` is validated here, against the form (Telnyx's `status` is a
  hint). Fields still wrong and under their `max_attempts` are asked again in one new
  gather; after that, fields with `x-collector.dtmf` go to the keypad; then the session
  finalizes (`completed` or `incomplete`).
* `call.hangup` while an AI gather runs moves to `closing` and waits
  `hangup_grace_seconds` for a late `ai_gather.ended` (Telnyx reorders webhooks), then
  finalizes `abandoned` with what is valid so far.
* Finalizing builds the submission once; a terminal session never changes its data again.
  Then the closing speech plays and the call is hung up on `call.speak.ended` or after a
  delay estimated from the speech's length.
* Deadlines live on the session (`deadline`, `deadline_kind`); the shell feeds them back
  as Timer events. Without a nearer one, the deadline is the session timeout, which
  asks the shell to look the call up (`retrieve_status`) and finalizes if it is gone.

The steps live by topic: step.py (the working state and its plumbing), gather_steps.py
(the AI gather and re-ask), keypad_steps.py (keypad fallback, read-back, choice of field),
closing_steps.py (finalize, goodbye and hangup, timers, failures, cancel, hand-off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.closing_steps import ClosingSteps
from collector.core.session.gather_steps import GatherSteps, ai_gather_body
from collector.core.session.keypad_steps import KeypadSteps
from collector.core.session.model import Session, State
from collector.core.session.step import DEFAULT_VOICE, Decision, Policy

if TYPE_CHECKING:
    from collector.core.forms import Form

__all__ = ["DEFAULT_VOICE", "Decision", "Policy", "ai_gather_body", "decide"]

_DEFAULT_POLICY = Policy()


def decide(
    session: Session,
    event: E.Event,
    form: Form | None,
    policy: Policy = _DEFAULT_POLICY,
    messages: dict[str, str] | None = None,
) -> Decision:
    """Apply one event to a session. Pure: the same inputs always give the same output."""
    if not isinstance(event, E.Synthetic) and event.id in session.event_ids:
        return Decision(session=session, duplicate=True)
    step = _Step(session, event, form, policy, messages)
    step.run()
    return step.finish()


class _Step(GatherSteps, KeypadSteps, ClosingSteps):
    """One decide() call: the steps of every module, and the dispatch on the event."""

    def run(self) -> None:
        ev = self.event
        handler = _HANDLERS.get(type(ev))
        if handler is not None:
            handler(self, ev)

    def on_initiated(self, ev: E.CallInitiated) -> None:
        if self.s.state != State.INITIATED or self.s.command_seq:
            return
        if ev.direction == "incoming":
            self.command(C.ANSWER, kind="answer")

    def on_answered(self, ev: E.CallAnswered) -> None:
        if self.s.state != State.INITIATED:
            return
        self.set_state(State.ANSWERED)
        if self.form is None:
            self.set_state(State.FAILED)
            self.s.outcome = "failed"
            self.s.ended_at = self.at
            self.closing_speech(self.messages.get("no_form", ""))
            return
        self.start_ai_gather(self.form.first_fields, self.form.parameters, greeting=None)


_HANDLERS: dict[type, Any] = {
    E.CallInitiated: _Step.on_initiated,
    E.CallAnswered: _Step.on_answered,
    E.AiGatherPartial: _Step.on_partial,
    E.AiGatherHistory: _Step.on_history,
    E.AiGatherEnded: _Step.on_ai_ended,
    E.KeypadGatherEnded: _Step.on_keypad_ended,
    E.SpeakEnded: _Step.on_speak_ended,
    E.CallHangup: _Step.on_hangup,
    E.Timer: _Step.on_timer,
    E.CallStatus: _Step.on_call_status,
    E.CommandFailed: _Step.on_command_failed,
    E.Cancel: _Step.on_cancel,
    E.ConversationEvent: _Step.on_conversation,
}
