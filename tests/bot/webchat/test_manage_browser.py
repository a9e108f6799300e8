"""A manage link in a real headless Chromium: book in the web chat, open the confirmation's
"Change or cancel your booking" link (a new tab, on the server's public URL), cancel there.

Skipped like the other browser tests when Playwright or /usr/bin/chromium is missing."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from storage import tables as t
from tests.bot.webchat.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_MS, last_bot_message, option, require_browser
from tests.bot.webchat.test_webchat import AGENT, web_businesses
from tests.conftest import FrozenClock, make_settings

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_open_the_link_from_the_confirmation_and_cancel(
    aiohttp_server: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    port = free_port()  # the links in messages are made from server.public_url: this server's
    businesses = web_businesses()
    businesses[0].update(address="1 Harbour Street", phone="+14155550100")
    settings = make_settings(
        sqlite_url,
        businesses,
        dialogue={"rate_limit": {"burst": 50}},
        scheduler={"enabled": False},
        server={"public_url": f"http://127.0.0.1:{port}"},
    )
    app = create_app(settings, clock=clock)
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    base = str(server.make_url("")).rstrip("/")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(timezone_id="UTC", locale="en-US")
            context.set_default_timeout(STEP_MS)
            problems: list[str] = []
            context.on("weberror", lambda error: problems.append(str(error.error)))
            page = await context.new_page()
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            await page.goto(f"{base}/chat/{AGENT}")
            await expect(page.locator("#chat-status")).to_have_text("Online")
            await page.locator("#chat-input").fill("book a solo tomorrow at 10am")
            await page.locator("#chat-input").press("Enter")
            await expect(last_bot_message(page)).to_contain_text("Shall I book the Solo on Tue 3 Mar, 10:00 AM?")
            await option(page, "Yes").click()
            await expect(last_bot_message(page)).to_contain_text("What name")
            for text, then in (("Ravi Kumar", "phone number"), ("+44 7700 900123", "Rate this conversation")):
                await page.locator("#chat-input").fill(text)
                await page.locator("#chat-input").press("Enter")
                await expect(last_bot_message(page)).to_contain_text(then)

            booked = page.locator("#chat-log li.msg-out", has_text="You're booked!")
            await expect(booked).to_contain_text("Where: 1 Harbour Street.")
            link = booked.get_by_role("link", name="Change or cancel your booking")
            async with context.expect_page() as opened:
                await link.click()  # the chat opens links in a new tab
            manage = await opened.value
            manage.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            await expect(manage.get_by_role("heading", name="Your booking")).to_be_visible()
            await expect(manage.locator(".facts")).to_contain_text("Tuesday 3 March 2026")
            await expect(manage.locator(".facts")).to_contain_text("10:00 AM – 10:30 AM UTC")
            await expect(manage.locator(".facts")).to_contain_text("Confirmed")
            # the dashboard's stylesheet applies (the CSP lets it): the card look of the login page
            width = await manage.locator("main").evaluate("el => getComputedStyle(el).maxWidth")
            assert width == "460px"

            await manage.get_by_role("button", name="Cancel my booking").click()
            await expect(manage.get_by_role("status")).to_have_text("Your booking is cancelled.")
            await expect(manage.locator(".facts")).to_contain_text("Cancelled")
            await expect(manage.get_by_role("button")).to_have_count(0)
            async with app[CONTEXT].db.reading() as session:
                (row,) = list(await session.scalars(select(t.Appointment)))
            assert row.status == "cancelled"
            assert not problems, problems
        finally:
            await browser.close()
