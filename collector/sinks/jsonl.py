"""The JSONL sink: one line per submission, appended and fsynced (concurrent ones together).

Whole writes or none: a group of records is written with every byte or not at all. Short
writes are continued; on any error (ENOSPC, EIO, a failed fsync) the file is truncated
back to where the group started, fsynced, and the error raised, so each delivery in the
group fails and the delivery worker retries it later. If even that truncation fails, the
file is re-read and repaired before the next write.

Crash-safe: at start it reads the ids already in the file, and a replayed delivery of a
submission that is already there writes nothing. Any line that is not whole JSON (a crash
mid-write, never acknowledged, so it will be delivered again; or a fragment an older
version left in the middle of the file) is moved to `<path>.torn`, so the file is all
whole lines again. A whole record run onto such a fragment is kept.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import orjson
import structlog

from collector.sinks import Submission

log = structlog.get_logger("collector.sinks.jsonl")


def _record(line: bytes) -> str | None:
    """The submission_id of a complete JSONL record, else None."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    found = doc.get("submission_id") if isinstance(doc, dict) else None
    return found if isinstance(found, str) else None


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _salvage(line: bytes) -> tuple[int, str] | None:
    """Where a whole record starts inside a torn line (one appended onto a fragment), and
    its submission_id; the earliest such start, so a record's own inner objects lose."""
    at = line.find(b"{", 1)
    while at != -1:
        sid = _record(line[at:])
        if sid is not None:
            return at, sid
        at = line.find(b"{", at + 1)
    return None


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of data to fd, continuing after short writes; raise if it cannot."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # no progress and no error: treat as a full device rather than spin
            raise OSError(errno.ENOSPC, f"write made no progress with {len(view)} bytes left")
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, mode: int, *, append: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlSink:
    """Appends each submission to a JSON Lines file, exactly once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn_path = path.with_name(path.name + ".torn")
        self._written: set[str] | None = None
        self._lock = asyncio.Lock()
        self._queued: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._dir_synced = False
        # set (in the writer thread) when a failed write could not be undone: the file may
        # end in a fragment, so it is re-read and repaired before anything else is written
        self._needs_repair = False

    # -- worker-thread side -------------------------------------------------------------

    def _load(self) -> set[str]:
        """The ids in the file, after moving every torn line out of it; fsyncs the file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return set()
        written: set[str] = set()
        kept: list[bytes] = []  # whole lines, without their newline
        torn: list[bytes] = []  # fragments, without a newline
        salvaged = 0
        lines = data.split(b"\n")
        last = lines.pop()  # b"" when the file ends with a newline
        for line in [*lines, last] if last else lines:
            sid = _record(line)
            if sid is not None or not line.strip() or _parses(line):
                # a record, or a blank or foreign JSON line: not ours to judge, kept as is
                if sid is not None:
                    written.add(sid)
                kept.append(line)
                continue
            found = _salvage(line)
            if found is None:
                torn.append(line)
                continue
            at, sid = found
            torn.append(line[:at])
            kept.append(line[at:])
            written.add(sid)
            salvaged += 1
        if not torn:
            with self.path.open("r+b") as f:
                if last:  # a whole record that only lost its newline
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")
                    f.flush()
                # what is counted as written must be on disk (a failed fsync, then a crash)
                os.fsync(f.fileno())
            return written
        mode = os.stat(self.path).st_mode & 0o777
        # the fragments go to the quarantine first, so a crash in between loses nothing
        _write_file(self.torn_path, b"".join(t + b"\n" for t in torn), mode, append=True)
        if len(torn) == 1 and last and not salvaged and torn[0] == last:
            # the usual crash: only the last line is torn; cut it off in place (no space needed)
            with self.path.open("r+b") as f:
                f.truncate(len(data) - len(last))
                os.fsync(f.fileno())
        else:
            repair = self.path.with_name(self.path.name + ".repair")
            _write_file(repair, b"".join(k + b"\n" for k in kept), mode, append=False)
            os.replace(repair, self.path)
        _fsync_dir(self.path.parent)
        log.warning(
            "jsonl_torn_lines_quarantined",
            path=str(self.path),
            quarantine=str(self.torn_path),
            torn_lines=len(torn),
            records_salvaged=salvaged,
            records_kept=len(written),
        )
        return written

    def _append(self, data: bytes) -> None:
        """Append data whole, or leave the file as it was and raise."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not self._dir_synced:  # the file's directory entry (it may be new), once,
                _fsync_dir(self.path.parent)  # before any record: a failure here wrote none
                self._dir_synced = True
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                write_all(fd, data)
                os.fsync(fd)
            except BaseException:
                self._undo(fd, start)
                raise
        finally:
            os.close(fd)

    def _undo(self, fd: int, start: int) -> None:
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
        except OSError as exc:
            self._needs_repair = True
            log.error("jsonl_undo_failed", path=str(self.path), offset=start, error=str(exc))

    # -- event-loop side ----------------------------------------------------------------

    async def start(self) -> None:
        self._written = await asyncio.to_thread(self._load)

    async def deliver(self, submission: Submission) -> None:
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
            if self._written is None or self._needs_repair:
                self._written = await asyncio.to_thread(self._load)
                self._needs_repair = False
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
