"""The stack under test: a real `collector serve` process in live mode against the fake
Telnyx (`collector.simulator.FakeTelnyx`, served on loopback in this process), with a
JSONL, a SQLite and a webhook sink, and the webhook sink's receiver (which can hang).

The server is a child process so it can be `kill -9`ed and restarted on the same port;
the fake keeps redelivering webhooks while it is down, as Telnyx does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.simulator.fake_telnyx import FakeTelnyx
from soak.poster import Poster

ROOT = Path(__file__).resolve().parent.parent
FORMS = ROOT / "schemas"
FORM = "intake"
NUMBER = "+13125550001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on an ephemeral loopback port in this event loop."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", lifespan="auto", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def until(probe: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll `probe()` (sync) until truthy; raise TimeoutError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"not reached within {timeout:.0f} s")
        await asyncio.sleep(interval)


class Receiver:
    """The webhook sink's downstream: verifies each POST, records it, or hangs.

    While `hanging`, a request is held (never answered) until the hang ends, then dropped
    with 503: the server's client has given up on it by then, so it is not recorded.
    """

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.hanging = asyncio.Event()  # set: hang
        self.released = asyncio.Event()
        self.by_submission: dict[str, list[str]] = defaultdict(list)  # -> webhook-ids
        self.hung = 0
        self.bad_signatures = 0

    def hang(self) -> None:
        self.released.clear()
        self.hanging.set()

    def release(self) -> None:
        self.hanging.clear()
        self.released.set()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if self.hanging.is_set():
            self.hung += 1
            await self.released.wait()
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


@dataclass
class Server:
    """`collector serve` as a child process, on a fixed port, restartable."""

    workdir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 60.0) -> None:
        with (self.workdir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector.cli", "serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        async with httpx.AsyncClient(timeout=1) as client:

            async def healthy() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"collector serve exited; see {self.workdir}/server.log")
                try:
                    return (await client.get(f"{self.url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not await healthy():
                if loop.time() > deadline:
                    raise TimeoutError("collector serve did not become healthy")
                await asyncio.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rss_mb(self) -> float:
        """The server's resident set size now (VmRSS), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far (user + system, all its threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_summary(self) -> tuple[Counter[str], Counter[str]]:
        """From the server's log (all its runs): lines by level, and the retries and
        repeats it logged (`delivery_retry` by sink, `command_retry`, `webhook_duplicate`)."""
        levels: Counter[str] = Counter()
        events: Counter[str] = Counter()
        path = self.workdir / "server.log"
        if not path.exists():
            return levels, events
        with path.open(errors="replace") as f:
            for line in f:
                try:
                    doc = json.loads(line)
                    levels[str(doc.get("level", "?"))] += 1
                except (json.JSONDecodeError, AttributeError):
                    levels["(not json)"] += 1
                    continue
                event = doc.get("event")
                if event == "delivery_retry":
                    events[f"delivery_retry {doc.get('sink')}"] += 1
                elif event in ("command_retry", "command_reissued", "webhook_duplicate"):
                    events[str(event)] += 1
        return levels, events


@dataclass
class Stack:
    fake: FakeTelnyx
    receiver: Receiver
    server: Server
    workdir: Path
    jsonl: Path
    sqlite: Path
    calls: list[str] = field(default_factory=list)

    async def place_call(self, i: int) -> str:
        ccid = await self.fake.place_call(to=NUMBER, from_=f"+1312556{i % 10000:04d}")
        self.calls.append(ccid)
        return ccid


@asynccontextmanager
async def stack(
    workdir: Path, *, jsonl_dir: Path | None = None, pace: float = 0.05, cheap_http: bool = False
) -> AsyncIterator[Stack]:
    """Start the fake Telnyx, the receiver and the server; stop them all after.

    With `cheap_http` the fake posts its webhooks through `soak.poster` (aiohttp), not httpx.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    jsonl = (jsonl_dir or workdir) / "results.jsonl"
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver(secret)
    port = free_port()
    poster = Poster() if cheap_http else None
    url = f"http://127.0.0.1:{port}/webhooks/telnyx"
    fake = FakeTelnyx(url, pace=pace, http=poster)  # type: ignore[arg-type]
    fake.sender.retries = 200  # keep redelivering (up to ~6 min) while the server is down
    fake.retain_seconds = 120.0  # forget ended calls sooner: the soak places many
    async with (
        poster or contextlib.nullcontext(),  # closed last, once the fake has stopped sending
        serve(receiver.app()) as hook_url,
        serve(fake.asgi_app()) as telnyx_url,
    ):
        (workdir / "collector.toml").write_text(
            f"forms_dir = {json.dumps(str(FORMS))}\n"
            'database_url = "sqlite:///collector.db"\n'
            "hangup_grace_seconds = 0.5\n"
            'log_format = "json"\n'
            f'[routing]\ndefault_form = "{FORM}"\n'
            f'[[sinks]]\ntype = "jsonl"\npath = {json.dumps(str(jsonl))}\n'
            '[[sinks]]\ntype = "sqlite"\npath = "results.db"\n'
            f'[[sinks]]\nname = "downstream"\ntype = "webhook"\nurl = "{hook_url}/hook"\n'
            'secret = "${HOOK_SECRET}"\ntimeout_seconds = 2\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "COLLECTOR_"))}
        env.update(
            TELNYX_API_KEY="KEY_soak",
            TELNYX_PUBLIC_KEY=fake.public_key_b64,
            TELNYX_BASE_URL=f"{telnyx_url}/v2",
            COLLECTOR_ADMIN_TOKEN=secrets.token_urlsafe(16),
            HOOK_SECRET=secret,
        )
        server = Server(workdir, port, env)
        await server.start()
        try:
            yield Stack(fake, receiver, server, workdir, jsonl, workdir / "results.db")
        finally:
            receiver.release()
            server.stop()
