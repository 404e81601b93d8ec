"""The benchmark's call script for a form of the user's (`python -m bench --form`)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from bench import events

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.fixture(autouse=True)
def _restore_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "SCRIPT", events.SCRIPT)


def test_a_form_is_filled_with_its_example_answers_in_every_webhook() -> None:
    script = events.use_form(SCHEMAS / "claim.json")
    assert events.current_script() is script
    assert script.form == "claim" and script.forms_dir == SCHEMAS
    fields = list(json.loads((SCHEMAS / "claim.json").read_text())["properties"])
    assert list(script.questions) == fields
    flow = events.call_flow(7, 1_700_000_000.0)
    assert len(flow) == script.events_per_call == 5 + 2 * len(fields)
    ended = next(ev for ev in flow if ev.type == "call.ai_gather.ended")
    payload = orjson.loads(ended.body)["data"]["payload"]
    assert payload["result"] == script.answers(7) == script.fixed
    assert {ev.ccid for ev in flow} == {flow[0].ccid}


def test_a_form_with_a_keypad_read_back_is_refused() -> None:
    with pytest.raises(SystemExit, match="confirm"):
        events.use_form(SCHEMAS / "appointment.json")


def test_a_field_without_a_valid_example_is_named(tmp_path: Path) -> None:
    form = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["abc"]},
            "note": {"type": "string"},
        },
        "required": ["code", "note"],
    }
    (tmp_path / "odd.json").write_text(json.dumps(form))
    with pytest.raises(SystemExit) as caught:
        events.use_form(tmp_path / "odd.json")
    message = str(caught.value)
    assert "/properties/code: its example answer 'abc' is invalid" in message
    assert "/properties/note: no example, default or choice" in message
    assert events.current_script().form == events.FORM  # unchanged


def test_a_broken_form_stops_with_the_loaders_problems(tmp_path: Path) -> None:
    good = {
        "type": "object",
        "properties": {"name": {"type": "string", "examples": ["Jo"]}},
        "required": ["name"],
    }
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "broken.json").write_text('{"type": "object", "properties": {"a": {"type": 5}}}')
    with pytest.raises(SystemExit, match=r"broken\.json"):
        events.use_form(tmp_path / "good.json")
