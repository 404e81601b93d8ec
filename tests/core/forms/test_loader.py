"""Loading and checking forms: the example forms, inlining, and one line per problem."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.core.forms import (
    Form,
    FormProblem,
    FormRegistry,
    FormsInvalid,
    check_forms,
    load_forms,
)

from .conftest import SCHEMAS, Writer, minimal

STRIPPED = {
    "$ref",
    "$defs",
    "definitions",
    "$schema",
    "$id",
    "$comment",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "x-collector",
}
Lint = Callable[[], list[str]]


def all_keys(value: Any) -> Iterator[str]:
    """Every dict key anywhere in value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def test_example_forms_load() -> None:
    """The shipped forms in schemas/ load without a single problem."""
    registry, problems = check_forms(SCHEMAS)
    assert [str(p) for p in problems] == []
    assert list(registry) == ["appointment", "claim", "intake", "survey"]
    assert all(isinstance(form, Form) for form in registry.values())


def test_example_parameters_are_fully_inlined_and_stripped() -> None:
    """No $ref, $defs, $schema, $id, $comment or x-collector survives in any parameters."""
    for form in load_forms(SCHEMAS).values():
        assert STRIPPED.isdisjoint(all_keys(form.parameters)), form.id
        for name in form.fields:
            assert STRIPPED.isdisjoint(all_keys(form.sub_parameters([name])))


def test_parameters_keep_what_the_ai_needs() -> None:
    """Descriptions, examples, formats, patterns, enums and bounds stay, also from defs."""
    forms = load_forms(SCHEMAS)
    intake = forms["intake"].parameters["properties"]
    assert intake["email"]["format"] == "email"
    assert intake["email"]["maxLength"] == 254
    assert intake["email"]["examples"] == ["jane.doe@example.com"]
    assert intake["phone"]["pattern"] == r"^\+[1-9]\d{7,14}$"
    assert intake["phone"]["description"].startswith("The number the clinic should call back")
    assert intake["date_of_birth"]["format"] == "date"
    assert "new_appointment" in intake["reason_for_call"]["enum"]
    party = forms["appointment"].parameters["properties"]["party_size"]
    assert (party["minimum"], party["maximum"]) == (1, 10)
    assert all("description" in s and s.get("examples") for s in intake.values())


def test_sibling_keys_next_to_a_ref_win(write: Writer, forms: Path) -> None:
    """Keys written next to a $ref are merged into the inlined schema and override it."""
    write(
        "defs/common.json",
        {"$defs": {"code": {"type": "string", "description": "A code", "pattern": "^[0-9]+$"}}},
    )
    write(
        "f.json",
        minimal(
            properties={
                "code": {
                    "$ref": "defs/common.json#/$defs/code",
                    "description": "Your account code",
                },
            },
            required=["code"],
        ),
    )
    form = load_forms(forms)["f"]
    assert form.parameters["properties"]["code"] == {
        "type": "string",
        "description": "Your account code",
        "pattern": "^[0-9]+$",
    }


def test_fields_named_like_keywords_survive(write: Writer, forms: Path) -> None:
    """A property named `x-collector` or `$comment` is a field, not a keyword to strip."""
    write(
        "f.json",
        minimal(
            properties={
                "x-collector": {
                    "type": "string",
                    "description": "odd",
                    "$comment": "gone",
                    "x-collector": {"sensitive": True},
                },
                "$comment": {"type": "string", "description": "odder"},
                "$defs": {"type": "integer"},
            },
            required=["x-collector", "$comment"],
            **{"$comment": "root comment"},
        ),
    )
    form = load_forms(forms)["f"]
    assert list(form.parameters["properties"]) == ["x-collector", "$comment", "$defs"]
    assert form.parameters["properties"]["x-collector"] == {"type": "string", "description": "odd"}
    assert "$comment" not in form.parameters
    assert form.fields["x-collector"].options.sensitive
    assert form.sensitive_fields == frozenset({"x-collector"})


