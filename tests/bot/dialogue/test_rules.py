"""The rules engine in whole conversations, through the real dialogue manager and a real SQLite file
(harness: ``tests.bot.test_conversations_rules``). The clock is frozen at Monday 2026-03-02 08:00 UTC;
the Acme clinic (UTC) opens 09:00–17:00 on weekdays; Friday 6 March is a holiday."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.dialogue.manager import DialogueManager
from core.booking import Status
from storage.engine import Database
from tests.bot.test_conversations_rules import Chat, appointments, booked

# ----- one customer, one place at a time ---------------------------------------------------------


async def test_a_booking_over_another_of_the_customers_is_refused_clearly(
    manager: DialogueManager, db: Database
) -> None:
    chat = Chat(manager)
    await booked(chat)  # a check-up with Ann, Tue 3 Mar 10:00-10:30
    await chat.say("book the class tomorrow at 10am")  # Bob's class, 10:00-11:00: Bob is free, the customer is not
    assert "Shall I book the Class on Tue 3 Mar, 10:00 AM?" in chat.text
    await chat.say("yes")
    assert chat.text == "Sorry, that didn't work: you already have another booking at that time."
    assert "My bookings" in chat.labels and "went wrong" not in chat.text
    [row] = await appointments(db)
    assert row.starts_at == datetime(2026, 3, 3, 10, tzinfo=UTC) and row.status == Status.SCHEDULED.value
    await chat.say("book the class tomorrow at 11am")  # after it: fine
    await chat.say("yes")
    assert "You're booked! Class" in chat.text
