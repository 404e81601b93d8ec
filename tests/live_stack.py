"""The whole server in live mode on loopback, against the fake Telnyx API (for tests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from collector.config import load_settings
from collector.runtime import Runtime, build_runtime
from collector.simulator.fake_telnyx import FakeTelnyx
from collector.simulator.signing import sign
from collector.web.app import create_app
from tests.harness import serve, write_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NUMBER = "+13125550001"  # routed to the contact form


@dataclass
class Stack:
    fake: FakeTelnyx
    runtime: Runtime
    url: str
    tmp: Path
    client: httpx.AsyncClient

    async def submissions(self) -> list[dict[str, Any]]:
        path = self.tmp / "results.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = sign(body, self.fake.signing_key) if headers is None else headers
        return await self.client.post(f"{self.url}/webhooks/telnyx", content=body, headers=hdrs)


@asynccontextmanager
async def live_stack(tmp_path: Path, admin_token: str | None = None) -> AsyncIterator[Stack]:
    """A running server (contact, secret and handoff forms routed, one JSONL sink); with
    `admin_token`, the server has that token and the client sends it."""
    holder: dict[str, str] = {}
    fake = FakeTelnyx(lambda: holder["url"] + "/webhooks/telnyx", pace=0.0)
    async with serve(fake.asgi_app()) as telnyx_url:
        environ = {
            "TELNYX_API_KEY": "KEY_test",
            "TELNYX_PUBLIC_KEY": fake.public_key_b64,
            "TELNYX_BASE_URL": f"{telnyx_url}/v2",
        }
        cfg = write_config(
            tmp_path / "collector.toml",
            FIXTURES / "forms",
            (f'admin_token = "{admin_token}"\n' if admin_token else "")
            + f'[routing.numbers]\n"{NUMBER}" = "contact"\n"+13125550002" = "secret"\n"+13125550003" = "handoff"\n'
            '[[sinks]]\ntype = "jsonl"\npath = "results.jsonl"\n',
        )
        runtime = build_runtime(load_settings(cfg, environ), environ)
        auth = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        async with (
            serve(create_app(runtime)) as url,
            httpx.AsyncClient(timeout=20, headers=auth) as client,
        ):
            holder["url"] = url
            yield Stack(fake=fake, runtime=runtime, url=url, tmp=tmp_path, client=client)
