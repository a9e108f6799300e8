"""The rules engine in whole conversations, through the real dialogue manager and a real SQLite file
(harness: ``tests.bot.test_conversations_rules``). The clock is frozen at Monday 2026-03-02 08:00 UTC;
the Acme clinic (UTC) opens 09:00–17:00 on weekdays; Friday 6 March is a holiday."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.app import prepare_database
from bot.dialogue.desk import ref_of
from bot.dialogue.manager import DialogueManager
from storage import bookings
from storage.engine import Database
from tests.bot.test_conversations_rules import Chat, appointments, booked, manager_for
from tests.conftest import FrozenClock, demo_business, make_settings, tenant_of

# ----- windows of the day --------------------------------------------------------------------------


def times(chat: Chat) -> list[str]:
    return [label for label in chat.labels if label.endswith(("AM", "PM"))]


async def test_a_window_of_the_day_offers_only_times_inside_it(manager: DialogueManager) -> None:
    for n, words in enumerate(("between 2 and 4pm", "2-4pm", "from 2 to 4 pm", "2pm to 4pm")):
        chat = Chat(manager, sender=f"visitor-{n}")
        await chat.say(f"a check-up with Ann tomorrow {words}")
        assert "Shall I book" not in chat.text, words  # a window, not a wish for 2pm or 4pm
        assert "Free times for the Check-up on Tue 3 Mar" in chat.text
        # a 30-minute check-up starts in the window and ends by its end: 3:30 PM is the last
        assert times(chat) == ["2:00 PM", "2:30 PM", "3:00 PM", "3:30 PM"], (words, chat.labels)
        await chat.tap("3:30 PM")
        assert "Shall I book the Check-up with Ann on Tue 3 Mar, 3:30 PM?" in chat.text


async def test_a_window_without_a_day_offers_the_soonest_inside_it(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann between 9 and 10am please")
    assert "When would you like" not in chat.text
    assert "next free times for the Check-up" in chat.text
    assert times(chat)[:3] == ["Mon 2 Mar 9:00 AM", "Mon 2 Mar 9:30 AM", "Tue 3 Mar 9:00 AM"]
    assert all(label.endswith(("9:00 AM", "9:30 AM")) for label in times(chat))


async def test_a_window_is_in_the_customers_zone_and_replaces_other_limits(manager: DialogueManager) -> None:
    chat = Chat(manager, tz="America/New_York")
    await chat.say("a check-up with Ann tomorrow before 10am")
    await chat.say("no, between 9 and 11am")  # 14:00-16:00 UTC: the earlier "before" does not linger
    assert times(chat) == ["9:00 AM", "9:30 AM", "10:00 AM", "10:30 AM"], chat.labels
    assert "(times in America/New_York)" in chat.text


async def test_moving_a_booking_into_a_window(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("can I move my appointment to thursday between 2 and 4pm?")
    assert "Thu 5 Mar" in chat.text and times(chat) == ["2:00 PM", "2:30 PM", "3:00 PM", "3:30 PM"]


async def test_a_window_with_nothing_free_says_so_and_offers_the_nearest(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann on friday between 2 and 4pm")  # 6 March is a holiday
    assert "Nothing is free Fri 6 Mar between 2:00 PM and 4:00 PM. The nearest free times:" in chat.text
    assert times(chat) and all(label.startswith(("Thu 5 Mar", "Mon 9 Mar")) for label in times(chat))


# ----- limits of the time of day across days --------------------------------------------------------


async def test_a_limit_of_the_time_of_day_holds_on_another_day(manager: DialogueManager) -> None:
    for n, (limit, wanted) in enumerate(
        (
            ("after 3pm", ["3:00 PM", "3:30 PM", "4:00 PM", "4:30 PM"]),
            ("before 10am", ["9:00 AM", "9:30 AM"]),
            ("between 2 and 4pm", ["2:00 PM", "2:30 PM", "3:00 PM", "3:30 PM"]),
            ("in the afternoon", ["12:00 PM", "1:00 PM", "2:00 PM", "2:30 PM", "3:30 PM", "4:30 PM"]),  # spread
        )
    ):
        chat = Chat(manager, sender=f"visitor-{n}")
        await chat.say(f"a check-up with Ann tomorrow {limit}")
        assert "Tue 3 Mar" in chat.text
        await chat.say("how about Wednesday?")
        assert "Free times for the Check-up on Wed 4 Mar" in chat.text
        assert times(chat) == wanted, (limit, chat.labels)
        await chat.tap("Another day")  # the day picker: the limit holds for the day picked too
        assert "When would you like" in chat.text
        await chat.tap("Thu 5 Mar")
        assert "Free times for the Check-up on Thu 5 Mar" in chat.text
        assert times(chat) == wanted, (limit, chat.labels)


async def test_a_time_on_another_day_replaces_the_limit(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann tomorrow after 3pm")
    await chat.say("Wednesday at 10")
    assert "Shall I book the Check-up with Ann on Wed 4 Mar, 10:00 AM?" in chat.text
    await chat.say("no")  # the day's other times: the whole day, the limit is gone
    assert "Wed 4 Mar" in chat.text and times(chat)[0] == "9:00 AM"


# ----- later times ---------------------------------------------------------------------------------


async def test_later_times_page_on_in_order_within_the_limits_across_days(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann in the afternoon")
    assert times(chat) == ["12:00 PM", "12:30 PM", "1:00 PM", "1:30 PM", "2:00 PM", "2:30 PM"]  # Mon 2 Mar
    await chat.tap("Later times")
    assert times(chat) == [
        "Mon 2 Mar 3:00 PM",
        "Mon 2 Mar 3:30 PM",
        "Mon 2 Mar 4:00 PM",
        "Mon 2 Mar 4:30 PM",
        "Tue 3 Mar 12:00 PM",  # the next day from the start of the afternoon, not from 3 PM
        "Tue 3 Mar 12:30 PM",
    ]
    await chat.tap("Later times")  # offered again across days: there are more
    assert "on Tue 3 Mar" in chat.text and times(chat)[:2] == ["1:00 PM", "1:30 PM"]
    moving = Chat(manager, sender="visitor-2")
    await booked(moving)  # Tue 3 Mar 10:00
    await moving.say("can I move my booking?")
    await moving.say("the afternoon")
    await moving.tap("Later times")
    assert times(moving)[-2:] == ["Tue 3 Mar 12:00 PM", "Tue 3 Mar 12:30 PM"]


async def test_later_times_in_a_window_stop_when_none_are_left(sqlite_url: str, clock: FrozenClock) -> None:
    settings = make_settings(sqlite_url, [demo_business(max_advance_days=3)])  # the check-up until Thu 5 Mar
    database = await prepare_database(settings, clock)
    try:
        chat = Chat(manager_for(database, settings, clock))
        await chat.say("a check-up with Ann between 9 and 10am")
        assert times(chat) == [
            "Mon 2 Mar 9:00 AM",
            "Mon 2 Mar 9:30 AM",
            "Tue 3 Mar 9:00 AM",
            "Tue 3 Mar 9:30 AM",
            "Wed 4 Mar 9:00 AM",
            "Wed 4 Mar 9:30 AM",
        ]
        await chat.tap("Later times")
        assert "Free times for the Check-up on Thu 5 Mar" in chat.text
        assert times(chat) == ["9:00 AM", "9:30 AM"] and "Later times" not in chat.labels  # none left
    finally:
        await database.dispose()


async def test_nothing_free_within_a_limit_says_the_limit_not_the_whole_day(manager: DialogueManager) -> None:
    for n, (limit, said, nearest) in enumerate(
        (
            ("after 5pm", "after 5:00 PM", ["Tue 3 Mar 3:30 PM", "Tue 3 Mar 4:00 PM", "Tue 3 Mar 4:30 PM"]),
            ("before 9am", "before 9:00 AM", ["Tue 3 Mar 9:00 AM", "Tue 3 Mar 9:30 AM", "Tue 3 Mar 10:00 AM"]),
            ("in the evening", "in the evening", ["Tue 3 Mar 3:30 PM", "Tue 3 Mar 4:00 PM", "Tue 3 Mar 4:30 PM"]),
        )
    ):
        chat = Chat(manager, sender=f"visitor-{n}")
        await chat.say(f"a check-up with Ann tomorrow {limit}")  # Tuesday is free, outside the limit
        assert f"Nothing is free Tue 3 Mar {said}. The nearest free times:" in chat.text, limit
        assert times(chat) == nearest, (limit, chat.labels)  # around the limit's start, else 9:00
    moving = Chat(manager, sender="visitor-moving")
    await booked(moving)
    await moving.say("can I move my booking to Wednesday after 5pm?")
    assert "Nothing is free Wed 4 Mar after 5:00 PM. The nearest free times:" in moving.text


# ----- dates gone by, and dates past the booking window ---------------------------------------------


async def test_a_day_and_month_gone_this_year_says_which_year_it_took(
    manager: DialogueManager, clock: FrozenClock
) -> None:
    clock.now = datetime(2026, 12, 21, 8, tzinfo=UTC)  # Monday 21 December
    chat = Chat(manager)
    await chat.say("a check-up with Ann on Jan 5")
    assert "5 Jan has passed this year, so I've taken it as Tue 5 Jan 2027." in chat.text
    assert "Free times for the Check-up on Tue 5 Jan" in chat.text and times(chat)
    other = Chat(manager, sender="visitor-2")
    await other.say("a check-up with Ann on 5/1")  # the same, written day first
    assert "5 Jan has passed this year, so I've taken it as Tue 5 Jan 2027." in other.text
    this_year = Chat(manager, sender="visitor-3")
    await this_year.say("a check-up with Ann on Dec 22")  # still ahead this year: nothing to say
    assert "passed" not in this_year.text and "Free times for the Check-up on Tue 22 Dec" in this_year.text


async def test_a_date_past_the_booking_window_says_where_it_ends_and_offers_the_nearest(
    manager: DialogueManager,
) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann on March 1")  # gone this year; next year's is past 60 days
    assert "1 Mar has passed this year, so I've taken it as Mon 1 Mar 2027." in chat.text
    assert "I can book the Check-up up to 60 days ahead, until Fri 1 May. The nearest free times:" in chat.text
    assert times(chat) == ["Fri 1 May 3:30 PM", "Fri 1 May 4:00 PM", "Fri 1 May 4:30 PM"]
    await chat.tap("Fri 1 May 4:30 PM")
    assert "Shall I book the Check-up with Ann on Fri 1 May, 4:30 PM?" in chat.text
    later = Chat(manager, sender="visitor-2")
    await later.say("a check-up with Ann on June 15 at 10am")  # no year rolled: only the window
    assert "passed" not in later.text
    assert "I can book the Check-up up to 60 days ahead, until Fri 1 May." in later.text
    assert times(later) == ["Fri 1 May 9:30 AM", "Fri 1 May 10:00 AM", "Fri 1 May 10:30 AM"]  # around 10am


async def test_moving_a_booking_past_the_window_says_where_it_ends(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await booked(chat)
    await chat.say("can I move my booking to June 15?")
    assert "I can book the Check-up up to 60 days ahead, until Fri 1 May. The nearest free times:" in chat.text
    assert times(chat) and all(label.startswith("Fri 1 May") for label in times(chat))
    await chat.tap(times(chat)[0])
    assert "Move your Check-up from Tue 3 Mar, 10:00 AM to Fri 1 May" in chat.text


async def test_a_window_in_working_days_and_one_with_nothing_free_before_its_end(
    sqlite_url: str, clock: FrozenClock
) -> None:
    business = demo_business(max_advance_days=5, advance_mode="business_days")
    business["holidays"] = [{"date": f"2026-03-0{d}", "name": "Closed"} for d in range(2, 10)]
    business["services"][1]["max_advance_days"] = 3  # the solo: three calendar days, all closed
    settings = make_settings(sqlite_url, [business])
    database = await prepare_database(settings, clock)
    try:
        manager = manager_for(database, settings, clock)
        chat = Chat(manager)
        await chat.say("a check-up with Ann on 20 March")
        assert "I can book the Check-up up to 5 working days ahead, until Mon 9 Mar" in chat.text
        assert "and nothing is free before then. A colleague can help if you ask for a person." in chat.text
        assert "Book" in chat.labels  # never silence or an empty list
        solo = Chat(manager, sender="visitor-2")
        await solo.say("book the solo on March 20")
        assert "I can book the Solo up to 3 days ahead, until Thu 5 Mar, and nothing is free" in solo.text
    finally:
        await database.dispose()


async def test_a_dated_day_that_has_gone_is_said(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann on 1/2/2026")
    assert "Sun 1 Feb 2026 has already passed." in chat.text and "When would you like" in chat.text


# ----- a weekday written with a date ----------------------------------------------------------------


async def test_a_weekday_that_agrees_with_the_date_takes_the_date(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann on Thursday 19 March at 10am")  # not Thursday 5 March
    assert chat.text == "Shall I book the Check-up with Ann on Thu 19 Mar, 10:00 AM? Price: €50.00."


async def test_a_weekday_that_is_not_the_dates_asks_which_day(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann on Friday 19 March at 10am")  # 19 March is a Thursday
    assert chat.text == "19 Mar is a Thursday, not a Friday. Which day did you mean?"
    assert chat.labels == ["Thu 19 Mar", "Fri 20 Mar"]  # the date first; nothing taken silently
    await chat.tap("Fri 20 Mar")
    assert "Shall I book the Check-up with Ann on Fri 20 Mar, 10:00 AM?" in chat.text  # the time holds
    typed = Chat(manager, sender="visitor-2")
    await typed.say("a check-up with Ann on Friday 19 March")
    await typed.say("1")
    assert "Free times for the Check-up on Thu 19 Mar" in typed.text
    moving = Chat(manager, sender="visitor-3")
    await booked(moving)
    await moving.say("can I move my booking to Friday 19 March?")
    assert "19 Mar is a Thursday, not a Friday. Which day did you mean?" in moving.text
    await moving.tap("Thu 19 Mar")
    assert "Thu 19 Mar" in moving.text and times(moving)


async def test_a_weekday_whose_nearest_day_has_gone_takes_the_date_and_says_so(manager: DialogueManager) -> None:
    chat = Chat(manager)
    await chat.say("a check-up with Ann on Sunday 3 March")  # a Tuesday; Sunday 1 March has gone
    assert "3 Mar is a Tuesday, not a Sunday, so I've taken Tue 3 Mar." in chat.text
    assert "Free times for the Check-up on Tue 3 Mar" in chat.text and times(chat)


# ----- one customer, one place at a time ---------------------------------------------------------


async def test_times_over_another_of_the_customers_bookings_are_never_offered(
    manager: DialogueManager, clock: FrozenClock
) -> None:
    chat = Chat(manager)
    await booked(chat)  # a check-up with Ann, Tue 3 Mar 10:00-10:30
    await chat.say("book the class tomorrow at 10am")  # Bob's class, 10:00-11:00: Bob is free, the customer is not
    assert "You already have another booking at Tue 3 Mar, 10:00 AM." in chat.text
    assert "Shall I book" not in chat.text  # never asked to confirm a time that would be refused
    assert times(chat) and "10:00 AM" not in times(chat)
    await chat.tap("Another day")
    await chat.tap("Tomorrow")  # the whole day: every time but the one over the check-up
    assert "Free times for the Class on Tue 3 Mar" in chat.text
    assert times(chat)[:2] == ["9:00 AM", "11:00 AM"] and "10:00 AM" not in times(chat)
    await chat.tap("11:00 AM")  # after it: fine
    await chat.say("yes")
    assert "You're booked! Class" in chat.text
    await chat.say("5")
    clock.advance(minutes=1)  # within the rate limit
    await chat.say("can I move my booking to tomorrow at 11am?")  # the check-up, over the class: left out
    await chat.tap("Tue 3 Mar 10:00 AM")
    assert "Move your" not in chat.text and "Tue 3 Mar" in chat.text
    assert times(chat) and "11:00 AM" not in times(chat) and "11:30 AM" not in times(chat)
    stranger = Chat(manager, sender="visitor-2")  # somebody else: every time is theirs to take
    await stranger.say("book the class tomorrow")
    assert "10:00 AM" in times(stranger)


async def test_a_booking_over_one_made_since_the_offer_is_refused_clearly(
    manager: DialogueManager, db: Database, clock: FrozenClock
) -> None:
    chat = Chat(manager)
    await booked(chat)  # Tue 3 Mar 10:00, as Ravi Kumar, +447700900123
    await chat.say("book the class on Wednesday at 10am")
    assert "Shall I book the Class on Wed 4 Mar, 10:00 AM?" in chat.text
    tenant = await tenant_of(db, "acme")  # meanwhile the same customer books that time elsewhere
    start = datetime(2026, 3, 4, 10, tzinfo=UTC)
    await bookings.create(db, tenant, bookings.NewBooking("checkup", start, "Ravi Kumar", "+447700900123"), clock())
    await chat.say("yes")  # the booking service has the last word
    assert chat.text == "Sorry, that didn't work: you already have another booking at that time."
    assert "My bookings" in chat.labels and "went wrong" not in chat.text
    assert [r.starts_at.day for r in await appointments(db)] == [3, 4]  # the two check-ups, no class


# ----- booking references typed in the chat ------------------------------------------------------


async def refs(db: Database) -> list[str]:
    return [ref_of(row.id) for row in await appointments(db)]


async def test_a_typed_reference_of_ones_own_booking_is_acted_on(
    manager: DialogueManager, db: Database, clock: FrozenClock
) -> None:
    chat = Chat(manager)
    await booked(chat)  # Tue 3 Mar 10:00
    await chat.say("and a check-up with Ann on Wednesday at 11am")
    await chat.say("yes")
    assert "You're booked!" in chat.text
    await chat.say("5")
    tuesday, wednesday = await refs(db)
    clock.advance(minutes=1)  # within the rate limit
    await chat.say(f"cancel {wednesday.lower()}")  # two bookings, but the reference says which
    assert f"Cancel your Check-up on Wed 4 Mar, 11:00 AM (ref {wednesday})?" in chat.text
    await chat.say("yes")
    assert f"(ref {wednesday}) is cancelled" in chat.text
    await chat.say("5")
    await chat.say("and a check-up with Ann on Wednesday at 11am")  # booked again: two bookings again
    await chat.say("yes")
    await chat.say("5")
    clock.advance(minutes=1)
    await chat.say(f"move booking {tuesday} to thursday at 2pm")
    assert "Move your Check-up from Tue 3 Mar, 10:00 AM to Thu 5 Mar, 2:00 PM?" in chat.text
    await chat.say("yes")
    assert "now on Thu 5 Mar, 2:00 PM" in chat.text
    rows = await appointments(db)
    assert [(r.starts_at.day, r.status) for r in rows] == [
        (3, "rescheduled"),
        (4, "cancelled"),
        (4, "scheduled"),
        (5, "scheduled"),
    ]


async def test_a_reference_that_is_not_ones_own_reveals_nothing(manager: DialogueManager, db: Database) -> None:
    owner = Chat(manager, sender="visitor-owner")
    await booked(owner, name="Ravi Kumar")  # a check-up with Ann, Tue 3 Mar 10:00
    [theirs] = await refs(db)
    for stranger in (
        Chat(manager, sender="visitor-stranger"),  # the web chat: nothing booked here
        Chat(manager, sender="+447700900999", channel="sms"),  # a phone channel: only that number's bookings
    ):
        await stranger.say(f"cancel {theirs}")
        assert stranger.text.startswith(f"I can't find a booking with the reference {theirs} among your upcoming")
        assert "You have no upcoming bookings with us." in stranger.text
        for detail in ("Ravi", "Check-up", "Ann", "10:00", "Tue 3 Mar"):
            assert detail not in stranger.text
    # someone with a booking of their own is shown theirs, never the other one
    other = Chat(manager, sender="visitor-other")
    await booked(other, when="tomorrow at 2pm", name="Eve Adams", phone="+447700900456")
    await other.say(f"move booking {theirs} to thursday")
    assert f"I can't find a booking with the reference {theirs} among your upcoming bookings." in other.text
    assert "Which booking would you like to move?" in other.text  # theirs is not assumed either
    assert other.labels == ["Tue 3 Mar 2:00 PM"] and "Ravi" not in other.text
    await other.tap("Tue 3 Mar 2:00 PM")
    assert "Free times for the Check-up on Thu 5 Mar" in other.text  # the day they asked for holds
    rows = await appointments(db)
    assert [r.status for r in rows] == ["scheduled", "scheduled"]
