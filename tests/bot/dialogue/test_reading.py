"""The rules engine's reading of one message: intents, names, phones, numbers, ratings and the
JSON shape ``frontdesk parse`` prints. The catalogue is the demo clinic's."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from datetime import time as time_of
from zoneinfo import ZoneInfo

import pytest

from bot.dialogue.reading import INTENTS, RULES, Named, Reader, means_stop, reader_for
from core.catalog import BusinessSpec

KOLKATA = ZoneInfo("Asia/Kolkata")
WED = datetime(2025, 11, 19, 10, 0, tzinfo=KOLKATA)  # Wednesday morning

SERVICES = [
    Named("consultation", "General consultation"),
    Named("follow-up", "Follow-up visit"),
    Named("physiotherapy", "Physiotherapy session"),
    Named("minor-procedure", "Minor procedure (doctor + procedure room)"),
    Named("back-care-class", "Back-care group class"),
]
STAFF = [
    Named("dr-mehta", "Dr. Anjali Mehta"),
    Named("dr-rao", "Dr. Vikram Rao"),
    Named("priya-physio", "Priya Nair (physiotherapist)"),
]


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader(
        SERVICES,
        STAFF,
        timezone="Asia/Kolkata",
        locale="en-IN",
        faq=["Is there parking?", "Do you accept insurance?"],
    )


INTENT_CASES = [
    ("hi", "greet"),
    ("Good morning!", "greet"),
    ("I want to book a haircut", "book"),
    ("make an appointment for 3pm", "book"),
    ("I need to see a doctor", "book"),
    ("book a consult with dr mehta tomorrow at 4", "book"),
    ("I'd like a consultation tomorrow", "book"),
    ("are there any dentists in SF", "find_provider"),
    ("find me a stylist", "find_provider"),
    ("what times do you have friday?", "find_provider"),
    ("I need a dentist", "find_provider"),
    ("any other options?", "find_provider"),
    ("what services do you offer", "services"),
    ("how much is a consultation?", "prices"),
    ("when are you open on saturday", "hours"),
    ("what are your opening hours?", "hours"),
    ("any openings tomorrow?", "find_provider"),
    ("where are you located", "address"),
    ("is there parking?", "faq"),
    ("do you take insurance", "faq"),
    ("what are my appointments", "my_bookings"),
    ("when is my appointment?", "my_bookings"),
    ("cancel my appointment", "cancel"),
    ("I can't make it tomorrow", "cancel"),
    ("can I move my booking to friday", "reschedule"),
    ("reschedule please", "reschedule"),
    ("I want to pay now", "pay"),
    ("talk to a human", "human"),
    ("can I speak to a real person", "human"),
    ("yes", "affirm"),
    ("Yes, that's right.", "affirm"),
    ("sounds good", "affirm"),
    ("👍", "affirm"),
    ("👍🏽", "affirm"),
    ("✅", "affirm"),
    ("👎", "unknown"),
    ("no", "deny"),
    ("No, thank you.", "deny"),
    ("I don't want to book right now", "deny"),
    ("stop", "stop"),
    ("STOP", "stop"),
    ("unsubscribe", "stop"),
    ("please stop messaging me", "stop"),
    ("start", "start"),
    ("help", "help"),
    ("thanks!", "thanks"),
    ("thank you so much", "thanks"),
    ("bye", "bye"),
    ("that's all, thanks", "bye"),
    ("5 stars", "rate"),
    ("tomorrow at 4", "inform"),
    ("Dr Rao please", "inform"),
    ("physio next monday morning", "inform"),
    ("my name is Ravi Kumar", "inform"),
    ("asdf qwerty", "unknown"),
    ("", "unknown"),
]


@pytest.mark.parametrize(("text", "intent"), INTENT_CASES)
def test_intents(reader: Reader, text: str, intent: str) -> None:
    assert reader.read(text, WED).intent == intent


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        ("please stop messaging me", True),
        ("stop sending me messages", True),
        ("Don't text me again.", True),
        ("do not contact us", True),
        ("no more reminders please", True),
        ("opt out", True),
        ("where do I stop my car", False),
        ("the bus stop", False),
        ("I'll stop texting you now", False),
        ("stop", True),
        ("non-stop service?", False),
    ],
)
def test_asking_for_no_more_messages(reader: Reader, text: str, stop: bool) -> None:
    assert means_stop(text) is stop
    assert (reader.read(text, WED).intent == "stop") is stop  # the reading and the gatekeeper agree


@pytest.mark.parametrize(
    ("text", "intent", "ref"),
    [
        ("cancel 55277B", "cancel", "55277B"),
        ("can I cancel #55277b please", "cancel", "55277B"),
        ("move booking 55277B to friday", "reschedule", "55277B"),
        ("move 3f9a1c to friday at 4pm", "reschedule", "3F9A1C"),
        ("cancel booking 552771", "cancel", "552771"),
        ("reschedule 3f9a1c2d-1111-2222-3333-444455556666", "reschedule", "3F9A1C"),
        ("my pin code is 560034", "unknown", None),  # six digits alone are not a reference
        ("cancel decade", "cancel", None),  # hex letters without a digit: a word
        ("book for 2 at 4pm", "book", None),
    ],
)
def test_booking_references(reader: Reader, text: str, intent: str, ref: str | None) -> None:
    reading = reader.read(text, WED)
    assert (reading.intent, reading.entities.get("ref")) == (intent, ref)


def test_a_reference_is_not_read_as_a_time_or_a_name(reader: Reader) -> None:
    reading = reader.read("move 10a130 to friday at 4pm", WED)
    assert (reading.entities["ref"], reading.time, reading.date) == ("10A130", time_of(16, 0), date(2025, 11, 21))


def test_a_window_of_the_day_is_both_limits(reader: Reader) -> None:
    reading = reader.read("a consultation on monday 2-4pm", WED)
    assert (reading.intent, reading.date, reading.time) == ("inform", date(2025, 11, 24), time_of(14, 0))
    assert (reading.entities["time_bound"], reading.entities["time_until"]) == ("between", "16:00")


@pytest.mark.parametrize(
    ("text", "intent", "day"),
    [
        ("I can't make it tomorrow, can we do thursday instead?", "reschedule", date(2025, 11, 20)),
        ("i cant make it tomorrow, is friday at 3 possible?", "reschedule", date(2025, 11, 21)),
        ("I won't make it on Friday, how about Monday afternoon?", "reschedule", date(2025, 11, 24)),
        ("I can't make it tomorrow", "cancel", date(2025, 11, 20)),  # nothing else offered: a cancel
        ("I can't make it tomorrow, sorry", "cancel", date(2025, 11, 20)),
    ],
)
def test_not_coming_with_another_day_is_a_move(reader: Reader, text: str, intent: str, day: date) -> None:
    reading = reader.read(text, WED)
    assert (reading.intent, reading.date) == (intent, day)


def test_every_rule_names_a_known_intent() -> None:
    assert {rule.intent for rules in RULES.values() for rule in rules} <= set(INTENTS)
    assert set(INTENTS) - {"inform", "unknown"} <= {rule.intent for rule in RULES["en"]}


NAME_CASES = [
    ("book a consult with dr mehta", "consultation", "dr-mehta"),
    ("Dr. Mehta please", None, "dr-mehta"),
    ("dr mehtaa", None, "dr-mehta"),  # a typo
    ("dr meta", None, "dr-mehta"),
    ("anjali", None, "dr-mehta"),
    ("with Vikram", None, "dr-rao"),
    ("priya", None, "priya-physio"),
    ("physio", "physiotherapy", None),
    ("consult", "consultation", None),
    ("a follow-up", "follow-up", None),
    ("follow up visit on friday", "follow-up", None),
    ("back care class", "back-care-class", None),
    ("physiotherapy with Priya", "physiotherapy", "priya-physio"),
]


@pytest.mark.parametrize(("text", "service", "staff"), NAME_CASES)
def test_services_and_staff_are_recognised(reader: Reader, text: str, service: str | None, staff: str | None) -> None:
    reading = reader.read(text, WED)
    assert (reading.service, reading.staff) == (service, staff)


NOT_NAMES = [
    "I'd like to book",
    "I'd like to book a general appointment",
    "can I come in for a visit",
    "is the room free",
    "march on",
    "the doctor said so",
    "my name is Priya",  # the customer's own name is not the physiotherapist
    "I'm looking for a salon in Mehsana",
]


@pytest.mark.parametrize("text", NOT_NAMES)
def test_ordinary_words_name_no_one(reader: Reader, text: str) -> None:
    reading = reader.read(text, WED)
    assert (reading.service, reading.staff) == (None, None)


def test_two_equally_good_names_are_candidates_not_a_guess() -> None:
    reader = Reader([], [Named("priya-n", "Priya Nair"), Named("priya-s", "Priya Shah")], timezone="UTC")
    reading = reader.read("with priya", datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("UTC")))
    assert (reading.staff, reading.entities["staff_candidates"]) == (None, ["priya-n", "priya-s"])


def test_aliases() -> None:
    reader = Reader([Named("cut", "Haircut", ("trim",))], [], timezone="UTC")
    assert reader.read("just a trim", WED).service == "cut"
    assert reader.read("a haircut please", WED).service == "cut"


def test_a_place_in_a_name_is_not_the_name() -> None:
    reader = Reader([], [Named("access", "Access Dental - Santa Rosa")], timezone="America/Los_Angeles")
    assert reader.read("find me a dentist in Santa Rosa", WED).staff is None
    assert reader.read("book with access dental santa rosa", WED).staff == "access"


def test_phones(reader: Reader) -> None:
    assert reader.read("call me on 98450 12345", WED).entities["phone"] == "+919845012345"
    assert reader.read("my number is +1 (415) 555-2671", WED).entities["phone"] == "+14155552671"
    reading = reader.read("98450 12345", WED, expect="phone")
    assert (reading.intent, reading.entities) == ("inform", {"phone": "+919845012345"})
    assert "phone" not in reader.read("the 12th at 10:30", WED).entities


def test_phone_digits_are_not_read_as_a_date_or_time(reader: Reader) -> None:
    reading = reader.read("reach me at 9845012345 tomorrow", WED)
    assert (reading.entities["phone"], reading.date, reading.time) == ("+919845012345", date(2025, 11, 20), None)


NAME_INTRO = [
    ("my name is Ravi Kumar", "Ravi Kumar"),
    ("My name is ravi", "Ravi"),
    ("I'm Ravi", "Ravi"),
    ("Hi, this is Anita Shah", "Anita Shah"),
    ("name's Joe", "Joe"),
]


@pytest.mark.parametrize(("text", "name"), NAME_INTRO)
def test_names_introduced(reader: Reader, text: str, name: str) -> None:
    assert reader.read(text, WED).entities["name"] == name


@pytest.mark.parametrize("text", ["I'm looking for a doctor", "this is great", "I'm free tomorrow", "Ravi Kumar"])
def test_no_name_where_none_was_given(reader: Reader, text: str) -> None:
    assert "name" not in reader.read(text, WED).entities


@pytest.mark.parametrize(("text", "name"), [("Ravi Kumar", "Ravi Kumar"), ("ravi kumar", "Ravi Kumar"), ("Li", "Li")])
def test_a_bare_name_when_a_name_was_asked_for(reader: Reader, text: str, name: str) -> None:
    reading = reader.read(text, WED, expect="name")
    assert (reading.intent, reading.entities) == ("inform", {"name": name})


@pytest.mark.parametrize("text", ["cancel", "yes", "tomorrow at 4", "what are your hours"])
def test_not_a_name_even_when_a_name_was_asked_for(reader: Reader, text: str) -> None:
    assert "name" not in reader.read(text, WED, expect="name").entities


def test_option_numbers(reader: Reader) -> None:
    assert reader.read("2", WED).entities == {"number": 2}
    assert reader.read("2", WED).time is None
    assert reader.read("option 3", WED).entities["number"] == 3
    assert reader.read("the second one", WED).entities["number"] == 2
    expected = reader.read("the 2nd", WED, expect="number")
    assert (expected.intent, expected.date, expected.entities) == ("inform", None, {"number": 2})
    assert reader.read("two", WED, expect="number").entities == {"number": 2}


@pytest.mark.parametrize(("text", "rating"), [("5", 5), ("4 stars", 4), ("⭐⭐⭐⭐", 4), ("five", 5), ("3/5", 3)])
def test_ratings_when_asked(reader: Reader, text: str, rating: int) -> None:
    reading = reader.read(text, WED, expect="rating")
    assert (reading.intent, reading.entities) == ("rate", {"rating": rating})


def test_ratings_unasked(reader: Reader) -> None:
    assert reader.read("⭐⭐⭐", WED).entities == {"rating": 3}
    assert reader.read("I'd give you 4 stars", WED).entities == {"rating": 4}
    assert "rating" not in reader.read("5", WED).entities  # a bare digit is an option number


def test_a_bare_hour_when_a_time_was_asked_for(reader: Reader) -> None:
    assert reader.read("4", WED, expect="time").to_json()["time"] == "16:00"
    assert reader.read("10", WED, expect="time").to_json()["time"] == "10:00"


def test_json_shape(reader: Reader) -> None:
    reading = reader.read("book physio with priya next friday at half past four", WED)
    assert reading.to_json() == {
        "intent": "book",
        "date": "2025-11-21",
        "time": "16:30",
        "start": "2025-11-21T16:30:00+05:30",
        "service": "physiotherapy",
        "staff": "priya-physio",
        "entities": {"ambiguous_date": ["2025-11-21", "2025-11-28"]},
    }
    assert json.loads(json.dumps(reading.to_json())) == reading.to_json()


def test_a_weekday_that_is_not_the_dates_is_flagged(reader: Reader) -> None:
    reading = reader.read("book a follow-up on thursday 5 december at 10am", WED)  # the 5th is a Friday
    assert (reading.to_json()["date"], reading.to_json()["time"]) == ("2025-12-05", "10:00")
    assert reading.entities == {"weekday_mismatch": {"said": "thursday", "nearest": "2025-12-04"}}
    gone = reader.read("monday 20 november", WED)  # a Thursday; the nearest Monday has gone
    assert gone.entities == {"weekday_mismatch": {"said": "monday", "nearest": None}}
    assert reader.read("friday 5 december", WED).entities == {}  # they agree


def test_entities_are_json_safe(reader: Reader) -> None:
    reading = reader.read("this weekend in the morning, 3pm EST, or 12/05", WED)
    assert json.loads(json.dumps(reading.entities)) == reading.entities
    assert reading.entities["tz"] == "America/New_York"


def test_start_is_aware_in_the_readers_zone_and_only_with_date_and_time(reader: Reader) -> None:
    start = reader.read("tomorrow at 3pm", WED).start
    assert start == datetime(2025, 11, 20, 15, 0, tzinfo=KOLKATA) and start.utcoffset() is not None
    assert reader.read("3pm", WED).start is None
    assert reader.read("tomorrow", WED).start is None


def test_a_nonexistent_local_time_starts_after_the_gap() -> None:
    reader = Reader([], [], timezone="America/New_York", locale="en-US")
    reading = reader.read("tomorrow at 2:30am", datetime(2026, 3, 7, 20, 0, tzinfo=ZoneInfo("America/New_York")))
    assert reading.to_json()["start"] == "2026-03-08T03:30:00-04:00"
    assert reading.entities["nonexistent_time"] == "02:30"


def test_now_must_be_aware_and_expect_known(reader: Reader) -> None:
    with pytest.raises(ValueError, match="aware"):
        reader.read("hi", datetime(2026, 3, 2, 9, 0))
    with pytest.raises(ValueError, match="expect"):
        reader.read("hi", WED, expect="colour")


def test_reader_for_a_configured_business() -> None:
    business = BusinessSpec.model_validate(
        {
            "slug": "acme",
            "name": "Acme",
            "timezone": "America/New_York",
            "locale": "en-US",
            "phone": "+12125550100",
            "staff": [{"slug": "ann", "name": "Ann Lee"}, {"slug": "room", "name": "Room", "kind": "resource"}],
            "services": [{"slug": "checkup", "name": "Check-up", "duration_minutes": 30, "staff": ["ann", "room"]}],
        }
    )
    reader = reader_for(business)
    now = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    reading = reader.read("check-up with ann on 12/05, call 212 555 0199", now)
    assert (reading.service, reading.staff, reading.date) == ("checkup", "ann", date(2026, 12, 5))
    assert reading.entities["phone"] == "+12125550199"  # a US local number, from the business's own region
    assert reader.read("the room", now).staff is None  # rooms are not people customers ask for


def test_reading_is_fast(reader: Reader) -> None:
    texts = [text for text, _ in INTENT_CASES] * 10
    started = time.perf_counter()
    for text in texts:
        reader.read(text, WED)
    per_message = (time.perf_counter() - started) / len(texts)
    assert per_message < 0.002, f"{per_message * 1e3:.2f} ms a message"
