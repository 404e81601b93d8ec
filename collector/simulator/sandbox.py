"""Sandbox mode: the fake Telnyx runs inside the server, and simulated calls ring it.

The server mounts the fake's API at /_sandbox/telnyx/v2 and sends its commands there
through the real SDK client; the fake posts signed webhooks back to /webhooks/telnyx over
real HTTP, so a sandbox call takes exactly the path a live call takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from collector.simulator.calls import DEFAULT_CONNECTION_ID
from collector.simulator.fake_telnyx import FakeTelnyx
from collector.simulator.script import CallScript
from collector.simulator.signing import generate_keypair, public_key_b64

if TYPE_CHECKING:
    from starlette.types import ASGIApp

_FIRST_NUMBER = 13125559000


class Sandbox:
    """The in-process fake Telnyx plus the numbers simulated calls dial.

    `self_url` tells how the server reaches itself (`http://host:port`, asked at each
    webhook: it is known only once the server listens); the fake posts webhooks there.
    Outbound calls without `[outbound]` dial from `from_number` on `connection_id`.
    """

    connection_id = DEFAULT_CONNECTION_ID
    from_number = "+13125550100"

    def __init__(self, self_url: Callable[[], str], pace: float = 0.3) -> None:
        self.signing_key = generate_keypair()[0]
        self.pace = pace
        self.numbers: dict[str, str] = {}  # number -> form id, read by the engine's router
        self._by_form: dict[str, str] = {}

        def webhook_url() -> str:
            return f"{self_url()}/webhooks/telnyx"

        self.fake = FakeTelnyx(webhook_url, signing_key=self.signing_key, pace=pace)

    @property
    def public_key(self) -> str:
        return public_key_b64(self.signing_key)

    def asgi_app(self) -> ASGIApp:
        return self.fake.asgi_app()

    def number_for(self, form_id: str) -> str:
        """A stable simulated number that routes to the form."""
        number = self._by_form.get(form_id)
        if number is None:
            number = f"+{_FIRST_NUMBER + len(self._by_form)}"
            self._by_form[form_id] = number
            self.numbers[number] = form_id
        return number

    async def place_call(
        self, form_id: str, script: Any = None, fields: Iterable[str] | None = None
    ) -> str:
        """Ring the server with a simulated inbound call for `form_id`; returns its id.

        With `fields` (the form's), a script naming any other field is a ScriptError."""
        parsed = CallScript.parse(script) if script is not None else None
        if parsed is not None and fields is not None:
            parsed.check_fields(fields, f"form {form_id!r}")
        return await self.fake.place_call(to=self.number_for(form_id), script=parsed)

    def expect_dial(
        self, command_id: str, script: Any, form_id: str, fields: Iterable[str]
    ) -> None:
        """The callee's script for the dial that goes out under `command_id` (a script
        naming a field not in `fields`, the form's, is a ScriptError)."""
        parsed = CallScript.parse(script).check_fields(fields, f"form {form_id!r}")
        self.fake.script_for_dial(command_id, parsed)

    async def close(self) -> None:
        await self.fake.close()
