"""Load and check every form of a forms directory, collecting every problem at once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as JsonSchemaError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from collector.core.forms.form import Form
from collector.core.forms.inline import Inliner, keyword_locations
from collector.core.forms.merge import UNEVALUATED
from collector.core.forms.options import OptionsCheck
from collector.core.forms.rules import rule_field_names, rule_requirements
from collector.core.forms.vocabulary import (
    KEYWORD,
    FieldOptions,
    did_you_mean,
    dtmf_problem,
)
from collector.core.pointer import escape, join
from collector.errors import FormsInvalid  # raised here; collector.core.forms exports it

FORM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DIALECTS = frozenset(
    {
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2020-12/schema#",
    }
)
_META = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)
_FIELD_POINTER = re.compile(r"^/properties/[^/]+$")
_MAX_MESSAGE = 240
JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


@dataclass(frozen=True)
class FormProblem:
    """One thing wrong with a form: `file: /json/pointer: message`."""

    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer or '/'}: {self.message}"


class FormRegistry(Mapping[str, Form]):
    """The loaded forms by id, sorted by id; read-only."""

    __slots__ = ("_forms",)

    def __init__(self, forms: Mapping[str, Form] | None = None) -> None:
        self._forms = dict(sorted((forms or {}).items()))

    def __getitem__(self, form_id: str) -> Form:
        return self._forms[form_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._forms)

    def __len__(self) -> int:
        return len(self._forms)

    def __repr__(self) -> str:
        return f"FormRegistry({list(self._forms)!r})"


def load_forms(forms_dir: Path) -> FormRegistry:
    """Every form of forms_dir; raises FormsInvalid listing every problem if any."""
    registry, problems = check_forms(forms_dir)
    if problems:
        raise FormsInvalid(problems)
    return registry


def check_forms(forms_dir: Path) -> tuple[FormRegistry, list[FormProblem]]:
    """The forms that passed, and every problem of every form and shared definition."""
    return _Check(Path(forms_dir)).run()


def _display(path: Path) -> str:
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _meta_message(error: JsonSchemaError) -> str:
    path = list(error.absolute_path)
    if (
        error.validator == "anyOf"
        and path
        and path[-1] == "type"
        and isinstance(error.instance, str)
    ):
        return f"unknown type '{error.instance}'{did_you_mean(error.instance, JSON_TYPES)}"
    return error.message


class _Check:
    """One run over a forms directory."""

    def __init__(self, forms_dir: Path) -> None:
        self.forms_dir = forms_dir
        self.problems: list[FormProblem] = []
        self.seen: set[FormProblem] = set()
        self.files: dict[str, str] = {}  # uri -> file as displayed
        self.resources: list[tuple[str, Resource[Any]]] = []
        self.broken: set[str] = set()

    def add(self, file: str, pointer: str, message: str) -> None:
        problem = FormProblem(file, pointer or "/", _shorten(message))
        if problem not in self.seen:
            self.seen.add(problem)
            self.problems.append(problem)

    def where(self, uri: str) -> str:
        if uri in self.files:
            return self.files[uri]
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return _display(Path(unquote(parts.path)))
        return uri

    def run(self) -> tuple[FormRegistry, list[FormProblem]]:
        shown = _display(self.forms_dir)
        if not self.forms_dir.is_dir():
            self.add(shown, "/", "forms directory does not exist")
            return FormRegistry(), self.problems
        paths = sorted(p for p in self.forms_dir.glob("*.json") if p.is_file())
        if not paths:
            self.add(shown, "/", "no forms (*.json) found")
            return FormRegistry(), self.problems
        defs_dir = self.forms_dir / "defs"
        for path in sorted(defs_dir.glob("*.json")) if defs_dir.is_dir() else []:
            self.load_def(path)
        for path in paths:
            self.files[_uri(path)] = _display(path)
        try:
            base = Registry().with_resources(self.resources).crawl()
        except Exception as exc:  # a definition referencing cannot even index
            self.add(_display(defs_dir), "/", f"cannot index shared definitions: {exc}")
            base = Registry()
        forms: dict[str, Form] = {}
        for path in paths:
            form = _FormCheck(self, path, base).run()
            if form is not None:
                if form.id in forms:
                    self.add(_display(path), "/", f"another form already has the id '{form.id}'")
                else:
                    forms[form.id] = form
        self.problems.sort(key=lambda p: p.file)
        return FormRegistry(forms), self.problems

    def read(self, path: Path) -> tuple[bool, Any]:
        """(ok, document), adding a problem when the file is not a JSON object."""
        file = _display(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.add(file, "/", f"cannot read the file: {exc}")
            return False, None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add(file, "/", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
            return False, None
        if not isinstance(document, dict):
            self.add(file, "/", f"must be a JSON object (a schema), not {type(document).__name__}")
            return False, None
        return True, document

    def schema_problems(self, file: str, document: dict[str, Any]) -> bool:
        """Add the meta-schema's and the dialect's problems; True when there were any."""
        found = False
        dialect = document.get("$schema")
        if dialect is not None and dialect not in DIALECTS:
            self.add(
                file,
                "/$schema",
                "only JSON Schema 2020-12 is supported "
                "(https://json-schema.org/draft/2020-12/schema)",
            )
            found = True
        errors = sorted(_META.iter_errors(document), key=lambda e: [str(p) for p in e.path])
        for error in errors:
            self.add(file, join(error.absolute_path), _meta_message(error))
            found = True
        return found

    def load_def(self, path: Path) -> None:
        file, uri = _display(path), _uri(path)
        self.files[uri] = file
        ok, document = self.read(path)
        if not ok or self.schema_problems(file, document):
            self.broken.add(uri)
            return
        for where in keyword_locations(document, KEYWORD):
            self.add(
                file,
                f"{where}/{KEYWORD}",
                "x-collector is not allowed in shared "
                "definitions: put it next to the $ref, on the form's property",
            )
        self.resources.append((uri, DRAFT202012.create_resource(document)))


class _FormCheck:
    """The checks of one form file."""

    def __init__(self, check: _Check, path: Path, base: Registry[Any]) -> None:
        self.check = check
        self.path = path
        self.base = base
        self.file = _display(path)
        self.uri = _uri(path)
        self.failed = False

    def add(self, pointer: str, message: str, file: str | None = None) -> None:
        self.failed = True
        self.check.add(file or self.file, pointer, message)

    def run(self) -> Form | None:
        form_id = self.path.stem
        if not FORM_ID.match(form_id):
            self.add("/", f"form id '{form_id}' (the file name) must match {FORM_ID.pattern}")
        ok, raw = self.check.read(self.path)
        if not ok:
            return None
        schema_broken = self.check.schema_problems(self.file, raw)
        self.failed = self.failed or schema_broken
        for where in keyword_locations(raw, KEYWORD):
            if where and not _FIELD_POINTER.match(where):
                self.add(
                    f"{where}/{KEYWORD}",
                    "x-collector is allowed only at the form's root "
                    "and on its top-level properties",
                )
        options, field_options = OptionsCheck(self.add).run(raw)
        if schema_broken:
            self.check_shape(raw, raw)
            return None
        inlined, parameters = self.inline(raw)
        self.check_shape(raw, parameters if parameters is not None else raw)
        if parameters is not None:
            self.check_dtmf(parameters, field_options, raw if not inlined else None)
        if self.failed or options is None or parameters is None:
            return None
        try:
            return Form.build(form_id, self.path, parameters, options, field_options)
        except Exception as exc:  # e.g. a pattern Python's re cannot compile
            self.add("/", f"cannot compile the schema: {exc}")
            return None

    # -- the schema -----------------------------------------------------------------

    def inline(self, raw: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """(fully inlined?, parameters); a failed $ref leaves its schema out of parameters."""
        try:
            resource = DRAFT202012.create_resource(raw)
            registry = self.base.with_resource(self.uri, resource)
            if isinstance(raw.get("$id"), str):
                registry = registry.with_resource(urljoin(self.uri, raw["$id"]), resource)
            registry = registry.crawl()
        except Exception as exc:
            self.add("/", f"cannot index the schema: {exc}")
            return False, None
        defs = _display(self.check.forms_dir / "defs")
        inliner = Inliner(
            registry,
            self.check.where,
            frozenset(self.check.broken),
            looked_up=f"this form and {defs}/*.json",
        )
        parameters = inliner.inline(raw, self.uri)
        for file, pointer, message in inliner.problems:
            self.add(pointer, message, file=file)
        if not isinstance(parameters, dict):
            self.add("/", "the form must be a schema object")
            return False, None
        return not inliner.problems, parameters

    def check_shape(self, raw: dict[str, Any], parameters: dict[str, Any]) -> None:
        """A root object with fields, and a non-empty `required` naming some of them."""
        if parameters.get("type") != "object":
            self.add("/type" if "type" in raw else "/", 'the form must be "type": "object"')
        properties = parameters.get("properties")
        if "properties" not in raw and not properties:
            self.add("/", 'the form has no fields: list them in "properties"')
        elif isinstance(properties, dict) and not properties:
            self.add("/properties", "the form has no fields")
        if not isinstance(properties, dict):
            properties = None  # the meta-schema says what is wrong
        for name, schema in (properties or {}).items():
            if isinstance(schema, bool):
                self.add(
                    f"/properties/{escape(name)}",
                    "a field must be a schema object (with a description for the voice AI)",
                )
        required = parameters.get("required")
        why = (
            "Telnyx ends the gather as soon as the required fields are in, so with none, "
            "after the first value"
        )
        if required is None:
            self.add("/", f'missing "required": list the fields to collect ({why})')
        elif isinstance(required, list) and not required:
            self.add("/required", f'"required" is empty: list the fields to collect ({why})')
        if properties is not None:
            for name, where in rule_field_names(parameters):
                if name not in properties:
                    self.add(
                        where,
                        f"a rule of the form names '{name}', which is not one of the form's "
                        f"properties{did_you_mean(name, properties)}",
                    )
            for name, rule, _ in rule_requirements(parameters):
                if name not in properties:
                    self.add(
                        rule,
                        f"'{name}' is not one of the form's properties"
                        f"{did_you_mean(name, properties)}",
                    )
        for key in sorted(UNEVALUATED & parameters.keys()):
            self.add(
                f"/{key}",
                f"{key} at the form's root is not supported (each gather asks a plain "
                'object of fields): list the fields in "properties" and use '
                '"additionalProperties" instead',
            )

    def check_dtmf(
        self,
        parameters: dict[str, Any],
        options: dict[str, FieldOptions],
        partial_of: dict[str, Any] | None = None,
    ) -> None:
        """Keypad fallbacks only on fields digits can fill (skipping $refs that failed)."""
        properties = parameters.get("properties")
        if not isinstance(properties, dict):
            return
        raw_properties = (partial_of or {}).get("properties") or {}
        for name, opts in options.items():
            if opts.dtmf is None or name not in properties:
                continue
            if partial_of is not None and any(keyword_locations(raw_properties.get(name), "$ref")):
                continue
            problem = dtmf_problem(properties[name])
            if problem:
                self.add(f"/properties/{escape(name)}/{KEYWORD}/dtmf", problem)
