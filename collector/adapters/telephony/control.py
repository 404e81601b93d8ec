"""Telnyx commands through the official SDK's AsyncTelnyx client.

We use the client's generic `post`/`get` (its auth, timeouts and error types) with the
exact action bodies decide() built; the per-action helper methods would only re-transform
bodies we already hold in wire form. A `dial` creates a call rather than acting on one,
so it goes through the SDK's own `calls.dial` (its body as keyword arguments). The SDK's
own retries are off (`max_retries=0`): the outbox owns every retry (its backoff, its
fresh `command_id`, its `retrieve_status` check), so a failure is classified here once,
at the edge, and handed back to it.
"""

from __future__ import annotations

from typing import Any

import telnyx
from telnyx._utils import path_template

from collector.adapters.telephony.transport import CommandHttpClient
from collector.core.session.commands import DIAL, RETRIEVE_STATUS, dial_kwargs
from collector.errors import CommandRejected, CommandTransient

__all__ = ["CommandRejected", "CommandTransient", "TelnyxControl", "make_client"]


def _error_parts(exc: telnyx.APIStatusError) -> tuple[str | None, str]:
    body = exc.body
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("code")
            detail = first.get("detail") or first.get("title") or ""
            return (str(code) if code is not None else None), str(detail)
    return None, str(body)[:300] if body is not None else exc.message


def make_client(
    api_key: str | None, base_url: str | None, *, timeout: float = 10.0, max_retries: int = 0
) -> telnyx.AsyncTelnyx:
    """AsyncTelnyx over aiohttp (telephony/transport.py: the SDK's aiohttp path, leaner),
    with no hidden retries unless asked: the outbox retries."""
    return telnyx.AsyncTelnyx(
        api_key=api_key or "sandbox",
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=CommandHttpClient(timeout=timeout),
    )


class TelnyxControl:
    """Sends one command at a time for a call; the outbox decides what and when."""

    def __init__(self, client: telnyx.AsyncTelnyx) -> None:
        self.client = client
        # absolute URLs: the SDK takes them as they are, where a relative path would be
        # parsed and merged with base_url for every command
        self._calls = str(client.base_url) + "calls/"

    async def execute(
        self, call_control_id: str, action: str, body: dict[str, Any], command_id: str
    ) -> Any:
        """Send an action, or for `retrieve_status` return whether the call is alive."""
        if action == RETRIEVE_STATUS:
            return await self.is_alive(call_control_id)
        if action == DIAL:
            return await self._dial(body, command_id)
        path = self._calls + path_template(
            "{call_control_id}/actions/{action}", call_control_id=call_control_id, action=action
        )
        try:
            # our command_id as the SDK's idempotency key: it spares a uuid4() per command
            # (this API has no idempotency header, so nothing else changes on the wire)
            return await self.client.post(
                path,
                body={**body, "command_id": command_id},
                cast_to=object,
                options={"idempotency_key": command_id},
            )
        except telnyx.APIStatusError as exc:
            raise self._classify(exc) from None
        except telnyx.APIConnectionError as exc:
            raise CommandTransient(str(exc) or type(exc).__name__) from None

    async def _dial(self, body: dict[str, Any], command_id: str) -> str | None:
        """Place the call (`call_control_id` is not known yet: the session's key is not
        Telnyx's); returns the new call's call_control_id."""
        try:
            result = await self.client.calls.dial(**dial_kwargs(body), command_id=command_id)
        except telnyx.APIStatusError as exc:
            raise self._classify(exc) from None
        except telnyx.APIConnectionError as exc:
            raise CommandTransient(str(exc) or type(exc).__name__) from None
        return result.data.call_control_id if result.data is not None else None

    async def is_alive(self, call_control_id: str) -> bool:
        path = self._calls + path_template("{call_control_id}", call_control_id=call_control_id)
        try:
            result = await self.client.get(path, cast_to=object)
        except telnyx.APIStatusError as exc:
            error = self._classify(exc)
            if isinstance(error, CommandRejected):
                return False  # unknown or long gone: Telnyx keeps status 10 minutes
            raise error from None
        except telnyx.APIConnectionError as exc:
            raise CommandTransient(str(exc) or type(exc).__name__) from None
        data = result.get("data") if isinstance(result, dict) else None
        return bool(isinstance(data, dict) and data.get("is_alive"))

    @staticmethod
    def _classify(exc: telnyx.APIStatusError) -> Exception:
        status = exc.status_code
        code, detail = _error_parts(exc)
        if status in (408, 409, 429) or status >= 500:
            return CommandTransient(f"{status} {code or ''} {detail}".strip())
        return CommandRejected(status, code, detail)

    async def close(self) -> None:
        await self.client.close()