def test_internal_defs_and_nested_refs_are_inlined(write: Writer, forms: Path) -> None:
    """Refs into the form's own $defs, and refs inside shared defs, are all inlined."""
    write(
        "defs/address.json",
        {
            "type": "object",
            "properties": {"zip": {"$ref": "common.json#/$defs/zip"}},
            "required": ["zip"],
        },
    )
    write("defs/common.json", {"$defs": {"zip": {"type": "string", "pattern": "^\\d{5}$"}}})
    write(
        "f.json",
        minimal(
            properties={"home": {"$ref": "defs/address.json"}, "age": {"$ref": "#/$defs/age"}},
            required=["home"],
            **{"$defs": {"age": {"type": "integer", "minimum": 0, "$id": "urn:age"}}},
        ),
    )
    params = load_forms(forms)["f"].parameters
    assert params["properties"]["home"]["properties"]["zip"] == {
        "type": "string",
        "pattern": "^\\d{5}$",
    }
    assert params["properties"]["age"] == {"type": "integer", "minimum": 0}
    assert "$defs" not in params


def test_editing_a_shared_def_changes_the_version(schemas_copy: Path) -> None:
    """form_version covers the resolved form, so a change to a def changes it."""
    before = {k: f.version for k, f in load_forms(schemas_copy).items()}
    assert before == {k: f.version for k, f in load_forms(schemas_copy).items()}
    assert all(len(v) == 12 and int(v, 16) >= 0 for v in before.values())
    common = schemas_copy / "defs" / "common.json"
    doc = json.loads(common.read_text())
    doc["$defs"]["phone"]["pattern"] = r"^\+1\d{10}$"
    common.write_text(json.dumps(doc))
    after = {k: f.version for k, f in load_forms(schemas_copy).items()}
    assert after["intake"] != before["intake"]
    assert after["claim"] != before["claim"]
    assert after["appointment"] == before["appointment"]  # it has no phone


def test_editing_an_option_changes_the_version(write: Writer, forms: Path) -> None:
    """x-collector is part of the version too, field options included."""
    write("f.json", minimal())
    first = load_forms(forms)["f"].version
    write(
        "f.json",
        minimal(
            properties={
                "name": {
                    "type": "string",
                    "description": "Full name",
                    "examples": ["Jane Doe"],
                    "x-collector": {"sensitive": True},
                }
            }
        ),
    )
    assert load_forms(forms)["f"].version != first


def test_defs_are_not_forms_and_the_scan_is_not_recursive(write: Writer, forms: Path) -> None:
    """Only *.json directly in the directory are forms; defs/ and other folders are not."""
    write("defs/common.json", {"$defs": {}})
    write("more/other.json", minimal())
    write("only.json", minimal())
    assert list(load_forms(forms)) == ["only"]


def test_registry_is_a_sorted_read_only_mapping(write: Writer, forms: Path) -> None:
    """FormRegistry maps id -> Form in id order and cannot be changed."""
    for name in ("zeta", "alpha", "mid"):
        write(f"{name}.json", minimal())
    registry = load_forms(forms)
    assert isinstance(registry, FormRegistry)
    assert list(registry) == ["alpha", "mid", "zeta"]
    assert registry["mid"].id == "mid" and len(registry) == 3
    with pytest.raises(TypeError):
        registry["new"] = registry["mid"]  # type: ignore[index]


def test_problem_renders_as_file_pointer_message() -> None:
    """A FormProblem prints as `file: /pointer: message`, an empty pointer as `/`."""
    assert str(FormProblem("schemas/a.json", "/x", "bad")) == "schemas/a.json: /x: bad"
    assert str(FormProblem("schemas/a.json", "", "bad")) == "schemas/a.json: /: bad"


def test_missing_directory_is_one_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forms directory that does not exist is reported, not raised as a traceback."""
    monkeypatch.chdir(tmp_path)
    registry, problems = check_forms(Path("schemas"))
    assert len(registry) == 0
    assert [str(p) for p in problems] == ["schemas: /: forms directory does not exist"]


def test_empty_directory_is_one_problem(forms: Path, lint: Lint, write: Writer) -> None:
    """A directory without forms (defs alone do not count) is one problem."""
    write("defs/common.json", {"$defs": {}})
    assert lint() == ["forms: /: no forms (*.json) found"]


def test_absolute_paths_are_shown_relative_to_cwd(
    write: Writer, forms: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are named relative to the working directory when they are under it."""
    write("bad.json", "[]")
    monkeypatch.chdir(forms.parent)
    _, problems = check_forms(forms.resolve())
    assert [p.file for p in problems] == ["forms/bad.json"]


def test_load_forms_raises_with_one_line_per_problem(write: Writer, lint: Lint) -> None:
    """FormsInvalid carries every problem, and its text is one problem per line."""
    write("a.json", "{")
    write("b.json", minimal(required=[]))
    with pytest.raises(FormsInvalid) as caught:
        load_forms(Path("forms"))
    assert [str(p) for p in caught.value.problems] == lint()
    assert str(caught.value).splitlines() == lint()
    assert len(lint()) == 2


