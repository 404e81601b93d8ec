"""Masking sensitive values in what people see: field values and transcript lines.

A field with `x-collector.sensitive` shows as "•••" wherever its value would appear.
The transcript needs more care, because speech cannot be matched reliably:

* every line has the verbatim form of each sensitive value (case-insensitive), its spoken
  form (dates and times in words, digits spaced out) and any run of 4 or more digits that
  also appears in a sensitive value replaced by "•••";
* a `user` line that contains any of those is replaced as a whole by "••• (sensitive)";
* while a live call's current gather asks for a sensitive field whose value has not been
  heard yet, the user lines of that gather that contain a digit are replaced too (the
  caller may have said it before the AI reported it as a partial result).

When a session's form is missing (removed since the call), every field is treated as
sensitive: we cannot tell which ones were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collector.session.model import Session
from collector.session.wording import spoken

if TYPE_CHECKING:
    from collector.forms import Form

__all__ = ["MASK", "SENSITIVE_LINE", "Masker"]

MASK = "•••"
SENSITIVE_LINE = "••• (sensitive)"
_DIGIT_GROUP = re.compile(r"\d(?:[ .\-]?\d){3,}")  # 4+ digits, single separators allowed
_DIGIT = re.compile(r"\d")
_MIN_FORM_LENGTH = 2  # shorter strings would blank out ordinary words


def _scalars(value: Any) -> Iterable[Any]:
    """The scalar leaves of a value (an object-valued sensitive field has several)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    elif value is not None and not isinstance(value, bool):
        yield value


@dataclass(frozen=True, slots=True)
class Masker:
    """How to mask one session's values and text."""

    fields: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None  # verbatim and spoken forms of the values
    digits: tuple[str, ...] = ()  # the digits of each value with 4 or more of them
    pending_attempt: int | None = None  # a live gather still waits for a sensitive value

    @classmethod
    def for_session(cls, session: Session, form: Form | None) -> Masker:
        """The masker of a session: its form's sensitive fields and their known values."""
        if form is not None:
            names = frozenset(form.sensitive_fields)
            schemas = {n: spec.schema for n, spec in form.fields.items()}
        elif session.form is not None:
            names = frozenset(session.fields) | frozenset(session.partial)
            schemas = {}
        else:
            names = frozenset()
            schemas = {}
        if not names:
            return cls()
        values: list[tuple[str, Any]] = []
        for name in names:
            state = session.fields.get(name)
            if state is not None and state.has_value:
                values.append((name, state.value))
            if name in session.partial:
                values.append((name, session.partial[name]))
        pending: int | None = None
        gather = session.gather
        live_ai = gather is not None and gather.kind == "ai" and not session.terminal
        if live_ai and any(n in names and n not in session.partial for n in gather.fields):
            pending = gather.attempt
        return cls.build(names, values, schemas, pending)

    @classmethod
    def build(
        cls,
        fields: Iterable[str],
        values: Iterable[tuple[str, Any]],
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        pending_attempt: int | None = None,
    ) -> Masker:
        """A masker for these sensitive fields, whose values are these (name, value)."""
        forms: set[str] = set()
        digits: set[str] = set()
        for name, value in values:
            schema = dict((schemas or {}).get(name) or {})
            for leaf in _scalars(value):
                text = str(leaf).strip()
                candidates = {text, spoken(leaf, schema).strip()}
                only_digits = "".join(ch for ch in text if ch.isdigit())
                if len(only_digits) >= 4:
                    digits.add(only_digits)
                    candidates.add(" ".join(only_digits))
                forms.update(c.lower() for c in candidates if len(c) >= _MIN_FORM_LENGTH)
        pattern = None
        if forms:
            ordered = sorted(forms, key=lambda f: (-len(f), f))
            pattern = re.compile("|".join(re.escape(f) for f in ordered), re.IGNORECASE)
        return cls(
            fields=frozenset(fields),
            pattern=pattern,
            digits=tuple(sorted(digits)),
            pending_attempt=pending_attempt,
        )

    @property
    def active(self) -> bool:
        return bool(self.fields)

    # -- values -------------------------------------------------------------------------

    def value(self, name: str, value: Any) -> Any:
        """A field's value as shown."""
        return MASK if name in self.fields else value

    def values(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A field -> value mapping as shown."""
        return {k: self.value(k, v) for k, v in data.items()}

    # -- text ---------------------------------------------------------------------------

    def _digit_hit(self, group: str) -> bool:
        run = "".join(ch for ch in group if ch.isdigit())
        return any(run in d or d in run for d in self.digits)

    def text(self, text: str) -> str:
        """Free text with every sensitive value (and digit runs of one) replaced by •••."""
        if not self.active or not text:
            return text
        if self.pattern is not None:
            text = self.pattern.sub(MASK, text)
        if self.digits:
            text = _DIGIT_GROUP.sub(
                lambda m: MASK if self._digit_hit(m.group(0)) else m.group(0), text
            )
        return text

    def line(self, role: str, content: str, attempt: int = 0) -> str:
        """One transcript line as shown (see the module docstring for the rules)."""
        if not self.active:
            return content
        masked = self.text(content)
        if role != "user":
            return masked
        if masked != content:
            return SENSITIVE_LINE
        pending = self.pending_attempt is not None and attempt == self.pending_attempt
        if pending and _DIGIT.search(content):
            return SENSITIVE_LINE
        return content

    def deep(self, value: Any) -> Any:
        """Mask every string inside a JSON-like value."""
        if not self.active:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value


# -- forms ---------------------------------------------------------------------------------
