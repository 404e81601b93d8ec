"""The dashboard: live and recent calls, one call's page, sign-in, and the controls that
place a call (simulate one, in sandbox mode; dial a number, with `[outbound]` or in sandbox).

Plain server-rendered HTML (Jinja2 templates/*.html, autoescaped; see
collector.web.dashboard.render) plus one small script (static/dashboard.js) that listens on
the API's EventSource streams and re-fetches the server-rendered fragment of the page when
an event arrives. No build step,
no CDN, no inline script: every page carries a strict Content-Security-Policy.

Routes: `/` (calls), `/calls/{id}`, `/partials/calls`, `/partials/calls/{id}` (the live
fragments), `/login` (GET form, GET ?token=..., POST), `/logout` (POST only: the nav's
Sign out is a form button, and another origin's POST is refused as for the API), `/static/*`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from collector.web.api import ApiError
from collector.web.api.pages import DEFAULT_LIMIT, SESSIONS
from collector.web.body import ClientGone, PayloadTooLarge, request_body
from collector.web.context import web
from collector.web.dashboard.render import templates
from collector.web.presentation import STATES, form_summary, session_summary

__all__ = ["CSP", "dashboard_routes"]

log = structlog.get_logger("collector.dashboard")

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
PAGE_SIZE = DEFAULT_LIMIT
LOGIN_BODY_BYTES = 8192


def html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=SECURITY_HEADERS)


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    """A template, with the layout's mode and the security headers."""
    runtime = web(request).runtime
    context.setdefault("events", "")
    context.update(
        mode=runtime.mode,
        mode_title="Sandbox: a built-in Telnyx simulator plays the calls"
        if runtime.sandbox is not None
        else "Live: calls go through Telnyx",
    )
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers=SECURITY_HEADERS
    )