WHY = (
    "Telnyx ends the gather as soon as the required fields are in, so with none, "
    "after the first value"
)
LONG = "x" * 3001

CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "invalid json",
        {"f.json": '{\n  "type": "object",\n  oops\n}'},
        "forms/f.json: /: invalid JSON at line 3, column 3: Expecting property name enclosed "
        "in double quotes",
    ),
    (
        "not an object",
        {"f.json": "[1, 2]"},
        "forms/f.json: /: must be a JSON object (a schema), not list",
    ),
    (
        "meta-schema",
        {"f.json": minimal(properties={"name": {"type": "string", "minLength": -1}})},
        "forms/f.json: /properties/name/minLength: -1 is less than the minimum of 0",
    ),
    (
        "unknown type",
        {"f.json": minimal(properties={"name": {"type": "strng"}})},
        "forms/f.json: /properties/name/type: unknown type 'strng' (did you mean 'string'?)",
    ),
    (
        "a property that is not a schema",
        {"f.json": minimal(properties={"name": {"type": "string"}, "type": "string"})},
        "forms/f.json: /properties/type: 'string' is not of type 'object', 'boolean'",
    ),
    (
        "bad regex",
        {"f.json": minimal(properties={"name": {"type": "string", "pattern": "(["}})},
        "forms/f.json: /properties/name/pattern: '([' is not a 'regex'",
    ),
    (
        "other dialect",
        {"f.json": minimal(**{"$schema": "http://json-schema.org/draft-07/schema#"})},
        "forms/f.json: /$schema: only JSON Schema 2020-12 is supported "
        "(https://json-schema.org/draft/2020-12/schema)",
    ),
    (
        "root not object",
        {"f.json": minimal(type="array")},
        'forms/f.json: /type: the form must be "type": "object"',
    ),
    (
        "no properties",
        {"f.json": {"type": "object", "required": ["a"]}},
        'forms/f.json: /: the form has no fields: list them in "properties"',
    ),
    (
        "missing required",
        {"f.json": {"type": "object", "properties": {"a": {"type": "string"}}}},
        f'forms/f.json: /: missing "required": list the fields to collect ({WHY})',
    ),
    (
        "empty required",
        {"f.json": minimal(required=[])},
        f'forms/f.json: /required: "required" is empty: list the fields to collect ({WHY})',
    ),
    (
        "required not a property",
        {"f.json": minimal(required=["name", "nmae2", "email"])},
        "forms/f.json: /required/2: 'email' is not one of the form's properties",
    ),
    (
        "bad id",
        {"Intake Form.json": minimal()},
        "forms/Intake Form.json: /: form id 'Intake Form' (the file name) must match "
        "^[a-z0-9][a-z0-9_-]*$",
    ),
    (
        "missing def file",
        {"f.json": minimal(properties={"p": {"$ref": "defs/phone.json"}})},
        "forms/f.json: /properties/p/$ref: cannot resolve $ref 'defs/phone.json': "
        "no schema at forms/defs/phone.json (looked up in this form and forms/defs/*.json, by path or $id)",
    ),
    (
        "missing def pointer",
        {
            "defs/common.json": {"$defs": {"phone": {"type": "string"}}},
            "f.json": minimal(properties={"p": {"$ref": "defs/common.json#/$defs/fone"}}),
        },
        "forms/f.json: /properties/p/$ref: cannot resolve $ref 'defs/common.json#/$defs/fone': "
        "there is no '/$defs/fone' in forms/defs/common.json",
    ),
    (
        "recursive ref",
        {
            "f.json": minimal(
                properties={
                    "tree": {
                        "type": "object",
                        "properties": {"child": {"$ref": "#/properties/tree"}},
                    }
                }
            )
        },
        "forms/f.json: /properties/tree/properties/child/$ref: recursive $ref '#/properties/tree': "
        "the schema contains itself, so it cannot be inlined",
    ),
    (
        "recursive ref to the root",
        {"f.json": minimal(properties={"me": {"$ref": "#"}})},
        "forms/f.json: /properties/me/$ref: recursive $ref '#': the schema contains itself, "
        "so it cannot be inlined",
    ),
    (
        "recursive ref in a def",
        {
            "defs/tree.json": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "tree.json"}}},
            },
            "f.json": minimal(properties={"t": {"$ref": "defs/tree.json"}}),
        },
        "forms/defs/tree.json: /properties/kids/items/$ref: recursive $ref 'tree.json': "
        "the schema contains itself, so it cannot be inlined",
    ),
    (
        "ref into a broken def",
        {"defs/bad.json": "{,}", "f.json": minimal(properties={"p": {"$ref": "defs/bad.json"}})},
        "forms/f.json: /properties/p/$ref: $ref 'defs/bad.json' points into forms/defs/bad.json, "
        "which is broken",
    ),
    (
        "unknown form key",
        {"f.json": minimal(**{"x-collector": {"greting": "Hi"}})},
        "forms/f.json: /x-collector/greting: unknown key 'greting' (did you mean 'greeting'?)",
    ),
    (
        "field key on the form",
        {"f.json": minimal(**{"x-collector": {"sensitive": True}})},
        "forms/f.json: /x-collector/sensitive: unknown key 'sensitive' here (it is a field "
        "option: put it in a property's x-collector)",
    ),
    (
        "unknown field key",
        {
            "f.json": minimal(
                properties={"name": {"type": "string", "x-collector": {"senstive": True}}}
            )
        },
        "forms/f.json: /properties/name/x-collector/senstive: unknown key 'senstive' "
        "(did you mean 'sensitive'?)",
    ),
    (
        "unknown dtmf key",
        {
            "f.json": minimal(
                properties={
                    "pin": {
                        "type": "string",
                        "x-collector": {"dtmf": {"prompt": "Enter it", "max_digits": 4}},
                    }
                }
            )
        },
        "forms/f.json: /properties/pin/x-collector/dtmf/max_digits: unknown key 'max_digits' "
        "(did you mean 'maximum_digits'?)",
    ),
    (
        "unknown message",
        {"f.json": minimal(**{"x-collector": {"messages": {"goodby": "Bye"}}})},
        "forms/f.json: /x-collector/messages/goodby: unknown message 'goodby' "
        "(did you mean 'goodbye'?)",
    ),
    (
        "x-collector not an object",
        {"f.json": minimal(**{"x-collector": ["greeting"]})},
        "forms/f.json: /x-collector: x-collector must be an object",
    ),
    (
        "nested x-collector",
        {
            "f.json": minimal(
                properties={
                    "home": {
                        "type": "object",
                        "properties": {
                            "zip": {"type": "string", "x-collector": {"sensitive": True}}
                        },
                    }
                }
            )
        },
        "forms/f.json: /properties/home/properties/zip/x-collector: x-collector is allowed only "
        "at the form's root and on its top-level properties",
    ),
    (
        "x-collector in a def",
        {
            "defs/common.json": {
                "$defs": {"pin": {"type": "string", "x-collector": {"sensitive": True}}}
            },
            "f.json": minimal(),
        },
        "forms/defs/common.json: /$defs/pin/x-collector: x-collector is not allowed in shared "
        "definitions: put it next to the $ref, on the form's property",
    ),
    (
        "max_attempts",
        {"f.json": minimal(**{"x-collector": {"max_attempts": 0}})},
        "forms/f.json: /x-collector/max_attempts: Input should be greater than or equal to 1",
    ),
    (
        "max_attempts type",
        {"f.json": minimal(**{"x-collector": {"max_attempts": "2"}})},
        "forms/f.json: /x-collector/max_attempts: must be an integer",
    ),
    (
        "confirm",
        {"f.json": minimal(**{"x-collector": {"confirm": {"max_corrections": -1}}})},
        "forms/f.json: /x-collector/confirm/max_corrections: Input should be greater than or "
        "equal to 0",
    ),
    (
        "confirm kind",
        {"f.json": minimal(**{"x-collector": {"confirm": "yes"}})},
        "forms/f.json: /x-collector/confirm: must be true, false or an object like "
        '{"max_corrections": 1}',
    ),
    (
        "dtmf on email",
        {
            "f.json": minimal(
                properties={
                    "email": {
                        "type": "string",
                        "format": "email",
                        "x-collector": {"dtmf": {"prompt": "Type it"}},
                    }
                }
            )
        },
        "forms/f.json: /properties/email/x-collector/dtmf: "
        "keypad digits can never be a valid email",
    ),
    (
        "dtmf on a ref'd date",
        {
            "defs/common.json": {"$defs": {"day": {"type": "string", "format": "date"}}},
            "f.json": minimal(
                properties={
                    "day": {
                        "$ref": "defs/common.json#/$defs/day",
                        "x-collector": {"dtmf": {"prompt": "Type it"}},
                    }
                }
            ),
        },
        "forms/f.json: /properties/day/x-collector/dtmf: keypad digits can never be a valid date",
    ),
    (
        "dtmf on a boolean",
        {
            "f.json": minimal(
                properties={
                    "ok": {"type": "boolean", "x-collector": {"dtmf": {"prompt": "1 or 2"}}}
                }
            )
        },
        "forms/f.json: /properties/ok/x-collector/dtmf: "
        "a boolean field cannot be typed on a keypad (only string, integer and number fields can)",
    ),
    (
        "dtmf on a word enum",
        {
            "f.json": minimal(
                properties={
                    "size": {
                        "type": "string",
                        "enum": ["1", "small"],
                        "x-collector": {"dtmf": {"prompt": "Press"}},
                    }
                }
            )
        },
        "forms/f.json: /properties/size/x-collector/dtmf: the choice 'small' cannot be typed on a "
        "keypad (digits only)",
    ),
    (
        "dtmf without prompt",
        {
            "f.json": minimal(
                properties={
                    "pin": {"type": "string", "x-collector": {"dtmf": {"maximum_digits": 4}}}
                }
            )
        },
        "forms/f.json: /properties/pin/x-collector/dtmf: needs a 'prompt' (spoken) or an "
        "'audio_url' (played)",
    ),
    (
        "dtmf digits",
        {
            "f.json": minimal(
                properties={
                    "pin": {
                        "type": "string",
                        "x-collector": {"dtmf": {"prompt": "p", "maximum_digits": 129}},
                    }
                }
            )
        },
        "forms/f.json: /properties/pin/x-collector/dtmf/maximum_digits: Input should be less than "
        "or equal to 128",
    ),
    (
        "language",
        {"f.json": minimal(**{"x-collector": {"language": "en-US"}})},
        "forms/f.json: /x-collector/language: 'en-US' is not a gather_using_ai language "
        "(did you mean 'en'?)",
    ),
    (
        "speak_language",
        {"f.json": minimal(**{"x-collector": {"speak_language": "en"}})},
        "forms/f.json: /x-collector/speak_language: 'en' is not a speak language "
        "(did you mean 'en-US'?)",
    ),
    (
        "greeting too long",
        {"f.json": minimal(**{"x-collector": {"greeting": LONG}})},
        "forms/f.json: /x-collector/greeting: String should have at most 3000 characters",
    ),
    (
        "gather_ended_speech too long",
        {"f.json": minimal(**{"x-collector": {"gather_ended_speech": LONG}})},
        "forms/f.json: /x-collector/gather_ended_speech: "
        "String should have at most 3000 characters",
    ),
    (
        "message too long",
        {"f.json": minimal(**{"x-collector": {"messages": {"goodbye": LONG}}})},
        "forms/f.json: /x-collector/messages/goodbye: String should have at most 3000 characters",
    ),
    (
        "sinks not a list",
        {"f.json": minimal(**{"x-collector": {"sinks": "jsonl"}})},
        "forms/f.json: /x-collector/sinks: must be a list",
    ),
    (
        "sinks empty name",
        {"f.json": minimal(**{"x-collector": {"sinks": ["jsonl", ""]}})},
        "forms/f.json: /x-collector/sinks/1: String should have at least 1 character",
    ),
    (
        "after without assistant id",
        {
            "f.json": minimal(
                **{"x-collector": {"after": {"assistant": {"instructions": "Be helpful"}}}}
            )
        },
        "forms/f.json: /x-collector/after/assistant/id: is required: the id of a stored assistant "
        "to hand the caller to",
    ),
    (
        "after max_seconds",
        {
            "f.json": minimal(
                **{
                    "x-collector": {
                        "after": {"assistant": {"id": "assistant-123"}, "max_seconds": 0}
                    }
                }
            )
        },
        "forms/f.json: /x-collector/after/max_seconds: Input should be greater than or equal to 1",
    ),
]


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_kind_gives_its_line(
    files: dict[str, Any], expected: str, write: Writer, lint: Lint
) -> None:
    """Every kind of form problem is one `file: /pointer: message` line."""
    for name, content in files.items():
        write(name, content)
    assert expected in lint()


