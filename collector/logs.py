"""Logging with structlog: JSON lines when not on a terminal, readable console otherwise.

Nothing here logs field values: events carry ids, types, states and field *names* only,
so a sensitive value cannot reach a log line.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(fmt: str | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once; `fmt` is "json", "console" or None (decide by TTY)."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
