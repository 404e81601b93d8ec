"""Build the submission every sink receives (its shape is pinned by DESIGN.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.core.forms import Form
    from collector.core.session.model import Session

_SUBMISSION_NS = uuid.UUID("0b6f3a52-9d1c-4c61-8f0e-2a7d5e4b9c13")


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


def build_submission(session: Session, form: Form, status: str, at: float) -> dict[str, Any]:
    """The final record of a session, with only validated values in `data`."""
    data = {name: fs.value for name, fs in session.fields.items() if fs.valid}
    required = form.requirements(data)
    verdict = form.validate(data)
    fields: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
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
        entry: dict[str, Any] = {
            "source": state.source,
            "attempts": state.attempts,
            "errors": list(state.errors),
        }
        if name in form.conditional and rule is not None:
            entry["required_by"] = rule  # the rule of the form that asked for it
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
    return {
        "submission_id": submission_id(session.id),
        "session_id": session.id,
        "form": form.id,
        "form_version": form.version,
        "status": status,
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
        "transcript": [m.model_dump() for m in session.transcript],
    }
