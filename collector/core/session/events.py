"""Domain events: what happened on a call, already parsed and verified by the shell.

Every event carries `at`, the time the shell received it (seconds since the epoch), because
decide() reads no clock. Webhook events carry Telnyx's `data.id` as `id`. Events the shell
makes itself (timers, command outcomes, call lookups, operator actions) are `Synthetic`.
"""

from __future__ import annotations

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
    cause: str | None = None
    source: str | None = None


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
)
SYNTHETIC_EVENTS = (Timer, CommandFailed, CallStatus, Cancel)
