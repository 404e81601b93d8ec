"""Containers bounded by bytes as well as by count, for every cache and buffer in memory.

A count alone does not bound memory: 150 live calls whose transcript holds a 900 KB line
are 150 entries and hundreds of megabytes. Each container here is given its limits as
named constants by its owner (collector.web.live, collector.web.masking,
collector.workers.engine) and reports the bytes it holds, which /metrics exposes
(`collector_memory_bytes{cache=...}`).

Sizes are estimates of the payload (string lengths, a fixed cost per container item), not
of the Python objects around it; `approx_bytes` walks at most `_WALK_BUDGET` nodes and
extrapolates from there, so sizing a pathological value (a list of 90,000 strings) stays
cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

__all__ = ["ByteLru", "approx_bytes", "session_bytes"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

_ITEM = 16  # a fixed cost per container item and per scalar
_WALK_BUDGET = 2_000


def approx_bytes(value: Any, budget: int = _WALK_BUDGET) -> int:
    """About how many bytes `value` holds (strings by length, containers by their items).

    At most `budget` nodes are visited; the rest of a long list or mapping is estimated
    from the average of the items seen."""
    remaining = [budget]

    def walk(v: Any) -> int:
        remaining[0] -= 1
        if isinstance(v, str | bytes | bytearray):
            return _ITEM + len(v)
        if isinstance(v, Mapping):
            items: Any = v.items()
            n = len(v)
            pair = True
        elif isinstance(v, list | tuple | set | frozenset):
            items = v
            n = len(v)
            pair = False
        else:
            return _ITEM
        total = _ITEM
        seen = 0
        for item in items:
            if remaining[0] <= 0:
                break
            total += walk(item[0]) + walk(item[1]) if pair else walk(item)
            seen += 1
        if seen < n:
            per_item = (total - _ITEM) / seen if seen else _ITEM
            total += int(per_item * (n - seen))
        return total

    return walk(value)


class ByteLru(Generic[K, V]):
    """A least-recently-used mapping bounded by `max_items` and by `max_bytes`.

    Every entry is put with its size; the oldest entries go first once either limit is
    passed. An entry larger than `max_bytes` on its own is not kept at all."""

    def __init__(self, max_bytes: int, max_items: int) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.bytes = 0
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        entry = self._data.get(key)
        if entry is None:
            return default
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        self.pop(key)
        if size > self.max_bytes:
            return
        self._data[key] = (value, size)
        self.bytes += size
        while self._data and (len(self._data) > self.max_items or self.bytes > self.max_bytes):
            _, (_, dropped) = self._data.popitem(last=False)
            self.bytes -= dropped

    @overload
    def pop(self, key: K) -> V | None: ...
    @overload
    def pop(self, key: K, default: D) -> V | D: ...
    def pop(self, key: K, default: object = None) -> object:
        entry = self._data.pop(key, None)
        if entry is None:
            return default
        self.bytes -= entry[1]
        return entry[0]

    def values(self) -> list[V]:
        return [value for value, _ in self._data.values()]

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0


def session_bytes(session: Any) -> int:
    """About how many bytes a Session holds: its transcript, values, ids and notes."""
    size = 1_024 + sum(64 + len(m.content) for m in session.transcript)
    size += sum(128 + approx_bytes(fs.value) for fs in session.fields.values())
    size += approx_bytes(session.partial) + 48 * len(session.event_ids)
    size += approx_bytes(session.notes, 200) + approx_bytes(session.conversation, 200)
    return size
