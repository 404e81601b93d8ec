"""Newest-first pages with an opaque keyset cursor: one helper for every list.

A list is fetched one item past its `limit`; the page is the first `limit` items, and when
there is more, `next_cursor` is the position (time, key) of the page's last item as
unpadded url-safe base64 of a JSON pair. The next page starts strictly before it. A
`limit` is 1 to MAX_LIMIT in ASCII digits (collector.web.digits).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from collector.web.api.errors import ApiError
from collector.web.digits import ascii_int

__all__ = ["DEAD_EVENTS", "DEFAULT_LIMIT", "MAX_LIMIT", "SESSIONS", "Keyset", "parse_limit"]

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def parse_limit(value: str | None) -> int:
    """A page size from a query (DEFAULT_LIMIT when absent); 400 for anything else."""
    if value is None:
        return DEFAULT_LIMIT
    limit = ascii_int(value.strip(), max_digits=6)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400, "invalid_parameter", f"limit: expected an integer from 1 to {MAX_LIMIT}"
        )
    return limit


@dataclass(frozen=True)
class Keyset(Generic[T]):
    """How the items of one list are ordered: each item's (time, key), and which keys
    a cursor may hold."""

    position: Callable[[T], tuple[float, Any]]
    valid_key: Callable[[Any], bool]

    def encode(self, item: T) -> str:
        raw = orjson.dumps(list(self.position(item)))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, value: str) -> tuple[float, Any]:
        """The position a cursor holds; 400 for one this API did not give out."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            at, key = orjson.loads(raw)
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise ValueError("bad time")
            if not self.valid_key(key):
                raise ValueError("bad key")
            return float(at), key
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise ApiError(
                400,
                "invalid_cursor",
                "cursor: not a cursor this API gave out (use next_cursor as is)",
            ) from None

    async def page(
        self, fetch: Callable[[int], Awaitable[list[T]]], limit: int
    ) -> tuple[list[T], str | None]:
        """The first `limit` items `fetch(n)` gives and the cursor after them (None: no more)."""
        items = await fetch(limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return items, self.encode(items[-1]) if more and items else None


SESSIONS: Keyset[Any] = Keyset(
    position=lambda s: (s.started_at, s.id), valid_key=lambda key: isinstance(key, str)
)
DEAD_EVENTS: Keyset[Any] = Keyset(
    position=lambda row: (row.received_at, row.id),
    valid_key=lambda key: isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 2**63,
)
