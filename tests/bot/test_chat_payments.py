"""Paying in the chat: a priced service is held, the link comes from the payment desk, the built-in
checkout's result travels through the signed webhook path, and the customer hears about it."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from bot.dialogue.manager import Incoming
from bot.payments.routes import PAYMENTS
from storage import tables as t
from tests.bot.test_cli import demo_config
from tests.conftest import FrozenClock

LINK = re.compile(r"http://localhost:8080(/pay/[^\s\"']+)")


async def say(client: TestClient, text: str, choice: str | None = None) -> list[Any]:
    result = await client.app[CONTEXT].dialogue.handle(Incoming("acme-bot", "web", "v1", text=text, choice=choice))
    return [r.message for r in result.replies]


async def test_held_booking_paid_through_the_local_checkout(client: TestClient, clock: FrozenClock) -> None:
    await say(client, "book a check-up with Ann tomorrow at 10am")
    await say(client, "yes")
    await say(client, "Ravi Kumar")
    replies = await say(client, "+447700900123")
    texts = [r.text for r in replies]
    assert any("holding the Check-up" in x and "€50.00" in x for x in texts), texts
    link = next(r.link for r in replies if r.link is not None)
    assert link.label == "Pay €50.00"
    assert not any("Rate this conversation" in x for x in texts), "the rating waits until the task is done"
    ctx = client.app[CONTEXT]
    async with ctx.db.reading() as session:
        [appt] = list(await session.scalars(select(t.Appointment)))
    assert (appt.status, appt.price) == ("pending_payment", 5000)

    path = LINK.search(link.url)
    assert path is not None
    page = await client.get(path.group(1))
    assert page.status == 200 and "€50.00" in await page.text()
    paid = await client.post(path.group(1), data={"action": "pay"})
    assert paid.status in (200, 303)
    await client.app[PAYMENTS].drain()
    async with ctx.db.reading() as session:
        appt2 = await session.get(t.Appointment, appt.id)
        purchase = await session.scalar(select(t.Purchase))
    assert appt2 is not None and appt2.status == "scheduled"
    assert purchase is not None and (purchase.status, purchase.amount) == ("completed", 5000)
    conversation_id = await ctx.dialogue.conversation_for("acme-bot", "web", "v1")
    assert conversation_id is not None
    last = (await ctx.dialogue.messages(conversation_id))[-1]
    assert "Payment of €50.00 received" in last.text


async def test_asking_to_pay_resends_the_link_and_a_lapsed_hold_frees_the_slot(
    client: TestClient, clock: FrozenClock
) -> None:
    await say(client, "book a check-up with Ann tomorrow at 10am")
    await say(client, "yes")
    await say(client, "Ravi Kumar")
    await say(client, "+447700900123")
    again = await say(client, "how do I pay?")
    assert any(r.link is not None and r.link.label == "Pay €50.00" for r in again)

    api_slots = await client.app[CONTEXT].dialogue.handle(
        Incoming("acme-bot", "web", "v2", text="check-up with Ann tomorrow at 10am")
    )
    assert "isn't free" in "\n".join(r.text for r in api_slots.replies)
    clock.advance(minutes=16)  # the 15-minute hold lapses; no sweep has run yet
    later = await client.app[CONTEXT].dialogue.handle(
        Incoming("acme-bot", "web", "v3", text="check-up with Ann tomorrow at 10am")
    )
    assert "Shall I book the Check-up with Ann on Tue 3 Mar, 10:00 AM?" in "\n".join(r.text for r in later.replies)
    released = await client.app[PAYMENTS].expire_holds()
    assert released == 1
    conversation_id = await client.app[CONTEXT].dialogue.conversation_for("acme-bot", "web", "v1")
    assert conversation_id is not None
    last = (await client.app[CONTEXT].dialogue.messages(conversation_id))[-1]
    assert "payment didn't arrive in time" in last.text


async def test_a_paid_booking_through_frontdesk_chat_with_the_local_provider(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    config = demo_config(tmp_path)
    script = "book a consultation\n1\nnext monday at 11am\nyes\nAsha Test\n+91 98450 12345\n"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    first = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "chat", "--config", str(config)],
        cwd=tmp_path,
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert first.returncode == 0, first.stderr
    found = LINK.search(first.stdout)
    assert found is not None, first.stdout
    assert "Pay ₹800.00" in first.stdout

    from bot.settings import load_settings

    server = await aiohttp_client(create_app(load_settings(config, env)))  # `frontdesk serve` on the same file
    paid = await server.post(found.group(1), data={"action": "pay"})
    assert paid.status in (200, 303)
    await server.app[PAYMENTS].drain()

    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "chat", "--config", str(config)],
        cwd=tmp_path,
        input="my bookings\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert second.returncode == 0, second.stderr
    assert "Payment of ₹800.00 received" in second.stdout
    assert "Your upcoming bookings:\n• General consultation" in second.stdout
    rows = sqlite3.connect(tmp_path / "demo.db").execute("select status, price from appointments").fetchall()
    assert rows == [("scheduled", 80000)]


async def paid_booking(client: TestClient, sender: str = "v1", when: str = "tomorrow at 10am") -> str:
    """A check-up booked in the chat and paid through the local checkout; its appointment id."""
    for text in (f"book a check-up with Ann {when}", "yes", "Ravi Kumar", "+447700900123"):
        replies = [
            r.message
            for r in (await client.app[CONTEXT].dialogue.handle(Incoming("acme-bot", "web", sender, text=text))).replies
        ]
    link = next(r.link for r in replies if r.link is not None)
    path = LINK.search(link.url)
    assert path is not None
    assert (await client.post(path.group(1), data={"action": "pay"})).status in (200, 303)
    await client.app[PAYMENTS].drain()
    async with client.app[CONTEXT].db.reading() as session:
        appointment = await session.scalar(select(t.Appointment).where(t.Appointment.status == "scheduled"))
    assert appointment is not None
    return appointment.id


async def refunded(client: TestClient, appointment_id: str) -> tuple[str, str, int | None]:
    async with client.app[CONTEXT].db.reading() as session:
        purchase = await session.scalar(select(t.Purchase).where(t.Purchase.appointment_id == appointment_id))
    assert purchase is not None
    return purchase.status, purchase.refund_status, purchase.refund_amount


async def last_texts(client: TestClient, sender: str = "v1", count: int = 3) -> list[str]:
    dialogue = client.app[CONTEXT].dialogue
    conversation_id = await dialogue.conversation_for("acme-bot", "web", sender)
    assert conversation_id is not None
    return [m.text for m in (await dialogue.messages(conversation_id))[-count:]]


async def test_cancelling_a_paid_booking_in_the_chat_refunds_it_and_says_so(
    client: TestClient, clock: FrozenClock
) -> None:
    appointment_id = await paid_booking(client)
    await say(client, "cancel my booking")
    # The refund notice is for this very conversation: it used to wait for the running turn's lock
    # until the turn's 30 s limit, then the customer read "something went wrong".
    async with asyncio.timeout(5):
        texts = [r.text for r in await say(client, "yes")]
    assert any("is cancelled" in x for x in texts), texts
    assert any("We've refunded €50.00" in x for x in texts), texts
    assert not any("went wrong" in x for x in texts)
    assert await refunded(client, appointment_id) == ("refunded", "succeeded", 5000)


async def test_a_paid_booking_the_business_cancels_is_refunded_too(client: TestClient, clock: FrozenClock) -> None:
    from tests.conftest import Api, new_token

    first = await paid_booking(client, "v1")
    api = Api(client, await new_token(client.app[CONTEXT].db, "acme", clock))
    status, body = await api.post(f"/api/bookings/{first}/cancel", {"reason": "doctor ill"})
    assert status == 200 and body["status"] == "cancelled"
    assert await refunded(client, first) == ("refunded", "succeeded", 5000)
    assert any("We've refunded €50.00" in x for x in await last_texts(client, "v1"))


async def test_a_paid_booking_cancelled_on_the_dashboard_is_refunded(client: TestClient, clock: FrozenClock) -> None:
    from tests.dashboard.conftest import Dashboard, make_user

    booked = await paid_booking(client, "v2")
    await make_user(client.app[CONTEXT].db, "owner@acme.test", "owner", clock(), business="acme")
    dash = Dashboard(client)
    await dash.login("owner@acme.test")
    status, body = await dash.post(f"/dashboard/data/bookings/{booked}/cancel", {"reason": "closed"})
    assert status == 200 and body["status"] == "cancelled"
    assert await refunded(client, booked) == ("refunded", "succeeded", 5000)
    assert any("We've refunded €50.00" in x for x in await last_texts(client, "v2"))


async def test_a_paid_booking_moved_then_cancelled_is_still_refunded(client: TestClient, clock: FrozenClock) -> None:
    first = await paid_booking(client)
    await say(client, "can I move it to Thursday at 11am?")
    texts = [r.text for r in await say(client, "yes")]
    assert any("now on Thu 5 Mar, 11:00 AM" in x for x in texts), texts
    async with client.app[CONTEXT].db.reading() as session:
        moved = await session.scalar(select(t.Appointment).where(t.Appointment.rescheduled_from_id == first))
    assert moved is not None
    assert await refunded(client, moved.id) == ("completed", "none", 0)  # the payment went with it
    await say(client, "cancel my booking")
    texts = [r.text for r in await say(client, "yes")]
    assert not any("Nothing has been paid" in x for x in texts)
    assert any("We've refunded €50.00" in x for x in texts), texts
    assert await refunded(client, moved.id) == ("refunded", "succeeded", 5000)


async def test_a_booking_held_for_payment_cannot_be_moved_and_says_why(client: TestClient, clock: FrozenClock) -> None:
    for text in ("book a check-up with Ann tomorrow at 10am", "yes", "Ravi Kumar", "+447700900123"):
        await say(client, text)
    texts = [r.text for r in await say(client, "can I move it to Thursday at 11am?")]
    assert any("still waiting for its payment, so it can't be moved" in x for x in texts), texts
    assert not any("went wrong" in x for x in texts)


async def test_a_refund_that_shrinks_between_the_quote_and_the_yes_is_quoted_again(
    aiohttp_client: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    """Full refund up to 48 h before, half after. Quoted in full at 48 h 01 min, the customer's yes
    comes two minutes later: they are told the new amount and asked again, never refunded less
    than they agreed to without knowing."""
    from datetime import timedelta

    from tests.conftest import demo_business, make_settings, other_business

    business = demo_business(refund_full_hours=48, refund_partial_percent=50)
    settings = make_settings(sqlite_url, [business, other_business()])
    client = await aiohttp_client(create_app(settings, clock=clock))
    start = clock() + timedelta(days=3, hours=2)  # Thursday 10:00
    appointment_id = await paid_booking(client, when="on Thursday at 10am")
    async with client.app[CONTEXT].db.reading() as session:
        appointment = await session.get(t.Appointment, appointment_id)
    assert appointment is not None and appointment.starts_at == start

    clock.now = start - timedelta(hours=48, minutes=1)
    asked = " ".join(r.text for r in await say(client, "cancel my booking"))
    assert "full refund of €50.00" in asked
    clock.advance(minutes=2)
    again = " ".join(r.text for r in await say(client, "yes"))
    assert "The refund has changed since I asked" in again and "€25.00 back (50% of €50.00)" in again
    assert "Cancel your Check-up" in again
    assert await refunded(client, appointment.id) == ("completed", "none", 0), "nothing cancelled yet"
    texts = [r.text for r in await say(client, "yes")]
    assert any("is cancelled" in x for x in texts), texts
    assert await refunded(client, appointment.id) == ("refunded", "succeeded", 2500)