def test_problems_of_several_files_are_reported_together(write: Writer, lint: Lint) -> None:
    """Every problem of every broken file comes out of one check, good forms still load."""
    write("good.json", minimal())
    write("broken.json", '{"type": ')
    write(
        "typo.json", minimal(required=[], **{"x-collector": {"greting": "Hi", "max_attempts": 0}})
    )
    write(
        "refs.json",
        minimal(
            properties={"a": {"$ref": "defs/none.json"}, "b": {"$ref": "#/$defs/none"}},
            required=["a", "c"],
        ),
    )
    lines = lint()
    assert lines == [
        "forms/broken.json: /: invalid JSON at line 1, column 10: Expecting value",
        "forms/refs.json: /properties/a/$ref: cannot resolve $ref 'defs/none.json': "
        "no schema at forms/defs/none.json (looked up in this form and forms/defs/*.json, by path or $id)",
        "forms/refs.json: /properties/b/$ref: cannot resolve $ref '#/$defs/none': "
        "there is no '/$defs/none' in forms/refs.json",
        "forms/refs.json: /required/1: 'c' is not one of the form's properties",
        "forms/typo.json: /x-collector/greting: unknown key 'greting' (did you mean 'greeting'?)",
        "forms/typo.json: /x-collector/max_attempts: Input should be greater than or equal to 1",
        f'forms/typo.json: /required: "required" is empty: list the fields to collect ({WHY})',
    ]
    registry, _ = check_forms(Path("forms"))
    assert list(registry) == ["good"]


