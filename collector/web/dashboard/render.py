"""HTML for the dashboard: Jinja2 templates (templates/*.html) filled with the same masked
views the API serves, autoescaped.

The pages extend `base.html`. The parts that change live, the calls table
(`_calls_table.html`) and the call panels (`_call_panels.html`), are templates of their
own: a page includes them on its first load, and the fragment routes the page's script
fetches on every live event render the very same templates, so the two cannot drift.

In a template whose name starts with `_` (a fragment), a line break and the indentation
after it are not output: the markup is laid out to be read, and the HTML sent is one
line, as the page's script compares it. A space that matters is written on its line.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from jinja2.ext import Extension
from starlette.templating import Jinja2Templates

from collector.web.presentation import STATES

__all__ = ["templates"]

TEMPLATES = Path(__file__).resolve().parent / "templates"

STATE_LABELS = {
    "initiated": "ringing",
    "dialing": "dialing",
    "answered": "answered",
    "gathering": "gathering",
    "keypad": "keypad",
    "confirming": "confirming",
    "closing": "closing",
    "completed": "completed",
    "incomplete": "incomplete",
    "abandoned": "abandoned",
    "failed": "failed",
}
LIVE_STATES = frozenset(
    {"initiated", "dialing", "answered", "gathering", "keypad", "confirming", "closing"}
)
AMD_LABELS = {
    "human": "a person",
    "machine": "a machine",
    "not_sure": "not sure (the form went ahead)",
    "fax": "a fax machine",
}
# the sandbox's simulated callees (collector.simulator.script.CALLEES), as the form offers them
CALLEES = (
    ("person", "a person"),
    ("voicemail", "a voicemail box"),
    ("no_answer", "nobody (no answer)"),
    ("busy", "a busy line"),
    ("rejected", "a rejected call"),
)
FIELD_STATUS = {
    "valid": "valid",
    "hearing": "hearing…",
    "invalid": "invalid",
    "asking": "asking",
    "waiting": "waiting",
    "missing": "missing",
    "skipped": "not given",
}
GATHER_KINDS = {"ai": "AI gather", "keypad": "Keypad", "confirm": "Read-back", "choose": "Choice"}
_LAYOUT = re.compile(r"\n[ \t]*")


class _OneLine(Extension):
    """Fragments (`_*.html`): line breaks and the indentation after them are layout only."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is not None and Path(name).name.startswith("_"):
            return _LAYOUT.sub("", source)
        return source


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def ago(iso: str | None, now: float | None = None) -> str:
    ts = _ts(iso)
    if ts is None:
        return "—"
    seconds = max(0, int((now or time.time()) - ts))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(start: str | None, end: str | None, now: float | None = None) -> str:
    a = _ts(start)
    if a is None:
        return "—"
    b = _ts(end) or (now or time.time())
    seconds = max(0, int(b - a))
    return f"{seconds // 60}:{seconds % 60:02d}"


def shown(value: Any) -> str:
    """A field's value as text: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def field_sig(field: dict[str, Any]) -> str:
    """What the page's script compares to see that a field changed."""
    value = field.get("partial", field.get("value", ""))
    return f"{field['status']}:{value}:{field.get('attempts') or 0}"


def query(filters: dict[str, str], **extra: str) -> str:
    """The query string of the filters that are set, and `extra`."""
    return urlencode({**{k: v for k, v in filters.items() if v}, **extra})


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=[_OneLine],
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters.update(ago=ago, shown=shown, hash=hash)
    env.globals.update(
        STATES=STATES,
        STATE_LABELS=STATE_LABELS,
        LIVE_STATES=LIVE_STATES,
        FIELD_STATUS=FIELD_STATUS,
        GATHER_KINDS=GATHER_KINDS,
        AMD_LABELS=AMD_LABELS,
        CALLEES=CALLEES,
        duration=duration,
        field_sig=field_sig,
        query=query,
    )
    return env


templates = Jinja2Templates(env=_environment())
