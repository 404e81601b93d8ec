"""Three `collector serve` processes on one fresh PostgreSQL database, behind a balancer
that spreads each call's webhooks over them (and sends some to two of them at the same
moment). Telnyx refuses speak commands (503) until one instance is killed with SIGKILL
while it holds one (claimed, retried), then restarted. Every call is answered once and gathered once (one command_id
per command, as the fake Telnyx records them, and the dead instance's command re-sent by
another under the same id), every submission reaches the webhook sink under one
webhook-id and a JSONL sink, nothing is lost, and the dead one's work was taken over once
its lease ran out."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
from tests.pg import scratch_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

FORMS = Path(__file__).resolve().parent / "fixtures" / "forms"
CALLS = 12
INSTANCES = 3
LEASE_SECONDS = 2.0
BOTH_AT_ONCE = 0.3  # the share of webhooks sent to two instances at the same moment
SIGNED = ("telnyx-signature-ed25519", "telnyx-timestamp", "content-type")


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("collector_instances") as url:
        yield url


@dataclass
class Instance:
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        self.proc = start_server(self.folder, self.port, env)

    def lines(self) -> list[dict[str, Any]]:
        return jsonl(self.folder / "results.jsonl")


class Balancer:
    """In front of the instances, as a load balancer: each webhook goes to a random live
    instance, some to two at once; the answer is the first 2xx (else the last status)."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances
        self.both = 0
        self.rng = random.Random(15)
        self.http = httpx.AsyncClient(timeout=5)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k in SIGNED}
        order = self.rng.sample(self.instances, len(self.instances))
        width = 2 if self.rng.random() < BOTH_AT_ONCE else 1
        self.both += width == 2
        statuses = await asyncio.gather(*(self._post(i, body, headers) for i in order[:width]))
        for inst in order[width:]:  # the chosen ones are down: the balancer tries another
            if any(200 <= s < 300 for s in statuses):
                break
            statuses.append(await self._post(inst, body, headers))
        ok = [s for s in statuses if 200 <= s < 300]
        return Response(status_code=ok[0] if ok else statuses[-1])

    async def _post(self, inst: Instance, body: bytes, headers: dict[str, str]) -> int:
        try:
            r = await self.http.post(f"{inst.url}/webhooks/telnyx", content=body, headers=headers)
            return r.status_code
        except httpx.HTTPError:
            return 502

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhooks/telnyx", self.handle, methods=["POST"])])


async def _commands_held(database: str, pid: int) -> int:
    """Pending commands claimed by the instance of this process id."""
    conn = await asyncpg.connect(database)
    try:
        return int(
            await conn.fetchval(
                "SELECT COUNT(*) FROM commands WHERE state = 'pending' AND claimed_by LIKE $1",
                f"%:{pid}:%",
            )
        )
    finally:
        await conn.close()


async def _taken_over(instances: list[Instance]) -> dict[str, float]:
    """collector_claims_taken_over_total by kind, summed over the live instances."""
    total: dict[str, float] = defaultdict(float)
    async with httpx.AsyncClient(timeout=5) as c:
        for inst in instances:
            text = (await c.get(f"{inst.url}/metrics")).text
            for kind, n in re.findall(
                r'^collector_claims_taken_over_total\{kind="(\w+)"\} (\S+)$', text, re.M
            ):
                total[kind] += float(n)
    return dict(total)


