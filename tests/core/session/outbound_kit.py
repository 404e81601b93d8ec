"""An outbound call fed through decide() as the shell would: the start (outbound.start),
the call's webhooks (matched to the session by client_state), the stored deadlines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collector.core.forms import Form, load_forms
from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.decide import Decision, Policy, decide
from collector.core.session.model import Session
from collector.core.session.outbound import pending_call_id, start

SID = "sess-out"
CCID = "v3:out-call"
TO, FROM = "+13125550188", "+13125550100"
POLICY = Policy(hangup_grace_seconds=5, session_timeout_seconds=1800)
VARIABLES = {"first_name": "Maria", "item": "kettle"}
GOOD = {"name": "Maria Gonzalez", "email": "maria@example.com", "serial": "AB1234"}

WARRANTY: dict[str, Any] = {
    "title": "Warranty follow-up",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "title": "Full name"},
        "email": {"type": "string", "format": "email", "title": "Email address"},
        "serial": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{4}$", "title": "Serial number"},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5, "title": "Rating"},
    },
    "required": ["name", "email", "serial"],
    "x-collector": {
        "greeting": "Hi {first_name}, this is Acme calling about your {item}.",
        "voicemail": "Hi {first_name}, this is Acme about your {item}. Please call us back.",
        "messages": {"goodbye": "Thanks {first_name}, goodbye."},
    },
}
# the same form without a voicemail message and without placeholders
PLAIN = {**WARRANTY, "x-collector": {"greeting": "Hello, this is Acme."}}


def outbound_forms(root: Path) -> dict[str, Form]:
    """The two outbound forms, written to `root` and loaded as the server would."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "warranty.json").write_text(json.dumps(WARRANTY), encoding="utf-8")
    (root / "plain.json").write_text(json.dumps(PLAIN), encoding="utf-8")
    return dict(load_forms(root))


class Dialled:
    """One outbound call: what decide() decided, event by event, like the engine keeps it."""

    def __init__(
        self,
        form: Form | None,
        policy: Policy = POLICY,
        at: float = 1000.0,
        sid: str = SID,
        **dial: Any,
    ) -> None:
        self.sid = sid
        self.form = form
        self.policy = policy
        self.t = at
        self.n = 0
        self.commands: list[C.Command] = []
        self.submissions: list[Any] = []
        dial.setdefault("variables", VARIABLES)
        self.dial = E.Dial(
            id="~dial",
            call_control_id=pending_call_id(sid),
            at=at,
            to=TO,
            from_=FROM,
            connection_id="2287104733592061441",
            **dial,
        )
        d = start(sid, self.dial, form, policy)
        self.session: Session = d.session
        self.keep(d)

    def keep(self, d: Decision) -> Decision:
        self.session = d.session
        self.commands.extend(d.commands)
        if d.submission is not None:
            self.submissions.append(d.submission)
        return d

    def feed(self, event: E.Event) -> Decision:
        return self.keep(decide(self.session, event, self.form, self.policy))

    def ev(self, cls: type[E.Event], eid: str | None = None, **kw: Any) -> E.Event:
        """A webhook of the call (our dial's client_state unless given), a second later."""
        self.n += 1
        self.t += 1
        kw.setdefault("client_state", E.ClientState(session_id=self.sid, kind="dial"))
        return cls(id=eid or f"out-{self.n}", call_control_id=CCID, at=self.t, **kw)

    def send(self, cls: type[E.Event], **kw: Any) -> Decision:
        return self.feed(self.ev(cls, **kw))

    def fire(self) -> Decision:
        """The session's stored deadline, fed back as the timers worker does."""
        s = self.session
        assert s.deadline is not None and s.deadline_kind is not None
        self.t = max(self.t, s.deadline)
        timer = E.Timer(
            id="~timer",
            call_control_id=s.call.call_control_id,
            at=s.deadline,
            kind=s.deadline_kind,
            due=s.deadline,
        )
        return self.feed(timer)

    def gather_ends(self, result: dict[str, Any], **kw: Any) -> Decision:
        cs = E.ClientState(session_id=self.sid, kind="ai", attempt=self.session.attempt)
        return self.send(E.AiGatherEnded, status="valid", result=result, client_state=cs, **kw)

    def actions(self) -> list[str]:
        return [c.action for c in self.commands]

    def last(self, action: str) -> dict[str, Any]:
        return next(c.body for c in reversed(self.commands) if c.action == action)
