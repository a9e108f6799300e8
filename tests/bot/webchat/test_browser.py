"""The web chat in a real headless Chromium: book an appointment by clicking, reload, embed.

Uses the system browser (/usr/bin/chromium) through Playwright and never downloads one. Skipped
when either is missing, unless FRONTDESK_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from bot.settings import Settings
from storage import tables as t
from tests.bot.webchat.test_webchat import AGENT, web_businesses
from tests.conftest import FrozenClock, make_settings

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_MS = 5_000


def require_browser() -> None:
    """Skip (or, with FRONTDESK_REQUIRE_BROWSER=1, fail) when Playwright or Chromium is missing."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (.venv/bin/pip install playwright)")
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not missing:
        return
    reason = "browser test needs " + " and ".join(missing)
    if os.environ.get("FRONTDESK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"FRONTDESK_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, web_businesses(), dialogue={"rate_limit": {"burst": 50}})


def option(page: Page, label: str) -> Locator:
    """The newest quick reply with exactly this label that can still be tapped."""
    return page.get_by_role("button", name=label, exact=True, disabled=False).last


def last_bot_message(page: Page) -> Locator:
    return page.locator("#chat-log li.msg-out").last


async def test_book_by_clicking_then_reload_and_embed(
    aiohttp_server: Any, settings: Settings, clock: FrozenClock
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    app = create_app(settings, clock=clock)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("")).rstrip("/")
    chat_url = f"{base}/chat/{AGENT}"

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(timezone_id="UTC", locale="en-US")
            context.set_default_timeout(STEP_MS)
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            await page.goto(chat_url)
            await expect(page.locator("#chat-status")).to_have_text("Online")
            await expect(page.locator("#chat-title")).to_have_text("Ada")
            log = page.locator("#chat-log")
            await expect(log).to_have_attribute("aria-live", "polite")

            # a new visitor is greeted (seq 0, not stored) before writing anything
            await expect(log.locator("li.msg-out[data-seq='0']")).to_contain_text("Acme Clinic")
            await page.locator("#chat-input").fill("hello")
            await page.locator("#chat-input").press("Enter")
            await expect(log.locator("li.msg-out")).to_have_count(2)
            await expect(last_bot_message(page)).to_contain_text("Acme Clinic")

            for label, then in [
                ("Book", "Which service"),
                ("Check-up", "Who would you like"),
                ("No preference", "When would you like"),
                ("Tomorrow", "Tue 3 Mar"),
                ("9:00 AM", "Shall I book the Check-up on Tue 3 Mar, 9:00 AM?"),
                ("Yes", "What name"),
            ]:
                button = option(page, label)
                await button.click()
                await expect(last_bot_message(page)).to_contain_text(then)
                await expect(page.get_by_role("button", name=label, exact=True).last).to_be_disabled()

            await page.locator("#chat-input").fill("Ravi Kumar")
            await page.locator("#chat-input").press("Enter")
            await expect(last_bot_message(page)).to_contain_text("phone number")
            await page.locator("#chat-input").fill("+44 7700 900123")
            await page.locator("#chat-input").press("Enter")
            held = log.locator("li.msg-out", has_text="holding the Check-up")
            await expect(held).to_be_visible()
            await expect(page.locator("#chat-typing")).to_be_hidden()

            async with app[CONTEXT].db.reading() as session:
                rows = list(await session.scalars(select(t.Appointment)))
            assert len(rows) == 1
            reference = rows[0].id.replace("-", "")[:6].upper()
            assert rows[0].status == "pending_payment"
            await expect(held).to_contain_text(f"(ref {reference})")
            await expect(held).to_contain_text("Tue 3 Mar, 9:00 AM")

            # pay on the built-in checkout in another tab; the confirmation arrives in the open chat
            pay_link = log.get_by_role("link", name="Pay €50.00")
            href = await pay_link.get_attribute("href")
            assert href is not None and href.startswith("http://localhost:8080/pay/")
            checkout = await context.new_page()
            await checkout.goto(base + href.removeprefix("http://localhost:8080"))
            await checkout.get_by_role("button", name="Pay €50.00").click()
            confirmation = log.locator("li.msg-out", has_text="Payment of €50.00 received")
            await expect(confirmation).to_be_visible()
            await checkout.close()
            async with app[CONTEXT].db.reading() as session:
                assert (await session.get(t.Appointment, rows[0].id)).status == "scheduled"  # type: ignore[union-attr]

            await page.locator("#chat-input").fill("<b>x</b>")
            await page.locator("#chat-input").press("Enter")
            mine = log.locator("li.msg-in:not(.msg-pending)").last
            await expect(mine.locator(".msg-text")).to_have_text("<b>x</b>")
            assert await log.locator("b").count() == 0
            count = await log.locator("li[data-seq]").count() - 1  # stored messages: all but the greeting
            assert count >= 17

            await page.reload()
            await expect(page.locator("#chat-status")).to_have_text("Online")
            await expect(log.locator("li[data-seq]")).to_have_count(count)
            await expect(log.locator("li.msg-out", has_text=f"(ref {reference})")).to_be_visible()
            seqs = [
                int(s) for s in await log.locator("li[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")
            ]
            assert seqs == list(range(1, count + 1))
            assert await log.locator("b").count() == 0
            # answered questions keep their buttons, switched off
            await expect(page.get_by_role("button", name="Check-up", exact=True)).to_be_disabled()

            # the embed: a floating button on someone else's page opens the chat in an iframe
            host = await context.new_page()
            await host.set_content(f'<!doctype html><title>shop</title><script src="{chat_url}/widget.js"></script>')
            launcher = host.locator("button[aria-controls=frontdesk-chat-frame]")
            await expect(launcher).to_have_text("Chat with us")
            await launcher.click()
            frame = host.frame_locator("#frontdesk-chat-frame")
            await expect(frame.locator("#chat-status")).to_have_text("Online")
            await expect(launcher).to_have_attribute("aria-expanded", "true")
            await expect(launcher).to_have_text("Close chat")

            assert not problems, problems
        finally:
            await browser.close()
