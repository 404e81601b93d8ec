"""Words: the server's own spoken phrases, and validation errors in plain English.

Validation messages are built from the failing keyword and the schema, never from the
value (values may be sensitive). Each reads after the field's name: "The email address
seems to be missing the @."
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonschema.exceptions import ValidationError

from collector.core.forms.choices import choices, labelled, words

DEFAULT_MESSAGES: dict[str, str] = {
    "goodbye": "Thank you, that's everything I needed. Goodbye.",
    "incomplete_goodbye": (
        "Thank you for your time. I couldn't get everything I needed, "
        "so someone will follow up with you. Goodbye."
    ),
    "no_form": "Sorry, this number is not set up to take calls right now. Goodbye.",
    "reask_lead_in": "Sorry, I need to check one thing.",
    "follow_up_lead_in": "Thank you. I just need a little more.",
    "confirm_intro": "Let me read back what I have.",
    "confirm_prompt": "If that's all correct, press 1. To change something, press 2.",
    "confirm_invalid": "Please press 1 if everything is correct, or 2 to change something.",
    "correct_prompt": "No problem. What would you like to change?",
    # with confirm.choose_field: one line per field; {field} and {digit} are filled in
    "choose_option": "To change the {field}, press {digit}.",
    "keypad_lead_in": "Let's try the keypad instead.",
    "masked": "kept private",
    "cancelled": "This call has been ended by an operator. Goodbye.",
    "after_goodbye": "Thank you, that's everything I needed. I'll pass you on now.",
}

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "yes or no",
    "object": "a set of details",
    "array": "a list",
    "null": "left empty",
}

_FORMAT_WORDS = {
    "date": "is not a valid date (YYYY-MM-DD)",
    "date-time": "is not a valid date and time (YYYY-MM-DDTHH:MM:SS with a time zone)",
    "time": "is not a valid time (HH:MM:SS with a time zone)",
    "duration": "is not a valid duration",
    "uri": "is not a valid web address (URI)",
    "uri-reference": "is not a valid web address (URI)",
    "iri": "is not a valid web address (IRI)",
    "hostname": "is not a valid host name",
    "ipv4": "is not a valid IPv4 address",
    "ipv6": "is not a valid IPv6 address",
    "uuid": "is not a valid UUID",
}

_DESCRIPTION_HINT_CHARS = 80


def _plural(n: Any, one: str, many: str) -> str:
    return f"{words(n)} {one if n == 1 else many}"


def _label(name: str) -> str:
    return name.replace("_", " ")


def _email(error: ValidationError) -> list[str]:
    general = "is not a valid email address"
    value = error.instance
    if not isinstance(value, str) or "@" not in value:
        return ["seems to be missing the @", general]
    if value.count("@") > 1:
        return ["has more than one @", general]
    if not value.partition("@")[0]:
        return ["seems to be missing the part before the @", general]
    if "." not in value.rpartition("@")[2]:
        return ["seems to be missing the domain after the @ (like example.com)", general]
    return [general]


def _listed(error: ValidationError) -> list[Any]:
    """The keyword's array (`enum`, `required`: an array in any form the meta-schema passed)."""
    value = error.validator_value
    return value if isinstance(value, list) else []


def _format(error: ValidationError) -> list[str]:
    fmt = str(error.validator_value)  # `format` is a string in any form the meta-schema passed
    if fmt in ("email", "idn-email"):
        return _email(error)
    return [_FORMAT_WORDS.get(fmt, f"is not a valid {fmt}")]


def _type(error: ValidationError) -> list[str]:
    kinds = error.validator_value
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return ["must be " + " or ".join(_TYPE_WORDS.get(k, str(k)) for k in kinds)]


