"""What a form offers an outbound call: `x-collector.voicemail`, `{name}` placeholders in
what it speaks (and the variables they need), and the check of values given in advance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.core.forms import ValueProblem, load_forms
from collector.core.forms.placeholders import names, problem, render

from .conftest import Writer, minimal

ROOT = Path(__file__).resolve().parents[3]


def warranty(**options: Any) -> dict[str, Any]:
    return {
        "title": "Warranty follow-up",
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "email": {"type": "string", "format": "email"},
            "age": {"type": "integer", "minimum": 18, "maximum": 120},
            "wants_callback": {"type": "boolean"},
        },
        "required": ["name", "email"],
        "if": {"properties": {"wants_callback": {"const": True}}, "required": ["wants_callback"]},
        "then": {"properties": {"age": {"minimum": 21}}},
        "x-collector": options,
    }


# -- placeholders -------------------------------------------------------------------------


def test_placeholders_are_plain_names_and_double_braces_are_braces() -> None:
    text = "Hi {first_name}, about your {product} ({{order}} {order_id})."
    assert names(text) == ("first_name", "product", "order_id")
    values = {"first_name": "Maria", "product": "kettle", "order_id": 7}
    assert render(text, values) == "Hi Maria, about your kettle ({order} 7)."
    assert problem(text) is None


def test_a_placeholder_without_a_value_is_left_out_never_spoken_as_a_brace() -> None:
    assert render("Hi {first_name}, this is {company}.", {"company": "Acme"}) == (
        "Hi , this is Acme."
    )
    assert render("Hi {first_name}.", {"first_name": None}) == "Hi ."
    assert "{" not in render("broken {", {}) and "}" not in render("} broken", {})


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("Hi {", "unmatched brace"),
        ("Hi }", "unmatched brace"),
        ("Hi {}", "empty placeholder"),
        ("Hi {0}", "not a plain name"),
        ("Hi {user.name}", "not a plain name"),
        ("Hi {names[0]}", "not a plain name"),
        ("Hi {name!r}", "with a format"),
        ("Hi {name:>10}", "with a format"),
    ],
)
def test_a_malformed_placeholder_is_named(text: str, wrong: str) -> None:
    found = problem(text)
    assert found is not None and wrong in found
    assert names(text) == ()


# -- the vocabulary -----------------------------------------------------------------------


def test_voicemail_is_a_form_option_with_placeholders(forms: Path, write: Writer) -> None:
    message = "Hi {first_name}, this is Acme about your {product}. Please call us back."
    write(
        "warranty.json",
        warranty(
            greeting="Hello {first_name}!",
            voicemail=message,
            messages={"goodbye": "Thanks {first_name}, goodbye."},
        ),
    )
    form = load_forms(forms)["warranty"]
    assert form.options.voicemail == message
    assert "voicemail" not in form.parameters and "voicemail" not in form.gather_options()
    assert form.placeholders() == ("first_name", "product")
    assert form.missing_variables({"first_name": "Maria"}) == ["product"]
    assert form.missing_variables({"first_name": "Maria", "product": "kettle"}) == []
    assert form.missing_variables({"first_name": "Maria", "product": None}) == ["product"]


@pytest.mark.parametrize(
    ("options", "pointer", "wrong"),
    [
        ({"voicemail": "Hi {first name}"}, "/x-collector/voicemail", "not a plain name"),
        ({"voicemail": "x" * 3001}, "/x-collector/voicemail", "at most 3000"),
        ({"voicemail": 5}, "/x-collector/voicemail", "must be a string"),
        ({"greeting": "Hello {"}, "/x-collector/greeting", "unmatched brace"),
        ({"gather_ended_speech": "Bye {0}"}, "/x-collector/gather_ended_speech", "plain name"),
        ({"messages": {"goodbye": "Bye {}"}}, "/x-collector/messages", "message 'goodbye'"),
    ],
)
def test_a_broken_spoken_text_is_a_form_error(
    write: Writer,
    lint: Callable[[], list[str]],
    options: dict[str, Any],
    pointer: str,
    wrong: str,
) -> None:
    write("warranty.json", warranty(**options))
    (line,) = lint()
    assert line.startswith(f"forms/warranty.json: {pointer}: ") and wrong in line


def test_only_the_closing_messages_hold_placeholders(forms: Path, write: Writer) -> None:
    """`choose_option` keeps its own {field} and {digit}; other phrases are not variables."""
    write("plain.json", minimal(**{"x-collector": {"messages": {"reask_lead_in": "Oops {x}"}}}))
    form = load_forms(forms)["plain"]
    assert form.placeholders() == ()


def test_form_version_counts_voicemail_only_when_set(forms: Path, write: Writer) -> None:
    """Forms that do not use the new option keep the version they had before it existed."""
    shipped = {k: f.version for k, f in load_forms(ROOT / "schemas").items()}
    assert shipped == {
        "appointment": "83fd042d0220",
        "claim": "33e631a88f0a",
        "intake": "2ef281416b25",
        "survey": "23e57a07f039",
    }
    fixtures = load_forms(ROOT / "tests" / "fixtures" / "forms")
    assert fixtures["contact"].version == "445b52dcc7b9"
    write("a.json", warranty())
    write("b.json", warranty(voicemail="Please call us back."))
    both = load_forms(forms)
    assert both["a"].version != both["b"].version


# -- prefill ------------------------------------------------------------------------------


def test_a_good_prefill_has_no_problems(forms: Path, write: Writer) -> None:
    write("warranty.json", warranty())
    form = load_forms(forms)["warranty"]
    assert form.check_prefill({}) == []
    assert form.check_prefill({"name": "Maria Gonzalez", "age": 40}) == []


def test_a_bad_prefill_names_each_problem_by_pointer_without_the_value(
    forms: Path, write: Writer
) -> None:
    write("warranty.json", warranty())
    form = load_forms(forms)["warranty"]
    problems = form.check_prefill(
        {"email": "maria.example.com", "age": "forty", "shoe_size": 9, "name": "Maria"}
    )
    assert [p.pointer for p in problems] == ["/email", "/email", "/age", "/shoe_size"]
    assert problems[0] == ValueProblem("/email", "seems to be missing the @")
    assert str(problems[2]) == "/age: must be a whole number"
    assert str(problems[3]) == "/shoe_size: is not a field of this form"
    assert all("maria.example" not in p.message for p in problems)


def test_a_rule_of_the_form_can_refuse_a_prefilled_value(forms: Path, write: Writer) -> None:
    """With a callback wanted, the form's `then` raises the minimum age."""
    write("warranty.json", warranty())
    form = load_forms(forms)["warranty"]
    assert form.check_prefill({"age": 19}) == []
    assert form.check_prefill({"age": 19, "wants_callback": True}) == [
        ValueProblem("/age", "must be at least 21")
    ]
