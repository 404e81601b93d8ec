"""Run ASGI apps on real loopback sockets inside a test's event loop, `collector serve`
processes beside them, and wait on things."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

T = TypeVar("T")


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@asynccontextmanager
async def serve(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on an ephemeral loopback port; yields its base URL."""
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan="auto", access_log=False)
    )
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


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 15.0, interval: float = 0.02
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def write_config(path: Path, forms_dir: Path, extra: str = "") -> Path:
    """A collector.toml for a test: the given forms, a temp database and JSONL file."""
    path.write_text(
        f'forms_dir = "{forms_dir}"\n'
        f'database_url = "sqlite:///{path.parent / "collector.db"}"\n'
        "hangup_grace_seconds = 0.5\n" + extra,
        encoding="utf-8",
    )
    return path


def env(**values: str) -> Mapping[str, str]:
    return dict(values)


def free_port() -> int:
    """A loopback port free right now, for a server process to bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_env() -> dict[str, str]:
    """This process's environment without its TELNYX_ and COLLECTOR_ variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "COLLECTOR_"))}


def telnyx_env(public_key: str, telnyx_url: str, **extra: str) -> dict[str, str]:
    """bare_env() for a server in live mode against a fake Telnyx at `telnyx_url` (whose
    webhooks are signed with `public_key`), with `extra` variables."""
    env = bare_env()
    env.update(
        TELNYX_API_KEY="KEY_test",
        TELNYX_PUBLIC_KEY=public_key,
        TELNYX_BASE_URL=f"{telnyx_url}/v2",
        **extra,
    )
    return env


def start_server(cwd: Path, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """`collector serve --port port` run in `cwd`, its stderr appended to cwd/server.log."""
    with open(cwd / "server.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--port", str(port)],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


@contextmanager
def running_server(cwd: Path, env: Mapping[str, str]) -> Iterator[str]:
    """start_server on a free port with `env` over bare_env(); its URL once it answers
    /healthz (within 30 s, or while it has not exited), and SIGTERM after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(cwd, port, {**bare_env(), **env})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


async def healthy(url: str, path: str = "/healthz") -> bool:
    """Whether the server at `url` answers `path` with 200 (False while it cannot)."""
    try:
        async with httpx.AsyncClient(timeout=1) as c:
            return (await c.get(f"{url}{path}")).status_code == 200
    except httpx.HTTPError:
        return False


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file ([] until it exists)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def now(value: T) -> T:
    """`value`, awaitable: for `eventually` on a condition that needs no I/O."""
    return value


class HookReceiver:
    """A webhook sink's far end, served on POST /hook: 503 while not `up`; else it verifies
    the signature (400 and `bad` += 1 if wrong), waits `delay` s, keeps the webhook-id under
    its submission in `ids`, and answers 204."""

    def __init__(self, up: bool = True, delay: float = 0.0) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.webhook = Webhook(self.secret)
        self.up = up
        self.delay = delay
        self.ids: dict[str, list[str]] = defaultdict(list)  # submission -> webhook-ids
        self.bad = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if not self.up:
            return Response(status_code=503)
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except Exception:
            self.bad += 1
            return Response(status_code=400)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.ids[payload["submission_id"]].append(request.headers["webhook-id"])
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])
