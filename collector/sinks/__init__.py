"""Sinks: where finished submissions go. A sink is anything with `async deliver(submission)`.

Built-in types are named in BUILTIN_SINKS and imported late; code can add its own with
`register_sink("crm", factory)` or the `@sink("crm")` decorator. A factory is called as
`factory(name=..., options=..., base_dir=...)` and returns the sink, or raises ValueError
with a message naming the bad option.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from collector.core.session.submission import Submission as Submission  # its shape
from collector.errors import DeliveryError as DeliveryError  # raised by sinks, from here


@runtime_checkable
class Sink(Protocol):
    """**Protocol:** receives each submission; must be safe to call twice with the same one.

    `deliver` raises on failure: `DeliveryError(retryable=False)` to give up at once,
    any other exception to be retried with backoff. Optional `async start()` and
    `async close()` are called at server start and stop. The submission is a plain dict
    shaped as `Submission` (a sink may annotate it so, or as `Mapping[str, Any]`).
    """

    async def deliver(self, submission: Submission) -> None: ...


SinkFactory = Callable[..., Sink]

BUILTIN_SINKS: dict[str, str] = {
    "jsonl": "collector.sinks.jsonl:from_config",
    "sqlite": "collector.sinks.sqlite:from_config",
    "postgres": "collector.sinks.postgres:from_config",
    "webhook": "collector.sinks.webhook:from_config",
    "python": "collector.sinks.python:from_config",
}
_REGISTERED: dict[str, SinkFactory] = {}


def register_sink(type_name: str, factory: SinkFactory) -> None:
    """Make `type = "<type_name>"` usable in `[[sinks]]`."""
    _REGISTERED[type_name] = factory


def sink(type_name: str) -> Callable[[SinkFactory], SinkFactory]:
    """Decorator form of register_sink."""

    def wrap(factory: SinkFactory) -> SinkFactory:
        register_sink(type_name, factory)
        return factory

    return wrap


def factory_for(type_name: str) -> SinkFactory | None:
    if type_name in _REGISTERED:
        return _REGISTERED[type_name]
    target = BUILTIN_SINKS.get(type_name)
    if target is not None:
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    # Installed packages name their own types in the entry-point group `collector.sinks`.
    for entry_point in importlib.metadata.entry_points(group="collector.sinks", name=type_name):
        try:
            return entry_point.load()  # type: ignore[no-any-return]
        except Exception as exc:  # a broken plugin is a start-up problem, reported in one line
            problem = (
                f"could not load entry point {entry_point.name} = {entry_point.value}"
                f" (group collector.sinks): {type(exc).__name__}: {exc}"
            )

            def broken(*_: Any, _problem: str = problem, **__: Any) -> Sink:
                raise ValueError(_problem)

            return broken
    return None


@dataclass(slots=True)
class ConfiguredSink:
    """A sink with its configured name and status filter."""

    name: str
    type: str
    sink: Sink
    statuses: frozenset[str] | None = None

    def wants(self, status: str) -> bool:
        return self.statuses is None or status in self.statuses

    async def start(self) -> None:
        start = getattr(self.sink, "start", None)
        if start is not None:
            await start()

    async def close(self) -> None:
        close = getattr(self.sink, "close", None)
        if close is not None:
            await close()


def build_sinks(
    configs: list[Any], base_dir: Path, source: str = "collector.toml"
) -> tuple[dict[str, ConfiguredSink], list[str]]:
    """Build every configured sink; problems come back one line each, naming the sink."""
    sinks: dict[str, ConfiguredSink] = {}
    problems: list[str] = []
    for i, cfg in enumerate(configs):
        name = cfg.sink_name
        factory = factory_for(cfg.type)
        if factory is None:
            plugins = {ep.name for ep in importlib.metadata.entry_points(group="collector.sinks")}
            known = sorted(set(BUILTIN_SINKS) | set(_REGISTERED) | plugins)
            problems.append(
                f"{source}: /sinks/{i}/type: sink {name!r}: unknown sink type {cfg.type!r}"
                f" (known: {', '.join(known)})"
            )
            continue
        try:
            built = factory(name=name, options=dict(cfg.options), base_dir=base_dir)
        except (ValueError, TypeError, ImportError) as exc:
            problems.append(f"{source}: /sinks/{i}: sink {name!r}: {exc}")
            continue
        statuses = frozenset(cfg.statuses) if cfg.statuses is not None else None
        sinks[name] = ConfiguredSink(name=name, type=cfg.type, sink=built, statuses=statuses)
    return sinks, problems


def sinks_for(
    sinks: Mapping[str, ConfiguredSink], form_sinks: list[str] | None, status: str
) -> list[str]:
    """The sinks one submission goes to: the form's selection, filtered by status."""
    names = form_sinks if form_sinks else list(sinks)
    return [n for n in names if n in sinks and sinks[n].wants(status)]
