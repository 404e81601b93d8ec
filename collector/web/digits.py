"""Integers from the outside world (a query, a header, a cookie): ASCII digits only.

`str.isdigit()` is true for "²" and "٣", and `int()` accepts "٣", " 7 ", "1_000" and "-1";
none of that is a number a client should send us. Every integer parsed from a request
goes through `ascii_int`, which takes exactly 1 to `max_digits` of 0-9 and nothing else.
"""

from __future__ import annotations

__all__ = ["ascii_int"]


def ascii_int(value: str | bytes | None, max_digits: int = 18) -> int | None:
    """The integer `value` spells in ASCII digits, or None (empty, too long, anything else)."""
    if value is None or not 0 < len(value) <= max_digits:
        return None
    # bytes.isdigit() is 0-9 only; str.isdigit() is any Unicode digit
    ok = value.isdigit() if isinstance(value, bytes) else value.isascii() and value.isdigit()
    return int(value) if ok else None
