"""A loaded Form: validation in plain words, re-ask sub-schemas, options and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.core.forms import DEFAULT_MESSAGES, Form, load_forms
from collector.core.forms.vocabulary import ConfirmOptions

from .conftest import SCHEMAS, Writer, minimal

PROPERTIES: dict[str, Any] = {
    "email": {"type": "string", "format": "email", "description": "Email address"},
    "born": {"type": "string", "format": "date", "description": "Date of birth"},
    "at": {"type": "string", "format": "time", "description": "Time"},
    "when": {"type": "string", "format": "date-time", "description": "Date and time"},
    "site": {"type": "string", "format": "uri", "description": "Web site"},
    "ssn": {
        "type": "string",
        "pattern": "^\\d{3}-\\d{2}-\\d{4}$",
        "description": "Social security number",
        "x-collector": {"sensitive": True},
    },
    "color": {"type": "string", "enum": ["red", "green", "blue"], "description": "Color"},
    "guests": {"type": "integer", "minimum": 1, "maximum": 10, "description": "Guests"},
    "note": {"type": "string", "minLength": 5, "maxLength": 20, "description": "Note"},
    "home": {
        "type": "object",
        "description": "Address",
        "properties": {"zip_code": {"type": "string"}},
        "required": ["zip_code"],
    },
}


@pytest.fixture(name="form")
def _form(write: Writer, forms: Path) -> Form:
    write(
        "f.json",
        minimal(
            title="Test form",
            description="Everything at once",
            properties=PROPERTIES,
            required=["email", "born", "ssn", "color", "guests"],
            **{
                "x-collector": {
                    "max_attempts": 3,
                    "greeting": "Hello",
                    "interruption_settings": {"enable": False},
                    "messages": {"goodbye": "Bye now."},
                }
            },
        ),
    )
    return load_forms(forms)["f"]


VALID = {
    "email": "jane.doe@example.com",
    "born": "1984-07-23",
    "ssn": "123-45-6789",
    "color": "red",
    "guests": 4,
}


def test_a_valid_result_has_no_problems(form: Form) -> None:
    """A result meeting every constraint validates to {}."""
    extra = {
        "at": "19:30:00Z",
        "when": "2024-03-14T19:30:00+01:00",
        "site": "https://example.com/a",
        "note": "hello",
        "home": {"zip_code": "60601"},
    }
    assert form.validate({**VALID, **extra}) == {}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("email", "jane.doe.example.com", "seems to be missing the @"),
        ("email", "jane@doe@example.com", "has more than one @"),
        ("email", "jane@localhost", "is not a valid email address"),
        ("email", "jane doe@example.com", "is not a valid email address"),
        ("born", "2023-02-30", "is not a valid date (YYYY-MM-DD)"),
        ("born", "23 February 2023", "is not a valid date (YYYY-MM-DD)"),
        ("at", "25:61:00Z", "is not a valid time (HH:MM:SS with a time zone)"),
        (
            "when",
            "2024-03-14 7pm",
            "is not a valid date and time (YYYY-MM-DDTHH:MM:SS with a time zone)",
        ),
        ("site", "not a web address", "is not a valid web address (URI)"),
        ("ssn", "123456789", "does not match the expected format (Social security number)"),
        ("color", "purple", "must be one of: red, green, blue"),
        ("guests", "four", "must be a whole number"),
        ("guests", 0, "must be at least 1"),
        ("guests", 11, "must be at most 10"),
        ("note", "hi", "must be at least 5 characters long"),
        ("note", "x" * 21, "must be at most 20 characters long"),
        ("home", {}, "is missing its zip code"),
    ],
)
def test_validate_explains_each_failure(form: Form, name: str, value: Any, expected: str) -> None:
    """validate() and validate_field() name what is wrong, under the field's name."""
    problems = form.validate({**VALID, name: value})
    assert list(problems) == [name]
    assert expected in problems[name]
    assert form.validate_field(name, value) == problems[name]


def test_missing_required_fields_are_required(form: Form) -> None:
    """A required field left out gives exactly ["is required"]; optional ones nothing."""
    problems = form.validate({"email": "jane.doe@example.com"})
    assert problems == {name: ["is required"] for name in ("born", "ssn", "color", "guests")}


def test_problems_are_in_field_order_with_the_root_first(form: Form) -> None:
    """Problems come back in the order of the form's fields."""
    problems = form.validate({"guests": 0, "email": "x"})
    assert list(problems) == ["email", "born", "ssn", "color", "guests"]


def test_valid_fields_validate_one_by_one(form: Form) -> None:
    """validate_field() returns [] for a good value."""
    for name, value in VALID.items():
        assert form.validate_field(name, value) == []


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("ssn", "078-05-1120 is my SSN"),
        ("email", "secret-078051120"),
        ("born", "078051120"),
        ("color", "078051120"),
        ("guests", "078051120"),
        ("note", "078051120-078051120-078051120"),
        ("site", "078051120"),
        ("home", "078051120"),
    ],
)
def test_messages_never_repeat_the_value(form: Form, name: str, secret: str) -> None:
    """No message ever quotes the value: it may be sensitive."""
    problems = form.validate({**VALID, name: secret})
    assert problems[name]
    for message in problems[name] + form.validate_field(name, secret):
        assert "078" not in message and "1120" not in message, message


