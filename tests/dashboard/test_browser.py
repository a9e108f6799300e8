"""The dashboard end to end in a real headless Chromium: log in, read the grade card, answer an
escalated web chat from the hand-off inbox and see the customer receive it in their open chat,
hand it back to the bot; replay a failed delivery; customer text stays text (no markup, no script).

Uses the system browser (/usr/bin/chromium) through Playwright and never downloads one. Skipped
when either is missing, unless FRONTDESK_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.app import create_app
from bot.context import CONTEXT
from bot.dialogue.manager import Incoming
from bot.settings import Settings
from storage import customers, insights
from storage import tables as t
from tests.bot.webchat.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_MS, require_browser
from tests.bot.webchat.test_webchat import AGENT, web_businesses
from tests.conftest import FrozenClock, make_settings, tenant_of
from tests.dashboard.conftest import PASSWORD, dead_send, make_user

pytestmark = pytest.mark.browser
GRADES = {"A+", "A", "B+", "B", "C+", "C", "D"}
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, web_businesses(), dialogue={"rate_limit": {"burst": 50}})


async def test_log_in_read_grade_answer_handoff_customer_receives_it(
    aiohttp_server: Any, settings: Settings, clock: FrozenClock
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    app = create_app(settings, clock=clock)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("")).rstrip("/")
    ctx = app[CONTEXT]
    await make_user(ctx.db, "owner@acme.test", "owner", clock(), "acme")
    for n in range(12):  # enough conversations in the window for a letter grade (not "N/A")
        await ctx.dialogue.handle(Incoming(AGENT, "web", f"earlier-{n}", text="hello"))
        await ctx.dialogue.handle(Incoming(AGENT, "web", f"earlier-{n}", text="book a check-up"))

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            problems: list[str] = []
            customer_ctx = await browser.new_context(timezone_id="UTC", locale="en-US")
            owner_ctx = await browser.new_context(timezone_id="UTC", locale="en-US")
            for c in (customer_ctx, owner_ctx):
                c.set_default_timeout(STEP_MS)
            customer = await customer_ctx.new_page()
            owner = await owner_ctx.new_page()
            for page in (customer, owner):
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

            # the customer asks for a person in the web chat, and tries some markup
            await customer.goto(f"{base}/chat/{AGENT}")
            await expect(customer.locator("#chat-status")).to_have_text("Online")
            chat_log = customer.locator("#chat-log")
            await customer.locator("#chat-input").fill(XSS)
            await customer.locator("#chat-input").press("Enter")
            await expect(chat_log.locator("li.msg-in:not(.msg-pending) .msg-text")).to_have_text([XSS])
            await expect(customer.locator("#chat-typing")).to_be_hidden()
            await customer.locator("#chat-input").fill("I want to talk to a human")
            await customer.locator("#chat-input").press("Enter")
            await expect(chat_log.locator("li.msg-out", has_text="asked a colleague to take over")).to_be_visible()

            # the owner logs in and lands on the agent's grade card
            await owner.goto(f"{base}/dashboard")
            await expect(owner).to_have_url(re.compile(r"/dashboard/login\?next=(%2F|/)dashboard$"))
            await owner.get_by_label("Email").fill("owner@acme.test")
            await owner.get_by_label("Password").fill(PASSWORD)
            await owner.get_by_role("button", name="Log in").click()
            await expect(owner).to_have_url(f"{base}/dashboard/agents/{AGENT}?business=acme")
            grade = owner.locator("#grade")
            await expect(grade).not_to_be_empty()
            async with ctx.db.reading() as session:
                expected = await insights.agent_performance(
                    session, await tenant_of(ctx.db, "acme"), AGENT, start=None, end=None, now=clock()
                )
            assert expected["performanceGrade"] in GRADES
            await expect(grade).to_have_text(expected["performanceGrade"])
            await expect(owner.locator("#strengths, #improvements").first).to_be_attached()
            assert await owner.locator("canvas").count() == 1  # the trend, drawn by the local Chart.js

            # the hand-off inbox: open the escalated chat and answer it
            await owner.get_by_role("link", name="Hand-off inbox").click()
            waiting = owner.locator("#handoff-list a")
            await expect(waiting).to_have_count(1)
            await waiting.click()
            transcript = owner.locator("#transcript")
            await expect(transcript).to_contain_text("I want to talk to a human")
            await expect(transcript.locator(".msg-in .msg-text").first).to_have_text(XSS)  # shown as text
            assert await transcript.locator("img, script").count() == 0
            assert await owner.evaluate("window.__xss") is None
            await owner.get_by_label("Your reply").fill("Hi, this is Sam from Acme. How can I help?")
            await owner.get_by_role("button", name="Send reply").click()
            await expect(transcript.locator(".by-human")).to_contain_text("Hi, this is Sam from Acme.")

            # the customer sees it arrive in the chat that is still open
            answer = chat_log.locator("li.msg-out", has_text="Hi, this is Sam from Acme. How can I help?")
            await expect(answer).to_be_visible()
            assert await chat_log.locator("img").count() == 0
            assert await customer.evaluate("window.__xss") is None

            # and the owner hands the conversation back to the bot
            await owner.get_by_role("button", name="Hand back to the bot").click()
            await expect(owner.locator("#conv-status")).to_have_text("active")
            await expect(owner.locator("#handoff-empty")).to_be_visible()  # the list follows, no reload

            assert not problems, problems
        finally:
            await browser.close()


async def test_failed_deliveries_show_as_text_and_replay(
    aiohttp_server: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    """A message the relay gave up on: listed with the customer's (hostile) name as text and the
    recipient masked; Replay posts with the session's CSRF token and queues it again."""
    require_browser()
    from playwright.async_api import async_playwright, expect

    app = create_app(make_settings(sqlite_url, web_businesses(), testing={"workers": False}), clock=clock)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("")).rstrip("/")
    ctx = app[CONTEXT]
    await make_user(ctx.db, "owner@acme.test", "owner", clock(), "acme")
    turn = await ctx.dialogue.handle(Incoming(AGENT, "web", "visitor-4155550123", text="hello"))
    async with ctx.db.writing() as session:
        customer = await customers.upsert(session, await tenant_of(ctx.db, "acme"), "+14155550123", clock(), name=XSS)
        conv = await session.get(t.Conversation, turn.conversation_id)
        assert conv is not None
        conv.customer_id = customer.id
    dead = await dead_send(ctx.db, turn.conversation_id, clock(), error="blocked")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            problems: list[str] = []
            # The owner's browser is in Tokyo; the business (and its filters) keep UTC's clock.
            owner_ctx = await browser.new_context(timezone_id="Asia/Tokyo", locale="en-US")
            owner_ctx.set_default_timeout(STEP_MS)
            owner = await owner_ctx.new_page()
            owner.on("pageerror", lambda exc: problems.append(str(exc)))
            owner.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            await owner.goto(f"{base}/dashboard/login")
            await owner.get_by_label("Email").fill("owner@acme.test")
            await owner.get_by_label("Password").fill(PASSWORD)
            await owner.get_by_role("button", name="Log in").click()
            await owner.get_by_role("link", name="Failed deliveries").click()
            rows = owner.locator("#outbox tbody tr")
            await expect(rows).to_have_count(1)
            cells = rows.first.locator("td")
            await expect(cells.nth(0)).to_have_text(re.compile(r"Mar 2, 2026.*08:00 AM UTC"))  # not 5 PM Tokyo
            await expect(cells.nth(2)).to_have_text("•••123")
            await expect(cells.nth(3)).to_have_text(XSS)  # the customer's name, as text
            await expect(cells.nth(5)).to_have_text("blocked")
            await owner.set_viewport_size({"width": 375, "height": 700})  # a phone: no sideways page
            assert await owner.evaluate("document.documentElement.scrollWidth") <= 375
            await owner.set_viewport_size({"width": 1280, "height": 800})
            assert await owner.locator("#outbox img, #outbox script").count() == 0
            assert await owner.evaluate("window.__xss") is None
            assert "4155550123" not in await owner.content()
            await owner.get_by_role("button", name=f"Replay message {dead}").click()
            await expect(owner.locator("#status")).to_have_text("Queued again: it will be sent shortly.")
            await expect(owner.locator("#outbox-empty")).to_be_visible()
            async with ctx.db.reading() as session:
                row = await session.get(t.OutboxItem, dead)
            assert row is not None and (row.state, row.attempts) == ("pending", 0)
            assert not problems, problems
        finally:
            await browser.close()
