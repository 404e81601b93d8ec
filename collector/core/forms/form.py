"""A loaded form: its gather_using_ai parameters, options and compiled validators."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError as JsonSchemaError
from jsonschema.protocols import Validator

from collector.core.forms.choices import choices
from collector.core.forms.merge import combine
from collector.core.forms.messages import field_errors
from collector.core.forms.placeholders import names as placeholder_names
from collector.core.forms.rules import Rules, rule_requirements, unconditional
from collector.core.forms.vocabulary import (
    GATHER_OPTION_KEYS,
    VARIABLE_MESSAGES,
    VARIABLE_TEXTS,
    FieldOptions,
    FormOptions,
)
from collector.core.pointer import join

# Root keywords a re-ask's sub-schema keeps; the rest may speak of fields not asked.
_SUB_ROOT_KEYS = ("type", "title", "description", "additionalProperties")
# Options added after form_version existed: they count in it only when set, so that an
# upgrade leaves the version of a form that does not use them as it was.
_LATER_OPTIONS = ("voicemail",)


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


@functools.lru_cache(maxsize=1024)
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262 regexes, where \d, \w and \b are ASCII only;
    # Python's are Unicode (an Arabic-Indic zero is a \d), which would accept it in a time.
    return re.compile(pattern, re.ASCII)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield JsonSchemaError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _ecma_regex(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


# Draft 2020-12 with ECMA-262 (ASCII) character classes in `pattern` and
# `patternProperties` (jsonschema's `additionalProperties` still matches the names of
# patternProperties with Python's classes: only a key in non-ASCII digits differs).
# (types-jsonschema leaves extend() unannotated.)
FormValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties},
)


def _validator(schema: Any) -> Validator:
    return FormValidator(schema, format_checker=FORMAT_CHECKER)


def _plain(schema: dict[str, Any], names: list[str], required: list[str]) -> dict[str, Any]:
    """A plain object schema of these fields: what one gather asks, without root rules."""
    out = {k: copy.deepcopy(schema[k]) for k in _SUB_ROOT_KEYS if k in schema}
    out["properties"] = {name: copy.deepcopy(schema["properties"][name]) for name in names}
    out["required"] = [name for name in required if name in out["properties"]]
    return out


@dataclass(frozen=True, slots=True)
class ValueProblem:
    """What is wrong with a value given for a form (a prefill), by JSON pointer."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


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
        return join([self.name])

    def attempts_allowed(self, form: Form | None = None) -> int:
        """AI gathers that may ask for this field: its own max_attempts, else the form's."""
        if self.options.max_attempts is not None:
            return self.options.max_attempts
        return form.options.max_attempts if form is not None else self.form_max_attempts


