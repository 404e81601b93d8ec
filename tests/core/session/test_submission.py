"""The submission's shape: what build_submission makes, the `Submission` TypedDict and
README's "The submission" section agree key for key, nested entries included."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.submission import FieldReport, Submission

from .test_decide import Call

ROOT = Path(__file__).resolve().parents[3]
LEAVES = (str, int, float, bool, type(None))


def shape_problems(value: Any, tp: Any, where: str = "") -> list[str]:
    """Where value departs from the type: missing or unknown keys of each TypedDict, and
    leaves of the wrong type (Any is anything)."""
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where or '/'}: {type(value).__name__}, not an object"]
        known = tp.__required_keys__ | tp.__optional_keys__
        out = [f"{where}/{k}: missing" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{where}/{k}: not in {tp.__name__}" for k in sorted(value.keys() - known)]
        hints = get_type_hints(tp)
        for key in sorted(value.keys() & known):
            out += shape_problems(value[key], hints[key], f"{where}/{key}")
        return out
    origin, args = get_origin(tp), get_args(tp)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [
            p for i, item in enumerate(value) for p in shape_problems(item, args[0], f"{where}/{i}")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [
            p for k, item in value.items() for p in shape_problems(item, args[1], f"{where}/{k}")
        ]
    if origin in (Union, types.UnionType):
        if all(a in LEAVES for a in args) and not isinstance(value, args):
            return [f"{where}: {type(value).__name__}, not {tp}"]
        return []
    if tp in LEAVES and not isinstance(value, tp):
        return [f"{where}: {type(value).__name__}, not {tp.__name__}"]
    return []


def test_the_checker_sees_a_missing_an_unknown_and_a_mistyped_key() -> None:
    """The helper itself: each kind of drift is reported where it is."""
    entry = {"source": "ai", "attempts": "2", "extra": 1}
    assert shape_problems({"f": entry}, dict[str, FieldReport]) == [
        "/f/errors: missing",
        "/f/extra: not in FieldReport",
        "/f/attempts: str, not int",
    ]


@pytest.fixture(name="shipped", scope="module")
def _shipped() -> Any:
    return load_forms(ROOT / "schemas")


@pytest.fixture(name="forms", scope="module")
def _forms() -> Any:
    return load_forms(ROOT / "tests" / "fixtures" / "forms")


HISTORY = [
    {"role": "assistant", "content": "How would you rate your visit?"},
    {"role": "user", "content": "One."},
]


def test_a_completed_submission_has_exactly_the_typed_keys(shipped: Any) -> None:
    """A call with follow-ups: values, required_by and a transcript, every key typed."""
    call = Call(shipped, "survey")
    call.start()
    call.ended({"rating": 1, "would_recommend": False}, message_history=HISTORY)
    call.ended({"what_went_wrong": "A long wait.", "contact_method": "phone"})
    call.ended({"callback_phone": "+13125550188"})
    (submission,) = call.submissions
    assert submission["status"] == "completed"
    assert (submission["outcome"], submission["amd"]) == ("completed", None)  # inbound
    assert submission["call"]["direction"] == "incoming"
    assert shape_problems(submission, Submission) == []
    fields = submission["fields"]
    assert "value" in fields["rating"] and "required_by" in fields["callback_phone"]
    assert submission["transcript"] and submission["call"]["from"] == "+13125550143"


def test_an_abandoned_submission_has_exactly_the_typed_keys(forms: Any) -> None:
    """A hangup mid-gather: fields never collected, problems by pointer, no values."""
    call = Call(forms, "contact")
    call.start()
    partial = {"name": "Maria Gonzalez", "email": "bad"}
    call.feed(call.ev(E.AiGatherPartial, partial_results=partial, client_state=call.cs()))
    call.feed(call.ev(E.CallHangup))
    call.feed(call.ev(E.Timer, kind="grace", due=call.session.deadline))
    (submission,) = call.submissions
    assert submission["status"] == "abandoned"
    assert (submission["outcome"], submission["amd"]) == ("abandoned", None)
    assert shape_problems(submission, Submission) == []
    assert submission["errors"]
    assert any(f["source"] is None for f in submission["fields"].values())


def test_outbound_submissions_have_exactly_the_typed_keys(tmp_path: Path) -> None:
    """A resumed call with a prefilled field, and a voicemail: outcome, amd, resumed_from."""
    from collector.core.session.outbound import resume_of

    from .outbound_kit import Dialled, outbound_forms

    forms = outbound_forms(tmp_path / "forms")
    first = Dialled(forms["warranty"])
    first.send(E.MachineDetectionEnded, result="human")
    first.gather_ends({"name": "Maria Gonzalez"})
    first.send(E.CallHangup, cause="normal_clearing")
    first.fire()
    again = Dialled(
        forms["warranty"],
        sid="sess-2",
        prefill={"serial": "AB1234"},
        resume=resume_of(first.session),
    )
    again.send(E.MachineDetectionEnded, result="human_residence", premium=True)
    again.gather_ends({"email": "maria@example.com"})
    voicemail = Dialled(forms["plain"])
    voicemail.send(E.MachineDetectionEnded, result="machine")
    for call in (first, again, voicemail):
        (submission,) = call.submissions
        assert shape_problems(submission, Submission) == []
        assert submission["call"]["direction"] == "outgoing"
    resumed = again.submissions[0]
    assert (resumed["status"], resumed["outcome"], resumed["amd"]) == ("completed",) * 2 + (
        "human",
    )
    assert resumed["resumed_from"] == first.session.id
    assert resumed["fields"]["serial"]["source"] == "prefill"
    assert "resumed_from" in resumed["fields"]["name"]
    assert voicemail.submissions[0]["outcome"] == "voicemail"


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## The submission\n", 1)[1]
    return section.split("\n## ", 1)[0]


def test_readme_shows_the_typed_shape() -> None:
    """README's example has every key Submission requires and none it lacks, and the
    section names each optional key (of the submission and of a field's entry)."""
    section = _readme_section()
    example = re.search(r"```json\n(.*?)```", section, re.S)
    assert example is not None
    shown = json.loads(example.group(1))
    assert shape_problems(shown, Submission) == []
    for tp in (Submission, FieldReport):
        for key in tp.__optional_keys__:
            assert f'"{key}"' in section or f"`{key}`" in section, key
