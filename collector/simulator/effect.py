"""What a command's effect is: the paced coroutine, its media kind, and body readers.

An `Effect` runs after a command's HTTP response (`network.Network.spawn`). Media effects
are marked with the kind they play, so gather_stop / ai_assistant_stop can find them. The
readers take a command body's optional fields leniently: a wrong type reads as the default.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

__all__ = ["Effect", "int_or", "mapping_or_empty", "media", "str_or"]

Effect = Callable[[], Coroutine[Any, Any, None]]


def media(kind: str) -> Callable[[Effect], Effect]:
    """Name what a queued effect plays, so gather_stop / ai_assistant_stop can find it."""

    def mark(effect: Effect) -> Effect:
        effect.kind = kind  # type: ignore[attr-defined]
        return effect

    return mark


def int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def str_or(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def mapping_or_empty(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
