"""What the shell needs to place an outbound call: the checks before dialling, the new
session and its first decision, and what a new call takes over from the one it resumes.

    problems = dial_problems(form, to, variables, prefill)          # [] or a 422's reasons
    reason = resume_problem(earlier, form.id, to)                   # None: may resume
    dial = E.Dial(id="~dial", call_control_id=pending_call_id(sid), at=now, to=to, ...,
                  resume=resume_of(earlier) if earlier else None)
    decision = start(sid, dial, form, policy)   # state dialing, one `dial` command

The session is keyed by `pending_call_id(sid)` until the call's first webhook (matched to
the session by its client_state, whose session id is `sid`) brings the call_control_id;
decide() then takes that id (Session.call_known).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from collector.core.session import events as E
from collector.core.session.decide import Decision, Policy, decide
from collector.core.session.model import PENDING_CALL_PREFIX, CallInfo, Session

if TYPE_CHECKING:
    from collector.core.forms import Form

__all__ = [
    "dial_problems",
    "new_session",
    "number_problem",
    "pending_call_id",
    "resume_of",
    "resume_problem",
    "start",
]

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def pending_call_id(session_id: str) -> str:
    """The key of an outbound session until its call's first webhook: unique per session."""
    return PENDING_CALL_PREFIX + session_id


def number_problem(number: object) -> str | None:
    """Why a number cannot be dialled (it must be E.164: `+` and up to 15 digits), or None."""
    if not isinstance(number, str) or not _E164.fullmatch(number):
        return "must be a phone number in E.164 form, like +13125550190"
    return None


def dial_problems(
    form: Form, to: object, variables: Mapping[str, Any], prefill: Mapping[str, Any]
) -> list[str]:
    """Every reason not to dial: a bad number, a placeholder of the form without a value
    (a variable that is not text or a number), a prefilled value its field refuses."""
    out = []
    wrong = number_problem(to)
    if wrong:
        out.append(f"to: {wrong}")
    for name in form.missing_variables(variables):
        out.append(f"variables: the form speaks {{{name}}} but the call gives it no value")
    for name, value in variables.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float | type(None)):
            out.append(f"variables: {name} must be text or a number")
    out.extend(f"prefill {problem}" for problem in form.check_prefill(prefill))
    return out


def new_session(session_id: str, dial: E.Dial, form: Form | None) -> Session:
    """The session an outbound call starts from (decide() with the Dial makes it dial)."""
    return Session(
        id=session_id,
        form=form.id if form is not None else None,
        form_version=form.version if form is not None else None,
        call=CallInfo(
            call_control_id=dial.call_control_id,
            connection_id=dial.connection_id or None,
            **{"from": dial.from_},
            to=dial.to,
            direction="outgoing",
        ),
        started_at=dial.at,
        updated_at=dial.at,
    )


def start(session_id: str, dial: E.Dial, form: Form | None, policy: Policy) -> Decision:
    """The new session's first decision: state dialing and the `dial` command."""
    return decide(new_session(session_id, dial, form), dial, form, policy)


def _party(session: Session) -> str:
    """The other end of a session's call: whom we dialled, or who called us."""
    return session.call.to if session.call.direction == "outgoing" else session.call.from_


def resume_problem(earlier: Session, form_id: str, number: str) -> str | None:
    """Why a new call to `number` with form `form_id` may not resume `earlier`, or None."""
    if earlier.form != form_id:
        return f"session {earlier.id} is of form {earlier.form!r}, not {form_id!r}"
    if _party(earlier) != number:
        return f"session {earlier.id} was a call with another number"
    if not earlier.terminal:
        return f"session {earlier.id} is still in progress"
    if earlier.status == "completed":
        return f"session {earlier.id} is completed: nothing is missing"
    return None


def resume_of(earlier: Session) -> E.Resume:
    """What a new call takes over: the valid answers (with the attempt and session that
    gave each), the conversation, and the last attempt (the new gathers follow it)."""
    fields = {
        name: E.CarriedField(
            value=fs.value,
            source=fs.source,
            attempts=fs.attempts,
            attempt=fs.attempt or earlier.attempt,
            errors=tuple(fs.errors),
            session_id=fs.resumed_from or earlier.id,
        )
        for name, fs in earlier.fields.items()
        if fs.valid
    }
    return E.Resume(
        session_id=earlier.id,
        attempt=earlier.attempt,
        fields=fields,
        transcript=tuple((m.role, m.content, m.attempt) for m in earlier.transcript),
    )
