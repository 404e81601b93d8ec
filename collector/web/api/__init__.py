"""The admin API under /api: forms, sessions, cancel, simulate, and the live streams.

Every answer is JSON; every error is `{"error": {"code", "message"}}` with its status
(400 bad query or body, 401 no or wrong token, 403 cross-site cookie use, 404 unknown,
409 conflict, 422 a body that parses but cannot be used). `GET /openapi.json` documents
it (collector.web.api.openapi). Authentication is collector.web.auth's guard around the mount.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from collector.core.session import events as E
from collector.core.session.submission import iso
from collector.web.api.openapi import openapi_document
from collector.web.auth import Auth, error_body, unauthorized
from collector.web.digits import ascii_int
from collector.web.live import Hub
from collector.web.presentation import (
    STATES,
    form_detail,
    form_summary,
    session_detail,
    session_summary,
)

if TYPE_CHECKING:
    from collector.adapters.store.rows import DeadEventRow
    from collector.core.session.model import Session
    from collector.runtime import Runtime

__all__ = ["ApiError", "api_routes", "install_error_handlers", "openapi_document"]

log = structlog.get_logger("collector.api")

MAX_BODY = 64 * 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SIMULATE_WAIT_SECONDS = 5.0
_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


class ApiError(Exception):
    """An error answered as {"error": {"code", "message"}} with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        return json_response(error_body(self.code, self.message), self.status)


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return _OrjsonResponse(body, status_code=status)


class _OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


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


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    limit = ascii_int(value.strip(), max_digits=6)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400, "invalid_parameter", f"limit: expected an integer from 1 to {MAX_LIMIT}"
        )
    return limit


