"""A fast fake of Telnyx's call-control API for the benchmark (no webhooks back).

    python -m bench.fake_api PORT

`POST /v2/calls/{id}/actions/{action}` answers `{"data": {"result": "ok"}}` (plus a
`conversation_id` for gather_using_ai) and records the action, call id, `command_id` and
arrival time (time.time()). `GET /v2/calls/{id}` says the call is alive. `GET /stats` gives
counts, `GET /commands` every record, `POST /reset` forgets them.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter

import orjson
import uvloop
from aiohttp import web

records: list[tuple[str, str, float, str | None]] = []  # action, call id, time, command_id


def _json(doc: object) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


async def action(request: web.Request) -> web.Response:
    arrived = time.time()
    ccid, name = request.match_info["ccid"], request.match_info["action"]
    try:
        command_id = orjson.loads(await request.read()).get("command_id")
    except (orjson.JSONDecodeError, AttributeError):
        command_id = None
    records.append((name, ccid, arrived, command_id))
    data: dict[str, str] = {"result": "ok"}
    if name == "gather_using_ai":
        data["conversation_id"] = str(uuid.uuid4())
    return _json({"data": data})


async def call_status(request: web.Request) -> web.Response:
    ccid = request.match_info["ccid"]
    return _json({"data": {"call_control_id": ccid, "is_alive": True, "record_type": "call"}})


async def stats(request: web.Request) -> web.Response:
    ids = Counter(r[3] for r in records if r[3] is not None)
    return _json(
        {
            "total": len(records),
            "by_action": Counter(r[0] for r in records),
            "repeated_command_ids": sum(n - 1 for n in ids.values()),
        }
    )


async def commands(request: web.Request) -> web.Response:
    return _json([{"action": a, "ccid": c, "at": t, "command_id": i} for a, c, t, i in records])


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def reset(request: web.Request) -> web.Response:
    records.clear()
    return _json({"ok": True})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v2/calls/{ccid}/actions/{action}", action)
    app.router.add_get("/v2/calls/{ccid}", call_status)
    app.router.add_get("/stats", stats)
    app.router.add_get("/commands", commands)
    app.router.add_post("/reset", reset)
    app.router.add_get("/healthz", healthz)
    return app


async def _main(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(_main(int(sys.argv[1])))
