"""Sessions, submissions, forms and deliveries as JSON views, with sensitive values masked.

Everything a person sees (the admin API, the live streams, the dashboard) is built here,
so masking happens in one place. A field with `x-collector.sensitive` shows as "•••"
wherever its value would appear: field values, partial results, the embedded submission's
data and fields, delivery errors, notes and conversation summaries. Only the sinks get the
real values.

How a value or a transcript line is masked (speech needs more care than data) is
collector/masking.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from collector.core.session.model import Session, State
from collector.core.session.submission import iso
from collector.web.masking import MASK, SENSITIVE_LINE, Masker

if TYPE_CHECKING:
    from collector.core.forms import Form
    from collector.records import CommandRow, DeliveryRow

__all__ = [
    "MASK",
    "SENSITIVE_LINE",
    "Masker",
    "delivery_view",
    "field_views",
    "form_detail",
    "form_summary",
    "gather_view",
    "iso",
    "session_detail",
    "session_summary",
    "submission_view",
    "transcript_view",
]


def form_summary(form: Form) -> dict[str, Any]:
    return {
        "id": form.id,
        "title": form.title,
        "description": form.description,
        "version": form.version,
        "fields": list(form.fields),
        "required": list(form.required),
        "sensitive_fields": sorted(form.sensitive_fields),
    }


def form_detail(form: Form) -> dict[str, Any]:
    """A form with its exact gather_using_ai parameters and what each field allows."""
    fields = {}
    for name, spec in form.fields.items():
        fields[name] = {
            "title": spec.title,
            "description": spec.description,
            "required": spec.required,
            "sensitive": bool(spec.options.sensitive),
            "max_attempts": spec.attempts_allowed(form),
            "keypad": spec.options.dtmf is not None,
        }
    return {
        **form_summary(form),
        "parameters": form.parameters,
        "gather_options": form.gather_options(),
        "max_attempts": form.options.max_attempts,
        "confirm": form.options.confirm is not None,
        "sinks": list(form.options.sinks) if form.options.sinks else None,
        "field_options": fields,
    }


# -- sessions ------------------------------------------------------------------------------


def _call(session: Session, full: bool = False) -> dict[str, Any]:
    call = session.call
    out: dict[str, Any] = {
        "call_control_id": call.call_control_id,
        "from": call.from_,
        "to": call.to,
        "direction": call.direction,
    }
    if full:
        out.update(
            call_session_id=call.call_session_id,
            call_leg_id=call.call_leg_id,
            alive=session.call_alive,
            hangup_cause=session.hangup_cause,
            machine_detection=session.machine_detection,
        )
    return out


def _field_names(session: Session, form: Form | None) -> list[str]:
    if form is not None:
        return list(form.fields)
    return list(dict.fromkeys([*session.fields, *session.partial]))


def session_summary(session: Session, form: Form | None) -> dict[str, Any]:
    """One item of GET /api/sessions."""
    return {
        "id": session.id,
        "form": session.form,
        "form_version": session.form_version,
        "state": session.state.value,
        "terminal": session.terminal,
        "status": session.status,  # completed, incomplete, abandoned (None: not finished)
        "outcome": session.outcome,  # the status, or an outbound call's: voicemail, busy, ...
        "amd": session.amd,  # who answered an outbound call, as machine detection said
        "call": _call(session),
        "started_at": iso(session.started_at),
        "updated_at": iso(session.updated_at),
        "ended_at": iso(session.ended_at),
        "attempts": session.attempt,
        "fields_filled": session.filled(),
        "fields_total": len(_field_names(session, form)),
    }


def gather_view(session: Session) -> dict[str, Any] | None:
    g = session.gather
    if g is None:
        return None
    return {"kind": g.kind, "attempt": g.attempt, "fields": list(g.fields)}


def field_views(session: Session, form: Form | None, masker: Masker) -> dict[str, Any]:
    """Every field of the form: its value (masked), where it came from, what was wrong."""
    out: dict[str, Any] = {}
    asking = set(session.gather.fields) if session.gather is not None else set()
    # which fields the form's rules require now, given the valid answers
    required_now = (
        form.requirements({n: fs.value for n, fs in session.fields.items() if fs.valid})
        if form is not None
        else {}
    )
    for name in _field_names(session, form):
        spec = form.fields.get(name) if form is not None else None
        state = session.fields.get(name)
        view: dict[str, Any] = {
            "title": (spec.title if spec is not None else None) or name,
            "required": name in required_now,
            "conditional": form is not None and name in form.conditional,
            "sensitive": name in masker.fields,
            "max_attempts": spec.attempts_allowed(form) if spec is not None else None,
            "asking": name in asking,
        }
        if state is not None:
            view.update(
                valid=state.valid,
                source=state.source,
                attempts=state.attempts,
                problems=list(state.problems),
                errors=list(state.errors),
            )
            if state.has_value:
                view["value"] = masker.value(name, state.value)
        else:
            view.update(valid=False, source=None, attempts=0, problems=[], errors=[])
        if name in session.partial:
            view["partial"] = masker.value(name, session.partial[name])
        if view["valid"]:
            view["status"] = "valid"
        elif "partial" in view:
            view["status"] = "hearing"
        elif view["problems"]:
            view["status"] = "invalid"
        elif name in asking:
            view["status"] = "asking"
        elif not session.terminal:
            view["status"] = "waiting"
        else:
            view["status"] = "missing" if view["required"] else "skipped"
        out[name] = view
    return out


def transcript_view(session: Session, masker: Masker) -> list[dict[str, Any]]:
    return [
        {"role": m.role, "content": masker.line(m.role, m.content, m.attempt), "attempt": m.attempt}
        for m in session.transcript
    ]


def submission_view(submission: Mapping[str, Any], masker: Masker) -> dict[str, Any]:
    """The submission as the sinks got it, with sensitive values masked."""
    out = dict(submission)
    out["data"] = masker.values(submission.get("data") or {})
    fields = {}
    for name, entry in (submission.get("fields") or {}).items():
        entry = dict(entry)
        if "value" in entry:
            entry["value"] = masker.value(name, entry["value"])
        fields[name] = entry
    out["fields"] = fields
    out["errors"] = masker.deep(list(submission.get("errors") or []))
    out["transcript"] = [
        {**m, "content": masker.line(str(m.get("role", "")), str(m.get("content", "")), _int(m))}
        for m in submission.get("transcript") or []
        if isinstance(m, Mapping)
    ]
    return out


def _int(line: Mapping[str, Any]) -> int:
    """A stored line's attempt (a line without one counts as the first gather's)."""
    attempt = line.get("attempt")
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0


def delivery_view(row: DeliveryRow, masker: Masker) -> dict[str, Any]:
    return {
        "sink": row.sink,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": masker.text(row.last_error) if row.last_error else None,
        "delivered_at": iso(row.delivered_at),
        "next_attempt_at": iso(row.next_at) if row.state == "pending" else None,
        "replay": row.replay,
    }


def command_view(row: CommandRow, masker: Masker) -> dict[str, Any]:
    """A Telnyx command's fate (its body is left out: re-asks carry the transcript)."""
    return {
        "seq": row.seq,
        "action": row.action,
        "state": row.state,
        "attempts": row.attempts,
        "decided_at": iso(row.decided_at),
        "last_error": masker.text(row.last_error) if row.last_error else None,
    }


