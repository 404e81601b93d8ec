"""The dashboard in a real browser (Debian's chromium through Playwright), against a real
sandbox-mode server: sign in, place a simulated call from the page, watch it fill in live."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.web.conftest import sandbox_server

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


async def test_sign_in_simulate_a_call_and_watch_it_fill_in(tmp_path: Path) -> None:
    need_chromium()
    from playwright.async_api import async_playwright

    async with sandbox_server(tmp_path, pace=0.15) as server, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1366, "height": 900})
            page = await context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            await page.goto(f"{server.url}/")
            assert "/login" in page.url
            await page.fill("#token", "wrong")
            await page.click("button[type=submit]")
            assert await page.locator(".error").text_content() == "That token is not right."
            await page.screenshot(path=str(tmp_path / "login.png"))
            problems.clear()  # the 401 of a wrong token is logged by the browser
            await page.fill("#token", server.token)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{server.url}/")
            cookies = {c["name"]: c for c in await context.cookies()}
            assert cookies["collector_session"]["httpOnly"] is True
            assert cookies["collector_session"]["sameSite"] == "Strict"
            await page.wait_for_selector("#live-status.on")
            await page.screenshot(path=str(tmp_path / "calls-empty.png"))

            await page.select_option("#simulate-form-id", "contact")
            await page.fill("#simulate-answers", '{"name": "Ada Lovelace"}')
            await page.click("#simulate-button")
            await page.wait_for_url(re.compile(r"/calls/[0-9a-f-]+$"))
            await page.evaluate("window.__noReload = true")
            await page.wait_for_selector("#live-status.on")

            # fields fill in live: a partial result shows while the AI is still gathering
            await page.wait_for_selector(".field.status-hearing", timeout=20_000)
            await page.screenshot(path=str(tmp_path / "call-live.png"), full_page=True)
            await page.wait_for_selector('.call[data-state="completed"]', timeout=30_000)
            await page.wait_for_selector(".badge.delivery-delivered", timeout=15_000)
            assert await page.evaluate("window.__noReload === true"), "updated without a reload"
            name = await page.text_content('[data-field="name"]')
            assert name is not None and "Ada Lovelace" in name
            email = await page.text_content('[data-field="email"]')
            assert email is not None and "maria.gonzalez@example.com" in email
            assert await page.locator(".msg-user").count() >= 3
            assert await page.locator(".field.status-valid").count() == 3
            assert await page.locator("#cancel-button").count() == 0
            await page.screenshot(path=str(tmp_path / "call-done.png"), full_page=True)

            await page.click("text=← All calls")
            await page.wait_for_url(f"{server.url}/")
            row = page.locator("table.calls tbody tr").first
            assert "completed" in (await row.text_content() or "")
            assert "3/4" in (await row.text_content() or "")
            await page.screenshot(path=str(tmp_path / "calls.png"), full_page=True)

            # the list is live too: a call placed elsewhere shows up without a reload
            await page.wait_for_selector("#live-status.on")
            await page.evaluate("window.__noReload = true")
            await server.simulate("contact")
            await page.locator("table.calls tbody tr").nth(1).wait_for(timeout=15_000)
            assert await page.evaluate("window.__noReload === true")

            # the sensitive PIN of the secret form never shows on the page
            await page.select_option("#simulate-form-id", "secret")
            await page.fill("#simulate-answers", "")
            await page.click("#simulate-button")
            await page.wait_for_url(re.compile(r"/calls/[0-9a-f-]+$"))
            await page.wait_for_selector('.call[data-state="completed"]', timeout=30_000)
            await page.wait_for_selector(".badge.delivery-delivered", timeout=15_000)
            assert "4321" not in await page.content()
            assert await page.locator(".msg.masked").count() >= 1
            await page.screenshot(path=str(tmp_path / "call-secret.png"), full_page=True)

            # a narrow window stacks the two columns
            await page.set_viewport_size({"width": 720, "height": 900})
            await page.screenshot(path=str(tmp_path / "call-narrow.png"), full_page=True)

            await page.click("text=Sign out")
            await page.wait_for_url(re.compile(r"/login"))
            assert problems == [], problems  # no CSP violation, no script error
        finally:
            await browser.close()
    print(f"screenshots in {tmp_path}")
