"""A sandbox-mode server on loopback for the web edge's tests: the admin API, the
dashboard, auth and the live streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from collector.config import load_settings
from collector.runtime import Runtime, build_runtime
from collector.web.app import create_app
from collector.web.live import Hub
from tests.harness import eventually, free_socket, serve, write_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TOKEN = "test-admin-token-0123456789"
TERMINAL = {"completed", "incomplete", "abandoned", "failed"}


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


@dataclass
class Server:
    url: str
    runtime: Runtime
    app: Starlette
    token: str
    client: httpx.AsyncClient  # sends the bearer token
    anon: httpx.AsyncClient  # sends nothing
    tmp: Path

    @property
    def hub(self) -> Hub:
        return self.app.state.web.hub

    async def simulate(self, form: str, answers: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"form": form}
        if answers is not None:
            body["answers"] = dict(answers)
        response = await self.client.post("/api/simulate", json=body)
        assert response.status_code == 202, response.text
        data = response.json()
        assert data["session_id"], data
        return data

    async def session(self, session_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/sessions/{session_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def finished(self, session_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The session once it is terminal and every delivery has settled."""

        async def probe() -> dict[str, Any] | None:
            view = await self.session(session_id)
            if view["state"] not in TERMINAL:
                return None
            if view["submission"] is not None and any(
                d["state"] == "pending" for d in view["deliveries"]
            ):
                return None
            if view["submission"] is not None and not view["deliveries"]:
                return None
            return view

        return await eventually(probe, timeout=timeout, interval=0.05)

    def results(self) -> list[dict[str, Any]]:
        path = self.tmp / "results.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@asynccontextmanager
async def sandbox_server(
    tmp: Path,
    *,
    pace: float = 0.05,
    token: str | None = TOKEN,
    extra: str = "",
    environ: Mapping[str, str] | None = None,
    forms: Path | None = None,
) -> AsyncIterator[Server]:
    """A whole server in sandbox mode (no TELNYX_API_KEY) on an ephemeral loopback port;
    `forms` (default: the fixture forms) is its forms_dir."""
    config = f"sandbox_pace_seconds = {pace}\n" + extra
    if token is not None:
        config = f'admin_token = "{token}"\n' + config
    cfg = write_config(tmp / "collector.toml", forms or FIXTURES / "forms", config)
    env = dict(environ or {})
    runtime = build_runtime(load_settings(cfg, env), env)
    sock = free_socket()
    runtime.self_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(runtime)
    used = app.state.web.auth.token
    async with (
        serve(app, sock) as url,
        httpx.AsyncClient(
            base_url=url, timeout=15, headers={"Authorization": f"Bearer {used}"}
        ) as client,
        httpx.AsyncClient(base_url=url, timeout=15) as anon,
    ):
        yield Server(
            url=url, runtime=runtime, app=app, token=used, client=client, anon=anon, tmp=tmp
        )
        await _settle(runtime)


async def _settle(runtime: Runtime) -> None:
    """Let simulated calls finish their goodbyes before the server stops."""
    sandbox = runtime.sandbox
    fake = getattr(sandbox, "fake", None)
    if fake is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fake.idle(), 10)


@pytest.fixture(name="server")
async def _server(tmp_path: Path) -> AsyncIterator[Server]:
    async with sandbox_server(tmp_path) as server:
        yield server


@pytest.fixture(name="slow_server")
async def _slow_server(tmp_path: Path) -> AsyncIterator[Server]:
    """Webhooks 0.2 s apart, so a call stays mid-gather long enough to look at."""
    async with sandbox_server(tmp_path, pace=0.2) as server:
        yield server