def session_detail(
    session: Session,
    form: Form | None,
    *,
    submission: Mapping[str, Any] | None = None,
    deliveries: Iterable[DeliveryRow] = (),
    commands: Iterable[CommandRow] = (),
) -> dict[str, Any]:
    """GET /api/sessions/{id}: everything known about one call, masked."""
    masker = Masker.for_session(session, form)
    return {
        **session_summary(session, form),
        "form_title": form.title if form is not None else None,
        "call": _call(session, full=True),
        "resumed_from": session.resumed_from,
        "gather": gather_view(session),
        "partial": masker.values(session.partial),
        "fields": field_views(session, form, masker),
        "errors": masker.deep([dict(e) for e in session.errors]),
        "transcript": transcript_view(session, masker),
        "notes": [{**masker.deep(n), "at": iso(n.get("at"))} for n in session.notes],
        "conversation": [{**masker.deep(c), "at": iso(c.get("at"))} for c in session.conversation],
        "deadline": {"kind": session.deadline_kind, "at": iso(session.deadline)}
        if session.deadline is not None
        else None,
        "submission": submission_view(submission, masker) if submission is not None else None,
        "deliveries": [delivery_view(d, masker) for d in deliveries],
        "commands": [command_view(c, masker) for c in commands],
    }


STATES = tuple(s.value for s in State)
