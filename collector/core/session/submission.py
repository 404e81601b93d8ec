"""Build the submission every sink receives; its shape (`Submission`) is README's.

No `from __future__ import annotations` here: on Python 3.11 a TypedDict whose
annotations are strings counts its `NotRequired` keys as required at run time.
"""

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, overload

if TYPE_CHECKING:
    from collector.core.forms import Form
    from collector.core.session.model import Session

__all__ = [
    "CallReport",
    "FieldReport",
    "Problem",
    "ResumedFrom",
    "Submission",
    "TranscriptLine",
    "build_submission",
    "iso",
    "pointer",
    "submission_id",
]


class ResumedFrom(TypedDict):
    """Where a field's value came from when an earlier session collected it."""

    session_id: str
    attempt: int  # that session's gather attempt


class FieldReport(TypedDict):
    """One form field in `fields`: where its value came from, and what was wrong on the way."""

    source: str | None  # "ai", "keypad", "confirmed", "prefill"; None: never collected
    attempts: int
    errors: list[str]  # every problem it had, in order
    value: NotRequired[Any]  # only when valid
    required_by: NotRequired[str]  # the pointer of the root rule that required it
    resumed_from: NotRequired[ResumedFrom]  # carried from the session this call resumed


class Problem(TypedDict):
    """One item of `errors`: what is wrong, by JSON pointer ("" for the whole form)."""

    pointer: str
    message: str


# functional syntax: `from` is a keyword
CallReport = TypedDict(
    "CallReport",
    {
        "call_control_id": str,
        "call_session_id": str | None,
        "from": str,
        "to": str,
        "direction": str,
    },
)


class TranscriptLine(TypedDict):
    """One line of the conversation, with the gather attempt it belongs to."""

    role: str
    content: str
    attempt: int


class Submission(TypedDict):
    """The final record of a session, as every sink receives it (README, "The submission")."""

    submission_id: str
    session_id: str
    form: str
    form_version: str
    status: str  # completed, incomplete or abandoned
    # status, or for an outbound call that never reached the form: voicemail, no_answer,
    # busy, rejected, failed
    outcome: str
    amd: str | None  # who answered an outbound call: human, machine, not_sure, fax; None
    data: dict[str, Any]  # validated values only
    errors: list[Problem]
    fields: dict[str, FieldReport]
    call: CallReport
    attempts: int
    started_at: str
    ended_at: str
    transcript: list[TranscriptLine]
    resumed_from: NotRequired[str]  # the earlier session this call resumed
    # set by the outbox on a replayed delivery (`collector outbox replay`), never stored
    replay: NotRequired[bool]
    delivery_key: NotRequired[str]  # the replay's own delivery key


_SUBMISSION_NS = uuid.UUID("0b6f3a52-9d1c-4c61-8f0e-2a7d5e4b9c13")


@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: float | None) -> str | None: ...
def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as an ISO 8601 UTC timestamp."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def pointer(name: str) -> str:
    """The JSON pointer of a top-level field."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def submission_id(session_id: str) -> str:
    """One submission per session, so its id is derived from the session's."""
    return str(uuid.uuid5(_SUBMISSION_NS, session_id))


def build_submission(session: "Session", form: "Form", status: str, at: float) -> Submission:
    """The final record of a session, with only validated values in `data`."""
    data = {name: fs.value for name, fs in session.fields.items() if fs.valid}
    required = form.requirements(data)
    verdict = form.validate(data)
    fields: dict[str, FieldReport] = {}
    errors: list[Problem] = []
    for name in form.fields:
        state = session.fields.get(name)
        rule = required.get(name)
        if state is None:
            if rule is not None:
                message = "was not collected" if status == "abandoned" else "is required"
                errors.append({"pointer": pointer(name), "message": message})
                fields[name] = {"source": None, "attempts": 0, "errors": [message]}
                if name in form.conditional:
                    fields[name]["required_by"] = rule
            continue
        entry: FieldReport = {
            "source": state.source,
            "attempts": state.attempts,
            "errors": list(state.errors),
        }
        if name in form.conditional and rule is not None:
            entry["required_by"] = rule  # the rule of the form that asked for it
        if state.resumed_from is not None:
            entry["resumed_from"] = {"session_id": state.resumed_from, "attempt": state.attempt}
        problems = [p for p in verdict.get(name, []) if p != "is required"]
        if state.valid and not problems:
            entry["value"] = state.value
        else:
            data.pop(name, None)
            problems = problems or state.problems or (["is required"] if rule else [])
            if problems:  # the first problem is the one worth reading back
                errors.append({"pointer": pointer(name), "message": problems[0]})
        fields[name] = entry
    for problem in verdict.get("", []):
        errors.append({"pointer": "", "message": f"the form as a whole {problem}"})
    submission: Submission = {
        "submission_id": submission_id(session.id),
        "session_id": session.id,
        "form": form.id,
        "form_version": form.version,
        "status": status,
        "outcome": session.outcome or status,
        "amd": session.amd,
        "data": data,
        "errors": errors,
        "fields": fields,
        "call": {
            "call_control_id": session.call.call_control_id,
            "call_session_id": session.call.call_session_id,
            "from": session.call.from_,
            "to": session.call.to,
            "direction": session.call.direction,
        },
        "attempts": session.attempt,
        "started_at": iso(session.started_at),
        "ended_at": iso(at),
        "transcript": [
            {"role": m.role, "content": m.content, "attempt": m.attempt} for m in session.transcript
        ],
    }
    if session.resumed_from is not None:
        submission["resumed_from"] = session.resumed_from
    return submission
