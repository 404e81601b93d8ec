"""HTTP hardening: integers in ASCII digits only, logout by POST, sign-in rate limit, slow clients."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from collector.config import load_settings
from collector.runtime import build_runtime
from collector.web import serving
from collector.web.auth import COOKIE_NAME, SignInLimiter
from collector.web.digits import ascii_int
from tests.api.conftest import FIXTURES, TOKEN, Server
from tests.api.test_api import assert_error
from tests.harness import write_config

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


# -- slow clients: a head within HEAD_TIMEOUT_SECONDS, a body within BODY_TIMEOUT_SECONDS ---

HEAD, BODY = 0.4, 0.8  # short deadlines for the tests; the defaults are 10 s and 30 s


@asynccontextmanager
async def deadline_server(tmp: Path, parser: str) -> AsyncIterator[tuple[str, int]]:
    """The real `serving.serve` (sandbox mode) with short deadlines; yields (host, port)."""
    cfg = write_config(tmp / "collector.toml", FIXTURES / "forms", f'admin_token = "{TOKEN}"\n')
    runtime = build_runtime(load_settings(cfg, {}), {})
    sock = serving.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    runtime.self_url = serving.self_url("127.0.0.1", port)
    server, task = await serving.serve(
        runtime, sock, asyncio.Event(), head_timeout=HEAD, body_timeout=BODY, parser=parser
    )
    used = server.config.http_protocol_class
    assert used.__name__ == {"h11": "DeadlineH11Protocol"}.get(parser, "DeadlineHttpToolsProtocol")
    assert (used.head_timeout, used.body_timeout) == (HEAD, BODY)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def closed_after(host: str, port: int, *sends: bytes) -> tuple[float, bytes]:
    """Send the given pieces, then how long until the server closes, and what it said."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    try:
        for piece in sends:
            writer.write(piece)
            await writer.drain()
        said = await asyncio.wait_for(reader.read(), 10)  # until EOF
        return time.monotonic() - started, said
    finally:
        writer.close()


PARSERS = pytest.mark.parametrize("parser", ["httptools", "h11"])


def test_the_default_deadlines_are_ten_and_thirty_seconds() -> None:
    assert (serving.HEAD_TIMEOUT_SECONDS, serving.BODY_TIMEOUT_SECONDS) == (10.0, 30.0)
    default = serving.http_protocol()
    assert (default.head_timeout, default.body_timeout) == (10.0, 30.0)  # type: ignore[attr-defined]
    assert serving.http_protocol(parser="h11") is serving.DeadlineH11Protocol
    assert inspect.signature(serving.serve).parameters["head_timeout"].default == 10.0
    assert inspect.signature(serving.serve).parameters["body_timeout"].default == 30.0


@PARSERS
async def test_a_head_that_never_ends_is_closed_after_the_head_timeout(
    tmp_path: Path, parser: str
) -> None:
    async with deadline_server(tmp_path, parser) as (host, port):
        for sends in ((), (b"GET /healthz HTTP/1.1\r\nHost: x\r\n",), (b"POST /lo",)):
            took, said = await closed_after(host, port, *sends)
            assert HEAD * 0.9 <= took < HEAD + 2, (sends, took)
            assert said.startswith(b"HTTP/1.1 408 "), said


BODY_PATHS = {
    "/login": b"408",
    "/webhooks/telnyx": b"408",
    "/api/simulate": b"408",
    "/api/sessions/nope/cancel": b"404",  # answered before its body; closed all the same
}


@PARSERS
async def test_a_body_that_never_ends_is_closed_after_the_body_timeout(
    tmp_path: Path, parser: str
) -> None:
    async def one(path: str, answer: bytes, chunked: bool) -> None:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\n"
            + ("Transfer-Encoding: chunked" if chunked else "Content-Length: 100")
            + "\r\n\r\n"
        ).encode()
        took, said = await closed_after(host, port, head, b"20\r\n{" if chunked else b'{"fo')
        assert BODY * 0.9 <= took < BODY + 2, (path, chunked, took)
        assert said.startswith(b"HTTP/1.1 " + answer + b" "), (path, chunked, said)
        assert said.count(b"HTTP/1.1 ") == 1, said

    async with deadline_server(tmp_path, parser) as (host, port):
        await asyncio.gather(*(one(p, a, c) for p, a in BODY_PATHS.items() for c in (False, True)))


@PARSERS
async def test_prompt_requests_keep_alive_and_streams_outlive_both_deadlines(
    tmp_path: Path, parser: str
) -> None:
    async with deadline_server(tmp_path, parser) as (host, port):
        url = f"http://{host}:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, timeout=10, headers=auth) as client:
            for _ in range(3):  # one kept-alive connection, idle between requests
                assert (await client.get("/healthz")).status_code == 200
                await asyncio.sleep(HEAD / 2)
            async with client.stream("GET", "/api/events") as stream:
                assert stream.status_code == 200
                lines: list[str] = []

                async def read() -> None:
                    async for line in stream.aiter_lines():
                        lines.append(line)

                reading = asyncio.create_task(read())
                await asyncio.sleep(HEAD + BODY + 0.2)  # past both deadlines
                assert not reading.done()  # still open: no EOF, no error
                reading.cancel()
                assert any("collector live events" in line for line in lines)
            # a body that arrives slowly, but within the deadline, is read
            reader, writer = await asyncio.open_connection(host, port)
            body = b'{"form": "nope"}'
            writer.write(
                b"POST /api/simulate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            for i in range(0, len(body), 4):
                await asyncio.sleep(BODY / 8)
                writer.write(body[i : i + 4])
            said = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert said.startswith(b"HTTP/1.1 404 "), said
