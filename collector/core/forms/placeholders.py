"""`{name}` placeholders in the texts a form speaks, filled from a session's variables.

A text is read as a `str.format` string (string.Formatter's parsing): `{name}` is a
placeholder, `{{` and `}}` are a literal brace. A placeholder must be a plain name: no
position (`{0}`), attribute, index, conversion or format spec. Filling never fails: a
placeholder without a value is left out, so a caller never hears a brace.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping

__all__ = ["names", "problem", "render"]

_FORMATTER = string.Formatter()

# (literal text, placeholder name or None), the literal with its braces unescaped
Parts = tuple[tuple[str, str | None], ...]


class _Malformed(ValueError):
    pass


@functools.lru_cache(maxsize=1024)
def _parts(text: str) -> Parts:
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError:
        raise _Malformed("has an unmatched brace (write {{ or }} for a brace itself)") from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if not name:
                raise _Malformed("has an empty placeholder {} (write {{ or }} for a brace)")
            if not name.isidentifier():
                raise _Malformed(f"has a placeholder {{{name}}} that is not a plain name")
            if spec or conversion:
                raise _Malformed(f"has a placeholder {{{name}}} with a format: write {{{name}}}")
        out.append((literal, name))
    return tuple(out)


def problem(text: str) -> str | None:
    """What is wrong with the placeholders of a text, or None."""
    try:
        _parts(text)
    except _Malformed as exc:
        return str(exc)
    return None


def names(text: str) -> tuple[str, ...]:
    """The placeholders of a text, in order, each once (none for a malformed text)."""
    try:
        parts = _parts(text)
    except _Malformed:
        return ()
    return tuple(dict.fromkeys(name for _, name in parts if name is not None))


def render(text: str, variables: Mapping[str, object]) -> str:
    """The text with each placeholder's value (missing ones left out) and `{{` as `{`.

    A malformed text (a form checked at load has none) is spoken without its braces."""
    try:
        parts = _parts(text)
    except _Malformed:
        return text.replace("{", "").replace("}", "")
    out = []
    for literal, name in parts:
        out.append(literal)
        if name is not None:
            value = variables.get(name)
            if value is not None:
                out.append(str(value))
    return "".join(out)