def test_checks_against_the_sdk_types_when_available(write: Writer, lint: Lint) -> None:
    """voice_settings and the `after` body are checked against the SDK's param types."""
    pytest.importorskip("collector.core.telnyx_params")
    write(
        "f.json",
        minimal(
            **{
                "x-collector": {
                    "voice_settings": {"type": "telnyx", "voice_speed": "fast"},
                    "after": {"assistant": {"id": "assistant-1"}, "greeting": 3, "max_seconds": 60},
                }
            }
        ),
    )
    lines = lint()
    assert any(
        line.startswith("forms/f.json: /x-collector/voice_settings/voice_speed: ") for line in lines
    ), lines
    assert any(line.startswith("forms/f.json: /x-collector/after/greeting: ") for line in lines), (
        lines
    )
    assert not any("max_seconds" in line for line in lines)


def test_a_good_after_is_accepted(write: Writer, forms: Path) -> None:
    """`after` with a stored assistant id and max_seconds loads, split into body and limit."""
    write(
        "f.json",
        minimal(
            **{
                "x-collector": {
                    "after": {
                        "assistant": {
                            "id": "assistant-1",
                            "instructions": "Answer their questions.",
                        },
                        "greeting": "Anything else I can help with?",
                        "max_seconds": 300,
                    }
                }
            }
        ),
    )
    after = load_forms(forms)["f"].options.after
    assert after is not None and after.max_seconds == 300
    assert after.body == {
        "assistant": {"id": "assistant-1", "instructions": "Answer their questions."},
        "greeting": "Anything else I can help with?",
    }


