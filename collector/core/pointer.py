"""JSON pointers (RFC 6901): the one place a pointer token is escaped.

A token's `~` becomes `~0` and its `/` becomes `~1` (in that order, so `~1` in a name stays
itself). Every pointer the core shows (a form problem, a field in a submission, a Telnyx
parameter) is built here.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["child", "escape", "join"]


def escape(token: str | int) -> str:
    """One pointer token, escaped."""
    return str(token).replace("~", "~0").replace("/", "~1")


def child(base: str, token: str | int) -> str:
    """`base` extended by one token."""
    return f"{base}/{escape(token)}"


def join(tokens: Iterable[str | int]) -> str:
    """The pointer of a path of tokens from the root ("" for none)."""
    return "".join(f"/{escape(t)}" for t in tokens)
