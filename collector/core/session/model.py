"""The Session: everything known about one call's form, as a serialisable value.

The counts keep one word each:

* attempt: one AI gather of the session, numbered from 1. `Session.attempt` is the latest;
  a `Gather`, a transcript `Message` and our `client_state` carry the one they belong to.
  The submission's `attempts` is how many there were.
* a field's `attempts`: how many asks (AI gathers and keypad entries) went to that field;
  the form's `max_attempts` bounds them.
* correction: a read-back answered with 2, which asks fields again (`Session.corrections`,
  bounded by `confirm.max_corrections`).
* refusal: Telnyx refusing a gather's command, which is then stopped and issued once more
  (`Gather.refusals`).

(The outbox's `retry`, the sends of one command under a fresh id, is not a session count.)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__


def _shallow(model: _M, changes: dict[str, Any]) -> _M:
    """What `model.model_copy(update=changes)` gives, for these models (no extras, no
    private attributes): a new model sharing every value not in `changes`."""
    cls = type(model)
    copy = cls.__new__(cls)
    values = model.__dict__.copy()
    values.update(changes)
    _set(copy, "__dict__", values)
    _set(copy, "__pydantic_extra__", None)
    _set(copy, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys())
    _set(copy, "__pydantic_private__", None)
    return copy


class State(StrEnum):
    """Where a session is (decide.TRANSITIONS says what each event does in each).

    The last four are terminal: the session has its outcome and never changes its data
    again (its `closing_phase` follows the rest of the call)."""

    INITIATED = "initiated"  # the call rings; we answer an incoming one
    DIALING = "dialing"  # outbound: the dial is decided, the call rings
    # outbound: answered, waiting to hear who answered (machine detection); inbound: passed
    # through within call.answered's step, never stored
    ANSWERED = "answered"
    GATHERING = "gathering"  # an AI gather runs (the first, a re-ask or a follow-up)
    KEYPAD = "keypad"  # a keypad entry of one field is pending
    CONFIRMING = "confirming"  # the read-back, or the choice of field to correct, is pending
    CLOSING = "closing"  # hung up mid-gather: waiting hangup_grace_seconds for the result
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    ABANDONED = "abandoned"
    FAILED = "failed"  # no form, or Telnyx refused a command for good


TERMINAL = frozenset({State.COMPLETED, State.INCOMPLETE, State.ABANDONED, State.FAILED})
# outbound states before the form starts: a call ending here never reached the form
BEFORE_FORM = frozenset({State.DIALING, State.ANSWERED})

# the submission's `status`: a session's outcome, or abandoned for an outbound call that
# never reached the form (voicemail, no_answer, busy, rejected, failed)
STATUSES = ("completed", "incomplete", "abandoned")
OUTCOMES = (*STATUSES, "voicemail", "no_answer", "busy", "rejected", "failed")

# the key of an outbound session until its call's first webhook brings the real
# call_control_id (Telnyx's start with "v3:")
PENDING_CALL_PREFIX = "dial:"


class GatherKind(StrEnum):
    """What the running gather asks (a live session's sub-state)."""

    AI = "ai"  # gather_using_ai: state gathering (or closing)
    KEYPAD = "keypad"  # one field's digits: state keypad
    CONFIRM = "confirm"  # the read-back, 1 to confirm or 2 to correct: state confirming
    CHOOSE = "choose"  # which field to correct, one digit: state confirming


class ClosingPhase(StrEnum):
    """How far the end of the call has got (a terminal session's sub-state)."""

    GOODBYE = "goodbye"  # the closing speech plays; its end (or the speech deadline) hangs up
    # an answering machine's greeting plays; its end (or the greeting deadline) leaves the
    # form's voicemail message (then goodbye)
    VOICEMAIL = "voicemail"
    ASSISTANT = "assistant"  # handed off to the form's AI assistant (`after`)
    HANGUP = "hangup"  # our hangup is sent
    DONE = "done"  # the call is over


class DeadlineKind(StrEnum):
    """What `Session.deadline` is for; the shell feeds it back as a Timer of that kind."""

    GRACE = "grace"  # closing: how long a late ai_gather.ended may take
    SPEECH = "speech"  # goodbye: the closing speech's estimated length
    ASSISTANT = "assistant"  # the hand-off's max_seconds
    TIMEOUT = "timeout"  # silence: look the call up (retrieve_status)
    RING = "ring"  # dialing: the ring timeout (and some slack) is over
    DETECTION = "detection"  # answered: how long to wait to hear who answered
    GREETING = "greeting"  # voicemail: how long to wait for the machine's greeting to end


class CallInfo(BaseModel):
    """Who called whom, as Telnyx identifies the call."""

    model_config = ConfigDict(populate_by_name=True)

    call_control_id: str
    call_leg_id: str | None = None
    call_session_id: str | None = None
    connection_id: str | None = None
    from_: str = Field(default="", alias="from")
    to: str = ""
    direction: str = "incoming"


class FieldState(BaseModel):
    """The evidence for one field: last value heard, where it came from, what was wrong."""

    value: Any = None
    has_value: bool = False
    valid: bool = False
    source: str = "ai"
    attempts: int = 0
    attempt: int = 0  # the gather attempt that gave the value (0: none, or not known)
    resumed_from: str | None = None  # the earlier session it was carried from
    problems: list[str] = Field(default_factory=list)  # what is wrong now
    errors: list[str] = Field(default_factory=list)  # everything that was wrong, in order


class Message(BaseModel):
    """One line of the conversation, tagged with the gather attempt it belongs to."""

    role: str
    content: str
    attempt: int = 0


class Gather(BaseModel):
    """The gather currently running on the call, if any."""

    kind: GatherKind
    attempt: int
    fields: list[str] = Field(default_factory=list)
    seq: int = 0  # the command that started it
    # Telnyx refused its command this many times (stored as `tries` before)
    refusals: int = Field(default=0, validation_alias=AliasChoices("refusals", "tries"))


class Session(BaseModel):
    """One call working through one form. decide() returns a new one for every event."""

    id: str
    form: str | None
    form_version: str | None = None
    state: State = State.INITIATED
    call: CallInfo
    started_at: float
    updated_at: float
    ended_at: float | None = None
    attempt: int = 0
    gather: Gather | None = None
    fields: dict[str, FieldState] = Field(default_factory=dict)
    partial: dict[str, Any] = Field(default_factory=dict)
    transcript: list[Message] = Field(default_factory=list)
    errors: list[dict[str, str]] = Field(default_factory=list)
    event_ids: list[str] = Field(default_factory=list)
    command_seq: int = 0
    deadline: float | None = None
    deadline_kind: DeadlineKind | None = None
    call_alive: bool = True
    hangup_cause: str | None = None
    closing_phase: ClosingPhase | None = None
    outcome: str | None = None
    submission_id: str | None = None
    corrections: int = 0
    notes: list[dict[str, Any]] = Field(default_factory=list)
    conversation: list[dict[str, Any]] = Field(default_factory=list)
    # outbound calls (none of these are set on an inbound session)
    variables: dict[str, Any] = Field(default_factory=dict)  # fill the form's placeholders
    machine_detection: str | None = None  # the dial's answering_machine_detection
    amd: str | None = None  # who answered: events.HUMAN, MACHINE, NOT_SURE, FAX; None
    greeting_ended: bool = False  # the answering machine's greeting is over
    resumed_from: str | None = None  # the earlier session this call resumes

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def status(self) -> str | None:
        """The submission's status (completed, incomplete, abandoned) once there is an
        outcome: the outcome itself, or abandoned for a call that never reached the form."""
        if self.outcome is None:
            return None
        return self.outcome if self.outcome in STATUSES else "abandoned"

    @property
    def call_known(self) -> bool:
        """Whether the session has its call's real call_control_id (an outbound session
        has it from the call's first webhook)."""
        return not self.call.call_control_id.startswith(PENDING_CALL_PREFIX)

    def working_copy(self) -> Session:
        """A copy decide() may change freely: containers copied, immutable parts shared.

        Much cheaper than a deep copy (Messages are never changed in place). Built like
        `model_copy(update=...)`, without its per-call checks: this runs for every event."""
        fields = {
            name: _shallow(fs, {"problems": list(fs.problems), "errors": list(fs.errors)})
            for name, fs in self.fields.items()
        }
        changes: dict[str, Any] = {
            "fields": fields,
            "partial": dict(self.partial),
            "transcript": list(self.transcript),
            "errors": list(self.errors),
            "event_ids": list(self.event_ids),
            "notes": list(self.notes),
            "conversation": list(self.conversation),
            "call": _shallow(self.call, {}),
        }
        if self.gather is not None:
            changes["gather"] = _shallow(self.gather, {"fields": list(self.gather.fields)})
        return _shallow(self, changes)

    def filled(self) -> int:
        """How many fields hold a valid value."""
        return sum(1 for f in self.fields.values() if f.valid)
