"""The dashboard's templates: every value autoescaped, and a page's live parts the very
fragments the page's script re-fetches."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from collector.web.dashboard.render import templates
from tests.web.conftest import Server, sandbox_server

pytestmark = pytest.mark.anyio

HOSTILE = '<script>alert("x")</script>&\'"'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;&#34;"


def _view() -> dict:
    call = {
        "call_control_id": HOSTILE,
        "from": HOSTILE,
        "to": "+1",
        "direction": "incoming",
        "alive": False,
        "hangup_cause": HOSTILE,
    }
    field = {
        "title": HOSTILE,
        "required": True,
        "sensitive": False,
        "valid": False,
        "status": "invalid",
        "value": HOSTILE,
        "source": HOSTILE,
        "attempts": 2,
        "max_attempts": 3,
        "problems": [HOSTILE],
        "errors": [HOSTILE, HOSTILE],
    }
    return {
        "id": HOSTILE,
        "form": HOSTILE,
        "form_title": HOSTILE,
        "form_version": HOSTILE,
        "state": "gathering",
        "terminal": False,
        "call": call,
        "started_at": "2026-01-01T00:00:00Z",
        "updated_at": None,
        "ended_at": None,
        "attempts": 2,
        "fields_filled": 0,
        "fields_total": 1,
        "gather": {"kind": HOSTILE, "attempt": 2, "fields": [HOSTILE]},
        "fields": {HOSTILE: field},
        "errors": [{"pointer": HOSTILE, "message": HOSTILE}],
        "transcript": [{"role": HOSTILE, "content": HOSTILE, "attempt": 2}],
        "notes": [{"kind": HOSTILE, "reason": HOSTILE, "at": None}],
        "submission": {
            "status": "incomplete",
            "submission_id": HOSTILE,
            "errors": [{"pointer": HOSTILE, "message": HOSTILE}],
        },
        "deliveries": [
            {
                "sink": HOSTILE,
                "state": "pending",
                "attempts": 1,
                "last_error": HOSTILE,
                "delivered_at": None,
            }
        ],
    }


def test_every_value_in_the_call_panels_is_escaped() -> None:
    html = templates.get_template("_call_panels.html").render(view=_view())
    assert "<script>" not in html and 'alert("x")' not in html
    # every place a value shows: attributes and text alike
    assert html.count(ESCAPED) >= 20, html
    assert f'data-cancel-url="/api/sessions/{ESCAPED}/cancel"' in html
    assert "\n" not in html  # a fragment is one line


def test_autoescape_is_on_for_html_templates() -> None:
    env = templates.env
    assert env.autoescape("page.html") is True  # type: ignore[operator]
    rows = [
        {
            "id": HOSTILE,
            "form": HOSTILE,
            "state": "completed",
            "fields_filled": 1,
            "fields_total": 2,
            "started_at": None,
            "updated_at": None,
            "call": {"from": HOSTILE, "to": HOSTILE, "direction": "incoming"},
        }
    ]
    table = templates.get_template("_calls_table.html").render(
        sessions=rows, next_cursor=HOSTILE, filters={"state": "", "form": HOSTILE}
    )
    assert "<script>" not in table and ESCAPED in table
    assert 'href="/?form=%3Cscript%3E' in table  # the pager's query is URL-encoded, then escaped


def _untimed(html: str) -> str:
    """Relative times ("5 s ago") move between two requests."""
    return re.sub(r"<time ([^>]*)>[^<]*</time>", r"<time \1></time>", html)


async def test_a_page_holds_exactly_the_fragment_its_script_fetches(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path, pace=0.01) as server:
        sid = (await server.simulate("secret", {"account": "123456", "pin": "4321"}))["session_id"]
        await server.finished(sid)
        await _same(server, f"/calls/{sid}", f"/partials/calls/{sid}", "call-panels")
        await _same(server, "/", "/partials/calls", "calls")


async def _same(server: Server, page_path: str, fragment_path: str, container: str) -> None:
    # a finished call is still updated once or twice (the goodbye ends, the hangup lands):
    # compare a fragment fetched between two identical pages, so nothing moved between
    for _ in range(100):
        page = await server.client.get(page_path)
        fragment = await server.client.get(fragment_path)
        again = await server.client.get(page_path)
        if _untimed(again.text) == _untimed(page.text):
            break
        await asyncio.sleep(0.05)
    assert page.status_code == fragment.status_code == 200
    assert fragment.headers["content-security-policy"] == page.headers["content-security-policy"]
    match = re.search(
        rf'<div id="{container}" data-fragment="{re.escape(fragment_path)}" data-debounce="\d+">(.*)</div>\n',
        page.text,
    )
    assert match is not None, page.text
    assert _untimed(match.group(1)) == _untimed(fragment.text)
    assert "4321" not in page.text and "4321" not in fragment.text
