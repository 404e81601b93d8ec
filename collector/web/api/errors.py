"""The API's errors: `{"error": {"code", "message"}}` with their status, never a traceback."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from collector.web.auth import error_body, unauthorized
from collector.web.context import web

__all__ = ["ApiError", "install_error_handlers", "json_response"]

log = structlog.get_logger("collector.api")

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


class ApiError(Exception):
    """An error answered as {"error": {"code", "message"}} with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        return json_response(error_body(self.code, self.message), self.status)


class _OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return _OrjsonResponse(body, status_code=status)


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path == "/api" or path.startswith("/api/")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not _is_api(request):
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 404 and web(request).auth.authenticated(request) is None:
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


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("request_failed", path=request.url.path, error=type(exc).__name__)
    if _is_api(request):
        return json_response(
            error_body("internal_error", "the server failed to answer; see its log"), 500
        )
    return PlainTextResponse("Internal Server Error", status_code=500)


def install_error_handlers(app: Any) -> None:
    """An ApiError raised by a handler is its answer; other errors under /api answer
    {"error": {"code", "message"}}, never an HTML traceback."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
