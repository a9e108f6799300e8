"""Conversation tags and intents, earned through real chat turns with the rules engine and real
payments through the local checkout (docs/insights.md §1.1, §1.2)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.context import CONTEXT
from bot.dialogue.manager import Incoming
from bot.payments.routes import PAYMENTS
from bot.settings import Settings
from storage import bookings
from storage import tables as t
from storage.engine import Database
from tests.bot.test_conversations_rules import Chat, manager_for
from tests.conftest import Api, FrozenClock, tenant_of
from tests.insights.test_store import assert_rollups_match, csv_export

LINK = re.compile(r"http://localhost:8080(/pay/[^\s\"']+)")


async def fact_of(db: Database, conversation_id: str) -> t.InsightConversation:
    async with db.reading() as session:
        fact = await session.get(t.InsightConversation, conversation_id)
    assert fact is not None
    return fact


def said(fact: t.InsightConversation, source: str) -> list[str]:
    return [i["intent"] for i in fact.intents if i["source"] == source]


# ----------------------------------------------------------------------------- tags


async def test_a_booking_chat_is_tagged_with_its_channel_service_outcome_and_new_customer(
    api: Api, client: TestClient
) -> None:
    manager = client.app[CONTEXT].dialogue
    chat = Chat(manager)
    await chat.say("hi")
    db = client.app[CONTEXT].db
    assert (await fact_of(db, chat.conversation_id)).tags == ["channel:web"]  # a web visitor is nobody yet
    await chat.tap("Book")
    await chat.tap("Check-up")
    assert (await fact_of(db, chat.conversation_id)).tags == ["channel:web", "service:checkup"]
    await chat.tap("No preference")
    await chat.tap("Tomorrow")
    await chat.tap("9:00 AM")
    await chat.tap("Yes")
    await chat.say("Ravi Kumar")
    await chat.say("+44 7700 900123")  # the customer's record is created by this booking: a new customer
    fact = await fact_of(db, chat.conversation_id)
    assert fact.tags == ["channel:web", "service:checkup", "booked", "new_customer"]

    status, text = await csv_export(api, "conversations")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert status == 200 and len(rows) == 1
    assert rows[0]["tags"] == "channel:web;service:checkup;booked;new_customer"
    assert rows[0]["intents"].split(";")[:2] == ["greet", "book"]


async def test_a_returning_customer_cancels_hands_off_and_opts_out_on_whatsapp(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    await returning_customer_story(db, settings, clock)


@pytest.mark.postgres
async def test_the_same_story_on_postgresql(postgres_db: tuple[Settings, Database], clock: FrozenClock) -> None:
    settings, db = postgres_db
    await returning_customer_story(db, settings, clock)


async def returning_customer_story(db: Database, settings: Settings, clock: FrozenClock) -> None:
    tenant_id = await tenant_of(db, "acme")
    phone = "+447700900123"
    start = datetime(2026, 3, 4, 10, tzinfo=UTC)
    await bookings.create(db, tenant_id, bookings.NewBooking("solo", start, "Ravi Kumar", phone), clock())
    clock.advance(hours=1)
    chat = Chat(manager_for(db, settings, clock), sender=phone, channel="whatsapp")

    await chat.say("hi")
    assert (await fact_of(db, chat.conversation_id)).tags == ["channel:whatsapp", "returning_customer"]
    await chat.say("I need to cancel my appointment")
    assert "Cancel" in chat.text or "cancel" in chat.text
    await chat.tap("Yes")
    assert "cancelled" in chat.text.lower()
    await chat.say("can I talk to a real person please")
    await chat.say("STOP")

    fact = await fact_of(db, chat.conversation_id)
    assert fact.tags == [
        "channel:whatsapp",
        "returning_customer",
        "service:solo",
        "cancelled",
        "escalated",
        "opted_out",
    ]
    assert fact.escalated and fact.completed
    assert said(fact, "reading") == ["greet", "cancel", "human"]  # the "Yes" only answered a question
    # per turn: the booking looked up; cancelled (after looking it up again); handed off. Building the
    # reader from the business's FAQ is no customer asking for information.
    assert said(fact, "tool") == ["check_bookings", "cancel_appointment", "check_bookings", "human_agent"]
    readings = [i for i in fact.intents if i["source"] == "reading"]
    assert all(i["confidence"] is None for i in readings)  # the reader matches phrases: no score
    assert all(i["confidence"] == 1.0 for i in fact.intents if i["source"] == "tool")
    assert all(i["timestamp"] for i in fact.intents)
    await assert_rollups_match(db, tenant_id)


async def test_a_first_message_on_a_phone_channel_without_a_record_is_a_new_customer(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    chat = Chat(manager_for(db, settings, clock), sender="+447700900999", channel="sms")
    await chat.say("hello")
    assert (await fact_of(db, chat.conversation_id)).tags == ["channel:sms", "new_customer"]


async def test_questions_are_recorded_as_the_customers_intents(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    chat = Chat(manager_for(db, settings, clock))
    await chat.say("hello")
    await chat.say("how much is a check-up?")
    await chat.say("what are your opening hours?")
    await chat.say("I'd like to reschedule")  # nothing to move: a reading, no tool changed anything
    await chat.say("blorp")  # unreadable: not an intent
    fact = await fact_of(db, chat.conversation_id)
    assert said(fact, "reading") == ["greet", "prices", "hours", "reschedule"]
    assert fact.tags == ["channel:web", "service:checkup"]  # the service asked about; the visitor is unknown
    assert not fact.completed


async def test_payments_in_a_conversation_tag_it_paid_or_payment_failed(client: TestClient, clock: FrozenClock) -> None:
    ctx = client.app[CONTEXT]

    async def say(sender: str, text: str) -> list[Any]:
        result = await ctx.dialogue.handle(Incoming("acme-bot", "web", sender, text=text))
        return [r.message for r in result.replies]

    async def hold(sender: str, when: str) -> tuple[str, str]:
        """A booking held for payment in a new web chat: its conversation and its checkout path."""
        await say(sender, f"book a check-up with Ann tomorrow at {when}")
        await say(sender, "yes")
        await say(sender, "Ravi Kumar")
        replies = await say(sender, "+447700900123")
        found = LINK.search(next(r.link.url for r in replies if r.link is not None))
        conversation_id = await ctx.dialogue.conversation_for("acme-bot", "web", sender)
        assert found is not None and conversation_id is not None
        return conversation_id, found.group(1)

    paid_id, checkout = await hold("v1", "10am")
    paid = await client.post(checkout, data={"action": "pay"})
    assert paid.status in (200, 303)
    await client.app[PAYMENTS].drain()

    clock.advance(minutes=1)  # the same number comes back in another chat: its record now exists
    lapsed_id, _ = await hold("v2", "11am")
    clock.advance(minutes=16)
    assert await client.app[PAYMENTS].expire_holds() == 1

    assert (await fact_of(ctx.db, paid_id)).tags == ["channel:web", "service:checkup", "booked", "new_customer", "paid"]
    lapsed = await fact_of(ctx.db, lapsed_id)
    assert lapsed.tags == ["channel:web", "service:checkup", "booked", "returning_customer", "payment_failed"]
