"""Property-based checks of the admin API against its own /openapi.json (schemathesis).

Schemathesis's Python API is synchronous (requests), so it runs in a worker thread while
the server runs on the test's event loop. Bounded: a few dozen examples per mode.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import sandbox_server

pytestmark = pytest.mark.anyio

MAX_EXAMPLES = 40


def fuzz(url: str, token: str, mode: GenerationMode) -> int:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # the event streams never end on their own: test_sse.py covers them
    schema = schema.exclude(path_regex=r"/events$")
    headers = {"Authorization": f"Bearer {token}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    if mode == GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)
    else:
        checks.append(negative_data_rejection)
    calls = 0

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=20)

    run()
    return calls


def walk(url: str, token: str) -> None:
    """The happy paths random data rarely reaches, validated against the document too."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    def call(path: str, method: str, **kw: object) -> dict:
        case = schema[path][method].Case(**kw)  # type: ignore[arg-type]
        response = case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=20)
        assert response.status_code < 300, response.text
        return response.json()

    placed = call("/api/simulate", "POST", body={"form": "contact"})
    sid = placed["session_id"]
    call("/api/forms/{id}", "GET", path_parameters={"id": "contact"})
    call("/api/forms", "GET")
    call("/api/sessions", "GET", query={"limit": 1, "form": "contact"})
    call("/api/sessions/{id}", "GET", path_parameters={"id": sid})
    call("/api/sessions/{id}/cancel", "POST", path_parameters={"id": sid}, body={"reason": "fuzz"})
    done = call("/api/sessions/{id}", "GET", path_parameters={"id": sid})
    assert done["state"] == "abandoned"
    dialled = call("/api/calls", "POST", body={"to": "+13125550190", "form": "contact"})
    assert dialled["status"] == "dialing"
    call("/api/sessions/{id}", "GET", path_parameters={"id": dialled["session_id"]})


async def test_the_happy_paths_match_the_document(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path, pace=0.2) as server:
        await anyio.to_thread.run_sync(walk, server.url, server.token)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
async def test_the_api_matches_its_openapi_document(tmp_path: Path, mode: GenerationMode) -> None:
    async with sandbox_server(tmp_path, pace=0.01) as server:
        calls = await anyio.to_thread.run_sync(fuzz, server.url, server.token, mode)
        assert calls >= MAX_EXAMPLES // 2


async def test_the_document_names_every_route_and_the_error_shape(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path) as server:
        doc = (await server.anon.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/api/forms",
        "/api/forms/{id}",
        "/api/sessions",
        "/api/sessions/{id}",
        "/api/sessions/{id}/cancel",
        "/api/sessions/{id}/events",
        "/api/events",
        "/api/events/dead",
        "/api/simulate",
        "/api/calls",
    }
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
