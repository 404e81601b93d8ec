"""The python sink: your own code as a sink, named `target = "package.module:attr"`.

The target is either a class, built with the sink's other options as keyword arguments
and having `async deliver(submission)` (and, if it likes, `async start()` and
`async close()`), or an async function `async def f(submission)`. The import is resolved
when the configuration is read, so a typo stops start-up with a clear message. The module
is looked up on the usual import path, then in the folder of collector.toml (for that
import only: sys.path is as before once it is done).

Like every sink, yours must be safe to call twice with the same submission: the outbox
redelivers after a crash. Use `submission["submission_id"]` as the idempotency key.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from collector.sinks import Submission

AsyncDeliver = Callable[[Submission], Awaitable[Any]]


def _is_async(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an instance with async __call__
    return not inspect.isfunction(fn) and call is not None and inspect.iscoroutinefunction(call)


class FunctionSink:
    """Wraps an async function `f(submission)` as a sink."""

    def __init__(self, fn: AsyncDeliver, target: str = "") -> None:
        self.fn = fn
        self.target = target

    async def deliver(self, submission: Submission) -> None:
        await self.fn(submission)

    def __repr__(self) -> str:
        return f"FunctionSink({self.target or self.fn!r})"


def _import(module_name: str, base_dir: Path | None) -> Any:
    """Import `module_name`, with `base_dir` searched after the rest of sys.path meanwhile."""
    folder = str(base_dir) if base_dir is not None else None
    if folder is None or folder in sys.path:
        return importlib.import_module(module_name)
    sys.path.append(folder)
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(folder)


def import_target(target: Any, base_dir: Path | None = None) -> Any:
    """The object named by "package.module:attr" (attr may be dotted), or ValueError; the
    module may also sit in `base_dir` (the config's folder)."""
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"option 'target' must look like 'package.module:attr', got {target!r}")
    module_name, _, attrs = target.partition(":")
    if not module_name or not attrs:
        raise ValueError(f"option 'target' must look like 'package.module:attr', got {target!r}")
    try:
        module = _import(module_name, base_dir)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise ValueError(
                f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        raise ValueError(f"could not import module {module_name!r}") from None
    except Exception as exc:  # the user's module raised while importing
        raise ValueError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    parts = attrs.split(".")
    for i, attr in enumerate(parts):
        if not hasattr(obj, attr):
            if i == 0:
                raise ValueError(f"module {module_name!r} has no attribute {attr!r}")
            raise ValueError(f"{module_name}:{'.'.join(parts[:i])} has no attribute {attr!r}")
        obj = getattr(obj, attr)
    return obj


def build(target: str, options: dict[str, Any], base_dir: Path | None = None) -> Any:
    """The sink for `target`, given the sink's remaining options."""
    obj = import_target(target, base_dir)
    if inspect.isclass(obj):
        deliver = getattr(obj, "deliver", None)
        if deliver is None or not inspect.iscoroutinefunction(deliver):
            raise ValueError(
                f"{target} is a class without an 'async def deliver(self, submission)' method"
            )
        for hook in ("start", "close"):
            method = getattr(obj, hook, None)
            if method is not None and not inspect.iscoroutinefunction(method):
                raise ValueError(f"{target}.{hook} must be 'async def {hook}(self)'")
        try:
            return obj(**options)
        except (TypeError, ValueError) as exc:
            given = ", ".join(sorted(options)) or "no options"
            raise ValueError(f"could not create {target} with {given}: {exc}") from exc
        except Exception as exc:  # the user's constructor failed: a start-up problem, one line
            raise ValueError(f"creating {target} failed: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise ValueError(
            f"{target} is not callable (it is of type {type(obj).__name__}); expected a class"
            " with 'async deliver(submission)' or an async function"
        )
    if not _is_async(obj):
        raise ValueError(f"{target} is not an async function: define it 'async def f(submission)'")
    if options:
        raise ValueError(
            f"unknown option(s) for python: {', '.join(sorted(options))}"
            f" ({target} is a function, which takes no options; use a class for options)"
        )
    return FunctionSink(obj, target)


def from_config(*, name: str, options: dict[str, Any], base_dir: Path) -> Any:
    """`[[sinks]] type = "python"`: `target` (required); other options go to a class target."""
    if "target" not in options:
        raise ValueError("missing required option 'target' (like 'package.module:attr')")
    target = options.pop("target")
    return build(target, options, base_dir)