@dataclass(frozen=True, slots=True, eq=False)
class Form:
    """A checked form. Build it with `Form.build`; treat every dict in it as read-only.

    `schema` is the whole form, inlined: the verdict. `parameters` is what the first
    gather_using_ai receives: a plain object schema of the fields asked first (every
    field but those only a rule requires), requiring the ones required unconditionally.
    """

    id: str
    path: Path
    version: str
    title: str
    description: str | None
    schema: dict[str, Any]
    parameters: dict[str, Any]
    options: FormOptions
    fields: dict[str, FieldSpec]
    required: tuple[str, ...]
    conditional: tuple[str, ...]
    sensitive_fields: frozenset[str]
    messages: dict[str, str]
    _validator: Validator = field(repr=False)
    _field_validators: dict[str, Validator] = field(repr=False)
    _rules: Rules = field(repr=False)

    @classmethod
    def build(
        cls,
        form_id: str,
        path: Path,
        schema: dict[str, Any],
        options: FormOptions,
        field_options: Mapping[str, FieldOptions],
    ) -> Form:
        """A Form from an inlined, checked schema and its x-collector options."""
        properties: dict[str, Any] = schema.get("properties", {})
        required = tuple(n for n in unconditional(schema) if n in properties)
        conditional = tuple(
            dict.fromkeys(
                name
                for name, _, under_condition in rule_requirements(schema)
                if under_condition and name in properties and name not in required
            )
        )
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
        for key in _LATER_OPTIONS:
            if dumped.get(key) is None:
                dumped.pop(key, None)
        dumped["fields"] = {
            name: spec.options.model_dump(mode="json") for name, spec in fields.items()
        }
        digest = hashlib.sha256(
            canonical_json({"parameters": schema, "options": dumped}).encode()
        ).hexdigest()
        title = schema.get("title")
        description = schema.get("description")
        first = [name for name in fields if name not in conditional]
        return cls(
            id=form_id,
            path=path,
            version=digest[:12],
            title=title if isinstance(title, str) and title else form_id,
            description=description if isinstance(description, str) else None,
            schema=schema,
            parameters=_plain(schema, first, list(required)),
            options=options,
            fields=fields,
            required=required,
            conditional=conditional,
            sensitive_fields=frozenset(n for n, s in fields.items() if s.options.sensitive),
            messages=dict(options.messages),
            _validator=_validator(schema),
            _field_validators={
                name: _validator({"properties": {name: properties[name]}}) for name in fields
            },
            _rules=Rules(schema, _validator),
        )

    @property
    def first_fields(self) -> list[str]:
        """The fields the first gather asks, in form order."""
        return list(self.parameters["properties"])

    def requirements(self, data: Mapping[str, Any]) -> dict[str, str]:
        """The fields required given these answers, each with the pointer of its rule."""
        return {
            name: rule
            for name, rule in self._rules.requirements(data).items()
            if name in self.fields
        }

    def gather_options(self) -> dict[str, Any]:
        """The gather_using_ai keys other than `parameters` that the form sets."""
        out = {}
        for key in GATHER_OPTION_KEYS:
            value = getattr(self.options, key)
            if value is not None:
                out[key] = copy.deepcopy(value)
        return out

    def sub_parameters(
        self, names: Iterable[str], given: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The parameters of a re-ask or follow-up: only these fields, all of them required.

        With `given` (the valid answers so far), each field's schema also carries what the
        rules holding for those answers add to it, so Telnyx hears the same bounds."""
        wanted = set(names)
        unknown = wanted - self.fields.keys()
        if unknown:
            raise KeyError(f"not fields of form {self.id!r}: {', '.join(sorted(unknown))}")
        ordered = [name for name in self.fields if name in wanted]
        plain = _plain(self.schema, ordered, ordered)
        if given is not None:
            extra = self._rules.bounds(given)
            for name in ordered:
                for schema in extra.get(name, ()):
                    plain["properties"][name] = combine(plain["properties"][name], schema)
        return plain

    def validate(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        """Problems with a whole result, by field ("" for the form as a whole); {} if valid."""
        errors = list(self._validator.iter_errors(dict(data)))
        return field_errors(errors, list(self.fields))

    def validate_field(self, name: str, value: Any) -> list[str]:
        """Problems with one field's value; [] if valid."""
        errors = list(self._field_validators[name].iter_errors({name: value}))
        return field_errors(errors).get(name, [])

    def spoken_texts(self) -> dict[str, str]:
        """The texts that may hold `{name}` placeholders, by option (messages by key)."""
        out = {key: getattr(self.options, key) for key in VARIABLE_TEXTS}
        out.update({key: self.messages.get(key) for key in VARIABLE_MESSAGES})
        return {key: text for key, text in out.items() if isinstance(text, str) and text}

    def placeholders(self) -> tuple[str, ...]:
        """Every `{name}` a call of this form needs a variable for, in order, each once."""
        found = (name for text in self.spoken_texts().values() for name in placeholder_names(text))
        return tuple(dict.fromkeys(found))

    def missing_variables(self, variables: Mapping[str, object]) -> list[str]:
        """The placeholders these variables leave without a value (None is no value)."""
        return [name for name in self.placeholders() if variables.get(name) is None]

    def check_prefill(self, prefill: Mapping[str, Any]) -> list[ValueProblem]:
        """What is wrong with values given in advance: fields the form lacks, values their
        field's schema refuses, values a rule of the form refuses given the others."""
        out: list[ValueProblem] = []
        good: dict[str, Any] = {}
        for name, value in prefill.items():
            where = join([name])
            if name not in self.fields:
                out.append(ValueProblem(where, "is not a field of this form"))
                continue
            problems = self.validate_field(name, value)
            out.extend(ValueProblem(where, p) for p in problems)
            if not problems:
                good[name] = value
        for name, problems in self.validate(good).items():
            if name in good:
                out.extend(ValueProblem(join([name]), p) for p in problems if p != "is required")
        return out

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
            elif fixed := choices(schema):
                answers[name] = copy.deepcopy(fixed[0][0])
        return answers
