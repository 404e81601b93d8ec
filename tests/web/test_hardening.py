"""HTTP hardening: integers in ASCII digits only, logout by POST, the sign-in rate limit
(slow clients: test_serving.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from structlog.testing import capture_logs

from collector.web.auth import COOKIE_NAME, SignInLimiter
from collector.web.digits import ascii_int
from tests.web.conftest import Server, assert_error

pytestmark = pytest.mark.anyio


# -- integers: ASCII digits only --------------------------------------------------------------


def test_only_ascii_digits_make_an_integer() -> None:
    assert ascii_int("12") == 12 and ascii_int(b"12") == 12 and ascii_int("0") == 0
    for odd in ("²", "٣", "1²", " 1", "1 ", "1_0", "-1", "+1", "", "1.0", b"\xb2", b"-1", None):
        assert ascii_int(odd) is None, odd
    assert ascii_int("9" * 18) == int("9" * 18) and ascii_int("9" * 19) is None
    assert ascii_int("123", max_digits=2) is None


async def test_a_superscript_limit_is_a_400(server: Server) -> None:
    for odd in ("²", "٣", "1_0", "-1"):
        response = await server.client.get("/api/sessions", params={"limit": odd})
        assert_error(response, 400, "invalid_parameter")


async def test_a_cookie_with_a_superscript_expiry_is_a_401_not_a_500(server: Server) -> None:
    for odd in ("v1.².x", "v1.٣.x", "v1.1_0.x"):
        cookie = {"Cookie": f"{COOKIE_NAME}={odd}".encode()}
        assert_error(await server.anon.get("/api/sessions", headers=cookie), 401, "unauthorized")
        page = await server.anon.get("/", headers=cookie)
        assert page.status_code == 303  # to the sign-in form
        assert (await server.anon.post("/logout", headers=cookie)).status_code == 303


async def test_a_superscript_last_event_id_is_a_400_not_a_500(server: Server) -> None:
    # a header value is latin-1 on the wire: b"\xb2" is "²"
    for raw in (b"\xb2", "٣".encode(), b"1_0", b"-1"):
        for path in ("/api/events", "/api/sessions/nope/events"):
            response = await server.client.get(path, headers={"Last-Event-ID": raw})
            assert response.status_code in (400, 404), (path, raw, response.text)
        response = await server.client.get("/api/events", headers={"Last-Event-ID": raw})
        assert_error(response, 400, "invalid_parameter")
    response = await server.client.get("/api/events", params={"last_event_id": "²"})
    assert_error(response, 400, "invalid_parameter")


async def test_a_webhook_timestamp_in_odd_digits_is_refused_as_such(server: Server) -> None:
    """The SDK's int() would take the current time as "1_7..."; we do not."""
    now = str(int(time.time()))
    for odd in (f"{now[0]}_{now[1:]}", f"+{now}", b"\xb2"):
        headers = {"telnyx-signature-ed25519": "AAAA", "telnyx-timestamp": odd}
        response = await server.anon.post("/webhooks/telnyx", content=b"{}", headers=headers)
        assert_error(response, 401, "invalid_signature")
        assert "timestamp" in response.json()["error"]["message"], odd


# -- logout is a POST from this site ----------------------------------------------------------


@asynccontextmanager
async def signed_in(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as browser:
        response = await browser.post("/login", data={"token": server.token, "next": "/"})
        assert response.status_code == 303 and COOKIE_NAME in browser.cookies
        yield browser


async def test_logout_is_a_post_from_this_site_only(server: Server) -> None:
    async with signed_in(server) as browser:
        page = await browser.get("/")
        assert '<form method="post" action="/logout"' in page.text
        assert 'href="/logout"' not in page.text
        got = await browser.get("/logout")
        assert got.status_code == 405 and "set-cookie" not in got.headers
        assert (await browser.get("/")).status_code == 200  # still signed in
        for cross in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            refused = await browser.post("/logout", headers=cross)
            assert refused.status_code == 403 and "set-cookie" not in refused.headers
            assert (await browser.get("/")).status_code == 200
        out = await browser.post("/logout", headers={"Origin": server.url})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert COOKIE_NAME not in browser.cookies
        assert (await browser.get("/")).status_code == 303


# -- sign-in rate limit -----------------------------------------------------------------------


def test_the_limiter_slides_and_forgets_the_least_recent_addresses() -> None:
    now = [1000.0]
    limiter = SignInLimiter(limit=3, window=60, max_addresses=2, clock=lambda: now[0])
    for n in (1, 2, 3):
        assert limiter.retry_after("a") is None
        assert limiter.failed("a") == n
        now[0] += 10
    assert limiter.retry_after("a") == 30  # the first failure (t=1000) ages out at 1060
    now[0] = 1060.0
    assert limiter.retry_after("a") is None and limiter.failed("a") == 3
    limiter.failed("b")
    limiter.failed("a")  # "a" is now the most recent: 1020, 1060, 1060
    limiter.failed("c")  # over two addresses: "b" is forgotten
    assert len(limiter) == 2 and limiter.retry_after("a") == 20
    assert limiter.failed("b") == 1  # forgotten ("a" goes now)
    assert limiter.retry_after("a") is None and len(limiter) == 2


async def test_the_eleventh_failed_sign_in_in_a_minute_is_a_429_with_retry_after(
    server: Server,
) -> None:
    me = {"X-Forwarded-For": "203.0.113.7"}  # uvicorn trusts it from loopback
    with capture_logs() as logs:
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=me) as browser:
            for n in range(10):
                if n % 2:
                    wrong = await browser.post("/login", data={"token": f"guess-{n}"})
                else:
                    wrong = await browser.get("/login", params={"token": f"guess-{n}"})
                assert wrong.status_code == 401, n
            for attempt in ({"token": "guess-10"}, {"token": server.token}):
                limited = await browser.post("/login", data=attempt)
                assert limited.status_code == 429 and COOKIE_NAME not in browser.cookies
                assert 1 <= int(limited.headers["retry-after"]) <= 60
                assert "Too many sign-in attempts" in limited.text
            link = await browser.get("/login", params={"token": server.token})
            assert link.status_code == 429 and "retry-after" in link.headers
            assert (await browser.get("/login")).status_code == 200  # the form itself is open
        # another address is not held back, and the bearer API is not a sign-in
        async with signed_in(server) as other:
            assert (await other.get("/")).status_code == 200
        assert (await server.client.get("/api/forms")).status_code == 200
    failed = [e for e in logs if e.get("event") == "sign_in_failed"]
    assert len(failed) == 10
    assert {e["client"] for e in failed} == {"203.0.113.7"}
    assert [e["failures"] for e in failed] == list(range(1, 11))
    assert {e["via"] for e in failed} == {"link", "form"}
    assert all("guess-" not in str(e) and server.token not in str(e) for e in logs)
