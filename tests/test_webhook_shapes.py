"""Signed webhooks of every kind with odd shapes: a 200 or a 400, never a 5xx.

Each fixture event is mutated many times (a value anywhere under `data` replaced by a value
of another JSON type, or removed) and sent for a call that has a live session, so the odd
shapes reach decide() and the store, not only the parser. The server must answer each with
200 (recorded) or 400 (refused with a reason), and keep working afterwards.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_stack import FIXTURES, NUMBER, live_stack

pytestmark = pytest.mark.anyio

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1e308,
    "",
    "x" * 5000,
    "v3:someone-else",
    [],
    {},
    [None],
    [{"role": 1, "content": None}],
    {"name": {"nested": [1, 2]}},
    "2026-13-45T99:99:99Z",
    "☎️ ünïcödé",
]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _mutate(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    path = rng.choice([p for p in _paths(out["data"], ("data",)) if len(p) > 1])
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    return out


async def test_odd_shapes_of_every_event_get_200_or_400_and_the_server_keeps_working(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261124)
    fixtures = {
        path.stem: json.loads(path.read_text())
        for path in sorted((FIXTURES / "telnyx").glob("call.*.json"))
    }
    async with live_stack(tmp_path) as stack:
        initiated = fixtures["call.initiated"]
        ccid = initiated["data"]["payload"]["call_control_id"]
        initiated["data"]["payload"]["to"] = NUMBER
        first = await stack.post(json.dumps(initiated).encode())
        assert first.status_code == 200
        statuses: dict[int, int] = {}
        for n in range(40):
            for name, doc in fixtures.items():
                odd = _mutate(doc, rng)
                data = odd.get("data")
                if isinstance(data, dict) and isinstance(data.get("payload"), dict):
                    if data["payload"].get("call_control_id") == doc["data"]["payload"].get(
                        "call_control_id"
                    ):
                        data["payload"]["call_control_id"] = ccid  # reach the live session
                    if isinstance(data.get("id"), str):
                        data["id"] = f"{name}-{n}"  # not a redelivery
                r = await stack.post(json.dumps(odd).encode())
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                assert r.status_code in (200, 400), (name, odd, r.status_code, r.text)
                if r.status_code == 400:
                    assert r.json()["error"]["message"]
        assert statuses.get(200, 0) > 100 and statuses.get(400, 0) > 10  # both paths ran
        health = await stack.client.get(f"{stack.url}/healthz")
        assert health.status_code == 200
        fresh = copy.deepcopy(initiated)
        fresh["data"]["id"] = "after-the-storm"
        fresh["data"]["payload"]["call_control_id"] = "v3:after-the-storm"
        assert (await stack.post(json.dumps(fresh).encode())).status_code == 200
        # the fresh call was really taken in, and the stormed call's session still reads
        after = await stack.runtime.store.session_by_call("v3:after-the-storm")
        assert after is not None and after.event_ids == ["after-the-storm"]
        assert (after.form, after.call.to) == ("contact", NUMBER)
        stormed = await stack.runtime.store.session_by_call(ccid)
        assert stormed is not None and initiated["data"]["id"] in stormed.event_ids
