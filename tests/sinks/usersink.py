"""A user's own sinks, as `python` sink targets name them (e.g. "sinks.usersink:FileSink")."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson

RECEIVED: list[dict[str, Any]] = []
NOT_CALLABLE = 42


class FileSink:
    """Writes each submission to `<directory>/<submission_id>.json`, atomically: idempotent."""

    def __init__(self, directory: str, prefix: str = "") -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started = True

    def _write(self, submission: dict[str, Any]) -> None:
        final = self.directory / f"{self.prefix}{submission['submission_id']}.json"
        tmp = final.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(submission))
        os.replace(tmp, final)

    async def deliver(self, submission: dict[str, Any]) -> None:
        await asyncio.to_thread(self._write, submission)

    async def close(self) -> None:
        self.closed = True


async def record(submission: dict[str, Any]) -> None:
    """An async function target: keeps what it receives, once per submission id."""
    if all(s["submission_id"] != submission["submission_id"] for s in RECEIVED):
        RECEIVED.append(submission)


def sync_function(submission: dict[str, Any]) -> None:
    """Not a valid target: a sink function must be async."""


class SyncDeliver:
    """Not a valid target: its deliver is not async."""

    def deliver(self, submission: dict[str, Any]) -> None:
        pass


class NoDeliver:
    """Not a valid target: it has no deliver at all."""


def factory(*, name: str, options: dict[str, Any], base_dir: Path) -> FileSink:
    """A sink factory as an installed package exposes it in the `collector.sinks` group."""
    directory = options.pop("directory", "plugin-out")
    if options:
        raise ValueError(f"unknown option(s) for fancy: {', '.join(sorted(options))}")
    return FileSink(str(base_dir / directory), prefix=f"{name}-")
