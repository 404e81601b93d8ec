"""The JSONL sink: one line per submission, appended and fsynced (concurrent ones together).

Crash-safe: at start it reads the ids already in the file, and a replayed delivery of a
submission that is already there writes nothing. A torn last line (a crash mid-write, never
acknowledged, so it will be delivered again) is cut off so the file stays valid JSONL.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson


def _record(line: bytes) -> str | None:
    """The submission_id of a complete JSONL record, else None."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("submission_id"), str):
        return doc["submission_id"]
    return None


class JsonlSink:
    """Appends each submission to a JSON Lines file, exactly once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: set[str] | None = None
        self._lock = asyncio.Lock()
        self._queued: list[tuple[str, bytes, asyncio.Future[None]]] = []

    def _load(self) -> set[str]:
        written: set[str] = set()
        if not self.path.exists():
            return written
        data = self.path.read_bytes()
        for line in data.splitlines():
            doc = _record(line)
            if doc is not None:
                written.add(doc)
        if data and not data.endswith(b"\n"):
            tail = data[data.rfind(b"\n") + 1 :]
            with self.path.open("r+b") as f:
                if _record(tail) is not None:
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")  # a whole record that only lost its newline
                else:
                    f.truncate(len(data) - len(tail))  # a torn write: cut it off
                f.flush()
                os.fsync(f.fileno())
        return written

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def start(self) -> None:
        self._written = await asyncio.to_thread(self._load)

    async def deliver(self, submission: dict[str, Any]) -> None:
        # deliveries that arrive while a write is under way wait for the lock together, and
        # the first of them to get it writes them all with one write and one fsync
        landed = asyncio.get_running_loop().create_future()
        self._queued.append((submission["submission_id"], orjson.dumps(submission), landed))
        async with self._lock:
            if not landed.done():
                await self._write_queued()
        await landed

    async def _write_queued(self) -> None:
        batch, self._queued = self._queued, []
        try:
            if self._written is None:
                self._written = await asyncio.to_thread(self._load)
            written = self._written
            fresh: dict[str, bytes] = {}
            for sid, line, _ in batch:
                if sid not in written:
                    fresh.setdefault(sid, line)
            if fresh:
                await asyncio.to_thread(self._append, b"\n".join(fresh.values()) + b"\n")
                written.update(fresh)
        except BaseException as exc:
            for _, _, landed in batch:
                if not landed.done():
                    landed.set_exception(exc if isinstance(exc, Exception) else OSError(str(exc)))
            if not isinstance(exc, Exception):
                raise
        else:
            for _, _, landed in batch:
                if not landed.done():
                    landed.set_result(None)


def from_config(*, name: str, options: dict[str, Any], base_dir: Path) -> JsonlSink:
    """`[[sinks]] type = "jsonl"`, option `path` (default results.jsonl)."""
    path = options.pop("path", "results.jsonl")
    if options:
        raise ValueError(f"unknown option(s) for jsonl: {', '.join(sorted(options))}")
    if not isinstance(path, str) or not path:
        raise ValueError("option 'path' must be a non-empty string")
    p = Path(path).expanduser()
    return JsonlSink(p if p.is_absolute() else base_dir / p)
