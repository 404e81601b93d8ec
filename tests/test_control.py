"""TelnyxControl over the SDK on our aiohttp transport, against real loopback servers."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.adapters.telephony.control import (
    CommandRejected,
    CommandTransient,
    TelnyxControl,
    make_client,
)
from tests.harness import free_socket, serve

pytestmark = pytest.mark.anyio


class Recorder:
    """Answers every action with a scripted reply and keeps what arrived."""

    def __init__(self, status: int = 200, reply: Any = None, delay: float = 0.0) -> None:
        self.status = status
        self.reply = {"data": {"result": "ok"}} if reply is None else reply
        self.delay = delay
        self.requests: list[tuple[str, dict[str, str], Any]] = []

    async def action(self, request: Request) -> Response:
        raw_path = request.scope["raw_path"].decode("latin-1")
        self.requests.append((raw_path, dict(request.headers), await request.json()))
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {"set-cookie": "session=abc; Path=/"}
        return JSONResponse(self.reply, status_code=self.status, headers=headers)

    async def status_of(self, request: Request) -> Response:
        return JSONResponse({"data": {"is_alive": request.path_params["ccid"] == "v3:alive"}})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/calls/{ccid:path}/actions/{action}", self.action, methods=["POST"]),
                Route("/v2/calls/{ccid:path}", self.status_of, methods=["GET"]),
            ]
        )


def control(url: str, timeout: float = 5.0) -> TelnyxControl:
    return TelnyxControl(make_client("KEY_test", f"{url}/v2", timeout=timeout, max_retries=0))


async def test_a_command_reaches_the_wire_as_the_sdk_builds_it() -> None:
    api = Recorder(reply={"data": {"result": "ok", "conversation_id": "c-1"}})
    async with serve(api.app()) as url:
        ctl = control(url)
        try:
            result = await ctl.execute("v3:abc/1", "speak", {"payload": "Hello"}, "cmd-1")
            again = await ctl.execute("v3:abc/1", "hangup", {}, "cmd-2")
        finally:
            await ctl.close()
    assert result == {"data": {"result": "ok", "conversation_id": "c-1"}}
    assert again == {"data": {"result": "ok", "conversation_id": "c-1"}}
    path, headers, body = api.requests[0]
    assert path == "/v2/calls/v3:abc%2F1/actions/speak"  # the SDK escapes the id
    assert body == {"payload": "Hello", "command_id": "cmd-1"}
    assert headers["authorization"] == "Bearer KEY_test"
    assert headers["content-type"] == "application/json"
    assert "cookie" not in api.requests[1][1]  # a Set-Cookie from the API is never sent back


async def test_is_alive_reads_the_call_status() -> None:
    api = Recorder()
    async with serve(api.app()) as url:
        ctl = control(url)
        try:
            assert await ctl.is_alive("v3:alive") is True
            assert await ctl.is_alive("v3:gone") is False
        finally:
            await ctl.close()


async def test_a_call_that_has_ended_is_rejected_for_good() -> None:
    reply = {"errors": [{"code": "90018", "title": "Call has already ended"}]}
    async with serve(Recorder(status=422, reply=reply).app()) as url:
        ctl = control(url)
        try:
            with pytest.raises(CommandRejected) as caught:
                await ctl.execute("v3:abc", "speak", {"payload": "x"}, "cmd-1")
        finally:
            await ctl.close()
    assert caught.value.status == 422 and caught.value.code == "90018"
    assert caught.value.call_gone and caught.value.detail == "Call has already ended"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_throttling_and_server_errors_are_transient(status: int) -> None:
    async with serve(Recorder(status=status, reply={"errors": []}).app()) as url:
        ctl = control(url)
        try:
            with pytest.raises(CommandTransient, match=str(status)):
                await ctl.execute("v3:abc", "answer", {}, "cmd-1")
        finally:
            await ctl.close()


async def test_a_slow_api_is_a_transient_timeout() -> None:
    api = Recorder(delay=2.0)
    async with serve(api.app()) as url:
        ctl = control(url, timeout=0.3)
        try:
            with pytest.raises(CommandTransient, match="timed out"):
                await ctl.execute("v3:abc", "answer", {}, "cmd-1")
        finally:
            await ctl.close()
    # it did reach the API: why the outbox re-sends it under the same command_id
    assert [body["command_id"] for _, _, body in api.requests] == ["cmd-1"]


async def test_an_unreachable_api_is_transient() -> None:
    sock = free_socket()  # bound, never listening: the connection is refused
    port = sock.getsockname()[1]
    ctl = control(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(CommandTransient, match="Connection error"):
            await ctl.execute("v3:abc", "answer", {}, "cmd-1")
        with pytest.raises(CommandTransient, match="Connection error"):
            await ctl.is_alive("v3:abc")  # cannot be told: not "gone"
    finally:
        await ctl.close()
        sock.close()


async def test_a_body_that_is_not_json_is_returned_as_text() -> None:
    async def text(request: Request) -> Response:
        return Response(b"plain words", media_type="text/plain")

    app = Starlette(routes=[Route("/v2/calls/{c}/actions/{a}", text, methods=["POST"])])
    async with serve(app) as url:
        ctl = control(url)
        try:
            assert await ctl.execute("v3:abc", "answer", {}, "cmd-1") == "plain words"
        finally:
            await ctl.close()


async def test_an_api_with_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    """TLS is verified: a self-signed server never sees the request (or the API key)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    ctl = control(f"https://127.0.0.1:{port}")
    try:
        with pytest.raises(CommandTransient):
            await ctl.execute("v3:abc", "answer", {}, "cmd-1")
    finally:
        await ctl.close()
        server.close()
        await server.wait_closed()
    assert requests == []


def test_the_tls_context_verifies_and_is_built_once() -> None:
    from collector.adapters.telephony.transport import tls_context

    context = tls_context()
    assert context is tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
