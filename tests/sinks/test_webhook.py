"""The webhook sink against a real receiver: uvicorn on a loopback port in the test's loop.

The receiver verifies every request with `standardwebhooks.Webhook(secret).verify`, keeps
one record per `webhook-id` (as Standard Webhooks asks receivers to), and answers as told.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from collector.sinks import DeliveryError
from collector.sinks.webhook import WebhookSink, from_config

from .contract import SinkContract, as_replay, closed, make_submission, started

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Attempt:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """A webhook endpoint: records attempts, verifies them, answers from a script."""

    url: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    deliveries: dict[str, Any] = field(default_factory=dict)
    script: list[tuple[int, float, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def answer(self, status: int, *, sleep: float = 0.0, body: str = "") -> None:
        """Answer the next request with `status`, after `sleep` seconds, with `body`."""
        self.script.append((status, sleep, body))

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            Webhook(SECRET).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        self.attempts.append(Attempt(headers, body, verified))
        status, sleep, text = self.script.pop(0) if self.script else (200, 0.0, "")
        if sleep:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), sleep)
        if not verified:
            return PlainTextResponse("bad signature", status_code=401)
        if 200 <= status < 300:
            self.deliveries.setdefault(headers["webhook-id"], orjson.loads(body))
            return JSONResponse({"ok": True}, status_code=status)
        return PlainTextResponse(text, status_code=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = Starlette(routes=[Route("/hooks/collector", recv.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("receiver did not start")
        await asyncio.sleep(0.01)
    recv.url = f"http://127.0.0.1:{port}/hooks/collector"
    try:
        yield recv
    finally:
        recv.release.set()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def webhook_sink(url: str, **options: Any) -> WebhookSink:
    return from_config(
        name="hook", options={"url": url, "secret": SECRET, **options}, base_dir=None
    )


class TestWebhookContract(SinkContract):
    """The webhook sink keeps the sink contract, as seen by a receiver deduping on webhook-id."""

    replay_is_new_record = True  # a replay is a new delivery: a new webhook-id

    @pytest.fixture
    def env(self, receiver: Receiver) -> Receiver:
        return receiver

    def make_sink(self, env: Receiver) -> WebhookSink:
        return webhook_sink(env.url)

    async def read_back(self, env: Receiver) -> list[dict[str, Any]]:
        assert all(a.verified for a in env.attempts)
        return [
            {k: v for k, v in d.items() if k not in ("replay", "delivery_key")}
            for d in env.deliveries.values()
        ]


@pytest.fixture
async def sink(receiver: Receiver) -> AsyncIterator[WebhookSink]:
    hook = await started(
        webhook_sink(receiver.url, timeout_seconds=0.5, headers={"Authorization": "Bearer t0ken"})
    )
    try:
        yield hook
    finally:
        await closed(hook)


@pytest.mark.anyio
async def test_2xx_is_delivered_with_a_valid_signature(
    receiver: Receiver, sink: WebhookSink
) -> None:
    """A 2xx answer is a delivery: one signed JSON POST, webhook-id = submission_id."""
    submission = make_submission()
    receiver.answer(204)
    await sink.deliver(submission)
    [attempt] = receiver.attempts
    assert attempt.verified
    assert orjson.loads(attempt.body) == submission
    assert attempt.headers["webhook-id"] == submission["submission_id"]
    assert attempt.headers["content-type"] == "application/json"
    assert attempt.headers["authorization"] == "Bearer t0ken"
    assert abs(int(attempt.headers["webhook-timestamp"]) - time.time()) < 5


@pytest.mark.anyio
@pytest.mark.parametrize("status", [503, 500, 429, 408])
async def test_server_errors_and_throttling_are_retryable(
    receiver: Receiver, sink: WebhookSink, status: int
) -> None:
    """408, 429 and 5xx answers raise a retryable DeliveryError."""
    receiver.answer(status, body="try later")
    with pytest.raises(DeliveryError) as caught:
        await sink.deliver(make_submission())
    assert caught.value.retryable is True
    assert f"HTTP {status}" in str(caught.value)


@pytest.mark.anyio
async def test_timeout_is_retryable(receiver: Receiver, sink: WebhookSink) -> None:
    """A receiver slower than timeout_seconds gives a retryable DeliveryError, promptly."""
    receiver.answer(200, sleep=5)
    began = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await sink.deliver(make_submission())
    assert caught.value.retryable is True
    assert "no answer within 0.5 s" in str(caught.value)
    assert time.monotonic() - began < 3


@pytest.mark.anyio
async def test_connection_refused_is_retryable() -> None:
    """A receiver that is not listening gives a retryable DeliveryError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = await started(webhook_sink(f"http://127.0.0.1:{port}/x"))
    try:
        with pytest.raises(DeliveryError) as caught:
            await hook.deliver(make_submission())
        assert caught.value.retryable is True
    finally:
        await closed(hook)


