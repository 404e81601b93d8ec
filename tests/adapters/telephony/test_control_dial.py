"""TelnyxControl's `dial`: through the SDK's calls.dial (POST /v2/calls) to the fake
Telnyx, the body as decide() built it (wire form, `from`), classified like any command."""

from __future__ import annotations

import pytest

from collector.core.session.commands import DIAL
from collector.errors import CommandRejected, CommandTransient
from tests.adapters.telephony.test_control import line

pytestmark = pytest.mark.anyio

BODY = {
    "connection_id": "conn-1",
    "from": "+13125550100",
    "to": "+13125550190",
    "answering_machine_detection": "detect",
    "timeout_secs": 30,
    "client_state": "eyJzIjoic2VzcyIsImsiOiJkaWFsIiwiYSI6MH0=",
}


async def test_a_dial_places_the_call_and_returns_its_call_control_id() -> None:
    async with line() as t:
        ccid = await t.control.execute("dial:sess", DIAL, BODY, "dial-1")
        assert isinstance(ccid, str) and ccid.startswith("v3:")
        (sent,) = t.fake.commands(ccid, "dial")
        assert sent.command_id == "dial-1"
        assert sent.body == {**BODY, "command_id": "dial-1"}
        assert t.fake.rejected == []
        # the same command_id again: Telnyx's answer to the first, no second call
        assert await t.control.execute("dial:sess", DIAL, BODY, "dial-1") == ccid
        assert len(t.fake.calls) == 1 and len(t.fake.duplicates) == 1


async def test_a_refused_dial_is_rejected_and_a_throttled_one_transient() -> None:
    async with line() as t:
        t.fake.faults.arm(422, action="dial")
        with pytest.raises(CommandRejected) as refused:
            await t.control.execute("dial:sess", DIAL, BODY, "dial-1")
        assert (refused.value.status, refused.value.code) == (422, "10015")
        t.fake.faults.arm(429, action="dial")
        with pytest.raises(CommandTransient):
            await t.control.execute("dial:sess", DIAL, BODY, "dial-1")
        bad = {**BODY, "answering_machine_detection": "sometimes"}
        with pytest.raises(CommandRejected) as typed:
            await t.control.execute("dial:sess", DIAL, bad, "dial-2")
        assert "answering_machine_detection" in typed.value.detail
        assert t.fake.calls == {}
