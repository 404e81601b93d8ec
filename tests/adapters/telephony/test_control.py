"""TelnyxControl against the project's fake Telnyx on loopback (through the real SDK and
transport): how each failure is classified, and what a retry under the same command_id
does; then, against a scripted server, the wire format and the transport's own failures
(timeouts, refused connections, TLS).

CommandTransient means "it may not have arrived": the outbox sends it again under the
same command_id, and Telnyx (here the fake) applies it at most once. CommandRejected means
Telnyx refused it for good: sending it again cannot help.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.adapters.telephony.control import TelnyxControl, make_client
from collector.core.session.commands import RETRIEVE_STATUS
from collector.errors import CommandRejected, CommandTransient
from collector.simulator.fake_telnyx import FakeTelnyx
from tests.harness import free_socket, serve

pytestmark = pytest.mark.anyio

TO = "+13125550001"
SPEAK = {"payload": "Hello", "voice": "Telnyx.KokoroTTS.af"}


@dataclass
class Line:
    fake: FakeTelnyx
    control: TelnyxControl

    async def answered_call(self) -> str:
        ccid = await self.fake.place_call(TO)
        await self.fake.idle()
        await self.control.execute(ccid, "answer", {}, f"answer-{ccid}")
        await self.fake.idle()
        return ccid

    def applied(self, ccid: str, action: str) -> list[str | None]:
        return [c.command_id for c in self.fake.commands(ccid, action)]


@asynccontextmanager
async def line(timeout: float = 5.0) -> AsyncIterator[Line]:
    """The fake Telnyx (its webhooks to a receiver that takes them all) and a control."""

    async def hook(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(receiver) as hooks:
        fake = FakeTelnyx(f"{hooks}/hook", pace=0.0)
        async with serve(fake.asgi_app()) as api:
            control = TelnyxControl(make_client("KEY_test", f"{api}/v2", timeout=timeout))
            try:
                yield Line(fake, control)
            finally:
                await control.close()
                await fake.aclose()


# -- transient: may not have arrived; the same command_id again is safe --------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_throttling_and_server_errors_are_transient_and_the_retry_applies_once(
    status: int,
) -> None:
    async with line() as t:
        ccid = await t.answered_call()
        t.fake.faults.arm(status, action="speak")
        with pytest.raises(CommandTransient) as caught:
            await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        assert str(caught.value).startswith(str(status))
        assert t.applied(ccid, "speak") == []  # refused before it was applied
        result = await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        assert result == {"data": {"result": "ok"}}
        await t.fake.idle()
        assert t.applied(ccid, "speak") == ["speak-1"]
        assert t.fake.duplicates == []
        assert [(s.action, s.command_id) for s in t.fake.faults.spent] == [("speak", "speak-1")]
        assert t.fake.events(ccid, "call.speak.ended")  # the call went on


async def test_a_response_that_comes_too_late_is_transient_and_the_retry_is_a_repeat() -> None:
    """Applied, but the answer came after the client's timeout: the retry under the same
    command_id is answered as a repeat and changes nothing."""
    async with line(timeout=0.3) as t:
        ccid = await t.answered_call()
        t.fake.faults.arm("timeout", action="speak", delay=1.0)
        with pytest.raises(CommandTransient):
            await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        assert t.applied(ccid, "speak") == ["speak-1"]  # it took effect all the same
        assert await t.control.execute(ccid, "speak", SPEAK, "speak-1") == {
            "data": {"result": "ok"}
        }
        await t.fake.idle()
        assert t.applied(ccid, "speak") == ["speak-1"]
        assert [d.command_id for d in t.fake.duplicates] == ["speak-1"]
        assert len(t.fake.events(ccid, "call.speak.ended")) == 1


async def test_a_fresh_command_id_is_a_new_command() -> None:
    """What the outbox's re-send past the confirm window relies on: a new id is applied."""
    async with line() as t:
        ccid = await t.answered_call()
        await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        await t.control.execute(ccid, "speak", SPEAK, "speak-1-retry-1")
        await t.fake.idle()
        assert t.applied(ccid, "speak") == ["speak-1", "speak-1-retry-1"]
        assert [d.command_id for d in t.fake.duplicates] == ["speak-1"]


# -- rejected: refused for good ------------------------------------------------------------


async def test_a_command_before_the_answer_is_rejected_but_the_call_is_not_gone() -> None:
    async with line() as t:
        ccid = await t.fake.place_call(TO)
        await t.fake.idle()
        with pytest.raises(CommandRejected) as caught:
            await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        assert (caught.value.status, caught.value.code) == (422, "90034")
        assert caught.value.detail == "Answer the call first"
        assert not caught.value.call_gone
        assert t.applied(ccid, "speak") == []


