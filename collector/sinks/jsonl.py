"""The JSONL sink: one line per submission, appended, flushed and fsynced.

Crash-safe: at start it reads the ids already in the file, and a replayed delivery of a
submission that is already there writes nothing. A torn last line (a crash mid-write) is
completed with a newline so the next line starts clean.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson


class JsonlSink:
    """Appends each submission to a JSON Lines file, exactly once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: set[str] | None = None
        self._lock = asyncio.Lock()

    def _load(self) -> set[str]:
        written: set[str] = set()
        if not self.path.exists():
            return written
        with self.path.open("rb") as f:
            data = f.read()
        for line in data.splitlines():
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("submission_id"), str):
                written.add(doc["submission_id"])
        if data and not data.endswith(b"\n"):
            with self.path.open("ab") as f:
                f.write(b"\n")
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
        async with self._lock:
            if self._written is None:
                self._written = await asyncio.to_thread(self._load)
            sid = submission["submission_id"]
            if sid in self._written:
                return
            line = orjson.dumps(submission) + b"\n"
            await asyncio.to_thread(self._append, line)
            self._written.add(sid)


def from_config(*, name: str, options: dict[str, Any], base_dir: Path) -> JsonlSink:
    """`[[sinks]] type = "jsonl"`, option `path` (default results.jsonl)."""
    path = options.pop("path", "results.jsonl")
    if options:
        raise ValueError(f"unknown option(s) for jsonl: {', '.join(sorted(options))}")
    if not isinstance(path, str) or not path:
        raise ValueError("option 'path' must be a non-empty string")
    p = Path(path).expanduser()
    return JsonlSink(p if p.is_absolute() else base_dir / p)
