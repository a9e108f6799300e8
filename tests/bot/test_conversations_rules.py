"""Whole conversations with the rules engine, through the real dialogue manager and a real SQLite file.

The clock is frozen at Monday 2026-03-02 08:00 UTC; the Acme clinic (UTC) opens 09:00–17:00 on
weekdays; Friday 6 March is a holiday.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio
from sqlalchemy import select

from bot.dialogue.engines import build_engines
from bot.dialogue.manager import DialogueManager, Incoming
from bot.settings import Settings
from channels.base import OutboundMessage
from core.booking import Status
from storage import bookings
from storage import tables as t
from storage.engine import Database
from tests.conftest import FrozenClock, tenant_of


class Chat:
    """One customer talking to the acme agent."""

    def __init__(
        self,
        manager: DialogueManager,
        *,
        sender: str = "visitor-1",
        channel: str = "web",
        tz: str | None = None,
        agent: str = "acme-bot",
    ) -> None:
        self.manager = manager
        self.sender = sender
        self.channel = channel
        self.tz = tz
        self.agent = agent
        self.last: list[OutboundMessage] = []
        self.conversation_id = ""

    async def say(self, text: str = "", choice: str | None = None) -> list[OutboundMessage]:
        result = await self.manager.handle(
            Incoming(self.agent, self.channel, self.sender, text=text, choice=choice, timezone=self.tz)
        )
        self.conversation_id = result.conversation_id
        self.last = [r.message for r in result.replies]
        return self.last

    async def tap(self, label: str) -> list[OutboundMessage]:
        """Tap the first option of the last replies whose label contains ``label``."""
        for message in reversed(self.last):
            for option in message.options:
                if label.lower() in option.label.lower():
                    return await self.say(option.label, choice=option.id)
        raise AssertionError(f"no option {label!r} in {[o.label for m in self.last for o in m.options]}")

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.last)

    @property
    def labels(self) -> list[str]:
        return [o.label for m in self.last for o in m.options]


def manager_for(db: Database, settings: Settings, clock: FrozenClock) -> DialogueManager:
    engine, fallback = build_engines(settings)
    return DialogueManager(db=db, settings=settings, clock=clock, engine=engine, fallback=fallback)


@pytest_asyncio.fixture
async def manager(db: Database, settings: Settings, clock: FrozenClock) -> AsyncIterator[DialogueManager]:
    yield manager_for(db, settings, clock)


async def appointments(db: Database) -> list[t.Appointment]:
    async with db.reading() as session:
        return list(await session.scalars(select(t.Appointment).order_by(t.Appointment.created_at)))


async def conversation(db: Database, conversation_id: str) -> t.Conversation:
    async with db.reading() as session:
        conv = await session.get(t.Conversation, conversation_id)
        assert conv is not None
        return conv


async def test_greeting_offers_options_and_is_recorded(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await chat.say("hello")
    assert "Acme Clinic" in chat.text
    assert "Book" in chat.labels and "Talk to a person" in chat.labels
    messages = await manager.messages(chat.conversation_id)
    assert [(m.seq, m.direction) for m in messages] == [(1, "in"), (2, "out")]
    assert messages[1].payload["options"][0]["id"] == "menu:book"


async def test_booking_by_tapping_options(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await chat.say("hi")
    await chat.tap("Book")
    assert "Which service" in chat.text
    assert "Check-up" in chat.labels
    await chat.tap("Check-up")
    assert "Who would you like" in chat.text
    await chat.tap("No preference")
    assert "When would you like" in chat.text
    await chat.tap("Tomorrow")
    assert "Tue 3 Mar" in chat.text
    assert chat.labels[0] == "9:00 AM"
    await chat.tap("9:00 AM")
    assert "Shall I book the Check-up on Tue 3 Mar, 9:00 AM? Price: €50.00." in chat.text
    await chat.tap("Yes")
    assert "What name" in chat.text
    await chat.say("Ravi Kumar")
    assert "phone number" in chat.text
    await chat.say("+44 7700 900123")
    assert "You're booked! Check-up" in chat.text
    assert "Tue 3 Mar, 9:00 AM" in chat.text
    [row] = await appointments(db)
    assert row.starts_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert row.status == Status.SCHEDULED.value and row.price == 5000
    assert row.id.replace("-", "")[:6].upper() in chat.text
    # the satisfaction question follows a completed task, and a rating is stored
    assert "Rate this conversation" in chat.text
    await chat.say("5")
    assert "Thank you for the feedback" in chat.text
    assert (await conversation(db, chat.conversation_id)).satisfaction == 5


async def test_one_sentence_booking_with_staff_date_and_time(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await chat.say("I'd like a check-up with Ann tomorrow at 10am")
    assert "Shall I book the Check-up with Ann on Tue 3 Mar, 10:00 AM?" in chat.text
    await chat.say("yes please")
    await chat.say("my name is Mia Wong")
    await chat.say("+14155550123")
    assert "You're booked!" in chat.text
    [row] = await appointments(db)
    async with db.reading() as session:
        staff = await session.get(t.Staff, row.staff_id)
    assert staff is not None and staff.slug == "ann"
    assert row.starts_at == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


async def test_the_day_and_time_said_before_the_service_is_kept(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("I'd like to book an appointment tomorrow afternoon")
    assert "Which service" in chat.text
    await chat.tap("Solo")  # one person gives it: no staff question
    assert "When would you like" not in chat.text
    assert "Tue 3 Mar" in chat.text
    assert chat.labels[0] == "12:00 PM" and "9:00 AM" not in chat.labels
    chat_labels = chat.labels
    await chat.say("2")  # a typed number picks from the list, and the wish still holds
    assert f"Shall I book the Solo on Tue 3 Mar, {chat_labels[1]}?" in chat.text


async def test_no_preference_in_the_customers_words(manager: DialogueManager) -> None:
    for n, words in enumerate(("I don't mind", "anyone is fine", "whoever's free", "doesn't matter")):
        chat = Chat(manager, sender=f"visitor-{n}")
        await chat.say("book a check-up tomorrow")
        assert "Who would you like" in chat.text
        await chat.say(words)
        assert "Free times for the Check-up on Tue 3 Mar" in chat.text, (words, chat.text)


async def test_a_phone_number_given_for_the_name_is_kept_and_the_name_asked_again(
    manager: DialogueManager, db: Database
) -> None:
    chat = Chat(manager)
    await chat.say("I'd like a check-up with Ann tomorrow at 10am")
    await chat.say("yes")
    assert "What name" in chat.text
    await chat.say("+44 7700 900123")
    assert "What name" in chat.text and "phone" not in chat.text
    await chat.say("Ravi Kumar")
    assert "You're booked!" in chat.text  # the number was not asked for again
    async with db.reading() as session:
        customer = await session.scalar(select(t.Customer))
    assert customer is not None and (customer.name, customer.phone) == ("Ravi Kumar", "+447700900123")


async def test_no_to_the_offered_time_shows_the_days_other_times(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann tomorrow at 10am")
    assert "Shall I book the Check-up with Ann on Tue 3 Mar, 10:00 AM?" in chat.text
    await chat.say("no")
    assert "Shall I book" not in chat.text  # it asked the same question again, for ever
    assert "Free times for the Check-up on Tue 3 Mar" in chat.text and len(chat.labels) > 2
    await chat.say("no")  # no to the list too: the booking is dropped, not looped
    assert "What would you like to do" in chat.text or "stopped" in chat.text


async def test_a_refused_booking_ends_that_attempt_and_the_next_one_asks_again(
    manager: DialogueManager, db: Database, clock: FrozenClock
) -> None:
    chat = Chat(manager)
    for text in ("book the class tomorrow at 10am", "yes", "Ravi Kumar", "+447700900123"):
        await chat.say(text)
    assert "You're booked!" in chat.text
    await chat.say("book the class tomorrow at 10am")  # their own seat: not offered again
    assert "You already have another booking at Tue 3 Mar, 10:00 AM." in chat.text and "Shall I" not in chat.text
    await chat.say("book the class on Wednesday at 10am")
    assert "Shall I book the Class on Wed 4 Mar, 10:00 AM?" in chat.text
    tenant = await tenant_of(db, "acme")  # meanwhile they take that seat another way
    seat = bookings.NewBooking("class", datetime(2026, 3, 4, 10, tzinfo=UTC), "Ravi Kumar", "+447700900123")
    await bookings.create(db, tenant, seat, clock())
    await chat.say("yes")
    assert "you already have a seat at that time" in chat.text and "went wrong" not in chat.text
    await chat.say("book a check-up on Wednesday at 11am")
    if "Who would you like" in chat.text:
        await chat.tap("No preference")
    assert "Shall I book the Check-up" in chat.text  # the earlier yes does not carry over
    assert len(await appointments(db)) == 2


async def test_before_and_after_a_time_are_limits_not_wishes(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann tomorrow before 2pm")
    assert "Shall I book" not in chat.text and "Tue 3 Mar" in chat.text
    times = [label for label in chat.labels if label.endswith(("AM", "PM"))]
    assert times and times[-1] in ("1:00 PM", "1:30 PM") and "2:00 PM" not in times
    await chat.say("no, after 3pm")
    times = [label for label in chat.labels if label.endswith(("AM", "PM"))]
    assert times and times[0] == "3:00 PM" and all(t.endswith("PM") for t in times)


async def test_times_near_a_wish_offer_no_later_times_that_would_loop(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann tomorrow at 7pm")  # after hours: the nearest are offered
    assert chat.labels and "Later times" not in chat.labels


async def test_the_person_named_before_the_service_is_kept(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("an appointment with Ann on Tuesday morning")
    assert "Which service" in chat.text
    await chat.tap("Check-up")
    assert "Who would you like" not in chat.text and "Tue 3 Mar" in chat.text
    other = Chat(manager, sender="visitor-class")
    await other.say("book the class with Ann tomorrow")  # only Bob teaches it
    assert "Ann doesn't do the Class, so I'll look at everyone who does." in other.text


async def test_a_correction_while_the_name_is_asked_is_not_taken_for_the_name(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann tomorrow at 10am")
    await chat.say("yes")
    assert "What name" in chat.text
    await chat.say("actually make it 11am")
    assert "Shall I book the Check-up with Ann on Tue 3 Mar, 11:00 AM?" in chat.text
    await chat.say("yes")
    assert "What name" in chat.text
    await chat.say("2")  # not an option number here, and not a name
    assert "What name" in chat.text and "stopped" not in chat.text
    await chat.say("Mia Wong")
    assert "phone number" in chat.text


async def test_day_pickers_offer_only_days_with_free_times(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("book a check-up with Ann")
    assert "When would you like" in chat.text
    # Monday 2 March 08:00: Friday 6 March is a holiday, the weekend is closed
    assert chat.labels == ["Today", "Tomorrow", "Wed 4 Mar", "Thu 5 Mar", "Mon 9 Mar"]
    await booked(Chat(manager, sender="visitor-move"))
    mover = Chat(manager, sender="visitor-move")
    await mover.say("can I reschedule?")
    assert "Fri 6 Mar" not in mover.labels and "Sat 7 Mar" not in mover.labels and len(mover.labels) == 5


async def test_corrections_mid_flow(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await chat.say("book a check-up tomorrow at 10am")
    await chat.tap("No preference") if "Who would you like" in chat.text else None
    assert "Tue 3 Mar, 10:00 AM" in chat.text
    await chat.say("actually make it 4pm")
    assert "Tue 3 Mar, 4:00 PM" in chat.text and "Shall I book" in chat.text
    await chat.say("no, Wednesday")
    assert "Wed 4 Mar, 4:00 PM" in chat.text and "Shall I book" in chat.text
    await chat.say("yes")
    await chat.say("Lena Berg")
    await chat.say("+4915112345678")
    [row] = await appointments(db)
    assert row.starts_at == datetime(2026, 3, 4, 16, 0, tzinfo=UTC)


async def test_taken_wish_offers_the_nearest_alternatives(
    manager: DialogueManager, db: Database, clock: FrozenClock
) -> None:
    tenant = await tenant_of(db, "acme")
    for phone in ("+441632960001", "+441632960002"):
        await bookings.create(
            db, tenant, bookings.NewBooking("checkup", datetime(2026, 3, 3, 10, tzinfo=UTC), "Someone", phone), clock()
        )
    chat = Chat(manager)
    await chat.say("check-up tomorrow at 10am")
    if "Who would you like" in chat.text:
        await chat.tap("No preference")
    assert "isn't free" in chat.text
    assert "9:30 AM" in chat.labels and "10:30 AM" in chat.labels
    assert "10:00 AM" not in chat.labels


async def test_gibberish_never_dead_ends(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("qwzx blorp")
    assert "didn't catch" in chat.text and "Book" in chat.labels
    await chat.say("book a check-up")
    await chat.say("asdf ghjk")
    assert "didn't catch" in chat.text
    assert chat.labels, "the pending question is asked again with its options"


async def test_a_typed_number_selects_an_option(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("book")
    position = chat.labels.index("Check-up") + 1
    await chat.say(str(position))
    assert "Who would you like to see for the Check-up" in chat.text


async def test_restart_mid_booking_continues_where_it_was(db: Database, settings: Settings, clock: FrozenClock) -> None:
    first = Chat(manager_for(db, settings, clock))
    await first.say("book a check-up with Bob tomorrow at 11am")
    assert "Shall I book" in first.text
    second = Chat(manager_for(db, settings, clock))  # a new process: nothing in memory
    await second.say("yes")
    assert "What name" in second.text
    await second.say("Omar Haddad")
    await second.say("+33612345678")
    [row] = await appointments(db)
    assert row.starts_at == datetime(2026, 3, 3, 11, 0, tzinfo=UTC)


async def booked(
    chat: Chat, when: str = "tomorrow at 10am", name: str = "Ravi Kumar", phone: str = "+447700900123"
) -> None:
    await chat.say(f"book a check-up with Ann {when}")
    await chat.say("yes")
    await chat.say(name)
    await chat.say(phone)
    assert "You're booked!" in chat.text
    await chat.say("4")  # answer the rating question


async def test_not_coming_with_another_day_moves_the_booking_instead_of_cancelling(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await booked(chat)  # Tue 3 Mar, 10:00 AM
    await chat.say("I can't make it tomorrow, can we do thursday instead?")
    assert "Cancel" not in chat.text
    assert "Thu 5 Mar" in chat.text or any("Thu 5 Mar" in label for label in chat.labels), chat.text
    await chat.tap("10:30 AM")
    assert "Move your Check-up from Tue 3 Mar, 10:00 AM to Thu 5 Mar, 10:30 AM?" in chat.text


async def test_cancel_with_confirmation_and_policy(manager: DialogueManager, db: Database, clock: FrozenClock) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("I need to cancel my appointment")
    assert "Cancel your Check-up on Tue 3 Mar, 10:00 AM" in chat.text and "free" in chat.text
    await chat.say("no")
    assert "stays" in chat.text
    assert (await appointments(db))[0].status == "scheduled"
    await chat.say("cancel my booking")
    await chat.tap("Yes")
    assert "is cancelled" in chat.text
    assert (await appointments(db))[0].status == "cancelled"


async def test_cancel_too_late_is_refused_with_a_way_forward(
    manager: DialogueManager, db: Database, clock: FrozenClock
) -> None:
    chat = Chat(manager)
    await booked(chat)
    clock.advance(hours=20)  # 6 hours before; the check-up needs 24 hours' notice
    await chat.say("cancel")
    assert "less than 24 hours" in chat.text
    assert "Talk to a person" in chat.labels
    assert (await appointments(db))[0].status == "scheduled"


async def test_reschedule_moves_the_booking(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("can I reschedule?")
    assert "move your Check-up" in chat.text
    await chat.say("Thursday at 11am")
    assert "Move your Check-up from Tue 3 Mar, 10:00 AM to Thu 5 Mar, 11:00 AM?" in chat.text
    await chat.say("yes")
    assert "now on Thu 5 Mar, 11:00 AM" in chat.text
    rows = await appointments(db)
    assert [r.status for r in rows] == ["rescheduled", "scheduled"]
    assert rows[1].starts_at == datetime(2026, 3, 5, 11, 0, tzinfo=UTC)


async def test_reschedule_with_the_new_day_in_the_same_sentence(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("I need to move my appointment to Wednesday afternoon")
    assert "When would you like" not in chat.text
    assert "Wed 4 Mar" in chat.text and chat.labels[0] == "12:00 PM"
    second = chat.labels[1]
    await chat.say("2")
    assert f"Move your Check-up from Tue 3 Mar, 10:00 AM to Wed 4 Mar, {second}?" in chat.text


async def test_reschedule_offers_times_across_the_day_then_later_ones(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("move my booking to Wednesday")
    spread = [label for label in chat.labels if label[0].isdigit()]
    assert len(spread) == 6 and spread[0] == "9:00 AM" and spread[-1].endswith("PM")  # the whole day
    assert "Later times" not in chat.labels  # nothing is later than the day's last time
    await chat.say("Wednesday afternoon")
    afternoon = [label for label in chat.labels if label[0].isdigit()]
    assert afternoon and all(label.endswith("PM") for label in afternoon)
    assert "Wed 4 Mar" in chat.text


async def test_a_part_of_day_without_a_day_offers_the_soonest_few(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up in the afternoon please")
    if "Who would you like" in chat.text:
        await chat.tap("No preference")
    assert "Free times for the Check-up on Mon 2 Mar" in chat.text
    times = [label for label in chat.labels if label[0].isdigit()]
    assert times == ["12:00 PM", "12:30 PM", "1:00 PM", "1:30 PM", "2:00 PM", "2:30 PM"]
    await chat.tap("Later times")
    later = [label for label in chat.labels if label.endswith(("AM", "PM"))]
    assert later[:2] == ["Mon 2 Mar 3:00 PM", "Mon 2 Mar 3:30 PM"]  # after the last one shown


async def test_no_to_the_new_time_of_a_move_shows_that_days_other_times(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("can I reschedule to Thursday at 11am?")
    assert "to Thu 5 Mar, 11:00 AM?" in chat.text
    await chat.say("no")
    assert "Move your" not in chat.text and "Thu 5 Mar" in chat.text and len(chat.labels) > 2


async def test_reschedule_to_a_closed_day_offers_the_nearest_free_times(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("can I reschedule?")
    await chat.say("Friday")  # 6 March is a holiday
    assert "Nothing is free Fri 6 Mar. The nearest free times:" in chat.text
    slots = [label for label in chat.labels if label.startswith(("Thu 5 Mar", "Mon 9 Mar"))]  # each with its day
    assert 1 <= len(slots) <= 3, chat.labels
    await chat.tap(slots[0])
    assert "Move your Check-up from Tue 3 Mar, 10:00 AM to" in chat.text


async def test_my_bookings_only_shows_this_conversations_bookings_on_unverified_channels(
    manager: DialogueManager, db: Database
) -> None:
    mine = Chat(manager, sender="visitor-a")
    await booked(mine, phone="+447700900123")
    other = Chat(manager, sender="visitor-b")
    await booked(other, when="tomorrow at 2pm", name="Eve", phone="+447700900123")  # types the same phone
    await other.say("my bookings")
    assert "2:00 PM" in other.text and "10:00 AM" not in other.text
    await other.say("cancel")
    assert "2:00 PM" in other.text and "10:00 AM" not in other.text


async def test_a_booking_moved_outside_the_chat_is_still_this_chats(
    manager: DialogueManager, db: Database, clock: FrozenClock
) -> None:
    """Moved by the business (API, dashboard) or by the customer's link, the booking gets a new id
    the chat never saw; on the web chat it is still the customer's, and still only theirs."""
    chat = Chat(manager, sender="visitor-a")
    await booked(chat, phone="+447700900123")
    [row] = await appointments(db)
    await bookings.reschedule(db, row.tenant_id, row.id, datetime(2026, 3, 4, 11, 0, tzinfo=UTC), clock())
    await chat.say("my bookings")
    assert "Wed 4 Mar, 11:00 AM" in chat.text and "Tue 3 Mar" not in chat.text
    await chat.say("cancel my booking")
    assert "Cancel your Check-up on Wed 4 Mar, 11:00 AM" in chat.text
    stranger = Chat(manager, sender="visitor-b")
    await booked(stranger, when="tomorrow at 2pm", name="Eve", phone="+447700900123")  # types the same phone
    await stranger.say("my bookings")
    assert "2:00 PM" in stranger.text and "Wed 4 Mar" not in stranger.text


