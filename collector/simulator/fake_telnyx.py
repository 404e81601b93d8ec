"""A fake Telnyx Call Control API that plays the phone network and a scripted caller.

`FakeTelnyx.asgi_app()` serves the real paths (`POST /v2/calls`,
`POST /v2/calls/{id}/actions/{action}`, `PUT /v2/calls/{id}/actions/client_state_update`,
`GET /v2/calls/{id}`), so the official SDK talks to it unchanged. Mount it inside another
Starlette app (sandbox mode mounts it at `/_sandbox/telnyx`, making the SDK's base URL
`http://host:port/_sandbox/telnyx/v2`) or run it alone under uvicorn (base URL
`http://127.0.0.1:PORT/v2`).

Every request body is checked against the SDK's param types (`collector.telnyx_params`);
a bad body gets Telnyx's 422 and lands in `fake.rejected`. Accepted commands land in
`fake.requests`, and after the response the fake sends, `pace` seconds apart, the
webhooks Telnyx would send next, signed with Ed25519 exactly as Telnyx signs them.

Inbound calls start with `await fake.place_call(to, script=...)`; outbound calls start
when the server dials (`fake.script_for_number(number, script)` sets the callee's
script). `await fake.idle()` waits until every scheduled webhook has been delivered.

The fake's state lives on the event loop that serves it; `place_call`, `hangup_call`
and `idle` may be awaited from another loop (another thread) and hop over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import httpx
import orjson
from nacl.signing import SigningKey
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.simulator.caller import ScriptedCaller
from collector.simulator.calls import (
    DEFAULT_CONNECTION_ID,
    Delivery,
    RecordedCommand,
    RejectedCommand,
    SimCall,
)
from collector.simulator.network import Network
from collector.simulator.script import CallScript
from collector.simulator.signing import generate_keypair, public_key_b64
from collector.simulator.webhooks import WebhookSender
from collector.telnyx_params import ACTIONS, check_params

__all__ = ["FakeTelnyx", "RecordedCommand", "RejectedCommand", "SimCall"]

log = logging.getLogger(__name__)

CALL_ACTIONS = ACTIONS - {"dial"}
DEDUPE_SECONDS = 60.0
_BEFORE_ANSWER_OK = frozenset({"answer", "hangup", "client_state_update"})

T = TypeVar("T")


class _Refusal(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail


class FakeTelnyx:
    """The simulated calls and the fake Call Control API that drives them."""

    retain_seconds = 600.0  # how long an ended call stays in `calls` (and retrievable)

    def __init__(
        self,
        webhook_url: str | Callable[[], str],
        signing_key: SigningKey | None = None,
        pace: float = 0.02,
        http: httpx.AsyncClient | None = None,
        strict: bool = True,
    ) -> None:
        self.signing_key = signing_key if signing_key is not None else generate_keypair()[0]
        self.strict = strict
        self.calls: dict[str, SimCall] = {}
        self.requests: list[RecordedCommand] = []
        self.rejected: list[RejectedCommand] = []  # bodies that broke the SDK's param types
        self.refused: list[RejectedCommand] = []  # call-state errors: 90015, 90018, 90034, ...
        self.duplicates: list[RecordedCommand] = []  # repeated command_ids, acknowledged only
        self.scripts: dict[str, CallScript] = {}
        self._http = http
        self._own_http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._app: Starlette | None = None
        self.sender = WebhookSender(self.signing_key, http=self._client, backoff=max(pace, 0.05))
        self.network = Network(self.calls, self.sender, webhook_url, pace)
        self.sender.on_first_send = self.network.sent

    # -- public API ---------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str | Callable[[], str]:
        """Where webhooks go (a callable is asked at each delivery)."""
        return self.network.webhook_url

    @webhook_url.setter
    def webhook_url(self, value: str | Callable[[], str]) -> None:
        self.network.webhook_url = value

    @property
    def pace(self) -> float:
        """Seconds between the webhooks that follow a command."""
        return self.network.pace

    @pace.setter
    def pace(self, value: float) -> None:
        self.network.pace = value

    @property
    def public_key_b64(self) -> str:
        """The base64 Ed25519 public key webhooks verify with (the server's TELNYX_PUBLIC_KEY)."""
        return public_key_b64(self.signing_key)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery attempt, in order."""
        return self.sender.deliveries

    @property
    def undelivered(self) -> list[dict[str, Any]]:
        """Envelopes given up on after every redelivery failed."""
        return self.sender.undelivered

    def asgi_app(self) -> Starlette:
        """The fake's HTTP API, mountable or servable on its own."""
        if self._app is None:

            @contextlib.asynccontextmanager
            async def lifespan(app: Starlette) -> AsyncIterator[None]:
                self._home()
                yield
                await self.aclose()

            self._app = Starlette(
                routes=[
                    Route("/v2/calls", self._dial, methods=["POST"]),
                    Route(
                        "/v2/calls/{call_control_id:path}/actions/{action}",
                        self._action,
                        methods=["POST", "PUT"],
                    ),
                    Route("/v2/calls/{call_control_id:path}", self._status, methods=["GET"]),
                ],
                lifespan=lifespan,
            )
        return self._app

    def script_for_number(self, number: str, script: CallScript | Mapping[str, Any] | None) -> None:
        """The script the callee plays when the server dials `number`."""
        self.scripts[number] = CallScript.parse(script)

    async def place_call(
        self,
        to: str,
        from_: str = "+13125550100",
        script: CallScript | Mapping[str, Any] | None = None,
        connection_id: str = DEFAULT_CONNECTION_ID,
    ) -> str:
        """Ring the server with a new inbound call; returns its call_control_id."""
        parsed = CallScript.parse(script)
        return await self._at_home(self._place_call(to, from_, parsed, connection_id))

    async def _place_call(self, to: str, from_: str, script: CallScript, connection_id: str) -> str:
        self._forget_old()
        return self.network.ring_inbound(to, from_, script, connection_id).call_control_id

    async def hangup_call(
        self, call_control_id: str, source: str = "caller", cause: str = "normal_clearing"
    ) -> None:
        """The far end hangs up: `call.hangup` goes out, and later commands get 90018."""
        await self._at_home(self._hangup_call(call_control_id, source, cause))

    def commands(self, call_control_id: str, action: str | None = None) -> list[RecordedCommand]:
        """The accepted commands for one call (dial included), optionally of one action."""
        return [
            c
            for c in self.requests
            if c.call_control_id == call_control_id and (action is None or c.action == action)
        ]

    def events(self, call_control_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """The webhook envelopes sent for one call (first attempts), optionally of one type."""
        call = self.calls.get(call_control_id)
        if call is None:
            return []
        return [
            e
            for e in call.events_sent
            if event_type is None or e["data"]["event_type"] == event_type
        ]

    async def idle(self, settle: float = 0.0) -> None:
        """Wait until no call has anything left to do or to deliver.

        With `settle`, also wait that long with nothing new happening (a receiver that
        reacts to a webhook with a new command restarts the wait).
        """
        await self._at_home(self._idle(settle))

    async def aclose(self) -> None:
        """Stop every call's activity and sender; close the HTTP client if the fake made it."""
        for call in self.calls.values():
            for task in list(call.tasks):
                task.cancel()
        tasks = [t for c in self.calls.values() for t in c.tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks)
        await self.sender.aclose()
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    close = aclose

    # -- loops ------------------------------------------------------------------------------

    def _home(self) -> bool:
        """Adopt the running loop as the fake's home if it has none; True when on it."""
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        return loop is self._loop

    async def _at_home(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._home():
            return await coro
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def _client(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._own_http is None:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
            self._own_http = httpx.AsyncClient(limits=limits)
        return self._own_http

    async def _idle(self, settle: float) -> None:
        while True:
            tasks = [t for c in self.calls.values() for t in c.tasks if not t.done()]
            if tasks:
                await asyncio.wait(tasks)
                continue
            if self.sender.pending:
                await self.sender.drained()
                continue
            if settle > 0:
                mark = (len(self.requests), len(self.sender.deliveries))
                await asyncio.sleep(settle)
                if mark != (len(self.requests), len(self.sender.deliveries)) or any(
                    not t.done() for c in self.calls.values() for t in c.tasks
                ):
                    continue
            return

    async def _hangup_call(self, call_control_id: str, source: str, cause: str) -> None:
        call = self.calls.get(call_control_id)
        if call is None:
            raise KeyError(f"no simulated call {call_control_id!r}")
        self.network.hangup_now(call, source, cause)

    # -- HTTP -------------------------------------------------------------------------------

    @staticmethod
    def _error(
        status: int, code: str, title: str, detail: str, pointer: str | None = None
    ) -> JSONResponse:
        err: dict[str, Any] = {"code": code, "title": title, "detail": detail}
        if pointer is not None:
            err["source"] = {"pointer": pointer}
        return JSONResponse({"errors": [err]}, status_code=status)

    async def _read(
        self, request: Request, call_control_id: str | None, action: str
    ) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        self._home()
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            problems = [f"/: the body is not valid JSON ({exc})"]
            self.rejected.append(
                RejectedCommand(call_control_id, action, raw, problems, time.time())
            )
            return None, self._error(400, "10015", "Bad Request", problems[0], "/")
        problems = check_params(action, body)
        if problems and not isinstance(body, dict):
            self.rejected.append(
                RejectedCommand(call_control_id, action, body, problems, time.time())
            )
            return None, self._error(400, "10015", "Bad Request", problems[0], "/")
        if problems:
            self.rejected.append(
                RejectedCommand(call_control_id, action, body, problems, time.time())
            )
            log.warning("fake telnyx refused %s: %s", action, "; ".join(problems))
            if self.strict:
                pointer = problems[0].split(": ", 1)[0]
                detail = "; ".join(problems)
                return None, self._error(422, "10015", "Bad Request", detail, pointer)
        return body, None

    def _forget_old(self) -> None:
        """Drop calls ended over `retain_seconds` ago (Telnyx keeps them 10 minutes) and
        command_ids past the dedupe window, so a long-running sandbox does not grow."""
        now = time.monotonic()
        for ccid in [
            c.call_control_id
            for c in self.calls.values()
            if c.ended_monotonic is not None and now - c.ended_monotonic > self.retain_seconds
        ]:
            del self.calls[ccid]
        if len(self._seen) > 1000:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < DEDUPE_SECONDS}

    def _duplicate(self, key: tuple[str, str]) -> dict[str, Any] | None:
        seen = self._seen.get(key)
        if seen is not None and time.monotonic() - seen[0] < DEDUPE_SECONDS:
            return seen[1]
        return None

    async def _dial(self, request: Request) -> JSONResponse:
        self._forget_old()
        body, error = await self._read(request, None, "dial")
        if body is None:
            assert error is not None
            return error
        command_id = body.get("command_id")
        if isinstance(command_id, str):
            prior = self._duplicate(("dial", command_id))
            if prior is not None:
                ccid = prior["data"]["call_control_id"]
                self.duplicates.append(RecordedCommand(ccid, "dial", body, command_id, time.time()))
                return JSONResponse(prior)
        to = body.get("to")
        to = str(to if not isinstance(to, list) else (to[0] if to else ""))
        script = self.scripts.get(to) or CallScript()
        call = SimCall.new(
            from_=str(body.get("from", "")),
            to=to,
            direction="outgoing",
            caller=ScriptedCaller(script),
            connection_id=str(body.get("connection_id", DEFAULT_CONNECTION_ID)),
            client_state=body.get("client_state"),
        )
        url = body.get("webhook_url")
        call.webhook_url = url if isinstance(url, str) and url else None
        self.calls[call.call_control_id] = call
        self.requests.append(
            RecordedCommand(call.call_control_id, "dial", body, command_id, time.time())
        )
        response = {
            "data": {
                "call_control_id": call.call_control_id,
                "call_leg_id": call.call_leg_id,
                "call_session_id": call.call_session_id,
                "is_alive": False,
                "record_type": "call",
                "client_state": call.client_state,
                "start_time": call.start_time,
            }
        }
        if isinstance(command_id, str):
            self._seen[("dial", command_id)] = (time.monotonic(), response)
        ring = self.network.ring_outbound(call, script)
        return JSONResponse(response, background=BackgroundTask(self.network.start, call, ring))

    async def _status(self, request: Request) -> JSONResponse:
        self._home()
        call = self.calls.get(request.path_params["call_control_id"])
        if call is None:
            return self._error(404, "10005", "Resource not found", "Call not found")
        return JSONResponse(call.retrieve_status())

    async def _action(self, request: Request) -> JSONResponse:
        ccid: str = request.path_params["call_control_id"]
        action: str = request.path_params["action"]
        if action not in CALL_ACTIONS:
            return self._error(
                404, "10005", "Resource not found", f"The fake Telnyx has no action {action!r}"
            )
        if (action == "client_state_update") != (request.method == "PUT"):
            return self._error(
                405, "10015", "Method Not Allowed", f"{request.method} is not allowed for {action}"
            )
        body, error = await self._read(request, ccid, action)
        if body is None:
            assert error is not None
            return error
        command_id = body.get("command_id")
        try:
            call = self.calls.get(ccid)
            if call is None:
                raise _Refusal(422, "90015", "Invalid Call Control ID", "Unknown call_control_id")
            if isinstance(command_id, str):
                prior = self._duplicate((ccid, command_id))
                if prior is not None:
                    self.duplicates.append(
                        RecordedCommand(ccid, action, body, command_id, time.time())
                    )
                    return JSONResponse(prior)
            if not call.alive:
                raise _Refusal(
                    422, "90018", "Call has already ended", "This call is no longer active"
                )
            if not call.answered and action not in _BEFORE_ANSWER_OK:
                raise _Refusal(422, "90034", "Call not answered yet", "Answer the call first")
            if action == "ai_assistant_start" and call.assistant is not None:
                raise _Refusal(422, "90061", "AI Assistant is already in progress", "Stop it first")
        except _Refusal as refusal:
            self.refused.append(
                RejectedCommand(
                    ccid, action, body, [f"{refusal.code}: {refusal.title}"], time.time()
                )
            )
            return self._error(refusal.status, refusal.code, refusal.title, refusal.detail)

        if "client_state" in body:
            call.client_state = body["client_state"]
        cs = body.get("client_state", call.client_state)
        self.requests.append(RecordedCommand(ccid, action, body, command_id, time.time()))
        data: dict[str, Any] = {"result": "ok"}
        effect, queued = self.network.act(call, action, body, cs, data)
        response = {"data": data}
        if isinstance(command_id, str):
            self._seen[(ccid, command_id)] = (time.monotonic(), response)
        if effect is None:
            return JSONResponse(response)
        return JSONResponse(
            response, background=BackgroundTask(self.network.start, call, effect, queued)
        )
