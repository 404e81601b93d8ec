"""Forms: JSON Schema files with an `x-collector` vocabulary, loaded, checked and compiled.

`load_forms(dir)` gives a `FormRegistry` of `Form`s or raises `FormsInvalid` listing
every `FormProblem`; `check_forms(dir)` returns both without raising.
"""

from __future__ import annotations

from collector.core.forms.form import FieldSpec, Form, ValueProblem
from collector.core.forms.loader import (
    FormProblem,
    FormRegistry,
    check_forms,
    load_forms,
)
from collector.core.forms.messages import DEFAULT_MESSAGES
from collector.core.forms.vocabulary import (
    AfterOptions,
    ConfirmOptions,
    DtmfOptions,
    FieldOptions,
    FormOptions,
)
from collector.errors import FormsInvalid

__all__ = [
    "DEFAULT_MESSAGES",
    "AfterOptions",
    "ConfirmOptions",
    "DtmfOptions",
    "FieldOptions",
    "FieldSpec",
    "Form",
    "FormOptions",
    "FormProblem",
    "FormRegistry",
    "FormsInvalid",
    "ValueProblem",
    "check_forms",
    "load_forms",
]
