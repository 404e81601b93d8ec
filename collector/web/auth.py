"""Admin authentication: a bearer token for the API, a signed cookie for the dashboard.

* `Authorization: Bearer <token>` with the configured `admin_token`
  (`COLLECTOR_ADMIN_TOKEN`), compared in constant time.
* The dashboard signs in once (`/login`) and gets an HttpOnly, SameSite=Strict cookie
  (Secure over https). The cookie is not the token: it is `v1.<expiry>.<HMAC(token,
  expiry)>`, so it expires on its own and every cookie dies when the token changes. The
  cookie also authenticates the dashboard's EventSource streams and its API calls; for
  those, a state-changing request from another origin is refused (defence in depth on top
  of SameSite=Strict).
* With no token configured, a random one is made when the app is created and a sign-in URL
  is logged, as notebook servers do.
* A request is never trusted because it comes from loopback.
* Sign-in (`/login` with a token) is rate-limited per client address: after
  `SIGN_IN_LIMIT` failures within `SIGN_IN_WINDOW_SECONDS`, every attempt from that
  address answers 429 with Retry-After until the oldest failure is a window old. The
  addresses are kept in memory, at most `SIGN_IN_MAX_ADDRESSES` of them (least recently
  failed forgotten first). Each failure is logged once, without the token tried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import structlog
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from collector.web.digits import ascii_int

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from collector.runtime import Runtime

COOKIE_NAME = "collector_session"
COOKIE_MAX_AGE = 7 * 86400
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGN_IN_LIMIT = 10  # failed sign-ins per address and window, then 429
SIGN_IN_WINDOW_SECONDS = 60.0
SIGN_IN_MAX_ADDRESSES = 10_000  # an LRU: memory stays bounded under a spray of addresses


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


class SignInLimiter:
    """Failed sign-ins per client address in a sliding window, for at most
    `max_addresses` addresses (an LRU: the least recently failed is forgotten first)."""

    def __init__(
        self,
        limit: int = SIGN_IN_LIMIT,
        window: float = SIGN_IN_WINDOW_SECONDS,
        max_addresses: int = SIGN_IN_MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None when it may now."""
        now = self.clock()
        times = self._recent(address, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[-self.limit] + self.window - now))

    def failed(self, address: str) -> int:
        """Record a failure; returns the failures of `address` in the window."""
        now = self.clock()
        times = self._recent(address, now)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.limit)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        times.append(now)
        return len(times)

    def __len__(self) -> int:
        return len(self._failures)


class Auth:
    """Checks requests against the admin token."""

    def __init__(
        self, token: str, *, generated: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        if not token:
            raise ValueError("the admin token must not be empty")
        self.token = token
        self.generated = generated
        self.clock = clock
        self._key = hashlib.sha256(b"collector-dashboard-cookie\0" + token.encode()).digest()
        self.sign_ins = SignInLimiter()

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> Auth:
        """The configured token, or a fresh random one announced with a sign-in URL."""
        configured = (runtime.settings.admin_token or "").strip()
        if configured:
            return cls(configured)
        auth = cls(secrets.token_urlsafe(32), generated=True)
        settings = runtime.settings
        base = runtime.self_url or f"http://{settings.host}:{settings.port}"
        structlog.get_logger("collector").warning(
            "admin_token_generated",
            sign_in=auth.sign_in_url(base),
            hint="set COLLECTOR_ADMIN_TOKEN (or admin_token) to choose the token yourself",
        )
        return auth

    def sign_in_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/login?token={quote(self.token, safe='')}"

    # -- checks ---------------------------------------------------------------------------

    def token_ok(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        return hmac.compare_digest(candidate.strip().encode(), self.token.encode())

    def bearer_ok(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(credentials)

    def _sign(self, expires: int) -> str:
        return _b64(hmac.new(self._key, f"v1.{expires}".encode(), hashlib.sha256).digest())

    def cookie_value(self) -> str:
        expires = int(self.clock()) + COOKIE_MAX_AGE
        return f"v1.{expires}.{self._sign(expires)}"

    def cookie_ok(self, value: str | None) -> bool:
        if not value:
            return False
        parts = value.split(".")
        expires = ascii_int(parts[1]) if len(parts) == 3 and parts[0] == "v1" else None
        if expires is None or expires < self.clock():
            return False
        return hmac.compare_digest(parts[2].encode(), self._sign(expires).encode())

    def authenticated(self, conn: HTTPConnection) -> str | None:
        """How the request proves itself: "bearer", "cookie", or None."""
        if self.bearer_ok(conn.headers.get("authorization")):
            return "bearer"
        if self.cookie_ok(conn.cookies.get(COOKIE_NAME)):
            return "cookie"
        return None

    @staticmethod
    def cross_origin(conn: HTTPConnection) -> bool:
        """Whether a browser says this request comes from another site."""
        origin = conn.headers.get("origin")
        if origin:
            own = f"{conn.url.scheme}://{conn.url.netloc}"
            return origin.rstrip("/") != own
        return conn.headers.get("sec-fetch-site") == "cross-site"

    # -- cookie ---------------------------------------------------------------------------

    def set_cookie(self, response: Response, conn: HTTPConnection) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.cookie_value(),
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=conn.url.scheme == "https",
        )

    @staticmethod
    def clear_cookie(response: Response, conn: HTTPConnection) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            httponly=True,
            samesite="strict",
            secure=conn.url.scheme == "https",
        )

    # -- guard ----------------------------------------------------------------------------

    def protect_api(self, app: ASGIApp) -> ASGIApp:
        """Wrap an ASGI app: 401 JSON without credentials, 403 for cross-site cookie use."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            conn = HTTPConnection(scope)
            how = self.authenticated(conn)
            response: Response | None = None
            if how is None:
                response = unauthorized()
            elif how == "cookie" and scope["method"] in _UNSAFE and self.cross_origin(conn):
                response = JSONResponse(
                    error_body("forbidden", "cross-origin request refused"), status_code=403
                )
            if response is not None:
                await response(scope, receive, send)
                return
            await app(scope, receive, send)

        return guarded


def unauthorized() -> Response:
    """The API's 401: what any request under /api without credentials gets."""
    return JSONResponse(
        error_body(
            "unauthorized",
            "send Authorization: Bearer <admin token> (COLLECTOR_ADMIN_TOKEN),"
            " or sign in at /login",
        ),
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="collector"'},
    )