async def test_three_instances_one_database_a_sigkill_and_every_call_once(
    tmp_path: Path, database: str
) -> None:
    # answers after a moment, so that deliveries are in flight when an instance dies
    receiver = HookReceiver(delay=0.3)
    instances = [Instance(tmp_path / f"i{n}", free_port()) for n in range(INSTANCES)]
    balancer = Balancer(instances)
    holder: dict[str, str] = {}
    fake = FakeTelnyx(lambda: holder["url"], pace=0.02)
    fake.sender.retries = 60  # keep redelivering while instances come and go, as Telnyx does
    fake.faults.arm(503, action="speak", count=80)  # retried: claimed commands in flight
    async with (
        serve(receiver.app()) as hook_url,
        serve(fake.asgi_app()) as telnyx_url,
        serve(balancer.app()) as front_url,
    ):
        holder["url"] = f"{front_url}/webhooks/telnyx"
        env = telnyx_env(fake.public_key_b64, telnyx_url, HOOK_SECRET=receiver.secret)
        for inst in instances:
            inst.folder.mkdir()
            (inst.folder / "collector.toml").write_text(
                f'forms_dir = "{FORMS}"\n'
                f'database_url = "{database}"\n'
                f"lease_seconds = {LEASE_SECONDS}\n"
                "hangup_grace_seconds = 0.5\n"
                '[routing]\ndefault_form = "contact"\n'
                '[[sinks]]\ntype = "jsonl"\npath = "results.jsonl"\n'
                f'[[sinks]]\nname = "downstream"\ntype = "webhook"\nurl = "{hook_url}/hook"\n'
                'secret = "${HOOK_SECRET}"\ntimeout_seconds = 5\n'
            )
            inst.start(env)  # all three at once: the schema is made under the lock, once
        victim = instances[1]
        try:
            for inst in instances:
                await eventually(lambda inst=inst: healthy(inst.url), timeout=30)
            calls = []
            for i in range(CALLS):
                calls.append(await fake.place_call(to="+13125550001", from_=f"+131255501{i:02d}"))
                await asyncio.sleep(0.1)
            await eventually(lambda: now(len(receiver.ids) >= 3), timeout=30)
            assert victim.proc is not None
            pid = victim.proc.pid
            await eventually(lambda: _commands_held(database, pid), timeout=30, interval=0.005)
            victim.proc.send_signal(signal.SIGKILL)  # it holds a command: no goodbye
            victim.proc.wait(timeout=10)
            fake.faults.armed.clear()  # Telnyx takes commands again
            killed_with = len(receiver.ids)
            others = [i for i in instances if i is not victim]
            await asyncio.sleep(LEASE_SECONDS + 1.5)  # its leases run out; the others take over
            taken = await _taken_over(others)
            victim.start(env)
            await eventually(lambda: healthy(victim.url), timeout=30)
            await eventually(lambda: now(len(receiver.ids) >= CALLS), timeout=40)
            await fake.idle(settle=1.0)
            await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
        finally:
            for inst in instances:
                if inst.proc is not None and inst.proc.poll() is None:
                    inst.proc.send_signal(signal.SIGTERM)
            for inst in instances:
                if inst.proc is not None:
                    inst.proc.wait(timeout=30)
            await balancer.http.aclose()
    assert killed_with < CALLS and balancer.both > 0
    assert taken.get("command", 0) >= 1, taken  # the dead instance's command, taken over
    # every call answered once and gathered once: one command_id per command
    for ccid in calls:
        sent = [(c.action, c.command_id) for c in fake.commands(ccid)]
        assert [a for a, _ in sent] == ["answer", "gather_using_ai", "speak", "hangup"], ccid
        assert len({cid for _, cid in sent}) == 4
        again = {c.command_id for c in fake.duplicates if c.call_control_id == ccid}
        refused = {f.command_id for f in fake.faults.spent if f.call_control_id == ccid}
        assert again | refused <= {cid for _, cid in sent}  # every resend under its one id
    assert fake.rejected == [] and fake.refused == []
    # every submission to the webhook sink under one webhook-id (its submission_id)
    assert len(receiver.ids) == CALLS and receiver.bad == 0
    for sid, ids in receiver.ids.items():
        assert set(ids) == {sid}, (sid, ids)
    # ... and to the JSONL sink of the instance that delivered it (once per file)
    lines = [line for inst in instances for line in inst.lines()]
    for inst in instances:
        ids = [line["submission_id"] for line in inst.lines()]
        assert len(ids) == len(set(ids))
    assert {line["submission_id"] for line in lines} == set(receiver.ids)
    assert {line["call"]["call_control_id"] for line in lines} == set(calls)
    assert all(line["status"] == "completed" for line in lines)
