"""Domain events: what happened on a call, already parsed and verified by the shell.

Every event carries `at`, the time the shell received it (seconds since the epoch), because
decide() reads no clock. Webhook events carry Telnyx's `data.id` as `id`. Events the shell
makes itself (timers, command outcomes, call lookups, operator actions) are `Synthetic`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What the shell puts in place of a gathered field value it will not keep (deeper, longer
# or bigger than collector.adapters.telephony.webhooks' bounds): a small JSON value that
# survives the session's storage, and that the session always treats as an invalid
# answer, so the field is asked again like any wrong answer. It never holds any of the
# original value.
TOO_LARGE: dict[str, str] = {"$collector": "too_large"}
TOO_LARGE_PROBLEM = "was too long to use"


def is_too_large(value: Any) -> bool:
    """Whether a field value is the TOO_LARGE marker (as made, or as read back)."""
    return isinstance(value, dict) and len(value) == 1 and value.get("$collector") == "too_large"


@dataclass(frozen=True, slots=True)
class ClientState:
    """What we put in `client_state`: the session, the step and the gather attempt."""

    session_id: str
    kind: str = ""
    attempt: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event: its id, the call it belongs to and when it arrived."""

    id: str
    call_control_id: str
    at: float
    occurred_at: str | None = None
    client_state: ClientState | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInitiated(Event):
    direction: str = "incoming"
    from_: str = ""
    to: str = ""
    call_leg_id: str | None = None
    call_session_id: str | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AiGatherPartial(Event):
    partial_results: dict[str, Any] = field(default_factory=dict)
    message_history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class AiGatherHistory(Event):
    message_history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class AiGatherEnded(Event):
    status: str | None = None
    result: dict[str, Any] | None = None
    message_history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeypadGatherEnded(Event):
    digits: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakEnded(Event):
    status: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHangup(Event):
    """The call ended; `cause` is Telnyx's hangup_cause (an outbound call that was never
    answered says why: timeout, no_answer, user_busy, call_rejected, ...)."""

    cause: str | None = None
    source: str | None = None


# Who answered an outbound call: answering machine detection's results, standard and
# premium, in one vocabulary (HUMAN and NOT_SURE start the form; MACHINE and FAX are not
# a person: a voicemail is left on a machine, never on a fax).
HUMAN, MACHINE, NOT_SURE, FAX = "human", "machine", "not_sure", "fax"
AMD_RESULTS: dict[str, str] = {
    "human": HUMAN,
    "human_residence": HUMAN,
    "human_business": HUMAN,
    "machine": MACHINE,
    "fax_detected": FAX,
    "not_sure": NOT_SURE,
    "silence": NOT_SURE,  # nobody spoke: the form starts, as for a person
}


def answered_by(result: str | None) -> str:
    """A detection result in the one vocabulary; anything unknown is NOT_SURE."""
    return AMD_RESULTS.get(result or "", NOT_SURE)


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineDetectionEnded(Event):
    """call.machine.detection.ended, or its premium twin: who answered (`result` as sent)."""

    result: str | None = None
    premium: bool = False

    @property
    def answered_by(self) -> str:
        return answered_by(self.result)


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineGreetingEnded(Event):
    """call.machine.greeting.ended, or its premium twin: the machine's greeting is over
    (beep_detected, ended, no_beep_detected, not_sure: whichever, a message can follow)."""

    result: str | None = None
    premium: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationEvent(Event):
    """call.conversation.* events: recorded on the session, never in the submission."""

    event_type: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Synthetic(Event):
    """Base of the events the shell makes itself, never a Telnyx webhook.

    No redelivery can repeat one, so decide() keeps no record of their ids and never calls
    one a duplicate: each is judged against the session (a timer against the deadline it
    was set for, a command failure against the gather's command). Their ids start with `~`
    by convention, so that they never meet a Telnyx id where ids are kept (dead events)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timer(Synthetic):
    """A deadline stored on the session has passed (fed back by the shell)."""

    kind: str = ""
    due: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandFailed(Synthetic):
    """Telnyx refused a command for good (a 4xx), or the call was already gone."""

    seq: int = 0
    action: str = ""
    code: str | None = None
    detail: str = ""
    call_gone: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStatus(Synthetic):
    """The answer of `retrieve_status`, asked for by a reconcile command."""

    alive: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Synthetic):
    """An operator cancels the session."""

    reason: str = "cancelled by operator"


@dataclass(frozen=True, slots=True)
class CarriedField:
    """A valid value of an earlier session, carried into the call that resumes it."""

    value: Any
    source: str
    attempts: int = 0
    attempt: int = 0  # the gather attempt that gave it
    errors: tuple[str, ...] = ()
    session_id: str = ""  # the session that collected it, if not the one resumed


@dataclass(frozen=True, slots=True)
class Resume:
    """What a new call takes over from the earlier session it resumes (outbound.resume_of):
    its valid fields, its conversation (role, content, attempt) and its last attempt."""

    session_id: str
    attempt: int = 0
    fields: Mapping[str, CarriedField] = field(default_factory=dict)
    transcript: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Synthetic):
    """The shell starts an outbound call: the session (made by outbound.new_session) dials
    `to` into its form. `variables` fill the form's placeholders, `prefill` gives fields in
    advance (not asked), `resume` carries an earlier session's answers and conversation.

    Its `call_control_id` is the session's key until the call's first webhook brings the
    real one (outbound.pending_call_id)."""

    to: str = ""
    from_: str = ""
    connection_id: str = ""
    answering_machine_detection: str = "detect"  # the dial's AMD mode; "disabled": none
    ring_timeout_seconds: int = 30
    variables: Mapping[str, Any] = field(default_factory=dict)
    prefill: Mapping[str, Any] = field(default_factory=dict)
    resume: Resume | None = None


WEBHOOK_EVENTS = (
    CallInitiated,
    CallAnswered,
    AiGatherPartial,
    AiGatherHistory,
    AiGatherEnded,
    KeypadGatherEnded,
    SpeakEnded,
    CallHangup,
    ConversationEvent,
    MachineDetectionEnded,
    MachineGreetingEnded,
)
SYNTHETIC_EVENTS = (Timer, CommandFailed, CallStatus, Cancel, Dial)
