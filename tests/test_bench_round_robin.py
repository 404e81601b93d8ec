"""The benchmark's round-robin proxy (bench/round_robin.py): each request, whatever its
connection, goes to the next backend; a connection's requests keep their order; requests
and responses pass byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.round_robin import RoundRobin
from tests.harness import serve

pytestmark = pytest.mark.anyio


def backend(name: str, heard: list[tuple[str, str, bytes]]) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        heard.append((name, request.headers.get("x-seq", ""), body))
        return Response(name.encode() + b":" + body, status_code=201, headers={"x-by": name})

    return Starlette(routes=[Route("/hook", echo, methods=["POST"])])


@asynccontextmanager
async def proxy(urls: list[str]) -> AsyncIterator[tuple[str, RoundRobin]]:
    rr = RoundRobin([("127.0.0.1", int(u.rsplit(":", 1)[1])) for u in urls])
    server = await asyncio.start_server(rr.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", rr
    finally:
        server.close()
        await server.wait_closed()


async def test_requests_alternate_between_backends_in_order_on_one_connection() -> None:
    heard: list[tuple[str, str, bytes]] = []
    async with (
        serve(backend("a", heard)) as a,
        serve(backend("b", heard)) as b,
        proxy([a, b]) as (url, rr),
        httpx.AsyncClient(base_url=url) as client,
    ):
        replies = []
        for n in range(6):
            body = b"x" * (n * 1000)
            r = await client.post("/hook", content=body, headers={"x-seq": str(n)})
            replies.append((r.status_code, r.headers["x-by"], r.content))
        stats = (await client.get("/_rr/stats")).json()
    assert [name for name, _, _ in heard] == ["a", "b", "a", "b", "a", "b"]
    assert [seq for _, seq, _ in heard] == [str(n) for n in range(6)]
    assert [len(body) for _, _, body in heard] == [n * 1000 for n in range(6)]
    assert replies == [
        (201, "ab"[n % 2], "ab"[n % 2].encode() + b":" + b"x" * (n * 1000)) for n in range(6)
    ]
    assert stats == {"sent": [3, 3]} == {"sent": rr.sent}


async def test_connections_share_the_turn() -> None:
    heard: list[tuple[str, str, bytes]] = []
    async with (
        serve(backend("a", heard)) as a,
        serve(backend("b", heard)) as b,
        proxy([a, b]) as (url, rr),
        httpx.AsyncClient(base_url=url) as one,
        httpx.AsyncClient(base_url=url) as two,
    ):
        for n in range(4):
            await (one if n % 2 == 0 else two).post("/hook", content=b"")
    assert [name for name, _, _ in heard] == ["a", "b", "a", "b"]
    assert rr.sent == [2, 2]
