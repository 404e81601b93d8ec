"""The admin API under /api: forms, sessions, cancel, calls, simulate, and the live streams.

Every answer is JSON; every error is `{"error": {"code", "message"}}` with its status
(400 bad query or body, 401 no or wrong token, 403 cross-site cookie use, 404 unknown,
409 conflict, 413 a body over 64 KiB, 422 a body that parses but cannot be used).
`GET /openapi.json` documents it (collector.web.api.openapi). Authentication is
collector.web.auth's guard around the mount. Each handler is a module-level function that
reads the app's `WebContext` (collector.web.context); an `ApiError` it raises is its answer
(collector.web.api.errors).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from collector.core.session import events as E
from collector.core.session.submission import iso
from collector.web.api.calls import place_call
from collector.web.api.errors import ApiError, install_error_handlers, json_response
from collector.web.api.json_body import MAX_BODY, read_json
from collector.web.api.openapi import openapi_document
from collector.web.api.pages import DEAD_EVENTS, SESSIONS, parse_limit
from collector.web.context import web
from collector.web.digits import ascii_int
from collector.web.presentation import STATES, form_detail, form_summary, session_summary

if TYPE_CHECKING:
    from collector.core.session.model import Session
    from collector.records import DeadEventRow
    from collector.web.auth import Auth

__all__ = [
    "MAX_BODY",
    "ApiError",
    "api_routes",
    "install_error_handlers",
    "json_response",
    "openapi_document",
    "read_json",
]

log = structlog.get_logger("collector.api")

SIMULATE_WAIT_SECONDS = 5.0
_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


# -- parsing --------------------------------------------------------------------------------


def parse_since(value: str) -> float:
    """ISO 8601 (a naive time is UTC) or seconds since the epoch."""
    text = value.strip()
    if _EPOCH.fullmatch(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400,
            "invalid_parameter",
            "since: expected an ISO 8601 time (2025-01-31T12:00:00Z) or seconds since the epoch",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Times are shown rounded to the microsecond: a `started_at` copied from this API must
    # still include its own session, so the bound is inclusive at that resolution.
    return parsed.timestamp() - 1e-6


def dead_event_view(row: DeadEventRow) -> dict[str, Any]:
    """A dead event as the API shows it (the store keeps no body, only the redacted error)."""
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "call_control_id": row.call_control_id,
        "session_id": row.session_id,
        "stage": row.stage,
        "error": row.error,
        "received_at": iso(row.received_at),
    }


def parse_last_event_id(value: str | None) -> int | None:
    """None without one; 400 for anything but the (ASCII digit) id of an event we sent."""
    text = (value or "").strip()
    if not text:
        return None
    after = ascii_int(text, max_digits=18)
    if after is None:
        raise ApiError(
            400, "invalid_parameter", "Last-Event-ID: expected the id of an event (digits 0-9)"
        )
    return after


# -- handlers -------------------------------------------------------------------------------


async def list_forms(request: Request) -> Response:
    return json_response({"forms": [form_summary(f) for f in web(request).forms.values()]})


async def get_form(request: Request) -> Response:
    form = web(request).forms.get(request.path_params["id"])
    if form is None:
        raise ApiError(404, "not_found", "no such form")
    return json_response(form_detail(form))


async def list_sessions(request: Request) -> Response:
    ctx = web(request)
    q = request.query_params
    state = q.get("state")  # given empty: refused, as its enum says, not taken as absent
    if state is not None and state not in STATES:
        raise ApiError(400, "invalid_parameter", f"state: one of {', '.join(STATES)}")
    since = parse_since(q["since"]) if "since" in q else None
    limit = parse_limit(q.get("limit"))
    before = SESSIONS.decode(q["cursor"]) if q.get("cursor") else None
    form = q.get("form") or None
    page, cursor = await SESSIONS.page(
        lambda n: ctx.store.list_sessions(
            state=state, form=form, since=since, limit=n, before=before
        ),
        limit,
    )
    forms = ctx.forms
    return json_response(
        {
            "sessions": [session_summary(s, forms.get(s.form or "")) for s in page],
            "next_cursor": cursor,
        }
    )


async def _session(request: Request, session_id: str) -> Session:
    session = await web(request).store.session(session_id)
    if session is None:
        raise ApiError(404, "not_found", "no such session")
    return session


async def get_session(request: Request) -> Response:
    session = await _session(request, request.path_params["id"])
    return json_response(await web(request).session_view(session))


async def cancel_session(request: Request) -> Response:
    ctx = web(request)
    session = await _session(request, request.path_params["id"])
    body = await read_json(request, required=False)
    reason = "cancelled by operator"
    if body is not None:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "the body must be a JSON object")
        unknown = set(body) - {"reason"}
        if unknown:
            raise ApiError(422, "invalid_body", f"unknown key(s): {', '.join(sorted(unknown))}")
        given = body.get("reason")
        if given is not None:
            if not isinstance(given, str) or len(given) > 200:
                raise ApiError(422, "invalid_body", "reason: a string of at most 200 characters")
            reason = given.strip() or reason
    if session.terminal:
        raise ApiError(409, "already_finished", f"the session is already {session.state.value}")
    ccid = session.call.call_control_id
    await ctx.runtime.engine.handle(
        E.Cancel(id=f"~cancel:{uuid.uuid4()}", call_control_id=ccid, at=time.time(), reason=reason)
    )
    log.info("session_cancelled", session_id=session.id, call_control_id=ccid)
    return json_response(await ctx.session_view(await _session(request, session.id)), 202)


async def simulate(request: Request) -> Response:
    ctx = web(request)
    sandbox = ctx.runtime.sandbox
    if sandbox is None:
        raise ApiError(
            409,
            "not_sandbox",
            "simulated calls run only in sandbox mode; this server is live (TELNYX_API_KEY is set)",
        )
    body = await read_json(request, required=True)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    unknown = set(body) - {"form", "answers"}
    if unknown:
        raise ApiError(422, "invalid_body", f"unknown key(s): {', '.join(sorted(unknown))}")
    form_id = body.get("form")
    if not isinstance(form_id, str) or not form_id:
        raise ApiError(422, "invalid_body", "form: the id of a form is required")
    forms = ctx.forms
    if form_id not in forms:
        raise ApiError(404, "not_found", "no such form")
    answers = body.get("answers")
    if answers is not None and not isinstance(answers, dict):
        raise ApiError(422, "invalid_body", "answers: a JSON object of field -> value")
    try:
        ccid = await sandbox.place_call(form_id, answers or None, forms[form_id].fields)
    except ValueError as exc:  # ScriptError, pydantic's ValidationError
        raise ApiError(422, "invalid_answers", f"answers: {str(exc)[:500]}") from None
    session_id = None
    deadline = time.monotonic() + SIMULATE_WAIT_SECONDS
    while time.monotonic() < deadline:
        found = await ctx.runtime.engine.session_for_call(ccid)
        if found is not None:
            session_id = found.id
            break
        await asyncio.sleep(0.02)
    return json_response(
        {
            "call_control_id": ccid,
            "session_id": session_id,
            "form": form_id,
            "dashboard_url": f"/calls/{session_id}" if session_id else None,
        },
        202,
    )


async def list_dead_events(request: Request) -> Response:
    store = web(request).store
    q = request.query_params
    # a parameter given empty is refused, as its schema says, not taken as absent
    since = parse_since(q["since"]) if "since" in q else None
    limit = parse_limit(q.get("limit"))
    before = DEAD_EVENTS.decode(q["cursor"]) if "cursor" in q else None
    event_type = q.get("type") or None
    page, cursor = await DEAD_EVENTS.page(
        lambda n: store.list_dead_events(
            event_type=event_type, since=since, limit=n, before=before
        ),
        limit,
    )
    return json_response(
        {"dead_events": [dead_event_view(row) for row in page], "next_cursor": cursor}
    )


async def events(request: Request) -> Response:
    hub = web(request).hub
    session_id = request.path_params.get("id")
    if session_id is not None:
        await _session(request, session_id)
    if hub.full():
        raise ApiError(503, "too_many_streams", "too many live streams are open; retry later")
    after = parse_last_event_id(
        request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    )

    async def stream() -> AsyncIterator[ServerSentEvent]:
        sub = hub.subscribe(session_id, after)
        try:
            yield ServerSentEvent(comment="collector live events", retry=2000)
            async for event in sub.events():
                yield ServerSentEvent(data=event.data, id=str(event.id))
        finally:
            hub.unsubscribe(sub)

    return EventSourceResponse(
        stream(), ping=hub.ping_seconds, headers={"Cache-Control": "no-store"}
    )


async def openapi(request: Request) -> Response:
    return json_response(web(request).openapi)


API = Router(
    routes=[
        Route("/forms", list_forms, methods=["GET"]),
        Route("/forms/{id}", get_form, methods=["GET"]),
        Route("/sessions", list_sessions, methods=["GET"]),
        Route("/sessions/{id}", get_session, methods=["GET"]),
        Route("/sessions/{id}/cancel", cancel_session, methods=["POST"]),
        Route("/sessions/{id}/events", events, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/events/dead", list_dead_events, methods=["GET"]),
        Route("/simulate", simulate, methods=["POST"]),
        Route("/calls", place_call, methods=["POST"]),
    ]
)


def api_routes(auth: Auth) -> list[BaseRoute]:
    """The /api mount (behind the token) and /openapi.json (open: it holds no data)."""
    return [
        Mount("/api", app=auth.protect_api(API)),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