def test_sub_parameters_keep_constraints_and_require_what_is_asked(form: Form) -> None:
    """A re-ask schema holds only the asked fields, all required, in form order."""
    sub = form.sub_parameters(["guests", "email"])
    assert sub == {
        "type": "object",
        "title": "Test form",
        "description": "Everything at once",
        "properties": {
            "email": PROPERTIES["email"],
            "guests": PROPERTIES["guests"],
        },
        "required": ["email", "guests"],
    }
    assert form.sub_parameters(["note"])["required"] == ["note"]
    with pytest.raises(KeyError):
        form.sub_parameters(["nope"])


def test_sub_parameters_are_copies(form: Form) -> None:
    """Changing a sub-schema does not change the form."""
    sub = form.sub_parameters(["color"])
    sub["properties"]["color"]["enum"].append("black")
    assert form.parameters["properties"]["color"]["enum"] == ["red", "green", "blue"]


def test_fields_follow_properties(form: Form) -> None:
    """fields are in properties order, with required flags and the cleaned schema."""
    assert list(form.fields) == list(PROPERTIES)
    assert form.required == ("email", "born", "ssn", "color", "guests")
    assert form.fields["email"].required and not form.fields["note"].required
    assert "x-collector" not in form.fields["ssn"].schema
    assert form.fields["ssn"].description == "Social security number"
    assert form.fields["ssn"].title is None
    assert form.sensitive_fields == frozenset({"ssn"})
    assert form.fields["ssn"].options.sensitive
    assert form.title == "Test form" and form.description == "Everything at once"


def test_gather_options_are_the_set_telnyx_keys(form: Form) -> None:
    """gather_options() holds only the gather_using_ai keys the form sets."""
    assert form.gather_options() == {
        "greeting": "Hello",
        "interruption_settings": {"enable": False},
    }


def test_options_have_defaults(write: Writer, forms: Path) -> None:
    """Without x-collector a form gets max_attempts 2, no confirm and the default phrases."""
    write("plain.json", minimal())
    write("confirmed.json", minimal(**{"x-collector": {"confirm": True}}))
    write("tuned.json", minimal(**{"x-collector": {"confirm": {"max_corrections": 0}}}))
    registry = load_forms(forms)
    plain = registry["plain"]
    assert plain.options.max_attempts == 2
    assert plain.options.confirm is None
    assert plain.messages == DEFAULT_MESSAGES
    assert plain.gather_options() == {}
    assert plain.title == "plain" and plain.description is None
    assert registry["confirmed"].options.confirm == ConfirmOptions(max_corrections=1)
    assert registry["tuned"].options.confirm == ConfirmOptions(max_corrections=0)


def test_messages_are_merged_over_the_defaults(form: Form) -> None:
    """A form's messages override the defaults one by one."""
    assert form.messages["goodbye"] == "Bye now."
    assert form.messages["no_form"] == DEFAULT_MESSAGES["no_form"]
    assert set(form.messages) == set(DEFAULT_MESSAGES)


def test_attempts_allowed_prefers_the_field(write: Writer, forms: Path) -> None:
    """A field's max_attempts overrides the form's."""
    write(
        "f.json",
        minimal(
            properties={
                "a": {"type": "string"},
                "b": {"type": "string", "x-collector": {"max_attempts": 5}},
            },
            required=["a", "b"],
            **{"x-collector": {"max_attempts": 3}},
        ),
    )
    form = load_forms(forms)["f"]
    assert form.fields["a"].attempts_allowed(form) == 3
    assert form.fields["a"].attempts_allowed() == 3
    assert form.fields["b"].attempts_allowed(form) == 5


def test_dtmf_options_are_parsed(forms: Path) -> None:
    """A field's keypad fallback comes with its digits settings."""
    claim = load_forms(SCHEMAS)["claim"]
    dtmf = claim.fields["zip_code"].options.dtmf
    assert dtmf is not None
    assert (dtmf.minimum_digits, dtmf.maximum_digits) == (5, 5)
    assert dtmf.prompt and dtmf.audio_url is None
    assert claim.fields["policy_number"].options.dtmf is None


def test_example_answers_validate_for_every_example_form() -> None:
    """Each shipped form's example answers cover every field and pass validation."""
    for form in load_forms(SCHEMAS).values():
        answers = form.example_answers()
        assert set(answers) == set(form.fields), form.id
        assert form.validate(answers) == {}, form.id
        for name, value in answers.items():
            assert form.validate_field(name, value) == [], (form.id, name)


def test_example_answers_fall_back_to_default_and_enum(write: Writer, forms: Path) -> None:
    """Without examples a field answers its default, else its first choice, else nothing."""
    write(
        "f.json",
        minimal(
            properties={
                "a": {"type": "string", "default": "x"},
                "b": {"type": "string", "enum": ["p", "q"]},
                "c": {"type": "string"},
            },
            required=["a"],
        ),
    )
    assert load_forms(forms)["f"].example_answers() == {"a": "x", "b": "p"}


def test_a_form_is_immutable(form: Form) -> None:
    """A Form's attributes cannot be reassigned."""
    with pytest.raises(AttributeError):
        form.id = "other"  # type: ignore[misc]
