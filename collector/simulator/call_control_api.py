"""The fake's HTTP side: Telnyx's Call Control routes, body checks and refusals.

`CallControlApi` serves a `fake_telnyx.FakeTelnyx`'s routes (`Fake`: what it uses of the
fake, so that this module need not import it). Every request body is checked against the
SDK's param types (`collector.core.telnyx_params.check_params`): a body that is not
JSON, or not an object, gets Telnyx's 400; one that breaks the types gets its 422 (with
`strict` off it is logged and accepted). Either way it lands in `fake.rejected`. A command the
call's state does not allow gets Telnyx's call-state error (90015, 90018, 90034, 90061) and
lands in `fake.refused`; a `command_id` repeated within `DEDUPE_SECONDS` gets the first
response again and lands in `fake.duplicates`. Accepted commands land in `fake.requests`
and go to the fake's `network.Network`, whose effects run after the response. Faults armed
on `fake.faults` (`faults.CommandFaults`: 429, 5xx, a late response) are spent here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.core.telnyx_params import ACTIONS, check_params
from collector.simulator.caller import ScriptedCaller
from collector.simulator.calls import (
    DEFAULT_CONNECTION_ID,
    RecordedCommand,
    RejectedCommand,
    SimCall,
)
from collector.simulator.faults import CommandFaults
from collector.simulator.network import Network
from collector.simulator.script import CallScript

__all__ = ["CALL_ACTIONS", "DEDUPE_SECONDS", "CallControlApi", "Fake"]

log = logging.getLogger(__name__)

CALL_ACTIONS = ACTIONS - {"dial"}
DEDUPE_SECONDS = 60.0
_BEFORE_ANSWER_OK = frozenset({"answer", "hangup", "client_state_update"})


class _Refusal(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail


class Fake(Protocol):
    """What the routes read and write of the fake (`fake_telnyx.FakeTelnyx`)."""

    strict: bool
    calls: dict[str, SimCall]
    requests: list[RecordedCommand]
    rejected: list[RejectedCommand]
    refused: list[RejectedCommand]
    duplicates: list[RecordedCommand]
    scripts: dict[str, CallScript]
    dial_scripts: dict[str, CallScript]
    faults: CommandFaults
    network: Network

    def _home(self) -> bool: ...

    def _forget_old(self) -> None: ...


def _error_response(
    status: int, code: str, title: str, detail: str, pointer: str | None = None
) -> JSONResponse:
    err: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer is not None:
        err["source"] = {"pointer": pointer}
    return JSONResponse({"errors": [err]}, status_code=status)


class CallControlApi:
    """Telnyx's Call Control routes over a fake's calls, records and network.

    It keeps no calls or records of its own, only the command_ids it has answered (for
    dedupe); it reads and writes the fake's, and uses the fake's loop bookkeeping.
    """

    def __init__(self, fake: Fake) -> None:
        self.fake = fake
        self._seen: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def routes(self) -> list[Route]:
        """`POST /v2/calls`, `POST|PUT /v2/calls/{id}/actions/{action}`, `GET /v2/calls/{id}`."""
        return [
            Route("/v2/calls", self._dial, methods=["POST"]),
            Route(
                "/v2/calls/{call_control_id:path}/actions/{action}",
                self._action,
                methods=["POST", "PUT"],
            ),
            Route("/v2/calls/{call_control_id:path}", self._status, methods=["GET"]),
        ]

    def forget_old_command_ids(self, now: float) -> None:
        """Drop command_ids past the dedupe window (once there are many of them)."""
        if len(self._seen) > 1000:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < DEDUPE_SECONDS}

    # -- request bodies -----------------------------------------------------------------------

    async def _read_body(
        self, request: Request, call_control_id: str | None, action: str
    ) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        """The checked body, or the error response for a body the fake refuses."""
        fake = self.fake
        fake._home()
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            problems = [f"/: the body is not valid JSON ({exc})"]
            fake.rejected.append(
                RejectedCommand(call_control_id, action, raw, problems, time.time())
            )
            return None, _error_response(400, "10015", "Bad Request", problems[0], "/")
        problems = check_params(action, body)
        if problems and not isinstance(body, dict):
            fake.rejected.append(
                RejectedCommand(call_control_id, action, body, problems, time.time())
            )
            return None, _error_response(400, "10015", "Bad Request", problems[0], "/")
        if problems:
            fake.rejected.append(
                RejectedCommand(call_control_id, action, body, problems, time.time())
            )
            log.warning("fake telnyx refused %s: %s", action, "; ".join(problems))
            if fake.strict:
                pointer = problems[0].split(": ", 1)[0]
                detail = "; ".join(problems)
                return None, _error_response(422, "10015", "Bad Request", detail, pointer)
        return body, None

    def _duplicate(self, key: tuple[str, str]) -> dict[str, Any] | None:
        seen = self._seen.get(key)
        if seen is not None and time.monotonic() - seen[0] < DEDUPE_SECONDS:
            return seen[1]
        return None

    # -- routes -------------------------------------------------------------------------------

    async def _dial(self, request: Request) -> JSONResponse:
        fake = self.fake
        fake._forget_old()
        body, error = await self._read_body(request, None, "dial")
        if body is None:
            assert error is not None
            return error
        command_id = body.get("command_id")
        command_id = command_id if isinstance(command_id, str) else None
        fault = fake.faults.take("", "dial", command_id)
        if fault is not None and fault.status is not None:
            code, title = fault.error()
            return _error_response(fault.status, code, title, "injected fault")
        response = self._place(body, command_id)
        if fault is not None:  # a timeout: the call is placed, the answer comes late
            if response.background is not None:
                background, response.background = response.background, None
                await background()
            await asyncio.sleep(fault.delay)
        return response

    def _place(self, body: dict[str, Any], command_id: str | None) -> JSONResponse:
        """A new outgoing call for a dial (a repeated command_id: the first one's answer).
        The callee plays the script given for this dial's command_id, else its number's."""
        fake = self.fake
        if command_id is not None:
            prior = self._duplicate(("dial", command_id))
            if prior is not None:
                ccid = prior["data"]["call_control_id"]
                fake.duplicates.append(RecordedCommand(ccid, "dial", body, command_id, time.time()))
                return JSONResponse(prior)
        to = body.get("to")
        to = str(to if not isinstance(to, list) else (to[0] if to else ""))
        script = fake.dial_scripts.pop(command_id or "", None)
        script = script or fake.scripts.get(to) or CallScript()
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
        fake.calls[call.call_control_id] = call
        fake.requests.append(
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
        if command_id is not None:
            self._seen[("dial", command_id)] = (time.monotonic(), response)
        detection = body.get("answering_machine_detection")
        ring = fake.network.ring_outbound(
            call, script, detection if isinstance(detection, str) else None
        )
        return JSONResponse(response, background=BackgroundTask(fake.network.start, call, ring))

    async def _status(self, request: Request) -> JSONResponse:
        self.fake._home()
        call = self.fake.calls.get(request.path_params["call_control_id"])
        if call is None:
            return _error_response(404, "10005", "Resource not found", "Call not found")
        return JSONResponse(call.retrieve_status())

    async def _action(self, request: Request) -> JSONResponse:
        fake = self.fake
        ccid: str = request.path_params["call_control_id"]
        action: str = request.path_params["action"]
        if action not in CALL_ACTIONS:
            return _error_response(
                404, "10005", "Resource not found", f"The fake Telnyx has no action {action!r}"
            )
        if (action == "client_state_update") != (request.method == "PUT"):
            return _error_response(
                405, "10015", "Method Not Allowed", f"{request.method} is not allowed for {action}"
            )
        body, error = await self._read_body(request, ccid, action)
        if body is None:
            assert error is not None
            return error
        command_id = body.get("command_id")
        fault = fake.faults.take(ccid, action, command_id if isinstance(command_id, str) else None)
        if fault is not None and fault.status is not None:
            code, title = fault.error()
            return _error_response(fault.status, code, title, "injected fault")
        response = await self._apply(ccid, action, body, command_id)
        if fault is not None:  # a timeout: the command takes effect, the answer comes late
            if response.background is not None:
                background, response.background = response.background, None
                await background()
            await asyncio.sleep(fault.delay)
        return response

    async def _apply(
        self, ccid: str, action: str, body: dict[str, Any], command_id: Any
    ) -> JSONResponse:
        fake = self.fake
        try:
            call = fake.calls.get(ccid)
            if call is None:
                raise _Refusal(422, "90015", "Invalid Call Control ID", "Unknown call_control_id")
            if isinstance(command_id, str):
                prior = self._duplicate((ccid, command_id))
                if prior is not None:
                    fake.duplicates.append(
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
            fake.refused.append(
                RejectedCommand(
                    ccid, action, body, [f"{refusal.code}: {refusal.title}"], time.time()
                )
            )
            return _error_response(refusal.status, refusal.code, refusal.title, refusal.detail)

        if "client_state" in body:
            call.client_state = body["client_state"]
        cs = body.get("client_state", call.client_state)
        fake.requests.append(RecordedCommand(ccid, action, body, command_id, time.time()))
        data: dict[str, Any] = {"result": "ok"}
        effect, queued = fake.network.act(call, action, body, cs, data)
        response = {"data": data}
        if isinstance(command_id, str):
            self._seen[(ccid, command_id)] = (time.monotonic(), response)
        if effect is None:
            return JSONResponse(response)
        return JSONResponse(
            response, background=BackgroundTask(fake.network.start, call, effect, queued)
        )
