"""Schemathesis over the whole admin API with its headers and cookies: never a 5xx.

test_schemathesis.py fuzzes paths, queries and bodies with the bearer token. Here the
served document is extended with what a client also controls (the dashboard's session
cookie on every operation, `Origin` / `Sec-Fetch-Site` on the state-changing ones) and the
event streams' `Last-Event-ID` header is fuzzed too, each stream opened and closed again.
Bounded like the rest: a few dozen examples per test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from collector.web.auth import COOKIE_NAME
from tests.harness import eventually
from tests.web.conftest import Server, sandbox_server

pytestmark = pytest.mark.anyio

MAX_EXAMPLES = 30
ODD = ["v1.².x", "v1.٣.x", "v1.1_0.x", "v1.-1.x", "v1..", "v1.99999999999999999999.x", "²"]
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def document(url: str, cookie_examples: list[str], origin_headers: bool = False) -> Any:
    """The served document, with the session cookie (and Origin headers) as parameters."""
    doc = requests.get(f"{url}/openapi.json", timeout=10).json()
    examples = {f"e{i}": {"value": v} for i, v in enumerate(cookie_examples)}
    for item in doc["paths"].values():
        for method, op in item.items():
            params = op.setdefault("parameters", [])
            cookie = {"name": COOKIE_NAME, "in": "cookie", "required": True}
            params.append({**cookie, "schema": {"type": "string"}, "examples": examples})
            if origin_headers and method == "post":
                params += [
                    {"name": "Origin", "in": "header", "schema": {"type": "string"}},
                    {
                        "name": "Sec-Fetch-Site",
                        "in": "header",
                        "schema": {"enum": ["same-origin", "same-site", "cross-site", "none"]},
                    },
                ]
    return schemathesis.openapi.from_dict(doc)


def any_cookie_is_a_401(url: str, mode: GenerationMode) -> list[int]:
    """No bearer: whatever the cookie, every operation (streams too) answers 401."""
    schema = document(url, ODD)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    statuses: list[int] = []

    @HYPOTHESIS
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=url, checks=checks, timeout=20)
        assert response.status_code == 401, (case.cookies, response.text)
        statuses.append(response.status_code)

    run()
    return statuses


def the_signed_cookie_works_like_the_token(url: str, cookie: str) -> list[int]:
    """The dashboard's cookie (the only one that passes) with random Origin headers."""
    schema = document(url, [cookie], origin_headers=True).exclude(path_regex=r"/events$")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    statuses: list[int] = []

    @HYPOTHESIS
    @given(case=schema.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case: schemathesis.Case) -> None:
        if case.cookies is not None:
            case.cookies[COOKIE_NAME] = cookie  # generated strings are not signed
        response = case.call_and_validate(base_url=url, checks=checks, timeout=20)
        statuses.append(response.status_code)

    run()
    return statuses


def any_last_event_id_is_a_stream_or_a_400(url: str, token: str, session_id: str) -> list[int]:
    """The streams with generated Last-Event-ID / last_event_id: 200 or 400, never 5xx."""
    doc = requests.get(f"{url}/openapi.json", timeout=10).json()
    for op in (
        doc["paths"]["/api/events"]["get"],
        doc["paths"]["/api/sessions/{id}/events"]["get"],
    ):
        for param in op["parameters"]:
            if param["name"] == "Last-Event-ID":
                param["examples"] = {
                    f"e{i}": {"value": v} for i, v in enumerate(["²", "٣", "1_0", "7"])
                }
    schema = schemathesis.openapi.from_dict(doc).include(path_regex=r"/events$")
    statuses: list[int] = []

    @HYPOTHESIS
    @given(case=schema.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case: schemathesis.Case) -> None:
        if case.path_parameters:
            case.path_parameters["id"] = session_id  # a random id is a 404 before the header
        kwargs = case.as_transport_kwargs(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        )
        with requests.request(**kwargs, stream=True, timeout=10) as response:
            status = response.status_code
            kind = response.headers.get("content-type", "")
            assert status in (200, 400), (kwargs, status, response.text if status != 200 else "")
            assert kind.startswith("text/event-stream" if status == 200 else "application/json")
        statuses.append(status)

    run()
    return statuses


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
async def test_any_session_cookie_without_the_token_is_a_401(
    tmp_path: Path, mode: GenerationMode
) -> None:
    async with sandbox_server(tmp_path, pace=0.01) as server:
        statuses = await anyio.to_thread.run_sync(any_cookie_is_a_401, server.url, mode)
    assert len(statuses) >= MAX_EXAMPLES // 2


async def test_the_signed_cookie_with_any_origin_is_never_a_5xx(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path, pace=0.01) as server:
        cookie = server.app.state.web.auth.cookie_value()
        statuses = await anyio.to_thread.run_sync(
            the_signed_cookie_works_like_the_token, server.url, cookie
        )
    assert len(statuses) >= MAX_EXAMPLES // 2
    assert any(s < 300 for s in statuses)  # the cookie did authenticate
    assert 403 in statuses  # and a foreign Origin was refused


async def test_any_last_event_id_is_a_stream_or_a_400(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path, pace=0.01) as server:
        placed = await server.simulate("contact")
        statuses = await anyio.to_thread.run_sync(
            any_last_event_id_is_a_stream_or_a_400, server.url, server.token, placed["session_id"]
        )
        await eventually(lambda: _closed(server))  # every stream was closed again
    assert len(statuses) >= MAX_EXAMPLES // 2
    assert {200, 400} <= set(statuses)


async def _closed(server: Server) -> bool:
    return not server.hub._subscribers
