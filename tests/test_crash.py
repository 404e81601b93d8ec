"""kill -9 in the middle of a batch of calls, with a webhook receiver that is down for a
while: after a restart every submission reaches every sink exactly once."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.simulator.fake_telnyx import FakeTelnyx
from tests.harness import eventually, serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FORMS = Path(__file__).resolve().parent / "fixtures" / "forms"
CALLS = 12


class Receiver:
    """A downstream HTTP endpoint that is down (503) until told otherwise."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.up = False
        self.by_submission: dict[str, list[str]] = defaultdict(list)  # submission -> webhook-ids
        self.bad_signatures = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if not self.up:
            return Response(status_code=503)
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return Response(status_code=400)
        self.by_submission[payload["submission_id"]].append(request.headers["webhook-id"])
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cwd: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(cwd / "server.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def _healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as c:
            return (await c.get(f"{url}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """Every submission reaches JSONL, SQLite and the webhook once, with one webhook-id."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver(secret)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    fake = FakeTelnyx(f"{url}/webhooks/telnyx", pace=0.02)
    fake.sender.retries = 60  # keep redelivering while the server restarts, as Telnyx would
    async with serve(receiver.app()) as hook_url, serve(fake.asgi_app()) as telnyx_url:
        (tmp_path / "collector.toml").write_text(
            f'forms_dir = "{FORMS}"\n'
            "hangup_grace_seconds = 0.5\n"
            '[routing]\ndefault_form = "contact"\n'
            '[[sinks]]\ntype = "jsonl"\npath = "results.jsonl"\n'
            '[[sinks]]\ntype = "sqlite"\npath = "results.db"\n'
            f'[[sinks]]\nname = "downstream"\ntype = "webhook"\nurl = "{hook_url}/hook"\n'
            'secret = "${HOOK_SECRET}"\ntimeout_seconds = 2\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "COLLECTOR_"))}
        env.update(
            TELNYX_API_KEY="KEY_test",
            TELNYX_PUBLIC_KEY=fake.public_key_b64,
            TELNYX_BASE_URL=f"{telnyx_url}/v2",
            HOOK_SECRET=secret,
        )
        proc = _start(tmp_path, port, env)
        try:
            await eventually(lambda: _healthy(url), timeout=30)
            calls = []
            for i in range(CALLS):
                calls.append(await fake.place_call(to="+13125550001", from_=f"+131255501{i:02d}"))
                await asyncio.sleep(0.05)
            # kill -9 once some, but not all, calls have finished
            await eventually(
                lambda: _async(len(_jsonl(tmp_path / "results.jsonl")) >= 3), timeout=30
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed_with = len(_jsonl(tmp_path / "results.jsonl"))
            proc = _start(tmp_path, port, env)
            await eventually(lambda: _healthy(url), timeout=30)
            await asyncio.sleep(1.0)
            receiver.up = True  # the downstream recovers only after the restart
            lines = await eventually(
                lambda: _async(
                    len(_jsonl(tmp_path / "results.jsonl")) >= CALLS
                    and _jsonl(tmp_path / "results.jsonl")
                ),
                timeout=90,
            )
            await eventually(lambda: _async(len(receiver.by_submission) >= CALLS), timeout=90)
            await asyncio.sleep(1.5)  # anything duplicated would arrive by now
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert killed_with < CALLS
    ids = [line["submission_id"] for line in lines]
    assert len(ids) == len(set(ids)) == CALLS  # no duplicate JSONL line
    assert {line["call"]["call_control_id"] for line in lines} == set(calls)
    assert all(line["status"] == "completed" for line in lines)
    rows = (
        sqlite3.connect(tmp_path / "results.db")
        .execute("SELECT submission_id FROM submissions")
        .fetchall()
    )
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert set(receiver.by_submission) == set(ids)
    for sid, webhook_ids in receiver.by_submission.items():
        assert len(set(webhook_ids)) == 1, (sid, webhook_ids)  # one stable webhook-id per delivery
    assert receiver.bad_signatures == 0
    assert fake.rejected == []


async def _async(value: Any) -> Any:
    return value
