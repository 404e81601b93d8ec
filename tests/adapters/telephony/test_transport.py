"""The HTTP client under the SDK (CommandHttpClient over aiohttp), on its own, against a
loopback server: what it sends, what it hands back, one kept-alive connection, and its
failures as httpx's exception types (which the SDK turns into APIConnectionError)."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.adapters.telephony.transport import CommandHttpClient
from tests.harness import free_socket, serve

pytestmark = pytest.mark.anyio


class Server:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]], bytes, int]] = []
        self.slow = asyncio.Event()

    async def echo(self, request: Request) -> Response:
        body = await request.body()
        client = request.client
        port = client.port if client is not None else -1
        self.seen.append((request.method, str(request.url), request.headers.items(), body, port))
        return JSONResponse({"ok": True}, status_code=201, headers={"x-reply": "1"})

    async def zipped(self, request: Request) -> Response:
        return Response(
            gzip.compress(b'{"zipped": true}'),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    async def hang(self, request: Request) -> Response:
        await self.slow.wait()
        return Response(b"late")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/echo", self.echo, methods=["POST", "GET"]),
                Route("/zipped", self.zipped),
                Route("/hang", self.hang),
            ]
        )


async def test_a_request_goes_as_built_and_the_whole_response_comes_back() -> None:
    server = Server()
    async with serve(server.app()) as url:
        client = CommandHttpClient(timeout=5)
        try:
            request = client.build_request(
                "POST",
                f"{url}/echo?x=1",
                content=b'{"a": 1}',
                headers=[("authorization", "Bearer K"), ("x-twice", "1"), ("x-twice", "2")],
            )
            response = await client.send(request)
        finally:
            await client.aclose()
    assert (response.status_code, response.json()) == (201, {"ok": True})
    assert response.headers["x-reply"] == "1"
    assert response.reason_phrase == "Created"
    assert response.request is request
    method, seen_url, headers, body, _ = server.seen[0]
    assert (method, seen_url, body) == ("POST", f"{url}/echo?x=1", b'{"a": 1}')
    assert ("authorization", "Bearer K") in headers
    assert [v for k, v in headers if k == "x-twice"] == ["1", "2"]  # both values, in order
    assert "cookie" not in dict(headers)


async def test_requests_share_one_kept_alive_connection() -> None:
    server = Server()
    async with serve(server.app()) as url:
        client = CommandHttpClient(timeout=5)
        try:
            for _ in range(5):
                await client.send(client.build_request("GET", f"{url}/echo"))
        finally:
            await client.aclose()
    assert len({port for *_, port in server.seen}) == 1
    assert len(server.seen) == 5


async def test_a_compressed_response_is_decompressed_once() -> None:
    """aiohttp asks for gzip; the body is decoded once, by httpx (it was decoded twice)."""
    server = Server()
    async with serve(server.app()) as url:
        client = CommandHttpClient(timeout=5)
        try:
            response = await client.send(client.build_request("GET", f"{url}/zipped"))
        finally:
            await client.aclose()
    assert response.json() == {"zipped": True}


async def test_a_read_past_the_timeout_is_an_httpx_timeout() -> None:
    server = Server()
    async with serve(server.app()) as url:
        client = CommandHttpClient(timeout=0.2)
        try:
            with pytest.raises(httpx.TimeoutException):
                await client.send(client.build_request("GET", f"{url}/hang"))
            # a per-request timeout wins over the client's
            request = client.build_request("GET", f"{url}/hang", timeout=0.1)
            assert request.extensions["timeout"]["read"] == 0.1
            with pytest.raises(httpx.TimeoutException):
                await client.send(request)
        finally:
            server.slow.set()
            await client.aclose()


async def test_a_refused_connection_is_an_httpx_transport_error() -> None:
    sock = free_socket()  # bound, not listening
    client = CommandHttpClient(timeout=2)
    try:
        with pytest.raises(httpx.TransportError) as caught:
            await client.send(
                client.build_request("GET", f"http://127.0.0.1:{sock.getsockname()[1]}/")
            )
        assert not isinstance(caught.value, httpx.TimeoutException)
    finally:
        await client.aclose()
        sock.close()


async def test_a_closed_client_sends_nothing() -> None:
    server = Server()
    async with serve(server.app()) as url:
        client = CommandHttpClient(timeout=5)
        await client.send(client.build_request("GET", f"{url}/echo"))
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.send(client.build_request("GET", f"{url}/echo"))
    assert len(server.seen) == 1
