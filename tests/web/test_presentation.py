"""The views of collector.web.presentation mask every sensitive value: plain unit tests
(the masker itself: test_masking.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.core.forms import load_forms
from collector.core.session.model import CallInfo, FieldState, Gather, Message, Session, State
from collector.web.presentation import (
    MASK,
    SENSITIVE_LINE,
    Masker,
    session_detail,
    session_summary,
    submission_view,
)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(name="forms", scope="module")
def _forms():
    return load_forms(ROOT / "tests" / "fixtures" / "forms")


def session(form: str, **kw) -> Session:
    return Session(
        id="s1",
        form=form,
        call=CallInfo(call_control_id="c1", **{"from": "+13125550100"}, to="+13125559000"),
        started_at=1_700_000_000.0,
        updated_at=1_700_000_010.0,
        **kw,
    )


def test_every_caller_line_of_a_gather_asking_a_sensitive_field_is_masked(forms) -> None:
    form = forms["secret"]
    s = session(
        "secret",
        state=State.GATHERING,
        attempt=1,
        gather=Gather(kind="ai", attempt=1, fields=["account", "pin"]),
        partial={"account": "123456"},
        transcript=[
            Message(role="assistant", content="What is your PIN?", attempt=1),
            Message(role="user", content="It is 9876", attempt=1),
            Message(role="user", content="Hold on", attempt=1),
        ],
    )
    view = session_detail(s, form)
    # before the PIN is heard: no caller line of this gather shows, digits or not
    assert [m["content"] for m in view["transcript"]] == [
        "What is your PIN?",
        SENSITIVE_LINE,
        SENSITIVE_LINE,
    ]
    # once the PIN is heard they stay masked (the rule never changes its mind)
    s.partial["pin"] = "9876"
    view = session_detail(s, form)
    assert [m["content"] for m in view["transcript"]][1:] == [SENSITIVE_LINE, SENSITIVE_LINE]
    assert view["partial"] == {"account": "123456", "pin": MASK}
    assert view["fields"]["pin"]["partial"] == MASK and view["fields"]["pin"]["status"] == "hearing"
    assert "9876" not in json.dumps(view)


def test_session_views_mask_fields_submission_and_errors(forms) -> None:
    form = forms["secret"]
    s = session(
        "secret",
        state=State.COMPLETED,
        attempt=1,
        fields={
            "account": FieldState(value="123456", has_value=True, valid=True, attempts=1),
            "pin": FieldState(value="4321", has_value=True, valid=True, attempts=1),
        },
        transcript=[Message(role="user", content="4321", attempt=1)],
        notes=[{"kind": "command_failed", "at": 1_700_000_005.0, "detail": "bad pin 4321"}],
    )
    submission = {
        "submission_id": "sub",
        "form": "secret",
        "form_version": form.version,
        "status": "completed",
        "data": {"account": "123456", "pin": "4321"},
        "errors": [],
        "fields": {"pin": {"value": "4321", "source": "ai", "attempts": 1, "errors": []}},
        "transcript": [{"role": "user", "content": "4321", "attempt": 1}],
    }
    view = session_detail(s, form, submission=submission)
    text = json.dumps(view, ensure_ascii=False)
    assert "4321" not in text
    assert view["fields"]["account"]["value"] == "123456"
    assert view["submission"]["data"]["pin"] == MASK
    assert view["notes"][0]["detail"] == f"bad pin {MASK}"
    assert view["started_at"] == "2023-11-14T22:13:20Z"
    summary = session_summary(s, form)
    assert summary["fields_filled"] == 2 and summary["fields_total"] == 2
    assert submission["data"]["pin"] == "4321"  # the original is untouched


def test_a_session_whose_form_is_gone_masks_every_value() -> None:
    s = session(
        "removed",
        fields={"secret": FieldState(value="hunter2", has_value=True, valid=True, attempts=1)},
        transcript=[Message(role="user", content="it's hunter2", attempt=1)],
    )
    view = session_detail(s, None)
    assert view["fields"]["secret"]["value"] == MASK
    assert view["transcript"][0]["content"] == SENSITIVE_LINE


def test_submission_view_masks_embedded_transcript(forms) -> None:
    m = Masker.build(["pin"], [("pin", "4321")])
    out = submission_view(
        {
            "data": {"pin": "4321"},
            "fields": {},
            "errors": [],
            "transcript": [{"role": "user", "content": "4321."}],
        },
        m,
    )
    assert out["data"] == {"pin": MASK} and out["transcript"][0]["content"] == SENSITIVE_LINE