def test_refs_that_multiply_are_refused_quickly(write: Writer, lint: Lint) -> None:
    """A schema whose $refs double at every level is reported, not inlined for ever."""
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    defs["d40"] = {"type": "string"}
    write(
        "f.json",
        minimal(properties={"a": {"$ref": "#/$defs/d0"}}, required=["a"], **{"$defs": defs}),
    )
    lines = lint()
    assert len(lines) == 1
    assert lines[0].endswith("the schema grows too large when its $refs are inlined")


@pytest.mark.parametrize(
    "content",
    [
        {"type": "object", "properties": [1], "required": [{"a": 1}, "x"], "allOf": 3},
        {"type": "object", "properties": {"a": True, "b": "str"}, "required": "a"},
        {"properties": {"a": {"$ref": 3, "x-collector": "no"}}, "x-collector": {"after": 1}},
        {"$ref": "#/properties/a", "properties": {"a": {"$ref": "#"}}, "required": ["a"]},
        {"properties": {"a": {"items": [{"$ref": "defs/x.json"}]}}, "required": ["a"]},
    ],
)
def test_garbage_gives_problems_not_tracebacks(content: Any, write: Writer, lint: Lint) -> None:
    """However malformed a form is, checking it reports problems and never raises."""
    write("f.json", content)
    lines = lint()
    assert lines and all(line.startswith("forms/f.json: /") for line in lines)
