"""kill -9 in the middle of a batch of calls, with a webhook receiver that is down for a
while: after a restart every submission reaches every sink exactly once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest

from collector.simulator.fake_telnyx import FakeTelnyx
from tests.harness import (
    HookReceiver,
    eventually,
    free_port,
    healthy,
    jsonl,
    now,
    serve,
    start_server,
    telnyx_env,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FORMS = Path(__file__).resolve().parent / "fixtures" / "forms"
CALLS = 12


async def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """Every submission reaches JSONL, SQLite and the webhook once, with one webhook-id."""
    receiver = HookReceiver(up=False)  # down (503) until told otherwise
    port = free_port()
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
        env = telnyx_env(fake.public_key_b64, telnyx_url, HOOK_SECRET=receiver.secret)
        proc = start_server(tmp_path, port, env)
        try:
            await eventually(lambda: healthy(url), timeout=30)
            calls = []
            for i in range(CALLS):
                calls.append(await fake.place_call(to="+13125550001", from_=f"+131255501{i:02d}"))
                await asyncio.sleep(0.05)
            # kill -9 once some, but not all, calls have finished
            await eventually(lambda: now(len(jsonl(tmp_path / "results.jsonl")) >= 3), timeout=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed_with = len(jsonl(tmp_path / "results.jsonl"))
            proc = start_server(tmp_path, port, env)
            await eventually(lambda: healthy(url), timeout=30)
            await asyncio.sleep(1.0)
            receiver.up = True  # the downstream recovers only after the restart
            lines = await eventually(
                lambda: now(
                    len(jsonl(tmp_path / "results.jsonl")) >= CALLS
                    and jsonl(tmp_path / "results.jsonl")
                ),
                timeout=90,
            )
            await eventually(lambda: now(len(receiver.ids) >= CALLS), timeout=90)
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
    assert set(receiver.ids) == set(ids)
    for sid, webhook_ids in receiver.ids.items():
        assert len(set(webhook_ids)) == 1, (sid, webhook_ids)  # one stable webhook-id per delivery
    assert receiver.bad == 0
    assert fake.rejected == []
