"""POST /webhooks/telnyx (collector.web.ingress) over real HTTP, in live mode against the
fake Telnyx API: its contract of 401, 400, 413 and 200, with nothing recorded for a refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import ANY

import orjson
import pytest

from collector.simulator.signing import generate_keypair, sign
from tests.live_stack import Stack, live_stack

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(name="stack")
async def _stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with live_stack(tmp_path) as stack:
        yield stack


# -- bad input: a clear 4xx, no state change ------------------------------------------


def _fixture(name: str) -> bytes:
    return (FIXTURES / "telnyx" / f"{name}.json").read_bytes()


async def test_missing_signature_is_401(stack: Stack) -> None:
    """No signature headers: 401 with a reason, and nothing recorded."""
    r = await stack.post(_fixture("call.initiated"), headers={"content-type": "application/json"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_signature"
    assert await stack.runtime.store.count_sessions_by_state() == {}


async def test_bad_signature_is_401(stack: Stack) -> None:
    """A body signed by another key is refused."""
    other, _ = generate_keypair()
    body = _fixture("call.initiated")
    r = await stack.post(body, headers=sign(body, other))
    assert r.status_code == 401
    assert await stack.runtime.store.count_sessions_by_state() == {}


async def test_tampered_body_is_401(stack: Stack) -> None:
    """The signature covers the exact bytes: one changed byte is refused."""
    body = _fixture("call.initiated")
    headers = sign(body, stack.fake.signing_key)
    r = await stack.post(body.replace(b"+13125550143", b"+13125550144"), headers=headers)
    assert r.status_code == 401


@pytest.mark.parametrize("skew", [-301, 301])
async def test_timestamp_outside_300_seconds_is_401(stack: Stack, skew: int) -> None:
    """A timestamp more than 300 s old or ahead is refused."""
    import time

    body = _fixture("call.initiated")
    r = await stack.post(body, headers=sign(body, stack.fake.signing_key, int(time.time()) + skew))
    assert r.status_code == 401
    assert "timestamp" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b'{"data": 1}', "'data'"),
        (b'{"data": {"event_type": "call.answered", "payload": {}}}', "'data.id'"),
        (b'{"data": {"id": "x", "payload": {}}}', "'data.event_type'"),
        (b'{"data": {"id": "x", "event_type": "call.answered"}}', "'data.payload'"),
        (b'{"data": {"id": "x", "event_type": "call.answered", "payload": {}}}', "call_control_id"),
        (b'{"data": {"id": "x", "event_type": "call.answered", "payload": []}}', "'data.payload'"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_malformed_bodies_are_400_with_a_reason(
    stack: Stack, body: bytes, reason: str
) -> None:
    """Signed but malformed bodies get 400 naming what is wrong, never 500."""
    r = await stack.post(body)
    assert r.status_code == 400
    assert reason in r.json()["error"]["message"]


async def test_body_over_one_mebibyte_is_413(stack: Stack) -> None:
    """A body over 1 MiB is refused with 413."""
    body = b'{"data": {"id": "x", "pad": "' + b"a" * (1024 * 1024) + b'"}}'
    r = await stack.post(body)
    assert r.status_code == 413


async def test_a_chunked_body_over_one_mebibyte_is_413_without_a_length(stack: Stack) -> None:
    """Without a Content-Length the limit is counted while reading."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"a" * 16384

    headers = sign(b"", stack.fake.signing_key)
    r = await stack.client.post(f"{stack.url}/webhooks/telnyx", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert r.json() == {"error": {"code": "payload_too_large", "message": ANY}}


async def test_webhook_responses_are_json_with_a_length(stack: Stack) -> None:
    """Acknowledgements and refusals carry Content-Type and Content-Length; GET is 405."""
    ok = await stack.post(_fixture("call.initiated"))
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    refused = await stack.post(b"{}", headers={"content-type": "application/json"})
    assert refused.status_code == 401
    for r in (ok, refused):
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
    assert set(refused.json()["error"]) == {"code", "message"}
    wrong_method = await stack.client.get(f"{stack.url}/webhooks/telnyx")
    assert wrong_method.status_code == 405


async def test_unknown_event_type_is_acknowledged(stack: Stack) -> None:
    """An event type we do not act on gets 200 and changes nothing."""
    body = orjson.dumps(
        {
            "data": {
                "id": "u-1",
                "event_type": "call.recording.saved",
                "payload": {"call_control_id": "v3:x"},
            }
        }
    )
    r = await stack.post(body)
    assert r.status_code == 200
    assert await stack.runtime.store.count_sessions_by_state() == {}


async def test_repeated_event_id_changes_nothing(stack: Stack) -> None:
    """Telnyx's retry of call.initiated is acknowledged and answered only once."""
    body = _fixture("call.initiated")
    ccid = json.loads(body)["data"]["payload"]["call_control_id"]
    first = await stack.post(body)
    second = await stack.post(body)
    assert first.status_code == second.status_code == 200
    session = await stack.runtime.engine.session_for_call(ccid)
    assert session is not None and session.event_ids.count(json.loads(body)["data"]["id"]) == 1
    assert sum((await stack.runtime.store.count_sessions_by_state()).values()) == 1
    rows = await stack.runtime.store.commands_for(session.id)
    assert [r.action for r in rows] == ["answer"]


async def test_event_for_an_unknown_call_is_acknowledged(stack: Stack) -> None:
    """A webhook for a call we never saw is 200 and recorded as seen, nothing else."""
    r = await stack.post(_fixture("call.hangup"))
    assert r.status_code == 200
    assert await stack.runtime.store.count_sessions_by_state() == {}