async def test_a_message_over_the_limit_is_answered_and_the_cut_is_said(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("what are your opening hours? " + "I also wanted to tell you about my knee. " * 80)
    assert chat.last[0].text.startswith("That was a long message: I read its first 2,000 characters.")
    assert "Monday: 09:00-17:00" in chat.text, "the part that was read is answered"
    await chat.say("what are your opening hours?")
    assert "long message" not in chat.text


async def test_phone_channels_see_every_booking_of_their_number(manager: DialogueManager, db: Database) -> None:
    web = Chat(manager, sender="visitor-a")
    await booked(web, phone="+447700900123")
    sms = Chat(manager, sender="+447700900123", channel="sms")
    await sms.say("what are my bookings?")
    assert "Tue 3 Mar, 10:00 AM" in sms.text


async def test_handoff_silences_the_bot_until_released(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager)
    await chat.say("I want to talk to a human")
    assert "colleague" in chat.text
    assert (await conversation(db, chat.conversation_id)).status == "escalated"
    assert await chat.say("hello?") == []
    tenant = await tenant_of(db, "acme")
    await manager.push(
        tenant, chat.conversation_id, OutboundMessage("Hi, this is Sam from the clinic."), author="human"
    )
    await manager.release(tenant, chat.conversation_id)
    await chat.say("hello")
    assert chat.last, "the bot answers again after release"
    authors = [m.author for m in await manager.messages(chat.conversation_id)]
    assert authors.count("human") == 1


async def test_stop_and_start(manager: DialogueManager, db: Database) -> None:
    chat = Chat(manager, sender="+447700900999", channel="sms")
    await chat.say("STOP")
    assert "unsubscribed" in chat.text
    assert (await conversation(db, chat.conversation_id)).opted_out
    assert await chat.say("book a check-up") == []
    await chat.say("start")
    assert "Welcome back" in chat.text
    assert not (await conversation(db, chat.conversation_id)).opted_out


async def test_start_during_a_hand_off_offers_no_menu_the_bot_would_ignore(manager: DialogueManager) -> None:
    chat = Chat(manager, sender="+447700900998", channel="sms")
    await chat.say("I want to talk to a person")
    await chat.say("STOP")
    await chat.say("START")
    assert "A colleague has your conversation" in chat.text and chat.labels == []
    assert await chat.say("1") == []  # still with the colleague


async def test_rate_limit_sends_one_notice_then_recovers(manager: DialogueManager, clock: FrozenClock) -> None:
    chat = Chat(manager)
    answered = 0
    notices = 0
    for _ in range(15):
        replies = await chat.say("hello")
        answered += any("Acme" in r.text for r in replies)
        notices += any("faster than I can answer" in r.text for r in replies)
    assert (answered, notices) == (10, 1)
    clock.advance(seconds=30)
    await chat.say("hello")
    assert "Acme Clinic" in chat.text
    other = Chat(manager, sender="visitor-2")
    await other.say("hello")
    assert "Acme Clinic" in other.text


async def test_information_answers(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("what services do you offer and how much?")
    assert "Check-up — 30 min, €50.00" in chat.text and "Solo — 30 min, free" in chat.text
    await chat.say("what are your opening hours?")
    assert "Monday: 09:00-17:00" in chat.text and "Sunday: closed" in chat.text
    await chat.say("book a check-up")
    await chat.say("when are you open?")
    assert "Monday: 09:00-17:00" in chat.text and "Who would you like" in chat.text, "the pending question returns"


async def test_times_in_the_customers_zone_and_the_businesss(manager: DialogueManager) -> None:
    chat = Chat(manager, tz="America/New_York")
    await chat.say("book a check-up with Ann tomorrow at 10am")  # their 10am: they read times in EST
    assert "on Tue 3 Mar, 10:00 AM EST (Tue 3 Mar, 3:00 PM UTC)?" in chat.text
    late = Chat(manager, sender="visitor-late", tz="America/New_York")
    await late.say("book a check-up with Ann on Tuesday at 4pm")  # 21:00 UTC: after Ann's hours
    assert "isn't free" in late.text or "Nothing is free" in late.text
    evening = Chat(manager, sender="visitor-eve", tz="Asia/Tokyo")
    await evening.say("book a check-up with Ann on Wednesday")  # 9:00–17:00 UTC is 6 PM–2 AM in Tokyo
    assert "(times in Asia/Tokyo)" in evening.text
    assert evening.labels[0] == "Wed 4 Mar 6:00 PM" and evening.labels[5].startswith("Thu 5 Mar")


async def test_paid_service_says_how_payment_is_taken(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("book a check-up with Ann tomorrow at 10am")
    await chat.say("yes")
    await chat.say("Ravi Kumar")
    await chat.say("+447700900123")
    assert "€50.00" in chat.text and "paid" in chat.text


async def test_thanks_and_goodbye_keep_the_door_open(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("thanks!")
    assert "welcome" in chat.text.lower() and chat.labels


async def test_address_and_faq_come_from_the_business_config(sqlite_url: str, clock: FrozenClock) -> None:
    from bot.app import prepare_database
    from tests.conftest import demo_business, make_settings

    business = demo_business()
    business["address"] = "1 Harbour Street, Dublin"
    business["phone"] = "+35312345678"
    business["faq"] = [
        {"q": "Is there parking?", "a": "Yes, two free spaces behind the clinic."},
        {"q": "Do you accept insurance?", "a": "Most insurers; bring your card."},
    ]
    settings = make_settings(sqlite_url, [business])
    database = await prepare_database(settings, clock)
    try:
        chat = Chat(manager_for(database, settings, clock))
        await chat.say("where are you located?")
        assert "1 Harbour Street, Dublin" in chat.text and "+35312345678" in chat.text
        await chat.say("is there parking")
        assert chat.text == "Yes, two free spaces behind the clinic."
        await chat.say("do you take insurance?")
        assert chat.text == "Most insurers; bring your card."
        assert "Book" in chat.labels
    finally:
        await database.dispose()
