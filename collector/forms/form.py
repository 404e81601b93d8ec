"""A loaded form: its gather_using_ai parameters, options and compiled validators."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from jsonschema import Draft202012Validator, FormatChecker

from collector.forms.messages import field_errors
from collector.forms.vocabulary import GATHER_OPTION_KEYS, FieldOptions, FormOptions

# Root keywords a re-ask's sub-schema keeps; the rest may speak of fields not asked.
_SUB_ROOT_KEYS = ("type", "title", "description", "additionalProperties")


def _is_email(instance: object) -> bool:
    if isinstance(instance, str):
        validate_email(instance, check_deliverability=False)
    return True


def _is_uri(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    parts = urlsplit(instance)
    return bool(parts.scheme) and " " not in instance and bool(parts.netloc or parts.path)


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    value = datetime.fromisoformat(instance.replace("z", "Z"))
    return "T" in instance.upper() and value.tzinfo is not None


def _is_time(instance: object) -> bool:
    return not isinstance(instance, str) or _is_date_time(f"1970-01-01T{instance}")


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("email", raises=EmailNotValidError)(_is_email)
    checker.checks("idn-email", raises=EmailNotValidError)(_is_email)
    # jsonschema checks these only when its optional extras are installed.
    fallbacks = {"uri": _is_uri, "date-time": _is_date_time, "time": _is_time}
    for name, check in fallbacks.items():
        if name not in checker.checkers:
            checker.checks(name, raises=ValueError)(check)
    return checker


FORMAT_CHECKER = _format_checker()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _validator(schema: Any) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One top-level property of a form."""

    name: str
    schema: dict[str, Any]
    required: bool
    options: FieldOptions
    form_max_attempts: int = 2

    @property
    def title(self) -> str | None:
        """The schema's `title`, if any."""
        title = self.schema.get("title")
        return title if isinstance(title, str) else None

    @property
    def description(self) -> str | None:
        """The schema's `description`, if any."""
        description = self.schema.get("description")
        return description if isinstance(description, str) else None

    @property
    def pointer(self) -> str:
        """The JSON pointer of this field in a submission's data."""
        return "/" + self.name.replace("~", "~0").replace("/", "~1")

    def attempts_allowed(self, form: Form | None = None) -> int:
        """AI gathers that may ask for this field: its own max_attempts, else the form's."""
        if self.options.max_attempts is not None:
            return self.options.max_attempts
        return form.options.max_attempts if form is not None else self.form_max_attempts


@dataclass(frozen=True, slots=True, eq=False)
class Form:
    """A checked form. Build it with `Form.build`; treat every dict in it as read-only."""

    id: str
    path: Path
    version: str
    title: str
    description: str | None
    parameters: dict[str, Any]
    options: FormOptions
    fields: dict[str, FieldSpec]
    required: tuple[str, ...]
    sensitive_fields: frozenset[str]
    messages: dict[str, str]
    _validator: Draft202012Validator = field(repr=False)
    _field_validators: dict[str, Draft202012Validator] = field(repr=False)

    @classmethod
    def build(
        cls,
        form_id: str,
        path: Path,
        parameters: dict[str, Any],
        options: FormOptions,
        field_options: Mapping[str, FieldOptions],
    ) -> Form:
        """A Form from an inlined, checked schema and its x-collector options."""
        properties: dict[str, Any] = parameters.get("properties", {})
        required = tuple(n for n in parameters.get("required", []) if n in properties)
        fields = {
            name: FieldSpec(
                name=name,
                schema=schema if isinstance(schema, dict) else {},
                required=name in required,
                options=field_options.get(name) or FieldOptions(),
                form_max_attempts=options.max_attempts,
            )
            for name, schema in properties.items()
        }
        dumped = options.model_dump(mode="json")
        dumped["fields"] = {
            name: spec.options.model_dump(mode="json") for name, spec in fields.items()
        }
        digest = hashlib.sha256(
            canonical_json({"parameters": parameters, "options": dumped}).encode()
        ).hexdigest()
        title = parameters.get("title")
        description = parameters.get("description")
        return cls(
            id=form_id,
            path=path,
            version=digest[:12],
            title=title if isinstance(title, str) and title else form_id,
            description=description if isinstance(description, str) else None,
            parameters=parameters,
            options=options,
            fields=fields,
            required=required,
            sensitive_fields=frozenset(n for n, s in fields.items() if s.options.sensitive),
            messages=dict(options.messages),
            _validator=_validator(parameters),
            _field_validators={
                name: _validator({"properties": {name: properties[name]}}) for name in fields
            },
        )

    def gather_options(self) -> dict[str, Any]:
        """The gather_using_ai keys other than `parameters` that the form sets."""
        out = {}
        for key in GATHER_OPTION_KEYS:
            value = getattr(self.options, key)
            if value is not None:
                out[key] = copy.deepcopy(value)
        return out

    def sub_parameters(self, names: Iterable[str]) -> dict[str, Any]:
        """The parameters of a re-ask: only these fields, all of them required."""
        wanted = set(names)
        unknown = wanted - self.fields.keys()
        if unknown:
            raise KeyError(f"not fields of form {self.id!r}: {', '.join(sorted(unknown))}")
        ordered = [name for name in self.fields if name in wanted]
        sub = {k: copy.deepcopy(self.parameters[k]) for k in _SUB_ROOT_KEYS if k in self.parameters}
        sub["properties"] = {
            name: copy.deepcopy(self.parameters["properties"][name]) for name in ordered
        }
        sub["required"] = ordered
        return sub

    def validate(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        """Problems with a whole result, by field ("" for the form as a whole); {} if valid."""
        errors = list(self._validator.iter_errors(dict(data)))
        return field_errors(errors, list(self.fields))

    def validate_field(self, name: str, value: Any) -> list[str]:
        """Problems with one field's value; [] if valid."""
        errors = list(self._field_validators[name].iter_errors({name: value}))
        return field_errors(errors).get(name, [])

    def example_answers(self) -> dict[str, Any]:
        """A plausible answer per field: its first example, else its default or first choice."""
        answers: dict[str, Any] = {}
        for name, spec in self.fields.items():
            schema = spec.schema
            examples = schema.get("examples")
            if isinstance(examples, list) and examples:
                answers[name] = copy.deepcopy(examples[0])
            elif "default" in schema:
                answers[name] = copy.deepcopy(schema["default"])
            elif isinstance(schema.get("enum"), list) and schema["enum"]:
                answers[name] = copy.deepcopy(schema["enum"][0])
            elif "const" in schema:
                answers[name] = copy.deepcopy(schema["const"])
        return answers