def _pattern(error: ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    description = schema.get("description")
    if isinstance(description, str) and 0 < len(description) <= _DESCRIPTION_HINT_CHARS:
        return [f"does not match the expected format ({description.rstrip('.')})"]
    return ["does not match the expected format"]


def _one_of_choices(spoken: list[str]) -> list[str]:
    if len(spoken) > 12:
        spoken = [*spoken[:12], "…"]
    return ["must be one of: " + ", ".join(spoken)]


def _enum(error: ValidationError) -> list[str]:
    return _one_of_choices([words(c) for c in _listed(error)])


def _branches(fallback: str) -> Callable[[ValidationError], list[str]]:
    def build(error: ValidationError) -> list[str]:
        labelled_choices = choices(error.schema) if labelled(error.schema) else None
        if labelled_choices:
            return _one_of_choices([spoken for _, spoken in labelled_choices])
        return [fallback]

    return build


def _required(error: ValidationError) -> list[str]:
    present = error.instance if isinstance(error.instance, dict) else {}
    return [f"is missing its {_label(n)}" for n in _listed(error) if n not in present]


def _min_length(error: ValidationError) -> list[str]:
    n = error.validator_value
    if n == 1:
        return ["must not be empty"]
    return [f"must be at least {_plural(n, 'character', 'characters')} long"]


_BUILDERS: dict[str | None, Callable[[ValidationError], list[str]]] = {
    None: lambda e: ["is not allowed"],
    "format": _format,
    "type": _type,
    "pattern": _pattern,
    "enum": _enum,
    "required": _required,
    "minLength": _min_length,
    "const": lambda e: [f"must be {words(e.validator_value)}"],
    "maxLength": lambda e: [
        f"must be at most {_plural(e.validator_value, 'character', 'characters')} long"
    ],
    "minimum": lambda e: [f"must be at least {words(e.validator_value)}"],
    "maximum": lambda e: [f"must be at most {words(e.validator_value)}"],
    "exclusiveMinimum": lambda e: [f"must be more than {words(e.validator_value)}"],
    "exclusiveMaximum": lambda e: [f"must be less than {words(e.validator_value)}"],
    "multipleOf": lambda e: [f"must be a multiple of {words(e.validator_value)}"],
    "minItems": lambda e: [f"must have at least {_plural(e.validator_value, 'item', 'items')}"],
    "maxItems": lambda e: [f"must have at most {_plural(e.validator_value, 'item', 'items')}"],
    "uniqueItems": lambda e: ["must not list the same item twice"],
    "contains": lambda e: ["does not include a required item"],
    "minProperties": lambda e: [
        f"must have at least {_plural(e.validator_value, 'detail', 'details')}"
    ],
    "maxProperties": lambda e: [
        f"must have at most {_plural(e.validator_value, 'detail', 'details')}"
    ],
    "additionalProperties": lambda e: ["has details that are not expected"],
    "unevaluatedProperties": lambda e: ["has details that are not expected"],
    "propertyNames": lambda e: ["has details that are not expected"],
    "dependentRequired": lambda e: ["is missing details that go with it"],
    "anyOf": _branches("does not match any of the accepted forms"),
    "oneOf": _branches("must match exactly one of the accepted forms"),
    "not": lambda e: ["is not allowed"],
}


def describe(error: ValidationError) -> list[str]:
    """Plain-English messages for one jsonschema error, without the failing value."""
    builder = _BUILDERS.get(error.validator)  # type: ignore[arg-type]
    if builder is None:
        return ["is not valid"]
    return builder(error)


def field_errors(
    errors: list[ValidationError], order: list[str] | None = None
) -> dict[str, list[str]]:
    """Group messages by the top-level property each error is under (root errors under "").

    A root `required` error becomes `["is required"]` for every missing field.
    """
    out: dict[str, list[str]] = {}

    def add(key: str, messages: list[str]) -> None:
        bucket = out.setdefault(key, [])
        bucket.extend(m for m in messages if m not in bucket)

    for error in errors:
        path = list(error.absolute_path)
        if not path:
            if error.validator == "required" and isinstance(error.validator_value, list):
                present = error.instance if isinstance(error.instance, dict) else {}
                for name in error.validator_value:
                    if name not in present:
                        add(name, ["is required"])
                continue
            if error.validator == "dependentRequired" and isinstance(error.instance, dict):
                deps = error.validator_value if isinstance(error.validator_value, dict) else {}
                for key, names in deps.items():
                    if key in error.instance and isinstance(names, list):
                        for name in names:
                            if name not in error.instance:
                                add(str(name), ["is required"])
                continue
            add("", describe(error))
        else:
            add(str(path[0]), describe(error))
    if order is None:
        return out
    rank = {name: i for i, name in enumerate(["", *order])}
    return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))