def safe_next(value: str | None) -> str:
    """Only a path on this site: never //host or a scheme."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def signed_in(request: Request) -> bool:
    return web(request).auth.authenticated(request) is not None


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def not_found(request: Request, message: str) -> Response:
    return page(request, "notfound.html", 404, title="Not found", message=message)


def filters_of(request: Request) -> dict[str, str]:
    q = request.query_params
    state = q.get("state", "")
    return {
        "state": state if state in STATES else "",
        "form": q.get("form", "") if q.get("form", "") in web(request).forms else "",
    }


async def calls_list(request: Request) -> dict[str, Any]:
    """What the calls table shows: a page of sessions, newest first, and the filters."""
    ctx = web(request)
    filters = filters_of(request)
    before = None
    cursor = request.query_params.get("cursor")
    if cursor:
        try:
            before = SESSIONS.decode(cursor)
        except ApiError:
            before = None
    found, next_cursor = await SESSIONS.page(
        lambda n: ctx.store.list_sessions(
            state=filters["state"] or None, form=filters["form"] or None, limit=n, before=before
        ),
        PAGE_SIZE,
    )
    sessions = [session_summary(s, ctx.forms.get(s.form or "")) for s in found]
    return {"sessions": sessions, "next_cursor": next_cursor, "filters": filters}


async def index(request: Request) -> Response:
    if not signed_in(request):
        return to_login(request)
    forms = web(request).forms
    runtime = web(request).runtime
    listed = await calls_list(request)
    query = urlencode({k: v for k, v in listed["filters"].items() if v})
    return page(
        request,
        "calls.html",
        title="Calls",
        events="" if request.query_params.get("cursor") else "/api/events",
        sandbox=runtime.sandbox is not None,
        can_dial=runtime.sandbox is not None or runtime.settings.outbound is not None,
        simulate_forms=[form_summary(f) for f in forms.values()],
        form_ids=list(forms),
        fragment_url="/partials/calls" + (f"?{query}" if query else ""),
        **listed,
    )


async def calls_partial(request: Request) -> Response:
    if not signed_in(request):
        return html("sign in first", 401)
    return templates.TemplateResponse(
        request, "_calls_table.html", await calls_list(request), headers=SECURITY_HEADERS
    )


async def call_view(request: Request) -> dict[str, Any] | None:
    ctx = web(request)
    session = await ctx.store.session(request.path_params["id"])
    if session is None:
        return None
    return await ctx.session_view(session, commands=False)


async def call_page(request: Request) -> Response:
    if not signed_in(request):
        return to_login(request)
    view = await call_view(request)
    if view is None:
        return not_found(
            request,
            "There is no call with this id (finished calls are purged after the retention period).",
        )
    return page(
        request,
        "call.html",
        title=view.get("form_title") or "Call",
        events=f"/api/sessions/{view['id']}/events",
        view=view,
    )


async def call_partial(request: Request) -> Response:
    if not signed_in(request):
        return html("sign in first", 401)
    view = await call_view(request)
    if view is None:
        return html("no such call", 404)
    return templates.TemplateResponse(
        request, "_call_panels.html", {"view": view}, headers=SECURITY_HEADERS
    )


def login_page(request: Request, next_path: str, error: str = "", status: int = 200) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"error": error, "next": next_path},
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def signed_in_redirect(request: Request, next_path: str) -> Response:
    response = RedirectResponse(next_path, status_code=303)
    web(request).auth.set_cookie(response, request)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def too_many(request: Request, next_path: str, wait: int) -> Response:
    response = login_page(
        request, next_path, f"Too many sign-in attempts from here; try again in {wait} s.", 429
    )
    response.headers["Retry-After"] = str(wait)
    return response


def refused(request: Request, address: str, via: str) -> None:
    """Count a failed sign-in against its address and log it (never the token)."""
    failures = web(request).auth.sign_ins.failed(address)
    log.warning("sign_in_failed", client=address, via=via, failures=failures)


async def login(request: Request) -> Response:
    auth = web(request).auth
    next_path = safe_next(request.query_params.get("next"))
    token: str | None
    if request.method == "GET":
        token = request.query_params.get("token")
        if token is None:
            if signed_in(request):
                return RedirectResponse(next_path, status_code=303)
            return login_page(request, next_path)
    # rate-limited per address (uvicorn takes it from X-Forwarded-For only when the
    # proxy is trusted, loopback by default: FORWARDED_ALLOW_IPS)
    address = request.client.host if request.client else "unknown"
    wait = auth.sign_ins.retry_after(address)
    if wait is not None:
        return too_many(request, next_path, wait)
    if request.method == "GET":
        if auth.token_ok(token):
            return signed_in_redirect(request, next_path)
        refused(request, address, "link")
        return login_page(request, next_path, "That sign-in link's token is not right.", 401)
    try:
        body = await request_body(request, LOGIN_BODY_BYTES)
    except PayloadTooLarge:
        return login_page(request, next_path, "That request is too large.", 413)
    except ClientGone:
        return Response(status_code=400)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    next_path = safe_next((fields.get("next") or [next_path])[0])
    token = (fields.get("token") or [""])[0]
    if auth.token_ok(token):
        return signed_in_redirect(request, next_path)
    refused(request, address, "form")
    return login_page(request, next_path, "That token is not right.", 401)


async def logout(request: Request) -> Response:
    # POST only (a GET answers 405), and, as for the API's cookie-authenticated POSTs,
    # never from another origin: no other site can sign an operator out
    if web(request).auth.cross_origin(request):
        return html("cross-origin request refused", 403)
    response = RedirectResponse("/login", status_code=303)
    web(request).auth.clear_cookie(response, request)
    return response


def dashboard_routes() -> list[BaseRoute]:
    """The dashboard's pages, fragments, sign-in and static files."""
    return [
        Route("/", index, methods=["GET"]),
        Route("/calls/{id}", call_page, methods=["GET"]),
        Route("/partials/calls", calls_partial, methods=["GET"]),
        Route("/partials/calls/{id}", call_partial, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
