"""The dashboard and outbound calls: the "Call a number" form beside "Simulate a call" (the
sandbox's callee picker; none without a way to dial), direction, outcome and who answered
in the list and on the call's page, escaped; and in a real browser, a call dialled from
the page to a voicemail box, followed live to its outcome."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.web.dashboard.render import templates
from tests.live_stack import live_stack
from tests.web.api.outbound import TO, VARIABLES, dial, outbound_server, over
from tests.web.dashboard.test_browser import ARGS, CHROMIUM, need_chromium
from tests.web.dashboard.test_render import ESCAPED, HOSTILE, _view

pytestmark = pytest.mark.anyio


def test_outbound_details_in_the_call_panels_are_escaped() -> None:
    view = _view()
    view.update(outcome=HOSTILE, amd=HOSTILE, resumed_from=HOSTILE)
    view["call"].update(direction="outgoing", machine_detection=HOSTILE)
    html = templates.get_template("_call_panels.html").render(view=view)
    assert "<script>" not in html and "\n" not in html
    assert html.count(ESCAPED) >= 24
    assert "<dt>Direction</dt><dd>outbound</dd>" in html
    assert f'href="/calls/{ESCAPED}"' in html


def test_the_calls_table_marks_outbound_calls_and_their_outcome() -> None:
    rows = [
        {
            "id": "s1",
            "form": "warranty",
            "state": "abandoned",
            "outcome": "no_answer",
            "fields_filled": 0,
            "fields_total": 3,
            "started_at": None,
            "updated_at": None,
            "call": {"from": "+13125550100", "to": HOSTILE, "direction": "outgoing"},
        },
        {
            "id": "s2",
            "form": "warranty",
            "state": "dialing",
            "fields_filled": 0,
            "fields_total": 3,
            "started_at": None,
            "updated_at": None,
            "call": {"from": "+13125550100", "to": "+13125550190", "direction": "outgoing"},
        },
    ]
    html = templates.get_template("_calls_table.html").render(
        sessions=rows, next_cursor=None, filters={"state": "", "form": ""}
    )
    assert '<span class="outcome">no answer</span>' in html
    assert html.count('<span class="tag">outbound</span>') == 2 and ESCAPED in html
    assert 'state-dialing">dialing <span class="pulse"' in html  # a live state


async def test_the_calls_page_offers_call_a_number_beside_simulate(tmp_path: Path) -> None:
    async with outbound_server(tmp_path) as server:
        page = (await server.client.get("/")).text
        assert 'id="simulate-form"' in page and 'id="dial-form"' in page
        picker = re.search(r'<select name="callee" id="dial-callee">(.*?)</select>', page, re.S)
        assert picker is not None
        assert re.findall(r'value="(\w+)"', picker.group(1)) == [
            "person",
            "voicemail",
            "no_answer",
            "busy",
            "rejected",
        ]
        sid = await dial(server, script={"callee": "busy"})
        await over(server, sid)
        listed = (await server.client.get("/partials/calls")).text
        assert '<span class="outcome">busy</span>' in listed
        panels = (await server.client.get(f"/partials/calls/{sid}")).text
        assert '<dt>Outcome</dt><dd><span class="outcome">busy</span></dd>' in panels
        assert "not detected" in panels and "(detection: detect)" in panels


async def test_a_live_server_offers_the_call_form_only_with_outbound_settings(
    tmp_path: Path,
) -> None:
    from collector.config import OutboundConfig

    async with live_stack(tmp_path, admin_token="t0ken-for-the-dashboard-test") as stack:
        page = (await stack.client.get(f"{stack.url}/")).text
        assert 'id="dial-form"' not in page and 'id="simulate-form"' not in page
        stack.runtime.settings.outbound = OutboundConfig(
            connection_id="c", from_number="+13125550111"
        )
        page = (await stack.client.get(f"{stack.url}/")).text
        assert 'id="dial-form"' in page and 'id="dial-callee"' not in page


async def test_in_a_browser_a_call_to_a_voicemail_box_ends_with_its_outcome(
    tmp_path: Path,
) -> None:
    need_chromium()
    from playwright.async_api import async_playwright

    async with outbound_server(tmp_path, pace=0.1) as server, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            await page.goto(f"{server.url}/login?token={server.token}")
            await page.wait_for_url(f"{server.url}/")
            await page.fill("#dial-to", "not a number")
            await page.click("#dial-button")  # the browser's own check: nothing sent
            assert await page.evaluate("document.getElementById('dial-to').validity.valid") is False
            await page.fill("#dial-to", TO)
            await page.select_option("#dial-form-id", "warranty")
            await page.fill("#dial-variables", '{"first_name": "Maria"}')
            await page.click("#dial-button")
            error = page.locator("#dial-error")
            await error.wait_for(state="visible")
            assert "{item}" in (await error.text_content() or "")
            problems.clear()  # the browser logs the 422
            await page.fill("#dial-variables", str(VARIABLES).replace("'", '"'))
            await page.select_option("#dial-callee", "voicemail")
            await page.click("#dial-button")
            await page.wait_for_url(re.compile(r"/calls/[0-9a-f-]+$"))
            await page.wait_for_selector('.call[data-state="abandoned"]', timeout=30_000)
            await page.wait_for_selector(".badge.delivery-delivered", timeout=15_000)
            details = await page.text_content("dl.details") or ""
            assert "outbound" in details and "voicemail" in details and "a machine" in details
            await page.screenshot(path=str(tmp_path / "call-voicemail.png"), full_page=True)
            await page.click("text=← All calls")
            row = page.locator("table.calls tbody tr").first
            text = await row.text_content() or ""
            assert "outbound" in text and "voicemail" in text
            await page.screenshot(path=str(tmp_path / "calls-outbound.png"), full_page=True)
            assert problems == [], problems
        finally:
            await browser.close()
