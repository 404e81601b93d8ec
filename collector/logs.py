"""Logging with structlog: JSON lines when not on a terminal, readable console otherwise.

Nothing here logs field values: events carry ids, types, states and field *names* only,
so a sensitive value cannot reach a log line.

A line that cannot be written (stderr on a full disk, a closed pipe, a closed descriptor)
is dropped and counted (`dropped_lines()`, on /metrics as
`collector_log_lines_dropped_total`), never raised into the code that logged it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, TextIO

import structlog

_dropped = 0
_dropped_lock = threading.Lock()


def dropped_lines() -> int:
    """Log lines this process could not write, since it started."""
    return _dropped


def _drop() -> None:
    global _dropped
    with _dropped_lock:
        _dropped += 1


class LineWriter:
    """structlog's logger: one whole line per call to a stream, or none (counted)."""

    def __init__(self, file: TextIO | None) -> None:
        self._file = file
        self._lock = threading.Lock()
        self._torn = False  # a write stopped part-way: the next line starts a new one
        try:
            self._raw = file is not None and file.fileno() >= 0
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
            self._raw = False  # a stream without a descriptor (a test's capture)

    def msg(self, message: str) -> None:
        line = message + "\n"
        try:
            with self._lock:
                if self._file is None:
                    raise ValueError("no stderr")  # the process started with it closed
                if self._raw:
                    # straight to the stream's descriptor (asked each time: a closed
                    # stream raises, its old number is never reused), so a failed write
                    # leaves nothing buffered to come out later as a fragment
                    fd = self._file.fileno()
                    data = line.encode("utf-8", "backslashreplace")
                    if self._torn:
                        data = b"\n" + data
                    while data:
                        data = data[os.write(fd, data) :]
                        self._torn = bool(data)  # until the rest is written too
                else:
                    self._file.write(line)
                    self._file.flush()
        except (OSError, ValueError):  # ENOSPC, EPIPE, EBADF; ValueError: a closed file
            _drop()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class LineWriterFactory:
    """Hands out one `LineWriter` for the stream (one lock, so lines never interleave)."""

    def __init__(self, file: TextIO | None) -> None:
        self._writer = LineWriter(file)

    def __call__(self, *args: Any) -> LineWriter:
        return self._writer


def configure(fmt: str | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once; `fmt` is "json", "console" or None (decide by TTY)."""
    tty = sys.stderr is not None and sys.stderr.isatty()
    if fmt is None:
        fmt = "console" if tty else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=tty)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=LineWriterFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
