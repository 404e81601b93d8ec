"""HTML for the dashboard, from the same masked views the API serves.

Pages are `templates/*.html` filled with `string.Template`; the parts that change live
(the calls table, the call panels) are built here so the server renders them both for the
first page load and for the fragments the page's script fetches when an event arrives.
Every value goes through `html.escape`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode

from collector.web.presentation import STATES

TEMPLATES = Path(__file__).resolve().parent / "templates"

STATE_LABELS = {
    "initiated": "ringing",
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
LIVE_STATES = frozenset({"initiated", "answered", "gathering", "keypad", "confirming", "closing"})
FIELD_STATUS = {
    "valid": "valid",
    "hearing": "hearing…",
    "invalid": "invalid",
    "asking": "asking",
    "waiting": "waiting",
    "missing": "missing",
    "skipped": "not given",
}


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


@cache
def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def page(name: str, **values: str) -> str:
    return template(name).substitute(values)


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


def rel_time(iso: str | None) -> str:
    if not iso:
        return "—"
    return f'<time datetime="{e(iso)}" data-relative title="{e(iso)}">{e(ago(iso))}</time>'


def badge(state: str) -> str:
    live = ' <span class="pulse" aria-hidden="true"></span>' if state in LIVE_STATES else ""
    return f'<span class="badge state-{e(state)}">{e(STATE_LABELS.get(state, state))}{live}</span>'


def chip(kind: str, text: str) -> str:
    return f'<span class="chip chip-{e(kind)}">{e(text)}</span>'


def shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# -- the calls list ------------------------------------------------------------------------


def calls_table(
    sessions: list[dict[str, Any]],
    next_cursor: str | None,
    filters: dict[str, str],
) -> str:
    if not sessions:
        empty = "No calls match these filters." if any(filters.values()) else "No calls yet."
        hint = (
            " Place a simulated call above, or ring one of your numbers."
            if not any(filters.values())
            else ""
        )
        return f'<div class="empty"><p>{e(empty)}{e(hint)}</p></div>'
    rows = []
    for s in sessions:
        call = s["call"]
        filled, total = s["fields_filled"], s["fields_total"]
        who = call["from"] or "unknown"
        direction = "→" if call["direction"] == "incoming" else "←"
        rows.append(
            f'<tr data-key="{e(s["id"])}" data-sig="{e(s["state"])}:{filled}">'
            f"<td>{badge(s['state'])}</td>"
            f'<td><a class="rowlink" href="/calls/{e(s["id"])}">'
            f"{e(s['form'] or '(no form)')}</a></td>"
            f'<td class="mono">{e(who)} <span class="muted">{direction} {e(call["to"])}</span></td>'
            f'<td><meter min="0" max="{max(total, 1)}" value="{filled}"></meter>'
            f' <span class="count">{filled}/{total}</span></td>'
            f"<td>{rel_time(s['started_at'])}</td>"
            f"<td>{rel_time(s['updated_at'])}</td>"
            "</tr>"
        )
    pager = ""
    if next_cursor:
        query = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": next_cursor})
        pager = f'<nav class="pager"><a href="/?{e(query)}">Older calls →</a></nav>'
    return (
        '<table class="calls"><thead><tr><th>State</th><th>Form</th><th>Caller</th>'
        "<th>Fields</th><th>Started</th><th>Last update</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{pager}"
    )


def filter_bar(filters: dict[str, str], form_ids: list[str]) -> str:
    def options(values: list[str], current: str, everything: str) -> str:
        out = [f'<option value="">{e(everything)}</option>']
        for v in values:
            sel = " selected" if v == current else ""
            out.append(f'<option value="{e(v)}"{sel}>{e(v)}</option>')
        return "".join(out)

    return (
        '<form class="filters" method="get" action="/">'
        f'<label>State <select name="state">'
        f"{options(list(STATES), filters.get('state', ''), 'any')}</select></label>"
        f'<label>Form <select name="form">'
        f"{options(form_ids, filters.get('form', ''), 'any')}</select></label>"
        '<button type="submit" class="secondary">Filter</button>'
        "</form>"
    )


def simulate_card(forms: list[dict[str, Any]]) -> str:
    opts = "".join(
        f'<option value="{e(f["id"])}">{e(f["title"])} ({e(f["id"])})</option>' for f in forms
    )
    return (
        '<section class="card simulate" aria-labelledby="simulate-title">'
        '<h2 id="simulate-title">Simulate a call</h2>'
        '<p class="muted">Sandbox mode: a scripted caller rings the server through the'
        " built-in Telnyx simulator. Without answers it gives each field's example.</p>"
        '<form id="simulate-form" autocomplete="off">'
        f'<label>Form <select name="form" id="simulate-form-id">{opts}</select></label>'
        '<label class="grow"><span>Answers <span class="muted">(optional JSON)</span></span>'
        '<textarea name="answers" id="simulate-answers" rows="2" spellcheck="false"'
        ' placeholder=\'{"email": "maria@example.com"}\'></textarea></label>'
        '<button type="submit" id="simulate-button">Place a simulated call</button>'
        "</form>"
        '<p class="error" id="simulate-error" role="alert" hidden></p>'
        "</section>"
    )


# -- one call ------------------------------------------------------------------------------


def _field_row(name: str, f: dict[str, Any]) -> str:
    status = f["status"]
    if "partial" in f:
        value = f'<span class="partial">{e(shown(f["partial"]))}</span>'
    elif "value" in f:
        cls = "value" if f["valid"] else "value wrong"
        value = f'<span class="{cls}">{e(shown(f["value"]))}</span>'
    else:
        value = '<span class="muted">—</span>'
    tags = []
    if f["required"]:
        tags.append('<span class="tag">required</span>')
    if f["sensitive"]:
        tags.append('<span class="tag tag-private">sensitive</span>')
    meta = []
    if f.get("source"):
        meta.append(f"via {e(f['source'])}")
    attempts = f.get("attempts") or 0
    if attempts:
        limit = f.get("max_attempts")
        times = f"asked {attempts} time{'s' if attempts != 1 else ''}"
        meta.append(times + (f" of {limit}" if limit else ""))
    problems = "".join(f"<li>{e(p)}</li>" for p in f.get("problems") or [])
    history = f.get("errors") or []
    past = ""
    if history and (len(history) > len(f.get("problems") or []) or f["valid"]):
        past = (
            '<details class="history"><summary>'
            f"{len(history)} earlier problem{'s' if len(history) != 1 else ''}</summary><ul>"
            + "".join(f"<li>{e(p)}</li>" for p in history)
            + "</ul></details>"
        )
    sig = e(f"{status}:{f.get('partial', f.get('value', ''))}:{attempts}")
    return (
        f'<li class="field status-{e(status)}" data-key="field-{e(name)}" data-sig="{sig}">'
        '<div class="field-head">'
        f'<span class="field-title">{e(f["title"])}</span> {"".join(tags)}'
        f'<span class="spacer"></span>{chip(status, FIELD_STATUS.get(status, status))}'
        "</div>"
        f'<div class="field-value" data-field="{e(name)}">{value}</div>'
        + (f'<div class="field-meta muted">{" · ".join(meta)}</div>' if meta else "")
        + (f'<ul class="problems">{problems}</ul>' if problems else "")
        + past
        + "</li>"
    )


def _transcript(lines: list[dict[str, Any]], live: bool) -> str:
    if not lines:
        note = "Waiting for the conversation…" if live else "No conversation was recorded."
        return f'<p class="muted empty-line">{e(note)}</p>'
    out = []
    attempt = None
    for i, line in enumerate(lines):
        if line.get("attempt") != attempt:
            attempt = line.get("attempt")
            label = "First ask" if attempt == 1 else f"Attempt {attempt} · re-ask"
            if attempt:
                out.append(f'<li class="divider"><span>{e(label)}</span></li>')
        role = line["role"]
        who = {"assistant": "AI", "user": "Caller"}.get(role, role)
        masked = " masked" if line["content"].startswith("•••") else ""
        out.append(
            f'<li class="msg msg-{e(role)}{masked}" data-key="line-{i}"'
            f' data-sig="{e(hash(line["content"]))}">'
            f'<span class="who">{e(who)}</span><p>{e(line["content"])}</p></li>'
        )
    return f'<ol class="transcript">{"".join(out)}</ol>'


def _deliveries(view: dict[str, Any]) -> str:
    sub = view.get("submission")
    if sub is None:
        if view["terminal"]:
            return '<p class="muted">No submission was built.</p>'
        return '<p class="muted">The submission is built when the call finishes.</p>'
    rows = []
    for d in view["deliveries"]:
        err = f'<span class="error-text">{e(d["last_error"])}</span>' if d["last_error"] else "—"
        rows.append(
            f'<tr data-key="sink-{e(d["sink"])}" data-sig="{e(d["state"])}:{d["attempts"]}">'
            f'<td class="mono">{e(d["sink"])}</td>'
            f'<td><span class="badge delivery-{e(d["state"])}">{e(d["state"])}</span></td>'
            f"<td>{d['attempts']}</td><td>{err}</td><td>{rel_time(d['delivered_at'])}</td></tr>"
        )
    table = (
        '<table class="deliveries"><thead><tr><th>Sink</th><th>State</th><th>Attempts</th>'
        f"<th>Last error</th><th>Delivered</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No sink takes this submission.</p>'
    )
    errors = "".join(
        f"<li><code>{e(x.get('pointer'))}</code> {e(x.get('message'))}</li>" for x in sub["errors"]
    )
    return (
        f'<p class="sub-status">Submission {badge(sub["status"])} '
        f'<span class="mono muted">{e(sub["submission_id"])}</span></p>'
        + (f'<ul class="problems">{errors}</ul>' if errors else "")
        + table
    )


def call_panels(view: dict[str, Any]) -> str:
    """Everything below the page title of /calls/{id}; re-fetched on every live event."""
    call = view["call"]
    live = not view["terminal"]
    gather = view.get("gather")
    if gather:
        kinds = {"ai": "AI gather", "keypad": "Keypad", "confirm": "Read-back", "choose": "Choice"}
        asking = ", ".join(view["fields"].get(n, {}).get("title", n) for n in gather["fields"])
        now = (
            f'<p class="now"><span class="pulse" aria-hidden="true"></span>'
            f"{e(kinds.get(gather['kind'], gather['kind']))} #{gather['attempt']}"
            + (f" asking for {e(asking)}" if asking else "")
            + "</p>"
        )
    elif live:
        now = f'<p class="now muted">{e(STATE_LABELS.get(view["state"], view["state"]))}…</p>'
    else:
        now = ""
    fields = "".join(_field_row(n, f) for n, f in view["fields"].items())
    errors = "".join(
        f"<li><code>{e(x.get('pointer'))}</code> {e(x.get('message'))}</li>"
        for x in view.get("errors") or []
    )
    notes = "".join(
        f'<li><span class="mono">{e(n.get("kind"))}</span>'
        f" {e(n.get('reason') or n.get('detail') or '')}"
        f' <span class="muted">{rel_time(n.get("at"))}</span></li>'
        for n in view["notes"]
    )
    cancel = (
        '<button type="button" class="danger" id="cancel-button"'
        f' data-cancel-url="/api/sessions/{e(view["id"])}/cancel">'
        "Cancel this call</button>"
        if live
        else ""
    )
    header = (
        '<header class="call-head">'
        f"<div><h1>{e(view.get('form_title') or view['form'] or 'Call')}</h1>"
        f'<p class="muted mono">{e(call["from"] or "unknown")} → {e(call["to"])}'
        f" · {e(call['direction'])} · started {rel_time(view['started_at'])}"
        f" · <span data-duration>{e(duration(view['started_at'], view['ended_at']))}</span>"
        "</p></div>"
        f'<div class="head-side">{badge(view["state"])}'
        f'<span class="count big">{view["fields_filled"]}/{view["fields_total"]} fields</span>'
        "</div>"
        "</header>"
    )
    left = (
        '<section class="card"><h2>Fields</h2>'
        f"{now}"
        f'<ul class="fields">{fields or "<li class=muted>This form has no fields.</li>"}</ul>'
        + (f'<h3>Validation errors</h3><ul class="problems">{errors}</ul>' if errors else "")
        + "</section>"
        '<section class="card"><h2>Delivery</h2>'
        f"{_deliveries(view)}</section>"
    )
    details = [
        ("Session", f'<span class="mono">{e(view["id"])}</span>'),
        ("Call control id", f'<span class="mono small">{e(call["call_control_id"])}</span>'),
        (
            "Form",
            f"{e(view['form'])}"
            f' <span class="muted mono">{e(view.get("form_version") or "")}</span>',
        ),
        ("AI gathers", e(view["attempts"])),
        (
            "Call",
            "connected"
            if call.get("alive")
            else "hung up" + (f" ({e(call['hangup_cause'])})" if call.get("hangup_cause") else ""),
        ),
        ("Last update", rel_time(view["updated_at"])),
    ]
    right = (
        '<section class="card"><h2>Transcript</h2>'
        f"{_transcript(view['transcript'], live)}</section>"
        '<section class="card"><h2>Call</h2><dl class="details">'
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in details)
        + "</dl>"
        + (f'<h3>Notes</h3><ul class="notes">{notes}</ul>' if notes else "")
        + f"{cancel}"
        '<p class="error" id="cancel-error" role="alert" hidden></p>'
        "</section>"
    )
    return (
        f'<div class="call" data-state="{e(view["state"])}"'
        f' data-terminal="{str(view["terminal"]).lower()}">{header}'
        f'<div class="columns"><div class="col">{left}</div><div class="col">{right}</div></div>'
        "</div>"
    )
