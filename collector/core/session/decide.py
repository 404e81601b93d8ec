"""decide(session, event) -> Decision: every rule of the call flow, with no I/O.

Theory of operation
-------------------
By state (model.State), as TRANSITIONS below has it row by row:

    initiated   call.initiated -> answer;  call.answered -> gathering (no form: failed).
                For an inbound call `answered` lasts only within call.answered's step.
                An outbound session starts here too: the shell's Dial -> dialing.
    dialing     (outbound) call.answered -> answered;  a machine detection -> the form
                (gathering) | the voicemail;  call.hangup before the answer -> no_answer,
                busy, rejected (or the grace deadline, if the cause leaves it open);  the
                ring deadline -> no_answer;  the dial refused -> failed
    answered    (outbound) machine detection: human, not_sure -> gathering; machine ->
                abandoned with outcome voicemail (closing_phase voicemail: the greeting's
                end, or the greeting deadline, speaks the form's message; without one,
                hangup);  the detection deadline -> gathering;  call.hangup -> abandoned
    gathering   ai_gather.ended -> gathering (re-ask, follow-up) | keypad | confirming
                | completed | incomplete;  call.hangup -> closing;  a refused gather
                is stopped and issued once more -> gathering
    keypad      gather.ended -> keypad (the next field) | confirming | completed | incomplete
    confirming  gather.ended -> gathering (a correction) | confirming (which field?)
                | completed
    closing     ai_gather.ended -> completed | abandoned;  the grace deadline -> abandoned
    any live    call.hangup, the call gone, a cancel -> abandoned;  refused -> failed
    ended       (completed, incomplete, abandoned, failed) closing_phase: goodbye ->
                hangup -> done, or assistant (the hand-off) -> goodbye, or voicemail ->
                goodbye; call.hangup: done

* `call.ai_gather.ended` is validated here, against the whole form (Telnyx's `status` is
  a hint). Fields still wrong and under their `max_attempts`, and fields a rule now
  requires, are asked in one new gather; after that, wrong fields with `x-collector.dtmf`
  go to the keypad, one by one; then the read-back (`confirm`) or the outcome.
  `completed` is always the whole form's verdict: it is `incomplete` if the form fails.
* AI-gather webhooks of the *running* attempt (by `client_state`) fill the live view;
  the conversation of every attempt goes to the transcript, in any state.
* `call.gather.ended` ends what is pending: a field's digits (keypad), the read-back's 1
  or 2 (confirming/confirm), the digit of the field to correct (confirming/choose).
* `call.hangup` during an AI gather waits `hangup_grace_seconds` in `closing` for a late
  `ai_gather.ended` (Telnyx reorders webhooks).
* Finalizing builds the submission once; a terminal session never changes its state or
  data again, only its `closing_phase` as the call ends.

Rules outside the table, in decide() and Turn:

* A webhook whose id the session has seen is a duplicate: nothing changes. Any other
  event counts as seen (its id joins `event_ids`) even when its row is absent, i.e. it is
  ignored. Synthetic events (events.Synthetic) are never recorded nor duplicates.
* A Timer is looked up by its deadline (a DeadlineKind in the table's event column). A
  Timer for a deadline the session no longer has is ignored; a due one uses its deadline
  up before its row runs.
* After every event, a session without a nearer deadline gets the session timeout,
  whose Timer asks the shell to look the call up (`retrieve_status`).

* An outbound call's outcome (the submission's `outcome`) is its status once it reached
  the form; before, voicemail, no_answer, busy, rejected or failed, with status abandoned.
  Machine detection may come before or after call.answered, the greeting's end before or
  after the detection: each is kept until the step that needs it.

The steps live by topic, imported one way: step.py (the Turn), answers.py (the form's
verdict), finish.py (finalize, goodbye, hangup, hand-off), asks.py (starting each gather),
then gather_steps.py, keypad_steps.py, closing_steps.py, dial_steps.py (what each event
does).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from collector.core.session import closing_steps as X
from collector.core.session import dial_steps as O
from collector.core.session import events as E
from collector.core.session import gather_steps as G
from collector.core.session import keypad_steps as K
from collector.core.session.asks import ai_gather_body
from collector.core.session.model import ClosingPhase, DeadlineKind, GatherKind, Session, State
from collector.core.session.step import DEFAULT_VOICE, Decision, Policy, Step, Turn

if TYPE_CHECKING:
    from collector.core.forms import Form

__all__ = ["DEFAULT_VOICE", "IGNORED", "TRANSITIONS", "Decision", "Policy", "ai_gather_body"]
__all__ += ["decide", "step_for"]


class Group(Enum):
    """A row for many states; a row naming the state itself comes first."""

    LIVE = "any state before the outcome"
    ENDED = "any terminal state"
    ANY = "any state"


LIVE, ENDED, ANY = Group.LIVE, Group.ENDED, Group.ANY

# Where a row applies: a state or a group, alone or with the session's sub-state (the
# running gather's kind while live, the closing phase once ended).
Where = State | Group | tuple[State | Group, GatherKind | ClosingPhase]
# What arrived: an event's type, or for a Timer the deadline it fires for.
On = type[E.Event] | DeadlineKind

TRANSITIONS: dict[tuple[Where, On], Step] = {
    # the call rings and is answered
    (State.INITIATED, E.CallInitiated): G.answer,  # incoming: answer (once)
    (State.INITIATED, E.CallAnswered): G.start_form,  # gather_using_ai -> gathering | failed
    # an outbound call: dialled, ringing, who answered
    (State.INITIATED, E.Dial): O.dial,  # dial -> dialing (no form: failed)
    (State.DIALING, E.CallAnswered): O.answered,  # -> answered: wait for the detection
    (State.DIALING, E.MachineDetectionEnded): O.detected,  # answered: the form | voicemail
    (State.DIALING, E.MachineGreetingEnded): O.greeting_heard,  # kept for the voicemail
    (State.DIALING, E.CallHangup): O.hung_up_before_form,  # no_answer, busy, ... | grace
    (State.DIALING, E.CommandFailed): O.dial_refused,  # failed
    (State.DIALING, E.Cancel): O.cancel_dial,  # abandoned, hangup
    (State.DIALING, DeadlineKind.RING): O.ring_over,  # no_answer, hangup
    (State.DIALING, DeadlineKind.GRACE): O.grace_over_before_form,
    (State.ANSWERED, E.MachineDetectionEnded): O.detected,  # the form | voicemail
    (State.ANSWERED, E.MachineGreetingEnded): O.greeting_heard,
    (State.ANSWERED, E.CallHangup): O.hung_up_before_form,  # abandoned | voicemail | grace
    (State.ANSWERED, DeadlineKind.DETECTION): O.detection_over,  # the form starts anyway
    (State.ANSWERED, DeadlineKind.GRACE): O.grace_over_before_form,
    (LIVE, E.CallInitiated): O.call_ids,  # outbound: the call's ids, whenever they come
    (LIVE, E.MachineDetectionEnded): O.late_detection,  # recorded
    # an AI gather runs
    (State.GATHERING, E.AiGatherPartial): G.take_partial,  # the running attempt's -> partial
    (State.GATHERING, E.AiGatherEnded): G.judge_gather,  # re-ask | keypad | read-back | end
    (State.GATHERING, E.CallHangup): X.wait_for_late_result,  # -> closing, grace deadline
    (State.GATHERING, E.CommandFailed): X.gather_refused,  # stop, issue once more | failed
    # a keypad entry, the read-back, the choice of field
    ((State.KEYPAD, GatherKind.KEYPAD), E.KeypadGatherEnded): K.keypad_entry,
    ((State.CONFIRMING, GatherKind.CONFIRM), E.KeypadGatherEnded): K.read_back_answered,
    ((State.CONFIRMING, GatherKind.CHOOSE), E.KeypadGatherEnded): K.field_chosen,
    # hung up mid-gather, waiting for the late result
    (State.CLOSING, E.AiGatherPartial): G.take_partial,
    (State.CLOSING, E.AiGatherEnded): G.late_result,  # completed | abandoned
    (State.CLOSING, E.CallHangup): X.record_hangup,
    (State.CLOSING, E.CommandFailed): X.gather_refused,
    (State.CLOSING, DeadlineKind.GRACE): X.grace_over,  # abandoned
    # any state before the outcome
    (LIVE, E.AiGatherEnded): G.stale_end,  # no AI gather runs: noted
    (LIVE, E.CallHangup): X.abandon_on_hangup,  # abandoned
    (LIVE, E.CallStatus): X.call_looked_up,  # gone: abandoned
    (LIVE, E.CommandFailed): X.command_refused,  # call gone: abandoned; else failed
    (LIVE, E.Cancel): X.cancel,  # gather_stop, abandoned, cancelled message
    # after the outcome: the voicemail, the closing speech, the hand-off, the end of the call
    ((ENDED, ClosingPhase.VOICEMAIL), E.MachineGreetingEnded): O.leave_message,  # speak
    ((ENDED, ClosingPhase.VOICEMAIL), DeadlineKind.GREETING): O.leave_message,
    (ENDED, E.CallInitiated): O.late_call,  # a call its session never heard of: hangup
    (ENDED, E.CallAnswered): O.late_call,
    ((ENDED, ClosingPhase.GOODBYE), E.SpeakEnded): X.speech_over,  # hangup
    ((ENDED, ClosingPhase.GOODBYE), DeadlineKind.SPEECH): X.speech_over,  # hangup
    ((ENDED, ClosingPhase.ASSISTANT), DeadlineKind.ASSISTANT): X.hand_off_over,
    ((ENDED, ClosingPhase.ASSISTANT), E.Cancel): X.cancel_hand_off,
    (ENDED, E.CallHangup): X.call_over,  # done
    (ENDED, E.CallStatus): X.call_looked_up_after_end,  # gone: done
    (ENDED, E.CommandFailed): X.command_failed_after_end,  # gone: done; goodbye: hangup
    # in any state
    (ANY, E.AiGatherPartial): G.record_transcript,
    (ANY, E.AiGatherHistory): G.record_transcript,
    (ANY, E.AiGatherEnded): G.record_transcript,
    (ANY, E.ConversationEvent): X.record_conversation,
    (ANY, DeadlineKind.TIMEOUT): X.reconcile,  # retrieve_status
}

IGNORED: dict[tuple[Where, On], str] = {
    (ANY, E.CallAnswered): "the form starts once, in initiated (outbound: in dialing)",
    (ANY, E.Dial): "a session dials once, at its start",
    (ANY, E.MachineGreetingEnded): "only a voicemail waits for the greeting's end",
    (ENDED, E.MachineDetectionEnded): "the outcome is settled",
    (ANY, E.KeypadGatherEnded): "no keypad gather of ours is pending",
    (ANY, E.SpeakEnded): "only the end of the closing speech matters",
    (ENDED, E.Cancel): "already over (a hand-off aside)",
    (ANY, DeadlineKind.GRACE): "used up; nothing else waits for it",
    (ANY, DeadlineKind.SPEECH): "used up; the hangup is already sent",
    (ANY, DeadlineKind.ASSISTANT): "used up; the hand-off has ended",
    (ANY, DeadlineKind.RING): "used up; the call was answered or ended",
    (ANY, DeadlineKind.DETECTION): "used up; the form or the voicemail has begun",
    (ANY, DeadlineKind.GREETING): "used up; the message is left",
}
"""Where nothing happens, and why; tests/session check that TRANSITIONS and IGNORED
together decide every (state, event) pair."""

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
    t = Turn(session, event, form, policy, messages)
    on = _on(t, event)
    step = step_for(t.s, on) if on is not None else None
    if step is not None:
        step(t, event)
    return t.finish()


def situations(s: Session) -> tuple[Where, ...]:
    """The keys a session matches, most specific first."""
    sub: GatherKind | ClosingPhase | None
    if s.terminal:
        group, sub = ENDED, s.closing_phase
    else:
        group, sub = LIVE, (s.gather.kind if s.gather is not None else None)
    if sub is None:
        return (s.state, group, ANY)
    return ((s.state, sub), s.state, (group, sub), group, ANY)


def step_for(s: Session, on: On) -> Step | None:
    """The step of the first row that matches the session and what arrived; None: ignored."""
    for where in situations(s):
        step = TRANSITIONS.get((where, on))
        if step is not None:
            return step
    return None


def _on(t: Turn, event: E.Event) -> On | None:
    """What the table is looked up by; None for a stale Timer."""
    if not isinstance(event, E.Timer):
        return type(event)
    s = t.s
    if event.kind != s.deadline_kind or s.deadline is None or abs(event.due - s.deadline) > 1e-6:
        return None  # a timer that was replaced or already handled
    kind = s.deadline_kind
    t.set_deadline(None, None)  # a due timer uses its deadline up, whatever its row does
    return kind
