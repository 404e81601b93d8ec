"""The working state of one decide() call (a Turn), and the plumbing every step uses.

A step is a function `step(t: Turn, event) -> None` that changes `t.s` (a working copy of
the session) and adds commands to `t.d`. The modules of steps import one another one way
only: step <- answers <- finish <- asks <- gather_steps, keypad_steps, closing_steps,
dial_steps <- decide (its table names every step an event can take).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collector.core.forms.placeholders import render
from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.client_state import encode
from collector.core.session.model import ClosingPhase, DeadlineKind, Session, State
from collector.core.session.submission import Submission

if TYPE_CHECKING:
    from collector.core.forms import Form

DEFAULT_VOICE = "Telnyx.KokoroTTS.af"
RECONCILE_RETRY_SECONDS = 60.0
# deadlines a step set for itself: the session timeout does not replace them
_OWN_DEADLINES = frozenset(
    {
        DeadlineKind.GRACE,
        DeadlineKind.SPEECH,
        DeadlineKind.ASSISTANT,
        DeadlineKind.RING,
        DeadlineKind.DETECTION,
        DeadlineKind.GREETING,
    }
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs of the flow that come from configuration."""

    hangup_grace_seconds: float = 5.0
    session_timeout_seconds: float = 1800.0
    default_voice: str = DEFAULT_VOICE
    closing_speech_max_seconds: float = 8.0
    # outbound calls
    machine_detection_seconds: float = 5.0  # after call.answered, to hear who answered
    voicemail_greeting_seconds: float = 20.0  # for an answering machine's greeting to end
    ring_grace_seconds: float = 30.0  # past the ring timeout, before giving up on the dial


@dataclass(slots=True)
class Decision:
    """What decide() returns: the new session, commands to send, and the submission."""

    session: Session
    commands: list[C.Command] = field(default_factory=list)
    submission: Submission | None = None
    changes: set[str] = field(default_factory=set)
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)


class Turn:
    """One decide() call: the session being built (`s`), the decision so far (`d`), and
    what every step reads (the event's time, the form, the policy, the spoken phrases).

    Opening a Turn counts the event as seen (a webhook's id joins `event_ids`), whatever
    step follows, even none; and an outbound session takes its call's call_control_id from
    the first webhook that brings it (`adopted`)."""

    __slots__ = ("adopted", "at", "d", "event", "form", "messages", "policy", "s")

    def __init__(
        self,
        session: Session,
        event: E.Event,
        form: Form | None,
        policy: Policy,
        messages: dict[str, str] | None,
    ) -> None:
        self.s = session.working_copy()
        self.event = event
        self.form = form
        self.policy = policy
        self.at = event.at
        self.messages = form.messages if form is not None else (messages or {})
        self.d = Decision(session=self.s)
        self.adopted = False
        if not isinstance(event, E.Synthetic):
            self.s.event_ids.append(event.id)
            if not self.s.call_known and event.call_control_id:
                self.s.call.call_control_id = event.call_control_id
                self.adopted = True
                self.change("call")
        self.s.updated_at = max(self.s.updated_at, event.at)

    def finish(self) -> Decision:
        """Close the turn: without a nearer deadline, the session times out after a silence."""
        s = self.s
        if s.terminal and (s.closing_phase == ClosingPhase.DONE or not s.call_alive):
            self.set_deadline(None, None)
        elif s.deadline_kind in _OWN_DEADLINES:
            pass
        elif s.deadline_kind == DeadlineKind.TIMEOUT and isinstance(self.event, E.Timer):
            pass  # just re-armed by the reconcile
        else:
            self.set_deadline(DeadlineKind.TIMEOUT, self.at + self.policy.session_timeout_seconds)
        return self.d

    def change(self, *what: str) -> None:
        self.d.changes.update(what)

    def note(self, kind: str, **detail: Any) -> None:
        self.s.notes.append({"kind": kind, "at": self.at, **detail})
        self.d.notes.append(kind)
        self.change("notes")

    def command(self, action: str, body: dict[str, Any] | None = None, kind: str = "") -> None:
        self.s.command_seq += 1
        payload = dict(body or {})
        if action != C.RETRIEVE_STATUS:
            attempt = self.s.gather.attempt if self.s.gather else self.s.attempt
            payload["client_state"] = encode(
                E.ClientState(session_id=self.s.id, kind=kind or action, attempt=attempt)
            )
        self.d.commands.append(
            C.Command(action=action, seq=self.s.command_seq, body=payload, decided_at=self.at)
        )

    def set_state(self, state: State) -> None:
        if self.s.state != state:
            self.s.state = state
            self.change("state")

    def set_deadline(self, kind: DeadlineKind | None, at: float | None) -> None:
        self.s.deadline_kind = kind
        self.s.deadline = at

    def spoken(self, text: str) -> str:
        """A text the form speaks, its `{name}` placeholders filled from the variables."""
        return render(text, self.s.variables)[:3000]

    def voice(self) -> dict[str, Any]:
        body: dict[str, Any] = {"voice": self.policy.default_voice}
        if self.form is not None:
            opts = self.form.options
            if opts.voice:
                body["voice"] = opts.voice
            if opts.speak_language:
                body["language"] = opts.speak_language
        return body


Step = Callable[[Turn, Any], None]
"""A step of the call flow: what one event does to a session in one situation."""
