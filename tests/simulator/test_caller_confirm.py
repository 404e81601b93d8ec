"""The scripted caller at a read-back confirmation."""

from __future__ import annotations

from collector.core.session.client_state import encode
from collector.core.session.events import ClientState
from collector.simulator.caller import ScriptedCaller
from collector.simulator.script import CallScript


def _caller(script: dict) -> ScriptedCaller:
    return ScriptedCaller(CallScript.parse(script))


def test_an_unscripted_read_back_is_confirmed_with_1() -> None:
    """A caller with no keypad script presses 1 at a confirmation, nothing elsewhere."""
    caller = _caller({"answers": {}})
    confirm = encode(ClientState(session_id="s", kind="confirm", attempt=1))
    keypad = encode(ClientState(session_id="s", kind="keypad", attempt=1))
    assert caller.keypad_entry("Press 1 if that's right", confirm) == "1"
    assert caller.keypad_entry("Enter your ZIP code", keypad) is None


def test_a_scripted_answer_wins_at_a_read_back() -> None:
    """Scripted digits are used first; past the script, a confirmation still gets 1."""
    caller = _caller({"keypad": ["2"]})
    confirm = encode(ClientState(session_id="s", kind="confirm", attempt=1))
    assert caller.keypad_entry("Press 1 if that's right", confirm) == "2"
    assert caller.keypad_entry("Press 1 if that's right", confirm) == "1"
