"""kill -9 and an outbound call: the dial is committed with its session before it is sent,
so a server killed before it could send it sends it on restart, and one killed after
Telnyx placed the call (its answer lost) does not place it again. Either way one call
rings, and its one submission reaches the sink."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.core.session.commands import DIAL, Command
from collector.simulator.fake_telnyx import FakeTelnyx
from tests.harness import (
    eventually,
    free_port,
    free_socket,
    healthy,
    jsonl,
    now,
    serve,
    start_server,
    telnyx_env,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FORMS = Path(__file__).resolve().parent / "fixtures" / "outbound_forms"
TOKEN = "crash-test-admin-token"
TO = "+13125550190"
CALL = {"to": TO, "form": "warranty", "variables": {"first_name": "Maria", "item": "kettle"}}


def _setup(tmp_path: Path, fake: FakeTelnyx, telnyx_port: int) -> dict[str, str]:
    (tmp_path / "collector.toml").write_text(
        f'forms_dir = "{FORMS}"\n'
        f'admin_token = "{TOKEN}"\n'
        "hangup_grace_seconds = 0.5\n"
        '[outbound]\nconnection_id = "${CONNECTION_ID}"\nfrom_number = "+13125550100"\n'
        '[[sinks]]\ntype = "jsonl"\npath = "results.jsonl"\n'
    )
    return telnyx_env(
        fake.public_key_b64,
        f"http://127.0.0.1:{telnyx_port}",
        CONNECTION_ID="2287104733592061441",
    )


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def _submissions(tmp_path: Path, sid: str) -> list[dict[str, Any]]:
    return [line for line in jsonl(tmp_path / "results.jsonl") if line["session_id"] == sid]


async def _dial(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.post(
            f"{url}/api/calls", json=CALL, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert r.status_code == 202, r.text
    return str(r.json()["session_id"])


async def test_a_dial_committed_but_never_sent_is_sent_once_after_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fake = FakeTelnyx(f"{url}/webhooks/telnyx", pace=0.02)
    fake.sender.retries = 60
    telnyx_sock = free_socket()  # bound, not listening yet: Telnyx cannot be reached
    env = _setup(tmp_path, fake, telnyx_sock.getsockname()[1])
    db = tmp_path / "collector.db"
    proc = start_server(tmp_path, port, env)
    try:
        await eventually(lambda: healthy(url), timeout=30)
        sid = await _dial(url)
        pending = f"SELECT state FROM commands WHERE session_id = '{sid}' AND action = 'dial'"
        await eventually(lambda: now(_rows(db, pending) == [("pending",)]), timeout=10)
        await asyncio.sleep(1.0)  # the outbox tries, and fails to connect, a few times
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _rows(db, pending) == [("pending",)] and fake.requests == []
        async with serve(fake.asgi_app(), telnyx_sock):  # Telnyx is back
            proc = start_server(tmp_path, port, env)
            await eventually(lambda: healthy(url), timeout=30)
            subs = await eventually(lambda: now(_submissions(tmp_path, sid)), timeout=60)
            await fake.idle(settle=1.0)
        assert [s["outcome"] for s in subs] == ["completed"]
        assert len(_submissions(tmp_path, sid)) == 1
        dials = [c.command_id for c in fake.requests if c.action == "dial"]
        assert dials == [Command(DIAL, 1).command_id(sid)]
        assert fake.duplicates == [] and len(fake.calls) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


async def test_a_dial_placed_whose_answer_was_lost_is_not_placed_again_after_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fake = FakeTelnyx(f"{url}/webhooks/telnyx", pace=0.05)
    fake.sender.retries = 60
    telnyx_sock = free_socket()
    env = _setup(tmp_path, fake, telnyx_sock.getsockname()[1])
    db = tmp_path / "collector.db"
    async with serve(fake.asgi_app(), telnyx_sock):
        fake.faults.arm("timeout", action="dial", delay=8.0)  # placed, its answer held
        proc = start_server(tmp_path, port, env)
        try:
            await eventually(lambda: healthy(url), timeout=30)
            sid = await _dial(url)
            adopted = f"SELECT call_control_id FROM sessions WHERE id = '{sid}'"
            await eventually(
                lambda: now(any(str(r[0]).startswith("v3:") for r in _rows(db, adopted))),
                timeout=20,
            )
            proc.send_signal(signal.SIGKILL)  # mid-call, the dial's answer still held
            proc.wait(timeout=10)
            pending = f"SELECT state FROM commands WHERE session_id = '{sid}' AND seq = 1"
            assert _rows(db, pending) == [("pending",)]
            proc = start_server(tmp_path, port, env)
            await eventually(lambda: healthy(url), timeout=30)
            subs = await eventually(lambda: now(_submissions(tmp_path, sid)), timeout=60)
            await eventually(lambda: now(_rows(db, pending) == [("sent",)]), timeout=20)
            await fake.idle(settle=1.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert [s["outcome"] for s in subs] == ["completed"]
    assert len(_submissions(tmp_path, sid)) == 1
    assert [c.action for c in fake.requests].count("dial") == 1
    assert [c.action for c in fake.duplicates] == [] and len(fake.calls) == 1
