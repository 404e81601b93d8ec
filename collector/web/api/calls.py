"""POST /api/calls: dial a number into a form (an outbound call).

Every check runs before anything is dialled, and a call that fails one is a 422 naming
each problem: the body's shape, the number (E.164), the form, a `{name}` placeholder of
the form without a value in `variables`, a `prefill` value its field refuses, a `resume`
of another form's, another number's, a live or a completed session, and dialling without
`[outbound]` in live mode (sandbox mode dials from the simulator's own number). Then the
new session and its `dial` command are saved in one step (collector.core.session.outbound
builds them; the engine applies them), and the command outbox places the call: the answer
is 202 with the session's id while the call rings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from collector.core.session import events as E
from collector.core.session.commands import DIAL, Command
from collector.core.session.outbound import (
    dial_problems,
    new_session,
    number_problem,
    pending_call_id,
    resume_of,
    resume_problem,
)
from collector.web.api.errors import ApiError, json_response
from collector.web.api.json_body import read_json
from collector.web.context import WebContext, web

if TYPE_CHECKING:
    from collector.core.forms import Form
    from collector.core.session.model import Session

__all__ = ["CALL_KEYS", "place_call"]

log = structlog.get_logger("collector.api")

CALL_KEYS = frozenset({"to", "form", "variables", "prefill", "resume", "script"})


def _object(body: Mapping[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{key}: a JSON object")
        return {}
    return value


def _dialling(ctx: WebContext) -> tuple[str, str, str, int]:
    """connection_id, from, answering_machine_detection and ring timeout of a dial."""
    out = ctx.runtime.settings.outbound
    if out is not None:
        return (
            out.connection_id,
            out.from_number,
            out.answering_machine_detection,
            out.ring_timeout_seconds,
        )
    sandbox = ctx.runtime.sandbox
    if sandbox is None:
        raise ApiError(
            422,
            "outbound_not_configured",
            "outbound calls are not configured: set [outbound] connection_id and from_number",
        )
    return sandbox.connection_id, sandbox.from_number, "detect", 30


async def _earlier(ctx: WebContext, value: Any, problems: list[str]) -> Session | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append("resume: the id of an earlier session")
        return None
    earlier = await ctx.store.session(value)
    if earlier is None:
        problems.append(f"resume: no session {value!r}")
    return earlier


async def place_call(request: Request) -> Response:
    ctx = web(request)
    body = await read_json(request, required=True)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    unknown = set(body) - CALL_KEYS
    if unknown:
        raise ApiError(422, "invalid_body", f"unknown key(s): {', '.join(sorted(unknown))}")
    connection_id, from_number, detection, ring_timeout = _dialling(ctx)
    problems: list[str] = []
    to = body.get("to")
    wrong_number = number_problem(to)
    form_id = body.get("form")
    form: Form | None = None
    if not isinstance(form_id, str) or not form_id:
        problems.append("form: the id of a form is required")
    else:
        form = ctx.forms.get(form_id)
        if form is None:
            problems.append(f"form: no form {form_id!r} (forms: {', '.join(ctx.forms)})")
    variables = _object(body, "variables", problems)
    prefill = _object(body, "prefill", problems)
    earlier = await _earlier(ctx, body.get("resume"), problems)
    script = body.get("script")
    sandbox = ctx.runtime.sandbox
    if script is not None and sandbox is None:
        problems.append("script: a simulated callee's script is for sandbox mode only")
    elif script is not None and not isinstance(script, dict):
        problems.append("script: a JSON object (a caller script, with its callee)")
    if form is not None:
        problems.extend(dial_problems(form, to, variables, prefill))
    elif wrong_number:
        problems.append(f"to: {wrong_number}")
    if earlier is not None and form is not None and not wrong_number:
        reason = resume_problem(earlier, form.id, str(to))
        if reason:
            problems.append(f"resume: {reason}")
    if problems:
        raise ApiError(422, "invalid_call", "; ".join(problems))
    assert form is not None and isinstance(to, str)
    session_id = str(uuid.uuid4())
    if isinstance(script, dict) and sandbox is not None:
        command_id = Command(DIAL, 1).command_id(session_id)
        try:
            sandbox.expect_dial(command_id, script, form.id, form.fields)
        except ValueError as exc:  # ScriptError, pydantic's ValidationError
            raise ApiError(422, "invalid_call", f"script: {str(exc)[:500]}") from None
    dial = E.Dial(
        id=f"~dial:{session_id}",
        call_control_id=pending_call_id(session_id),
        at=time.time(),
        to=to,
        from_=from_number,
        connection_id=connection_id,
        answering_machine_detection=detection,
        ring_timeout_seconds=ring_timeout,
        variables=variables,
        prefill=prefill,
        resume=resume_of(earlier) if earlier is not None else None,
    )
    outcome = await ctx.runtime.engine.begin(new_session(session_id, dial, form), dial)
    if outcome != "applied":  # decide() or the store refused it: nothing was dialled
        raise ApiError(500, "not_dialled", f"the call could not be started ({outcome})")
    log.info("call_dialled", session_id=session_id, form=form.id, resumes=body.get("resume"))
    return json_response(
        {
            "session_id": session_id,
            "status": "dialing",
            "form": form.id,
            "to": to,
            "resumed_from": earlier.id if earlier is not None else None,
            "dashboard_url": f"/calls/{session_id}",
        },
        202,
    )
