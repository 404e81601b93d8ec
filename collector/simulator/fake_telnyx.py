"""A fake Telnyx Call Control API that plays the phone network and a scripted caller.

`FakeTelnyx.asgi_app()` serves the real paths (`POST /v2/calls`,
`POST /v2/calls/{id}/actions/{action}`, `PUT /v2/calls/{id}/actions/client_state_update`,
`GET /v2/calls/{id}`), so the official SDK talks to it unchanged. Mount it inside another
Starlette app (sandbox mode mounts it at `/_sandbox/telnyx`, making the SDK's base URL
`http://host:port/_sandbox/telnyx/v2`) or run it alone under uvicorn (base URL
`http://127.0.0.1:PORT/v2`).

`fake.faults.arm(429)` (or 5xx, or `"timeout"`) makes the next command fail as Telnyx
can (see `faults.py`).

Every request body is checked against the SDK's param types (`collector.core.telnyx_params`);
a bad body gets Telnyx's 422 and lands in `fake.rejected` (the HTTP side, with its
body checks and call-state refusals, is `call_control_api`). Accepted commands land in
`fake.requests`, and after the response the fake sends, `pace` seconds apart, the
webhooks Telnyx would send next, signed with Ed25519 exactly as Telnyx signs them.

Inbound calls start with `await fake.place_call(to, script=...)`; outbound calls start
when the server dials (`fake.script_for_number(number, script)` sets the callee's
script, `fake.script_for_dial(command_id, script)` one dial's; the script's `callee` says
who answers: a person, a voicemail box, nobody, busy, rejected). `await fake.idle()`
waits until every scheduled webhook has been delivered.

The fake's state lives on the event loop that serves it; `place_call`, `hangup_call`
and `idle` may be awaited from another loop (another thread) and hop over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import httpx
from nacl.signing import SigningKey
from starlette.applications import Starlette

from collector.simulator.call_control_api import CallControlApi
from collector.simulator.calls import (
    DEFAULT_CONNECTION_ID,
    Delivery,
    RecordedCommand,
    RejectedCommand,
    SimCall,
)
from collector.simulator.faults import CommandFaults
from collector.simulator.network import Network
from collector.simulator.script import CallScript
from collector.simulator.signing import generate_keypair, public_key_b64
from collector.simulator.webhooks import WebhookSender

__all__ = ["FakeTelnyx", "RecordedCommand", "RejectedCommand", "SimCall"]

T = TypeVar("T")


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
        self.scripts: dict[str, CallScript] = {}  # the callee's script, by number
        self.dial_scripts: dict[str, CallScript] = {}  # by the dial's command_id, spent once
        self.faults = CommandFaults()  # injected 429/5xx/late responses (faults.py)
        self._http = http
        self._own_http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api = CallControlApi(self)
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

            self._app = Starlette(routes=self._api.routes(), lifespan=lifespan)
        return self._app

    def script_for_number(self, number: str, script: CallScript | Mapping[str, Any] | None) -> None:
        """The script the callee plays when the server dials `number`."""
        self.scripts[number] = CallScript.parse(script)

    def script_for_dial(
        self, command_id: str, script: CallScript | Mapping[str, Any] | None
    ) -> None:
        """The script the callee plays for the dial sent with this `command_id` (over its
        number's): one call's own script, whichever number it dials."""
        self.dial_scripts[command_id] = CallScript.parse(script)

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

    # -- bookkeeping --------------------------------------------------------------------------

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
        self._api.forget_old_command_ids(now)