@pytest.mark.anyio
async def test_400_is_not_retryable_and_says_why(receiver: Receiver, sink: WebhookSink) -> None:
    """Another 4xx gives up at once, with the status and the body's first 300 characters."""
    reason = "field 'email' is required. " + "x" * 400
    receiver.answer(400, body=reason)
    with pytest.raises(DeliveryError) as caught:
        await sink.deliver(make_submission())
    assert caught.value.retryable is False
    message = str(caught.value)
    assert "HTTP 400" in message
    assert reason[:300] in message and reason[:301] not in message
    assert "/hooks/collector" not in message  # only the origin: a path may hold a token


@pytest.mark.anyio
async def test_attempts_of_one_delivery_share_the_id_and_are_signed_afresh(
    receiver: Receiver, sink: WebhookSink
) -> None:
    """Two attempts of one delivery: same webhook-id, later webhook-timestamp, both verify."""
    submission = make_submission()
    receiver.answer(503)
    with pytest.raises(DeliveryError):
        await sink.deliver(submission)
    first = int(receiver.attempts[0].headers["webhook-timestamp"])
    while int(time.time()) <= first:  # timestamps are whole seconds
        await asyncio.sleep(0.05)
    await sink.deliver(submission)
    one, two = receiver.attempts
    assert one.verified and two.verified
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == submission["submission_id"]
    assert int(two.headers["webhook-timestamp"]) > first
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]
    assert list(receiver.deliveries) == [submission["submission_id"]]


@pytest.mark.anyio
async def test_replay_gets_its_own_webhook_id(receiver: Receiver, sink: WebhookSink) -> None:
    """An operator's replay uses its delivery_key as webhook-id, so the receiver takes it anew."""
    submission = make_submission()
    replay = as_replay(submission)
    await sink.deliver(submission)
    await sink.deliver(replay)
    await sink.deliver(replay)  # a retry of the replay keeps the replay's id
    ids = [a.headers["webhook-id"] for a in receiver.attempts]
    assert ids == [submission["submission_id"], replay["delivery_key"], replay["delivery_key"]]
    assert all(a.verified for a in receiver.attempts)
    assert orjson.loads(receiver.attempts[1].body)["replay"] is True


@pytest.mark.anyio
async def test_deliver_without_start_creates_the_client(receiver: Receiver) -> None:
    """A sink that was never started still delivers (its HTTP client is made on first use)."""
    hook = webhook_sink(receiver.url)
    try:
        await hook.deliver(make_submission())
    finally:
        await closed(hook)
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret": SECRET}, "missing required option.*url"),
        ({"url": "https://example.com/h"}, "missing required option.*secret"),
        ({"url": "ftp://example.com/h", "secret": SECRET}, r"http:// or https:// URL \(got ftp"),
        ({"url": "example.com/h", "secret": SECRET}, "http:// or https:// URL"),
        ({"url": "https://example.com", "secret": "s3cret"}, "option 'secret' must be"),
        ({"url": "https://example.com", "secret": "whsec_"}, "option 'secret' must be"),
        ({"url": "https://example.com", "secret": "whsec_!!!"}, "option 'secret' must be"),
        (
            {"url": "https://example.com", "secret": SECRET, "timeout_seconds": 0},
            "option 'timeout_seconds' must be a number > 0",
        ),
        (
            {"url": "https://example.com", "secret": SECRET, "timeout_seconds": "5"},
            "option 'timeout_seconds' must be a number > 0",
        ),
        (
            {"url": "https://example.com", "secret": SECRET, "headers": ["x"]},
            "option 'headers' must be a table",
        ),
        (
            {"url": "https://example.com", "secret": SECRET, "headers": {"webhook-id": "x"}},
            "'webhook-id' is set by the signature",
        ),
        (
            {"url": "https://example.com", "secret": SECRET, "headers": {"bad name": "x"}},
            "not a valid header name",
        ),
        (
            {"url": "https://example.com", "secret": SECRET, "headers": {"X-A": "a\r\nb"}},
            "must be a one-line string",
        ),
        ({"url": "https://example.com", "secret": SECRET, "retries": 3}, "unknown option.*retries"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    """A missing or bad url, secret, timeout or header, or an unknown option, is a ValueError."""
    with pytest.raises(ValueError, match=message) as caught:
        from_config(name="hook", options=options, base_dir=None)
    assert "s3cret" not in str(caught.value)