def encode_cursor(session: Session) -> str:
    raw = orjson.dumps([session.started_at, session.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(value: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        started_at, session_id = orjson.loads(raw)
        if isinstance(started_at, bool) or not isinstance(started_at, int | float):
            raise ValueError("bad time")
        if not isinstance(session_id, str):
            raise ValueError("bad id")
        return float(started_at), session_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(
            400, "invalid_cursor", "cursor: not a cursor this API gave out (use next_cursor as is)"
        ) from None


def encode_dead_cursor(row: DeadEventRow) -> str:
    raw = orjson.dumps([row.received_at, row.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_dead_cursor(value: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        received_at, row_id = orjson.loads(raw)
        if isinstance(received_at, bool) or not isinstance(received_at, int | float):
            raise ValueError("bad time")
        if isinstance(row_id, bool) or not isinstance(row_id, int) or not 0 <= row_id < 2**63:
            raise ValueError("bad id")
        return float(received_at), row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(
            400, "invalid_cursor", "cursor: not a cursor this API gave out (use next_cursor as is)"
        ) from None


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


async def read_json(request: Request, *, required: bool) -> Any:
    """The JSON body (None when empty and not required); 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY} bytes")
    length = ascii_int(declared)
    if length is not None and length > MAX_BODY:
        raise too_large
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise too_large
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "the client went away") from None
    if not body.strip():
        if required:
            raise ApiError(400, "invalid_json", "a JSON object body is required")
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


# -- routes ---------------------------------------------------------------------------------


def api_routes(runtime: Runtime, hub: Hub, auth: Auth) -> list[BaseRoute]:
    """The /api mount (behind the token) and /openapi.json (open: it holds no data)."""
    store = runtime.store
    forms = runtime.forms

    def handler(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except ApiError as exc:
                return exc.response()

        endpoint.__name__ = fn.__name__
        return endpoint

    async def list_forms(request: Request) -> Response:
        return json_response({"forms": [form_summary(f) for f in forms.values()]})

    async def get_form(request: Request) -> Response:
        form = forms.get(request.path_params["id"])
        if form is None:
            raise ApiError(404, "not_found", "no such form")
        return json_response(form_detail(form))

    async def list_sessions(request: Request) -> Response:
        q = request.query_params
        state = q.get("state")  # given empty: refused, as its enum says, not taken as absent
        if state is not None and state not in STATES:
            raise ApiError(400, "invalid_parameter", f"state: one of {', '.join(STATES)}")
        since = parse_since(q["since"]) if "since" in q else None
        limit = parse_limit(q.get("limit"))
        before = decode_cursor(q["cursor"]) if q.get("cursor") else None
        page = await store.list_sessions(
            state=state, form=q.get("form") or None, since=since, limit=limit + 1, before=before
        )
        more = len(page) > limit
        page = page[:limit]
        return json_response(
            {
                "sessions": [session_summary(s, forms.get(s.form or "")) for s in page],
                "next_cursor": encode_cursor(page[-1]) if more and page else None,
            }
        )

    async def load(session_id: str) -> Session:
        session = await store.session(session_id)
        if session is None:
            raise ApiError(404, "not_found", "no such session")
        return session

    async def detail(session: Session) -> dict[str, Any]:
        submission = None
        deliveries: list[Any] = []
        if session.submission_id:
            submission = await store.submission(session.submission_id)
            deliveries = await store.deliveries_for(session.submission_id)
        commands = await store.commands_for(session.id)
        return session_detail(
            session,
            forms.get(session.form or ""),
            submission=submission,
            deliveries=deliveries,
            commands=commands,
        )

    async def get_session(request: Request) -> Response:
        return json_response(await detail(await load(request.path_params["id"])))

    async def cancel_session(request: Request) -> Response:
        session = await load(request.path_params["id"])
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
                    raise ApiError(
                        422, "invalid_body", "reason: a string of at most 200 characters"
                    )
                reason = given.strip() or reason
        if session.terminal:
            raise ApiError(409, "already_finished", f"the session is already {session.state.value}")
        ccid = session.call.call_control_id
        await runtime.engine.handle(
            E.Cancel(
                id=f"~cancel:{uuid.uuid4()}", call_control_id=ccid, at=time.time(), reason=reason
            )
        )
        log.info("session_cancelled", session_id=session.id, call_control_id=ccid)
        return json_response(await detail(await load(session.id)), 202)

    async def simulate(request: Request) -> Response:
        sandbox = runtime.sandbox
        if sandbox is None:
            raise ApiError(
                409,
                "not_sandbox",
                "simulated calls run only in sandbox mode; this server is live"
                " (TELNYX_API_KEY is set)",
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
            found = await runtime.engine.session_for_call(ccid)
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
        q = request.query_params
        # a parameter given empty is refused, as its schema says, not taken as absent
        since = parse_since(q["since"]) if "since" in q else None
        limit = parse_limit(q.get("limit"))
        before = decode_dead_cursor(q["cursor"]) if "cursor" in q else None
        page = await store.list_dead_events(
            event_type=q.get("type") or None, since=since, limit=limit + 1, before=before
        )
        more = len(page) > limit
        page = page[:limit]
        return json_response(
            {
                "dead_events": [dead_event_view(row) for row in page],
                "next_cursor": encode_dead_cursor(page[-1]) if more and page else None,
            }
        )

    async def events(request: Request) -> Response:
        session_id = request.path_params.get("id")
        if session_id is not None:
            await load(session_id)
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

    router = Router(
        routes=[
            Route("/forms", handler(list_forms), methods=["GET"]),
            Route("/forms/{id}", handler(get_form), methods=["GET"]),
            Route("/sessions", handler(list_sessions), methods=["GET"]),
            Route("/sessions/{id}", handler(get_session), methods=["GET"]),
            Route("/sessions/{id}/cancel", handler(cancel_session), methods=["POST"]),
            Route("/sessions/{id}/events", handler(events), methods=["GET"]),
            Route("/events", handler(events), methods=["GET"]),
            Route("/events/dead", handler(list_dead_events), methods=["GET"]),
            Route("/simulate", handler(simulate), methods=["POST"]),
        ]
    )
    document = openapi_document(list(forms))

    async def openapi(request: Request) -> Response:
        return json_response(document)

    return [
        Mount("/api", app=auth.protect_api(router)),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


# -- errors ---------------------------------------------------------------------------------

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "unprocessable",
}


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path == "/api" or path.startswith("/api/")


def install_error_handlers(app: Any) -> None:
    """Errors under /api answer {"error": {"code", "message"}}, never an HTML traceback."""
    from starlette.exceptions import HTTPException
    from starlette.responses import PlainTextResponse

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not _is_api(request):
            if exc.status_code in (204, 304):
                return Response(status_code=exc.status_code, headers=exc.headers)
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 404 and request.app.state.auth.authenticated(request) is None:
            # a path under /api that no route matches (one with a newline, say) reaches no
            # guard: without credentials it learns no more than any other request
            return unauthorized()
        code = _CODES.get(exc.status_code, "error")
        message = {
            404: "no such API route (see /openapi.json)",
            405: f"method {request.method} is not allowed here",
        }.get(exc.status_code, str(exc.detail))
        response = json_response(error_body(code, message), exc.status_code)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("request_failed", path=request.url.path, error=type(exc).__name__)
        if _is_api(request):
            return json_response(
                error_body("internal_error", "the server failed to answer; see its log"), 500
            )
        return PlainTextResponse("Internal Server Error", status_code=500)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
