"""Admin auth over real HTTP: the bearer token, the dashboard's cookie, the generated token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from collector.web.auth import COOKIE_MAX_AGE, COOKIE_NAME, Auth
from tests.web.conftest import TOKEN, Server, assert_error, sandbox_server

pytestmark = pytest.mark.anyio


async def test_the_api_needs_the_bearer_token(server: Server) -> None:
    anon = server.anon
    for path in ("/api/forms", "/api/sessions", "/api/sessions/x", "/api/events"):
        response = await anon.get(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    for header in (f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
        assert_error(await anon.get("/api/forms", headers={"Authorization": header}), 401)
    assert_error(await anon.post("/api/simulate", json={"form": "contact"}), 401)
    ok = await anon.get("/api/forms", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert (
        await anon.get("/api/forms", headers={"Authorization": f"bearer {TOKEN}"})
    ).status_code == 200


async def test_loopback_is_not_trusted_and_the_open_routes_stay_open(server: Server) -> None:
    # every request in this test comes from 127.0.0.1: that alone proves nothing
    assert (await server.anon.get("/api/sessions")).status_code == 401
    assert (await server.anon.get("/healthz")).status_code == 200
    assert (await server.anon.get("/metrics")).status_code == 200
    assert (await server.anon.get("/openapi.json")).status_code == 200
    hook = await server.anon.post("/webhooks/telnyx", content=b"{}")
    assert hook.status_code == 401 and hook.json()["error"]["code"] == "invalid_signature"


async def test_dashboard_pages_redirect_to_the_sign_in_form(server: Server) -> None:
    for path, target in (
        ("/", "/"),
        ("/calls/abc", "/calls/abc"),
        ("/?state=completed", "/?state=completed"),
    ):
        response = await server.anon.get(path)
        assert response.status_code == 303, path
        location = urlsplit(response.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == [target]
    assert (await server.anon.get("/partials/calls")).status_code == 401
    form = await server.anon.get("/login")
    assert form.status_code == 200 and 'name="token"' in form.text
    assert "script-src 'self'" in form.headers["content-security-policy"]
    static = await server.anon.get("/static/dashboard.css")
    assert static.status_code == 200


async def test_signing_in_sets_a_strict_httponly_cookie_that_opens_dashboard_and_api(
    server: Server,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as browser:
        wrong = await browser.post("/login", data={"token": "nope", "next": "/"})
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert COOKIE_NAME not in browser.cookies
        response = await browser.post("/login", data={"token": TOKEN, "next": "/calls/x"})
        assert response.status_code == 303 and response.headers["location"] == "/calls/x"
        set_cookie = response.headers["set-cookie"]
        assert f"{COOKIE_NAME}=" in set_cookie
        attrs = {a.strip().lower() for a in set_cookie.split(";")}
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
        assert "secure" not in attrs  # plain http here
        cookie = browser.cookies[COOKIE_NAME]
        assert TOKEN not in cookie
        page = await browser.get("/")
        assert page.status_code == 200 and "Calls" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        assert (await browser.get("/api/sessions")).status_code == 200
        # the cookie also opens the event stream
        async with browser.stream("GET", "/api/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        # a state-changing request with the cookie from another origin is refused
        cross = await browser.post(
            "/api/simulate", json={"form": "contact"}, headers={"Origin": "https://evil.example"}
        )
        assert_error(cross, 403, "forbidden")
        same = await browser.post(
            "/api/simulate", json={"form": "nope"}, headers={"Origin": server.url}
        )
        assert_error(same, 404)
        # a forged or expired cookie is nothing
        for forged in (cookie[:-2] + "xx", "v1.1.abc", TOKEN, "", cookie + "."):
            headers = {"Cookie": f"{COOKIE_NAME}={forged}"}
            assert (await server.anon.get("/api/sessions", headers=headers)).status_code == 401
            assert (await server.anon.get("/", headers=headers)).status_code == 303
        out = await browser.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert COOKIE_NAME not in browser.cookies
        assert (await browser.get("/")).status_code == 303


async def test_sign_in_refuses_open_redirects(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as browser:
        for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "calls"):
            response = await browser.post("/login", data={"token": TOKEN, "next": target})
            assert response.status_code == 303 and response.headers["location"] == "/", target


async def test_the_cookie_is_secure_over_https(server: Server) -> None:
    # uvicorn honours X-Forwarded-Proto from a trusted proxy (loopback by default)
    response = await server.anon.post(
        "/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert response.status_code == 303
    attrs = {a.strip().lower() for a in response.headers["set-cookie"].split(";")}
    assert "secure" in attrs


async def test_without_a_configured_token_one_is_generated_and_a_sign_in_url_logged(
    tmp_path: Path,
) -> None:
    with capture_logs() as logs:
        async with sandbox_server(tmp_path, token=None) as server:
            generated = [e for e in logs if e.get("event") == "admin_token_generated"]
            assert len(generated) == 1 and generated[0]["log_level"] == "warning"
            sign_in = generated[0]["sign_in"]
            assert sign_in.startswith(f"{server.url}/login?token=")
            token = parse_qs(urlsplit(sign_in).query)["token"][0]
            assert len(token) >= 32 and token == server.token
            assert server.app.state.web.auth.generated is True
            assert server.runtime.settings.admin_token is None
            assert (await server.anon.get("/api/forms")).status_code == 401
            ok = await server.anon.get("/api/forms", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
            async with httpx.AsyncClient(timeout=10) as browser:
                response = await browser.get(sign_in)
                assert response.status_code == 303 and response.headers["location"] == "/"
                assert COOKIE_NAME in browser.cookies
                assert (await browser.get(f"{server.url}/")).status_code == 200
                wrong = await browser.get(f"{server.url}/login?token=wrong")
                assert wrong.status_code == 401
    # another server gets another token
    again = tmp_path / "again"
    again.mkdir()
    with capture_logs():
        async with sandbox_server(again, token=None) as other:
            assert other.token != token


async def test_a_configured_token_is_not_logged(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with sandbox_server(tmp_path, token="configured-token-abc") as server:
            assert server.app.state.web.auth.generated is False
            assert (await server.client.get("/api/forms")).status_code == 200
    assert not [e for e in logs if e.get("event") == "admin_token_generated"]
    assert all("configured-token-abc" not in str(e) for e in logs)


async def test_a_path_under_api_that_no_route_matches_is_a_401_without_credentials(
    tmp_path: Path,
) -> None:
    """A path no route can match (a newline in it) is a 401 before it is a 404: without
    credentials nothing under /api says more than that."""
    async with sandbox_server(tmp_path, pace=0.01) as server, httpx.AsyncClient() as client:
        bare = await client.get(f"{server.url}/api/sessions/a%0Ab")
        signed_in = await client.get(
            f"{server.url}/api/sessions/a%0Ab",
            headers={"Authorization": f"Bearer {server.token}"},
        )
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "unauthorized"
    assert signed_in.status_code == 404


def test_the_dashboard_cookie_expires_and_dies_with_the_token() -> None:
    now = [1_000_000.0]
    auth = Auth("token-a", clock=lambda: now[0])
    cookie = auth.cookie_value()
    assert auth.cookie_ok(cookie)
    assert not Auth("token-b", clock=lambda: now[0]).cookie_ok(cookie)
    now[0] += COOKIE_MAX_AGE + 1
    assert not auth.cookie_ok(cookie)
    assert not auth.cookie_ok(None) and not auth.cookie_ok("v1.x.y") and not auth.cookie_ok("a.b")
    assert auth.token_ok("token-a") and not auth.token_ok("token-") and not auth.token_ok("")
    assert auth.bearer_ok("Bearer token-a") and not auth.bearer_ok("Token token-a")
