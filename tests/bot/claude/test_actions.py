"""The other actions through the engine: reschedule, hand-off, payment info, a slot taken meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.dialogue.desk import ref_of
from core.booking import Status
from storage import tables as t
from tests.bot.claude.conftest import Harness, offer_at
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_use

SENDER = "+14155550101"


async def test_reschedule_after_confirmation(harness: Harness, fake: FakeAnthropic) -> None:
    ref = ref_of(await harness.book("2026-03-10T10:00:00+00:00", "Jane Roe", SENDER))
    chat = harness.chat(sender=SENDER, channel="whatsapp")
    fake.push(
        tool_use("list_my_bookings", {}),
        tool_use("find_reschedule_slots", {"ref": ref, "date": "2026-03-11", "after": "15:00"}),
        reply("On Wed 11 Mar I have 3:00 PM, 3:30 PM, … Which one?"),
    )
    await chat.say("can I move my check-up to Wednesday 11th after 3pm?")
    listed = fake.requests[1].tool_results()[0]["data"]["bookings"]
    assert [(b["ref"], b["price"]) for b in listed] == [(ref, "€50.00")]
    offer = offer_at(fake.requests[2], "2026-03-11T15:30")
    fake.push(tool_use("reschedule_booking", {"ref": ref, "offer_id": offer}), reply("Move it to 3:30 PM?"))
    await chat.say("3:30")
    assert fake.requests[-1].tool_results()[0]["data"]["confirmation_required"] is True
    fake.push(tool_use("reschedule_booking", {"ref": ref, "offer_id": offer}), reply("Done, moved to 3:30 PM."))
    await chat.say("ok")
    rows = await harness.appointments()
    assert [(r.starts_at, r.status) for r in rows] == [
        (datetime(2026, 3, 10, 10, 0, tzinfo=UTC), Status.RESCHEDULED.value),
        (datetime(2026, 3, 11, 15, 30, tzinfo=UTC), Status.SCHEDULED.value),
    ]
    assert rows[1].price == 5000


async def test_cancel_inside_the_notice_period_is_refused(harness: Harness, fake: FakeAnthropic) -> None:
    ref = ref_of(await harness.book("2026-03-02T15:00:00+00:00", "Jane Roe", SENDER))  # in 7 hours; 24 h notice
    chat = harness.chat(sender=SENDER, channel="whatsapp")
    fake.push(tool_use("cancel_booking", {"ref": ref}), reply("Sorry, it's too late to cancel in chat."))
    await chat.say("cancel my check-up today")
    result = fake.requests[1].tool_results()[0]
    assert result["is_error"] is True and "less than 24 hours" in result["data"]["error"]
    assert [r.status for r in await harness.appointments()] == [Status.SCHEDULED.value]


async def test_handoff_then_silence(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    fake.push(tool_use("handoff_to_human", {"reason": "wants to discuss a refund"}), reply("A colleague will reply."))
    await chat.say("I want a refund, let me talk to a person")
    assert chat.text == "A colleague will reply."
    assert chat.last[0].options == ()
    async with harness.db.reading() as session:
        conv = await session.get(t.Conversation, chat.conversation_id)
        assert conv is not None and conv.status == "escalated"
    await chat.say("hello?")
    assert chat.last == [] and len(fake.requests) == 2  # a person has it now: the model is not asked


async def test_payment_info_for_own_booking_uses_the_catalogue_price(harness: Harness, fake: FakeAnthropic) -> None:
    ref = ref_of(await harness.book("2026-03-10T10:00:00+00:00", "Jane Roe", SENDER))
    chat = harness.chat(sender=SENDER, channel="whatsapp")
    fake.push(tool_use("payment_info", {"ref": ref}), reply("You pay €50.00 at reception."))
    await chat.say("how much do I pay and how?")
    data = fake.requests[1].tool_results()[0]["data"]
    assert data["booking"]["price"] == "€50.00"
    assert "€50.00" in data["how"]


async def test_slot_taken_between_proposal_and_yes(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat(sender=SENDER, channel="whatsapp")
    fake.push(
        tool_use("save_contact", {"name": "Jane Roe"}, ("find_slots", {"service": "solo", "date": "2026-03-03"})),
        reply("9:00?"),
    )
    await chat.say("solo session tomorrow, I'm Jane Roe")
    offer = offer_at(fake.requests[1], "2026-03-03T09:00")
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("Book 9:00?"))
    await chat.say("9 please")
    await harness.book("2026-03-03T09:00:00+00:00", "Someone Else", "+14155550177", service="solo")
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("Sorry, 9:00 was just taken. 9:30 instead?"))
    await chat.say("yes")
    result = fake.requests[-1].tool_results()[0]
    assert result["is_error"] is True and "just taken" in result["data"]["error"]
    assert result["data"]["offers"] and all("Someone" not in str(o) for o in result["data"]["offers"])
    assert [o.id.startswith("offer:") for o in chat.last[0].options] == [True] * len(result["data"]["offers"])
    async with harness.db.reading() as session:
        names = list(await session.scalars(select(t.Customer.name)))
    assert "Jane Roe" not in names  # nothing was booked for her


@pytest.mark.parametrize("tz", ["America/New_York"])
async def test_times_are_shown_in_the_customers_zone(harness: Harness, fake: FakeAnthropic, tz: str) -> None:
    chat = harness.chat()
    fake.push(tool_use("find_slots", {"service": "checkup", "date": "2026-03-03"}), reply("..."))
    await chat.say("check-up tomorrow?", tz=tz)
    offers = fake.requests[1].tool_results()[0]["data"]["offers"]
    assert offers[0]["start"] == "2026-03-03T04:00-05:00"  # 09:00 UTC
    assert offers[0]["when"] == "Tue 3 Mar, 4:00 AM EST (Tue 3 Mar, 9:00 AM UTC)"
    assert "The customer's time zone is America/New_York" in fake.requests[0].body["system"][1]["text"]
