"""Serving (collector.web.serving): the real uvicorn server with its head and body
deadlines, for both HTTP parsers, on every kind of route."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from collector.config import load_settings
from collector.runtime import build_runtime
from collector.web import serving
from tests.harness import write_config
from tests.web.conftest import FIXTURES, TOKEN

pytestmark = pytest.mark.anyio


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