async def test_commands_for_an_ended_or_unknown_call_are_rejected_as_call_gone() -> None:
    async with line() as t:
        ccid = await t.answered_call()
        await t.fake.hangup_call(ccid)
        await t.fake.idle()
        with pytest.raises(CommandRejected) as ended:
            await t.control.execute(ccid, "speak", SPEAK, "speak-1")
        assert (ended.value.status, ended.value.code, ended.value.call_gone) == (422, "90018", True)
        with pytest.raises(CommandRejected) as unknown:
            await t.control.execute("v3:never-was", "hangup", {}, "hangup-1")
        assert (unknown.value.status, unknown.value.code) == (422, "90015")
        assert unknown.value.call_gone


async def test_a_body_telnyx_would_refuse_is_rejected_with_the_problem() -> None:
    async with line() as t:
        ccid = await t.answered_call()
        with pytest.raises(CommandRejected) as caught:
            await t.control.execute(ccid, "speak", {"payload": 5}, "speak-1")
        assert (caught.value.status, caught.value.code) == (422, "10015")
        assert "/payload" in caught.value.detail
        assert not caught.value.call_gone
        assert t.applied(ccid, "speak") == []
        assert [r.action for r in t.fake.rejected] == ["speak"]


# -- the call's status ---------------------------------------------------------------------


async def test_is_alive_follows_the_call_and_an_unknown_call_is_not_alive() -> None:
    async with line() as t:
        ccid = await t.answered_call()
        assert await t.control.is_alive(ccid) is True
        assert await t.control.execute(ccid, RETRIEVE_STATUS, {}, "status-1") is True
        await t.fake.hangup_call(ccid)
        await t.fake.idle()
        assert await t.control.is_alive(ccid) is False
        assert await t.control.execute(ccid, RETRIEVE_STATUS, {}, "status-2") is False
        assert await t.control.is_alive("v3:never-was") is False  # Telnyx's 404


# -- every status, classified (a scripted server: the fake answers only what Telnyx does) ----


class Answers:
    def __init__(self, status: int) -> None:
        self.status = status
        self.body = {"errors": [{"code": "10099", "title": "Scripted", "detail": "as scripted"}]}

    async def reply(self, request: Request) -> Response:
        return JSONResponse(self.body, status_code=self.status)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/calls/{ccid:path}/actions/{action}", self.reply, methods=["POST"]),
                Route("/v2/calls/{ccid:path}", self.reply, methods=["GET"]),
            ]
        )


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_these_statuses_are_transient_for_commands_and_status_checks(status: int) -> None:
    async with serve(Answers(status).app()) as url:
        control = TelnyxControl(make_client("KEY_test", f"{url}/v2", timeout=5))
        try:
            with pytest.raises(CommandTransient, match=f"^{status} 10099 as scripted$"):
                await control.execute("v3:abc", "answer", {}, "cmd-1")
            with pytest.raises(CommandTransient):
                await control.is_alive("v3:abc")  # cannot be told now: not "gone"
        finally:
            await control.close()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422])
async def test_any_other_4xx_is_rejected_and_a_status_check_says_not_alive(status: int) -> None:
    async with serve(Answers(status).app()) as url:
        control = TelnyxControl(make_client("KEY_test", f"{url}/v2", timeout=5))
        try:
            with pytest.raises(CommandRejected) as caught:
                await control.execute("v3:abc", "answer", {}, "cmd-1")
            assert await control.is_alive("v3:abc") is False
        finally:
            await control.close()
    assert (caught.value.status, caught.value.code, caught.value.detail) == (
        status,
        "10099",
        "as scripted",
    )
    assert caught.value.call_gone is (status == 404)


async def test_an_error_body_that_is_not_telnyxs_shape_is_kept_short_in_the_detail() -> None:
    answers = Answers(400)
    answers.body = {"message": "x" * 1000}  # type: ignore[assignment]
    async with serve(answers.app()) as url:
        control = TelnyxControl(make_client("KEY_test", f"{url}/v2", timeout=5))
        try:
            with pytest.raises(CommandRejected) as caught:
                await control.execute("v3:abc", "answer", {}, "cmd-1")
        finally:
            await control.close()
    assert caught.value.code is None
    assert caught.value.detail.startswith("{'message': 'xxx")
    assert len(caught.value.detail) == 300


async def test_a_compressed_reply_is_read_like_any_other() -> None:
    async def reply(request: Request) -> Response:
        return Response(
            gzip.compress(b'{"data": {"result": "ok"}}'),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    app = Starlette(
        routes=[Route("/v2/calls/{ccid:path}/actions/{action}", reply, methods=["POST"])]
    )
    async with serve(app) as url:
        control = TelnyxControl(make_client("KEY_test", f"{url}/v2", timeout=5))
        try:
            assert await control.execute("v3:abc", "answer", {}, "cmd-1") == {
                "data": {"result": "ok"}
            }
        finally:
            await control.close()


# -- the client over the SDK and our aiohttp transport: the wire, TLS, timeouts ---------


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
