"""Dates and times in customer messages, at fixed instants chosen for their edges: a Wednesday
morning, a late evening, the last day of a month, and the evening before New York springs forward."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.dialogue.when import When, WhenReader, normalise

KOLKATA = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")

WED = datetime(2025, 11, 19, 10, 0, tzinfo=KOLKATA)  # Wednesday morning
LATE = datetime(2025, 11, 19, 22, 30, tzinfo=KOLKATA)  # the same Wednesday, late evening
MONTH_END = datetime(2026, 1, 31, 12, 0, tzinfo=LONDON)  # Saturday 31 January
DST_EVE = datetime(2026, 3, 7, 20, 0, tzinfo=NEW_YORK)  # Saturday; clocks skip 02:00-03:00 on Sunday 8 March


@pytest.fixture(scope="module")
def india() -> WhenReader:
    return WhenReader("Asia/Kolkata", "en-IN")


@pytest.fixture(scope="module")
def uk() -> WhenReader:
    return WhenReader("Europe/London", "en-GB")


@pytest.fixture(scope="module")
def us() -> WhenReader:
    return WhenReader("America/New_York", "en-US")


def d(text: str) -> date:
    return date.fromisoformat(text)


def t(text: str) -> time:
    return time.fromisoformat(text)


# (phrase, date, time) on Wednesday 2025-11-19 10:00 in Kolkata.
WEDNESDAY_MORNING = [
    ("tomorrow at 3pm", "2025-11-20", "15:00"),
    ("tmrw 3pm", "2025-11-20", "15:00"),
    ("day after tmrw", "2025-11-21", None),
    ("tomorrow at 3", "2025-11-20", "15:00"),
    ("at 4", None, "16:00"),
    ("book me in at 4 tomorrow", "2025-11-20", "16:00"),
    ("at 9", None, "09:00"),
    ("at 12", None, "12:00"),
    ("3pm", None, "15:00"),
    ("noon", None, "12:00"),
    ("around noon on friday", "2025-11-21", "12:00"),
    ("midnight", None, "00:00"),
    ("half past four", None, "16:30"),
    ("half past 4", None, "16:30"),
    ("quarter past 5 in the evening", None, "17:15"),
    ("quarter to 5", None, "16:45"),
    ("quarter to 12 in the morning", None, "11:45"),
    ("quarter to 1", None, "12:45"),
    ("ten to five", None, "16:50"),
    ("four thirty pm", None, "16:30"),
    ("evening 4:45", None, "16:45"),
    ("afternoon 2:15", None, "14:15"),
    ("evening 4", None, "16:00"),
    ("morning 10", None, "10:00"),
    ("11 o'clock in the morning", None, "11:00"),
    ('11 o"clock in the morning', None, "11:00"),
    ("3 o'clock", None, "15:00"),
    ("12:30 in the afternoon", None, "12:30"),
    ("16:30", None, "16:30"),
    ("09:30", None, "09:30"),
    ("4:30", None, "16:30"),
    ("this evening at 8", "2025-11-19", "20:00"),
    ("Saturday morning at 7", "2025-11-22", "07:00"),
    ("tonight at 8", "2025-11-19", "20:00"),
    ("the 5th at 10:30", "2025-12-05", "10:30"),
    ("the 25th", "2025-11-25", None),
    ("the 19th", "2025-11-19", None),
    ("5th of next month", "2025-12-05", None),
    ("monday", "2025-11-24", None),
    ("wednesday", "2025-11-19", None),
    ("wednesday at 9am", "2025-11-26", "09:00"),
    ("wednesday at 11am", "2025-11-19", "11:00"),
    ("coming tuesday", "2025-11-25", None),
    ("this saturday at 10", "2025-11-22", "10:00"),
    ("Saturday this week", "2025-11-22", None),
    ("Monday next week", "2025-11-24", None),
    ("next week monday", "2025-11-24", None),
    ("Friday next week", "2025-11-28", None),
    ("tuesday after next", "2025-12-02", None),
    ("a week from today", "2025-11-26", None),
    ("in 3 days", "2025-11-22", None),
    ("in 2 hours", "2025-11-19", "12:00"),
    ("in 30 minutes", "2025-11-19", "10:30"),
    ("end of the month", "2025-11-30", None),
    ("last day of the month", "2025-11-30", None),
    ("dec 3", "2025-12-03", None),
    ("3rd december at 11am", "2025-12-03", "11:00"),
    ("1 jan", "2026-01-01", None),
    ("november 10", "2026-11-10", None),
    ("on the fifth", "2025-12-05", None),
    ("25/12", "2025-12-25", None),
    ("20.11", "2025-11-20", None),
    ("2026-02-14 at 10am", "2026-02-14", "10:00"),
]


@pytest.mark.parametrize(("phrase", "day", "clock"), WEDNESDAY_MORNING)
def test_phrases_on_a_wednesday_morning(india: WhenReader, phrase: str, day: str | None, clock: str | None) -> None:
    when = india.read(phrase, WED)
    assert (when.date, when.time) == (d(day) if day else None, t(clock) if clock else None)


def test_next_friday_said_on_a_wednesday_is_this_weeks_and_flagged(india: WhenReader) -> None:
    when = india.read("next friday", WED)
    assert when.date == d("2025-11-21")
    assert when.alternatives == (d("2025-11-21"), d("2025-11-28"))


def test_next_friday_said_on_a_saturday_is_not_ambiguous(us: WhenReader) -> None:
    when = us.read("next friday", DST_EVE)
    assert (when.date, when.alternatives) == (d("2026-03-13"), ())


WEEKDAY_WITH_DATE = [
    # (phrase, date, weekday written when it is not the date's, the nearest day of that weekday)
    ("friday 5 december", "2025-12-05", None, None),  # they agree: the date, not this Friday (21 Nov)
    ("fri 5/12 at 10am", "2025-12-05", None, None),
    ("thursday 5 december", "2025-12-05", 3, "2025-12-04"),  # 5 December is a Friday
    ("5 december, thursday", "2025-12-05", 3, "2025-12-04"),
    ("thursday the 5th at 10am", "2025-12-05", 3, "2025-12-04"),
    ("sunday 5 december", "2025-12-05", 6, "2025-12-07"),  # the nearest Sunday is after it
    ("monday 20 november", "2025-11-20", 0, None),  # the nearest Monday (17 Nov) has gone
    ("not thursday, 5 december", "2025-12-05", None, None),  # a weekday turned down says nothing
    ("thursday or 5 december", "2025-11-20", None, None),  # two days, not one
]


@pytest.mark.parametrize(("phrase", "day", "said", "nearest"), WEEKDAY_WITH_DATE)
def test_a_weekday_with_a_date_is_checked_against_it(
    india: WhenReader, phrase: str, day: str, said: int | None, nearest: str | None
) -> None:
    when = india.read(phrase, WED)
    assert (when.date, when.weekday_said, when.weekday_nearest) == (d(day), said, d(nearest) if nearest else None)


def test_ranges(india: WhenReader) -> None:
    assert india.read("this weekend", WED).date_range == (d("2025-11-22"), d("2025-11-23"))
    assert india.read("this weekend", WED).date is None
    assert india.read("next week", WED).date_range == (d("2025-11-24"), d("2025-11-30"))
    assert india.read("next month", WED).date_range == (d("2025-12-01"), d("2025-12-31"))
    assert india.read("this week", WED).date_range == (d("2025-11-19"), d("2025-11-23"))


def test_parts_of_day_alone_are_not_times(india: WhenReader) -> None:
    when = india.read("tomorrow morning", WED)
    assert (when.date, when.time, when.part_of_day) == (d("2025-11-20"), None, "morning")
    assert india.read("tonight", WED).part_of_day == "evening"
    assert india.read("next friday afternoon", WED).part_of_day == "afternoon"


def test_a_greeting_is_not_a_part_of_day(india: WhenReader) -> None:
    when = india.read("Good morning, can I come at 4?", WED)
    assert (when.time, when.part_of_day) == (t("16:00"), None)


def test_time_limits_are_marked(india: WhenReader) -> None:
    when = india.read("anything after 5pm", WED)
    assert (when.time, when.bound) == (t("17:00"), "after")


WINDOWS = [
    ("between 2 and 4pm", None, "14:00", "16:00"),
    ("2-4pm", None, "14:00", "16:00"),
    ("2–4pm", None, "14:00", "16:00"),  # an en dash
    ("from 2 to 4 pm", None, "14:00", "16:00"),
    ("2pm to 4pm", None, "14:00", "16:00"),
    ("2 to 4pm", None, "14:00", "16:00"),
    ("from 2:30 till 4", None, "14:30", "16:00"),
    ("14:00-16:00", None, "14:00", "16:00"),
    ("between 8 and 10pm", None, "20:00", "22:00"),  # pm said once counts for both
    ("11-1pm", None, "11:00", "13:00"),
    ("from 11am to 2", None, "11:00", "14:00"),
    ("from 9 to 5", None, "09:00", "17:00"),
    ("between noon and 2", None, "12:00", "14:00"),
    ("between 9 and 11 in the morning", None, "09:00", "11:00"),
    ("a follow-up on friday 2-4pm", "2025-11-21", "14:00", "16:00"),  # "follow-up" keeps "2-4pm" whole
    ("between 2 and 4pm tomorrow", "2025-11-20", "14:00", "16:00"),
]


@pytest.mark.parametrize(("phrase", "day", "start", "end"), WINDOWS)
def test_windows_of_the_day(india: WhenReader, phrase: str, day: str | None, start: str, end: str) -> None:
    when = india.read(phrase, WED)
    assert (when.date, when.time, when.until, when.bound) == (d(day) if day else None, t(start), t(end), "between")


@pytest.mark.parametrize(
    ("phrase", "clock"),
    [
        ("move my booking from 3 to 4pm", "16:00"),  # from the old time to the new one
        ("ten to five", "16:50"),
        ("10 to 5pm", "16:50"),
        ("2-4", None),  # a date, as before
        ("between 2 and 3 weeks", None),
        ("2 to 3 people at 4", "16:00"),
    ],
)
def test_not_windows(india: WhenReader, phrase: str, clock: str | None) -> None:
    when = india.read(phrase, WED)
    assert (when.time, when.until, when.bound) == (t(clock) if clock else None, None, None)


def test_a_rejected_date_or_time_gives_way_to_the_wanted_one(india: WhenReader) -> None:
    assert india.read("not friday, saturday", WED).date == d("2025-11-22")
    assert india.read("I can't go on thursday. Make it this Sunday.", WED).date == d("2025-11-23")
    assert india.read("not today. Make it next Thursday", WED).date == d("2025-11-20")
    assert india.read("3pm doesn't work, how about 5pm", WED).time == t("17:00")


# Late on the same Wednesday (22:30): what is left of today, and what has gone.
def test_late_evening(india: WhenReader) -> None:
    assert india.read("tomorrow", LATE).date == d("2025-11-20")
    assert india.read("wednesday", LATE).date == d("2025-11-19")  # no time: today still counts
    assert india.read("wednesday at 9pm", LATE).date == d("2025-11-26")  # 21:00 has gone
    assert india.read("wednesday at 11pm", LATE).date == d("2025-11-19")
    assert (india.read("in 2 hours", LATE).date, india.read("in 2 hours", LATE).time) == (d("2025-11-20"), t("00:30"))
    when = india.read("today at 9pm", LATE)  # said explicitly: kept, the bot says it has passed
    assert (when.date, when.time) == (d("2025-11-19"), t("21:00"))
    assert india.read("tonight at 11", LATE).time == t("23:00")


# Saturday 31 January 2026, noon, in London (day-first locale).
MONTH_END_CASES = [
    ("the 5th", "2026-02-05"),
    ("the 31st", "2026-01-31"),
    ("the 30th", "2026-03-30"),  # February has no 30th
    ("end of the month", "2026-01-31"),
    ("end of next month", "2026-02-28"),
    ("start of next month", "2026-02-01"),
    ("saturday", "2026-01-31"),
    ("sunday this week", "2026-02-01"),
    ("monday next week", "2026-02-02"),
    ("a week from tomorrow", "2026-02-08"),
    ("jan 31st", "2026-01-31"),
    ("Jan 30", "2027-01-30"),
    ("31/1", "2026-01-31"),
    ("25/12", "2026-12-25"),
    ("12/25", "2026-12-25"),  # only one reading is a date
]


@pytest.mark.parametrize(("phrase", "day"), MONTH_END_CASES)
def test_month_end(uk: WhenReader, phrase: str, day: str) -> None:
    assert uk.read(phrase, MONTH_END).date == d(day)


def test_month_end_ranges(uk: WhenReader) -> None:
    assert uk.read("this weekend", MONTH_END).date_range == (d("2026-01-31"), d("2026-02-01"))
    assert uk.read("next weekend", MONTH_END).date_range == (d("2026-02-07"), d("2026-02-08"))
    assert uk.read("this month", MONTH_END).date_range == (d("2026-01-31"), d("2026-01-31"))


def test_numeric_dates_follow_the_locale_and_ambiguous_ones_are_flagged(uk: WhenReader, us: WhenReader) -> None:
    day_first = uk.read("3/4", MONTH_END)
    assert (day_first.date, day_first.alternatives) == (d("2026-04-03"), (d("2026-04-03"), d("2026-03-04")))
    month_first = us.read("12/05", DST_EVE)
    assert (month_first.date, month_first.alternatives) == (d("2026-12-05"), (d("2026-12-05"), d("2026-05-12")))
    assert us.read("12/25", DST_EVE).alternatives == ()
    assert us.read("5/5", DST_EVE).alternatives == ()  # both readings are the same day


@pytest.mark.parametrize(
    ("phrase", "day", "rolled"),
    [
        ("march 3", "2026-03-03", True),  # gone this year (Wednesday 19 November 2025): next year's
        ("3 march", "2026-03-03", True),
        ("3/3", "2026-03-03", True),
        ("nov 10", "2026-11-10", True),
        ("nov 19", "2025-11-19", False),  # today
        ("dec 3", "2025-12-03", False),
        ("3 march 2026", "2026-03-03", False),  # the year was said
        ("the 5th", "2025-12-05", False),  # a day alone rolls a month, not a year
    ],
)
def test_a_day_and_month_gone_this_year_is_next_years_and_flagged(
    india: WhenReader, phrase: str, day: str, rolled: bool
) -> None:
    when = india.read(phrase, WED)
    assert (when.date, when.rolled) == (d(day), rolled)


def test_a_dated_day_that_has_gone_is_reported_not_read(uk: WhenReader) -> None:
    when = uk.read("05/06/2020", MONTH_END)
    assert (when.date, when.past) == (None, d("2020-06-05"))


# The evening before New York springs forward (02:00 → 03:00 on Sunday 8 March 2026).
def test_a_time_the_clocks_skip_moves_forward_and_says_so(us: WhenReader) -> None:
    when = us.read("tomorrow at 2:30am", DST_EVE)
    assert (when.date, when.time, when.nonexistent) == (d("2026-03-08"), t("03:30"), t("02:30"))
    assert us.read("tomorrow at 1:30am", DST_EVE).nonexistent is None


TIME_ZONES = [
    ("3pm EST", "America/New_York", "2026-03-08", "15:00"),
    ("3pm London time", "Europe/London", "2026-03-08", "11:00"),  # 15:00 GMT, after New York moved to EDT
    ("tomorrow 3pm london time", "Europe/London", "2026-03-09", "11:00"),
    ("4pm pst", "America/Los_Angeles", "2026-03-08", "19:00"),
    ("9am IST", "Asia/Kolkata", "2026-03-07", "22:30"),
    ("3pm Tokyo time", "Asia/Tokyo", "2026-03-08", "01:00"),
]


@pytest.mark.parametrize(("phrase", "zone", "day", "clock"), TIME_ZONES)
def test_times_in_another_zone_are_converted(us: WhenReader, phrase: str, zone: str, day: str, clock: str) -> None:
    when = us.read(phrase, DST_EVE)
    assert (when.zone, when.date, when.time) == (zone, d(day), t(clock))


def test_4pm_london_time_for_a_business_in_india(india: WhenReader) -> None:
    when = india.read("4pm London time", WED)
    assert (when.zone, when.date, when.time) == ("Europe/London", d("2025-11-19"), t("21:30"))


NOT_DATES = [
    "may I have a slot",
    "march on",
    "wait a second",
    "the second one",
    "on second thought",
    "I'd like to book",
    "2 people",
    "it costs $4.50",
    "are you open 24/7",
    "I want a salon in SF",
    "the 5th may be fine",
]


@pytest.mark.parametrize("phrase", NOT_DATES)
def test_words_that_are_not_dates_or_times(india: WhenReader, phrase: str) -> None:
    when = india.read(phrase, WED)
    assert (when.date, when.time, when.date_range) == (None, None, None) or phrase == "the 5th may be fine"
    if phrase == "the 5th may be fine":  # "may" is a verb here: the 5th is December's, not May's
        assert when.date == d("2025-12-05")


def test_may_with_a_day_is_a_date(india: WhenReader) -> None:
    assert india.read("may 5", WED).date == d("2026-05-05")
    assert india.read("may I have a slot on monday morning", WED).date == d("2025-11-24")


def test_normaliser() -> None:
    assert normalise("Tmrw @ 4 P.M.!") == "tomorrow @ 4 pm"
    assert normalise("three in the afternoon") == "3 in the afternoon"
    assert normalise("this one") == "this one"
    assert normalise('11 o"clock') == "11 o'clock"


def test_other_languages_go_to_dateparser() -> None:
    french = WhenReader("Europe/Paris", "fr")
    now = datetime(2026, 3, 4, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert french.read("demain à 15h", now) == When(date=d("2026-03-05"), time=t("15:00"))
    assert french.read("le 10 mars", now).date == d("2026-03-10")
