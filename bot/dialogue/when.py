"""Dates and times in one customer message, resolved against ``now`` in the business's zone.

Chat customers write "tmrw at 4", "half past 3 in the afternoon", "Monday next week", "evening
4:45" or "3pm EST"; dateparser alone misreads or misses most of these (dialogue.md §5). So a small
grammar of our own reads the phrases a booking chat uses, with the rules a front desk needs:

* bare hours follow business hours: 1–7 are pm, 8–11 am, 12 noon ("at 4" → 16:00), unless am/pm
  or a part of the day ("morning", "evening") says otherwise;
* a date is never in the past: a weekday is its next occurrence (today counts while the time
  asked for is still ahead), "the 5th" rolls to next month once the 5th has gone, a month and
  day without a year roll to next year;
* a weekday written with a date ("Friday 20 March") is checked against it: the date stands, and a
  weekday it is not is flagged with that weekday's day nearest the date, so the bot can ask;
* numeric dates follow the locale (en-US month first, everyone else day first); one that reads
  both ways is returned with its alternative so the bot can confirm it;
* a time given in another zone ("4pm London time") is converted to the business zone.

dateparser, restricted to the locale's language and given a naive wall-clock ``RELATIVE_BASE`` in
the business zone ("config B": its ``TIMEZONE`` setting compares in UTC and pushes times to the
wrong day), reads what the grammar does not know — mostly other languages.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale, UnknownLocaleError
from dateparser.date import DateDataParser


def _split(words: str) -> list[str]:
    return words.split()


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

MONTHS_EN: Mapping[str, int] = {
    **{name.lower(): i for i, name in enumerate(calendar.month_name) if name},
    **{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9},
    **{"oct": 10, "nov": 11, "dec": 12},
}

# Spellings customers use for the words the grammar knows.
ABBREVIATIONS: Mapping[str, str] = {
    **dict.fromkeys(("tmrw", "tmr", "tmrow", "tmw", "tomo", "2moro", "2morrow", "2mrw", "tomoz"), "tomorrow"),
    **dict.fromkeys(("tomorow", "tommorow", "tommorrow", "tomorrw", "tomorroww", "tomoro"), "tomorrow"),
    **{"tdy": "today", "2day": "today", "tonite": "tonight", "2nite": "tonight", "nxt": "next"},
    **{"wk": "week", "wknd": "weekend", "wkend": "weekend", "w/e": "weekend", "mrng": "morning", "eve": "evening"},
    **{"hrs": "hours", "hr": "hour", "mins": "minutes", "aft": "afternoon", "arvo": "afternoon"},
    **{"mon": "monday", "tues": "tuesday", "tue": "tuesday", "weds": "wednesday", "thur": "thursday"},
    **{"thurs": "thursday", "thu": "thursday", "fri": "friday"},
}
# Short weekday forms that are also ordinary words: only read as weekdays next to a date word.
CONTEXT_WEEKDAYS: Mapping[str, str] = {"sat": "saturday", "sun": "sunday", "wed": "wednesday"}

CARDINALS: Mapping[str, int] = {
    w: i + 1
    for i, w in enumerate(
        _split(
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty"
        )
    )
}
MINUTE_WORDS: Mapping[str, int] = {
    "oh five": 5,
    "o five": 5,
    "fifteen": 15,
    "twenty": 20,
    "twenty five": 25,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "forty five": 45,
    "fourty five": 45,
    "fifty": 50,
}
ORDINALS: Mapping[str, int] = {
    w: i + 1
    for i, w in enumerate(
        _split(
            "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
            "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
        )
    )
}
ORDINALS = {
    **ORDINALS,
    **{f"twenty {w}": 20 + n for w, n in ORDINALS.items() if n < 10},
    "thirtieth": 30,
    "thirty first": 31,
}

PARTS_OF_DAY: Mapping[str, str] = {
    "morning": "morning",
    "afternoon": "afternoon",
    "evening": "evening",
    "night": "night",
    "tonight": "evening",
}

# Zone names customers put after a time. Cities come from the tz database ("London time").
ZONE_ABBREVIATIONS: Mapping[str, str] = {
    **dict.fromkeys(("est", "edt", "et", "eastern"), "America/New_York"),
    **dict.fromkeys(("cst", "cdt", "ct", "central"), "America/Chicago"),
    **dict.fromkeys(("mst", "mdt", "mt", "mountain"), "America/Denver"),
    **dict.fromkeys(("pst", "pdt", "pt", "pacific"), "America/Los_Angeles"),
    **dict.fromkeys(("gmt", "utc", "zulu"), "UTC"),
    **dict.fromkeys(("bst", "uk", "british"), "Europe/London"),
    **dict.fromkeys(("ist", "india", "indian"), "Asia/Kolkata"),
    **dict.fromkeys(("cet", "cest"), "Europe/Paris"),
    **dict.fromkeys(("aest", "aedt"), "Australia/Sydney"),
    **{"jst": "Asia/Tokyo", "sgt": "Asia/Singapore", "hkt": "Asia/Hong_Kong", "gst": "Asia/Dubai"},
}

# Words near a date or time that say the customer does *not* want it: "not Friday", "I can't go on
# Thursday", "from 3 to 4", "Thursday doesn't work". Used only to choose between several mentioned;
# a turn of phrase after the negation ("not today, make it Friday") ends its reach.
NEGATED_BEFORE = re.compile(
    r"\b(?:not|can'?t|cannot|don'?t|won'?t|isn'?t|doesn'?t|no\s+longer|instead\s+of|rather\s+than|other\s+than|except"
    r"|from|unavailable|busy)\b(?P<gap>(?:\s+[\w':]+){0,3})\s*$"
)
NEGATED_AFTER = re.compile(
    r"^\s*(?:[\w']+\s+){0,2}(?:doesn'?t|does\s+not|won'?t|will\s+not|isn'?t|is\s+not|is\s+no|no\s+longer|not)"
    r"\s+(?:work|suit|do|possible|good|okay|ok|available|fine)\b|^\s*is\s+(?:bad|out|full|busy|taken)\b"
)
# "I can't make it tomorrow": "make" is a turn word ("not today, make it Friday") but not after this.
NOT_COMING = re.compile(
    r"\b(?:can'?t|cannot|couldn'?t|won'?t(?:\s+be\s+able\s+to)?)\s+make\s+it(?:\s+(?:on|at|for))?\s*$"
)
TURN_WORDS = frozenset(
    _split("make how what but instead try change prefer rather book let's lets maybe perhaps so then can could would")
)


def negated(s: str, start: int, end: int, floor: int = 0) -> bool:
    """Whether the words around ``s[start:end]`` (after ``floor``, the previous mention) reject it."""
    if NOT_COMING.search(s[floor:start]):
        return True
    before = NEGATED_BEFORE.search(s[floor:start])
    if before and not TURN_WORDS.intersection(before.group("gap").split()):
        return True
    return bool(NEGATED_AFTER.match(s[end:]))


GREETINGS = re.compile(r"\bgood\s+(?:morning|afternoon|evening|night|day)\b")


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation that tries longer words first ("tuesday" before "tue")."""
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_WD = _alternation(WEEKDAYS)
_POD = "morning|afternoon|evening|night|tonight"
_UNIT_AFTER = (
    r"%|people|persons?|guests?|kids?|adults?|days?|weeks?|months?|years?|hours?|hrs?|minutes?|mins?|"
    r"stars?|of\s+us|slots?|times|dollars?|rupees?|euros?|pounds?|bucks|k\b"
)

# ---------------------------------------------------------------------------------------------
# Normaliser: one spelling for each thing, so the grammar below stays small.

_PUNCT = re.compile(r"[^\w\s:/.\-'@#+]")
_SENTENCE_DOT = re.compile(r"(?<!\d)\.|\.(?!\d)")
_OCLOCK = re.compile(r"\s*o\s*['\"`’]?\s*clock\b")
_AMPM = re.compile(r"\b([ap])\.\s?m\b\.?")
_ISH = re.compile(r"\b(\d{1,2}(?::\d\d)?(?:\s*[ap]m)?)\s*-?ish\b")
_ABBREV = re.compile(rf"(?<![\w'])(?:{_alternation(ABBREVIATIONS)})(?![\w'])")
_CONTEXT_WD = re.compile(
    rf"(?:(?<=\bnext )|(?<=\bthis )|(?<=\bon )|(?<=\bcoming )|(?<=\bby ))(?:{_alternation(CONTEXT_WEEKDAYS)})\b"
    rf"|\b(?:{_alternation(CONTEXT_WEEKDAYS)})(?=\s+(?:at|morning|afternoon|evening|night|next|this|\d))"
)
_MINUTES_AFTER = re.compile(
    rf"\b(?P<h>{_alternation(list(CARDINALS)[:12])}|\d{{1,2}})[\s-]+(?P<m>{_alternation(MINUTE_WORDS)})\b"
    r"(?=\s*(?:[ap]m\b|o'clock|in\s+the|at\s+night|tonight|this|today|tomorrow|on\b|please|$|[.,!?]))"
)
_DIGIT_MINUTES = re.compile(r"\b(\d{1,2})\s+([0-5]\d)\s*([ap]m)\b")
_HOUR_WORD = re.compile(rf"\b(?:{_alternation(list(CARDINALS)[:12])})\b")
_HOUR_CONTEXT_BEFORE = re.compile(
    rf"(?:\b(?:at|around|about|@|past|after|to|till|til|until|by|half|quarter|{_POD})\s*)$"
)
_HOUR_CONTEXT_AFTER = re.compile(r"^\s*(?:[ap]m\b|o'clock|in\s+the\b|at\s+night|tonight|this\s+|past\b|to\b|ish\b)")
_ORDINAL_WORD = re.compile(rf"\b(?P<o>{_alternation(ORDINALS)})\b")
_ORDINAL_CONTEXT = re.compile(r"(?:\b(?:on|the|for|by|until|till|before|after|from)\s+)$")
_NOT_A_DAY_AFTER = re.compile(
    r"^\s+(?:one|option|choice|slot|time|person|floor|place|thing|thought|opinion|look|chance|hand|half|of\s+them"
    r"|in\s+line)\b"
)
_SPACES = re.compile(r"\s+")
_WORD_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")


def normalise(text: str) -> str:
    """Lower-case, one spelling per word ("tmrw" → "tomorrow", "four thirty pm" → "4:30 pm")."""
    s = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("‘", "'").replace("–", "-")
    s = _OCLOCK.sub(" o'clock", s)
    s = _AMPM.sub(r"\1m", s)
    s = _PUNCT.sub(" ", s.replace("w/e", " weekend "))
    s = _SENTENCE_DOT.sub(" ", s)
    s = _ABBREV.sub(lambda m: ABBREVIATIONS[m.group(0)], s)
    s = _CONTEXT_WD.sub(lambda m: CONTEXT_WEEKDAYS[m.group(0)], s)
    s = _WORD_HYPHEN.sub(" ", s)  # "follow-up" → "follow up"; "2-4pm" and "2026-02-14" stay
    s = _SPACES.sub(" ", s).strip()
    s = _MINUTES_AFTER.sub(_minutes_after, s)
    s = _DIGIT_MINUTES.sub(r"\1:\2 \3", s)
    s = _HOUR_WORD.sub(lambda m: _hour_word(m, s), s)
    s = _ORDINAL_WORD.sub(lambda m: _ordinal_word(m, s), s)
    s = _ISH.sub(r"\1", s)
    return s


def _minutes_after(m: re.Match[str]) -> str:
    hour = m.group("h")
    h = int(hour) if hour.isdigit() else CARDINALS[hour]
    return f"{h}:{MINUTE_WORDS[m.group('m').replace('-', ' ')]:02d}"


def _hour_word(m: re.Match[str], s: str) -> str:
    """A number word becomes digits only where it reads as an hour ("at five", "three pm")."""
    before, after = s[: m.start()], s[m.end() :]
    if _HOUR_CONTEXT_BEFORE.search(before) or _HOUR_CONTEXT_AFTER.match(after):
        return str(CARDINALS[m.group(0)])
    return m.group(0)


def _ordinal_word(m: re.Match[str], s: str) -> str:
    """An ordinal word becomes "5th" only where it names a day ("on the fifth", "third of March")."""
    n = ORDINALS[m.group("o")]
    before, after = s[: m.start()], s[m.end() :]
    if _NOT_A_DAY_AFTER.match(after):
        return m.group(0)
    if _ORDINAL_CONTEXT.search(before) or re.match(rf"^\s+of\s+(?:this|next|the|{_alternation(MONTHS_EN)})\b", after):
        suffix = "st" if n in (1, 21, 31) else "nd" if n in (2, 22) else "rd" if n in (3, 23) else "th"
        return f"{n}{suffix}"
    return m.group(0)


# ---------------------------------------------------------------------------------------------
# Times.

_TIME = re.compile(
    rf"""
    (?:(?P<pod1>{_POD})\s+(?:at\s+|around\s+|about\s+)?
      |(?P<prep>\bat|\baround|\babout|@|\bby|\bafter|\bbefore|\buntil|\btill|\bno\s+later\s+than)\s+
       (?:around\s+|about\s+|approximately\s+)?)?
    (?:
        (?P<rm>half|quarter|5|10|20|25|[0-5]?\d\s+minutes?)\s+(?P<rdir>past|after|to|till|til|of)\s+(?P<rh>\d{{1,2}})
      | (?P<hh>\d{{1,2}})(?P<sep>[:.])(?P<mm>[0-5]\d)
      | half\s+(?P<bh>\d{{1,2}})
      | (?P<h>\d{{1,2}})(?!\s*(?:{_UNIT_AFTER})\b)
    )
    (?![\d/:]|\.\d|(?:st|nd|rd|th)\b)
    (?P<oc>\s*o'clock)?
    (?:\s*(?P<ap>[ap]m)\b)?
    (?P<pod2>\s+(?:in\s+the\s+|this\s+|at\s+)?(?:morning|afternoon|evening|night)\b)?
    """,
    re.X,
)
_NOON = re.compile(r"(?:\b(?:at|around|about|by)\s+)?\b(?:12\s+)?(?P<w>noon|midday|midnight)\b")
_POD_ANYWHERE = re.compile(rf"\b(?:{_POD})\b")
_ZONE_AFTER = re.compile(
    rf"^\s*\(?\s*(?:in\s+)?(?:(?P<abbr>{_alternation(ZONE_ABBREVIATIONS)})\b(?:\s+(?:standard\s+|daylight\s+)?time\b)?"
    r"|(?P<city>[a-z]+(?:\s[a-z]+){0,2}?)\s+time\b)\)?"
)
_IN_HOURS = re.compile(
    r"\bin\s+(?:(?P<n>\d{1,3}|an?|one|two|three|four|five|six|ten|fifteen|twenty|thirty|forty five)"
    r"\s+(?P<u>hours?|minutes?)|(?P<half>half\s+an?\s+hour))\b"
)
_NUMBER_WORDS_SMALL: Mapping[str, int] = {"a": 1, "an": 1, "forty five": 45, **CARDINALS, "thirty": 30}


@dataclass(frozen=True, slots=True)
class _Clock:
    """One time of day the customer wrote, before it meets a date."""

    hour: int
    minute: int
    start: int
    end: int
    pod: str | None = None
    bound: str | None = None
    zone: str | None = None
    until: tuple[int, int] | None = None  # the end of a window ("between 2 and 4pm"): bound is "between"


def _hour_of_day(h: int, ap: str | None, pod: str | None, twenty_four: bool) -> int | None:
    """The hour on a 24-hour clock: am/pm, else the part of the day, else business hours."""
    if h > 23:
        return None
    if ap:
        if h == 0 or h > 12:
            return None
        return h % 12 + (12 if ap == "pm" else 0)
    if twenty_four or h == 0 or h > 12:
        return h
    if pod == "morning":
        return h
    if pod in ("afternoon", "evening"):
        return h if h == 12 else h + 12
    if pod == "night":
        return 0 if h == 12 else (h + 12 if h >= 5 else h)
    return h + 12 if 1 <= h <= 7 else h  # business hours: nobody books 4am


# ---------------------------------------------------------------------------------------------
# Dates.


@dataclass(frozen=True, slots=True)
class When:
    """What one message says about when: every field is optional."""

    date: dt.date | None = None
    time: dt.time | None = None
    date_range: tuple[dt.date, dt.date] | None = None
    part_of_day: str | None = None
    alternatives: tuple[dt.date, ...] = ()  # an ambiguous date: the chosen reading first, then the others
    zone: str | None = None  # a time zone the customer named
    bound: str | None = None  # "after" / "before" / "by" / "between" when the time is a limit, not a wish
    until: dt.time | None = None  # with "between": the end of the window, ``time`` its start
    past: dt.date | None = None  # a date the customer named that has already gone
    rolled: bool = False  # a day and month without a year that has passed this year: ``date`` is a later year's
    # A weekday written with a date it is not ("Friday 20 March", the 20th a Saturday): ``date`` is the
    # date as written, ``weekday_said`` the weekday written (0 = Monday) and ``weekday_nearest`` the
    # day of that weekday nearest the date, unless it has gone.
    weekday_said: int | None = None
    weekday_nearest: dt.date | None = None
    nonexistent: dt.time | None = None  # a wall-clock time the clocks skip that day (moved forward)
    spans: tuple[tuple[int, int], ...] = field(default=())  # in the normalised text

    @property
    def empty(self) -> bool:
        return self.date is None and self.time is None and self.date_range is None and self.part_of_day is None


@dataclass(frozen=True, slots=True)
class _Day:
    start: int
    end: int
    day: date | None = None
    span: tuple[date, date] | None = None
    alternatives: tuple[date, ...] = ()
    past: date | None = None
    clock: tuple[int, int] | None = None  # "in 2 hours" carries a time too
    rolled: bool = False  # no year was given and this year's has passed
    weekday: int | None = None  # the weekday written ("Friday"), 0 = Monday
    dated: bool = False  # a calendar date ("20 March", "3/20", "the 20th"), not a weekday or "tomorrow"


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _add_months(d: date, n: int) -> tuple[int, int]:
    index = d.year * 12 + d.month - 1 + n
    return index // 12, index % 12 + 1


def _next_month_day(today: date, day: int, month_offset: int = 0) -> date | None:
    """The ``day`` of this month (or ``month_offset`` months on), rolling forward while it is past."""
    for step in range(month_offset, month_offset + 13):
        year, month = _add_months(today, step)
        if day <= calendar.monthrange(year, month)[1]:
            candidate = date(year, month, day)
            if candidate >= today:
                return candidate
    return None


def _month_day(today: date, month: int, day: int, year: int | None) -> tuple[date | None, date | None]:
    """(date, past): without a year the next such day; with a year that has gone, ``past``."""
    if year is not None:
        year = year + 2000 if year < 100 else year
        try:
            d = date(year, month, day)
        except ValueError:
            return None, None
        return (d, None) if d >= today else (None, d)
    for y in range(today.year, today.year + 9):
        try:
            d = date(y, month, day)
        except ValueError:
            continue
        if d >= today:
            return d, None
    return None, None


class WhenReader:
    """Reads dates and times for one business zone and locale; build once, call per message."""

    def __init__(self, timezone: str, locale: str = "en") -> None:
        self.zone = ZoneInfo(timezone)
        tag = locale.replace("-", "_")
        try:
            parsed = Locale.parse(tag)
        except (ValueError, UnknownLocaleError):
            parsed = Locale("en")
        self.language = parsed.language or "en"
        self.month_first = parsed.territory in ("US", "PH", "FM", "MH", "PW", "AS", "GU", "MP", "PR", "VI", "UM")
        months = dict(MONTHS_EN)
        if self.language != "en":
            for width in ("wide", "abbreviated"):
                for number, name in parsed.months["format"][width].items():
                    months.setdefault(unicodedata.normalize("NFKC", str(name)).lower().rstrip("."), int(number))
        self.months: Mapping[str, int] = months
        self._patterns = _date_patterns(_alternation(months))
        self._fallback: tuple[datetime, DateDataParser] | None = None
        self._fallback_parser(datetime(2000, 1, 3, 12, 0)).get_date_data("tomorrow")  # load language data now

    # -- public -----------------------------------------------------------------------------

    def read(self, text: str, now: datetime, *, normalised: bool = False) -> When:
        """Everything ``text`` says about when, relative to the aware instant ``now``."""
        s = text if normalised else normalise(text)
        work = GREETINGS.sub(lambda m: " " * len(m.group(0)), s)
        window, work = self._window(work)
        clock, work = self._clock(work)
        clock = window or clock
        zone = ZoneInfo(clock.zone) if clock and clock.zone else self.zone
        local_now = now.astimezone(zone)
        today = local_now.date()
        days, work = self._days(work, local_now, clock)
        pod = self._part_of_day(s, clock)
        spans = tuple(sorted([(clock.start, clock.end)] if clock else []) + [(d.start, d.end) for d in days])
        chosen = _choose(days, s)
        result = When(part_of_day=pod, spans=spans, zone=clock.zone if clock else None)
        pair = _weekday_with_date(days, s, chosen)
        if pair is not None:  # "Friday 20 March": the date says which day; the weekday is checked against it
            chosen, said = pair
            if chosen.day is not None and chosen.day.weekday() != said:
                result = replace(result, weekday_said=said, weekday_nearest=_nearest_weekday(chosen.day, said, today))
        if clock:
            result = replace(result, time=time(clock.hour, clock.minute), bound=clock.bound)
            if clock.until:
                result = replace(result, until=time(*clock.until))
        if chosen:
            result = replace(
                result, date=chosen.day, date_range=chosen.span, alternatives=chosen.alternatives, rolled=chosen.rolled
            )
            if chosen.past and not chosen.day:
                result = replace(result, past=chosen.past)
            if chosen.clock and clock is None:
                result = replace(result, time=time(*chosen.clock))
        ranges = [d.span for d in days if d.span]
        if result.date_range is None and ranges:
            result = replace(result, date_range=ranges[0])
        if result.empty and not result.past:
            result = self._dateparser(s, local_now, result)
        if clock and clock.zone and result.time is not None:
            result = self._to_business_zone(result, local_now)
        elif result.date == today and result.time is not None and result.bound is None:
            pass  # "today at 9am" after nine stays what it says; the bot tells them it has passed
        if result.date is not None and result.time is not None:
            result = self._check_exists(result)
        return result

    # -- times ------------------------------------------------------------------------------

    def _window(self, s: str) -> tuple[_Clock | None, str]:
        """A window of the day: "between 2 and 4pm", "2-4pm", "from 2 to 4 pm", "2pm to 4pm"; blanked
        from ``s`` so no other reading takes its numbers. "from 3 to 4pm" in a message about moving a
        booking is from its old time to its new one, and "2-4" alone may be a date: neither is one."""
        for m in _WINDOW.finditer(s):
            lead, sep = m.group("lead"), m.group("sep")
            dressed = bool(m.group("aap") or m.group("am") or m.group("anoon"))
            if sep == "and" and lead != "between":
                continue
            # Bare "2 to 4pm" too, but not "10 to 5" (4:50) nor a date "2-4": with am/pm at the end.
            bare = m.group("bap") and (sep == "-" or m.group("ah") not in ("5", "10", "20", "25"))
            if sep != "and" and lead is None and not dressed and not bare:
                continue
            if lead == "from" and _MOVING.search(s):
                continue
            span = self._span(m)
            if span is not None:
                start, end = span
                blanked = s[: m.start()] + " " * (m.end() - m.start()) + s[m.end() :]
                clock = _Clock(*divmod(start, 60), m.start(), m.end(), pod=_window_pod(m), bound="between")
                return replace(clock, until=divmod(end, 60)), blanked
        return None, s

    @staticmethod
    def _span(m: re.Match[str]) -> tuple[int, int] | None:
        """(start, end) in minutes of the day: am/pm said once counts for both ("2-4pm", "8 to 10pm"),
        else a part of the day, else business hours (1–7 are pm); an end before its start is pm."""
        pod = _window_pod(m)

        def minutes(side: str, ap: str | None) -> int | None:
            if m.group(f"{side}noon"):
                return 12 * 60
            h, mm = int(m.group(f"{side}h")), int(m.group(f"{side}m") or 0)
            twenty_four = m.group(f"{side}h").startswith("0") and m.group(f"{side}m") is not None
            hour = _hour_of_day(h, ap, pod, twenty_four)
            return None if hour is None else hour * 60 + mm

        end = minutes("b", m.group("bap"))
        if end is None:
            return None
        start = minutes("a", m.group("aap"))
        if not m.group("aap") and m.group("bap") and not m.group("anoon") and int(m.group("ah")) <= 12:
            same = minutes("a", m.group("bap"))  # "8 to 10pm" is 8pm, "11-1pm" 11am
            start = same if same is not None and same < end else minutes("a", "am" if m.group("bap") == "pm" else "pm")
        if start is None:
            return None
        if end <= start and not m.group("bap") and end < 12 * 60:
            end += 12 * 60  # "from 11am to 2": 2pm
        return (start, end) if start < end else None

    def _clock(self, s: str) -> tuple[_Clock | None, str]:
        found: list[_Clock] = []
        for m in _TIME.finditer(s):
            clock = self._clock_of(m, s)
            if clock is not None:
                found.append(clock)
        for m in _NOON.finditer(s):
            hour = 0 if m.group("w") == "midnight" else 12
            found.append(_Clock(hour, 0, m.start(), m.end()))
        if not found:
            return None, s
        found.sort(key=lambda c: c.start)
        floors = [0, *(c.end for c in found)][: len(found)]
        wanted = [c for c, floor in zip(found, floors, strict=True) if not negated(s, c.start, c.end, floor)] or found
        clock = wanted[0]
        for c in found:  # every time mentioned is blanked, so "from 3 to 4pm" leaves no stray "3"
            s = s[: c.start] + " " * (c.end - c.start) + s[c.end :]
        return clock, s

    def _clock_of(self, m: re.Match[str], s: str) -> _Clock | None:
        ap, prep = m.group("ap"), (m.group("prep") or "").strip()
        pod = m.group("pod1") or (m.group("pod2") or "").split(" ")[-1] or None
        pod = PARTS_OF_DAY.get(pod) if pod else None
        hint = pod or _far_hint(self._pod_hint(s), int(m.group("rh") or m.group("hh") or m.group("bh") or m.group("h")))
        bound = {"by": "by", "after": "after", "before": "before", "until": "before", "till": "before"}.get(prep)
        if prep.startswith("no"):
            bound = "by"
        minute_shift = 0
        if m.group("rh"):
            raw_h, twenty_four = int(m.group("rh")), False
            amount = m.group("rm")
            minutes = 30 if amount == "half" else 15 if amount == "quarter" else int(amount.split()[0])
            minute_shift = minutes if m.group("rdir") in ("past", "after") else -minutes
        elif m.group("hh"):
            raw_h, minute = int(m.group("hh")), int(m.group("mm"))
            twenty_four = m.group("hh").startswith("0") and len(m.group("hh")) == 2
            if m.group("sep") == "." and not (ap or prep or pod):
                return None  # "20.11" is a date, "4.50" a price
            minute_shift = minute
        elif m.group("bh"):
            raw_h, twenty_four, minute_shift = int(m.group("bh")), False, 30
        else:
            raw_h, twenty_four = int(m.group("h")), False
            if not (ap or m.group("oc") or pod or prep in ("at", "around", "about", "@") or (bound and ap)):
                return None
        hour = _hour_of_day(raw_h, ap, hint, twenty_four)
        if hour is None:
            return None
        total = (hour * 60 + minute_shift) % 1440
        core_end = max(
            (m.end(g) for g in ("rh", "mm", "bh", "h", "oc", "ap") if m.group(g) is not None), default=m.end()
        )
        start = m.start("prep") if m.group("prep") else m.start()
        if m.group("pod1"):
            start = m.end("pod1")  # keep "this evening" readable for the date grammar
        zone = None
        tail = _ZONE_AFTER.match(s[core_end:])
        if tail:
            zone = _zone_named(tail.group("abbr") or "", tail.group("city") or "")
            if zone:
                core_end += tail.end()
        return _Clock(total // 60, total % 60, start, core_end, pod=pod, bound=bound, zone=zone)

    def _pod_hint(self, s: str) -> str | None:
        found = _POD_ANYWHERE.search(s)
        return PARTS_OF_DAY[found.group(0)] if found else None

    def _part_of_day(self, s: str, clock: _Clock | None) -> str | None:
        if clock and clock.pod:
            return clock.pod
        return self._pod_hint(GREETINGS.sub(" ", s))

    # -- dates ------------------------------------------------------------------------------

    def _days(self, s: str, local_now: datetime, clock: _Clock | None) -> tuple[list[_Day], str]:
        today = local_now.date()
        ahead = clock is None or (clock.hour, clock.minute) > (local_now.hour, local_now.minute)
        days: list[_Day] = []
        for kind, pattern in self._patterns:
            for m in pattern.finditer(s):
                if kind == "day_month" and m.group("mon") == "may" and _MAY_VERB.match(s[m.end("mon") :]):
                    continue
                day = self._resolve(kind, m, today, local_now, ahead)
                if day is not None:
                    days.append(replace(day, dated=kind in _DATED))
            for day in days:
                s = s[: day.start] + " " * (day.end - day.start) + s[day.end :]
        return days, s

    def _resolve(self, kind: str, m: re.Match[str], today: date, local_now: datetime, ahead: bool) -> _Day | None:
        g = m.groupdict()
        at = (m.start(), m.end())
        if kind == "iso":
            d, past = _month_day(today, int(g["m"]), int(g["d"]), int(g["y"]))
            return _Day(*at, day=d, past=past) if d or past else None
        if kind == "numeric":
            return self._numeric(m, today)
        if kind in ("month_day", "day_month"):
            month = self.months[g["mon"]]
            d, past = _month_day(today, month, int(g["d"]), int(g["y"]) if g.get("y") else None)
            rolled = d is not None and not g.get("y") and d.year > today.year
            return _Day(*at, day=d, past=past, rolled=rolled) if d or past else None
        if kind == "ordinal":
            n = int(g["d"])
            if not 1 <= n <= 31:
                return None
            d = _next_month_day(today, n, 1 if g.get("rel") == "next" else 0)
            return _Day(*at, day=d) if d else None
        if kind == "relative":
            offset = {"day after tomorrow": 2, "tomorrow": 1, "yesterday": -1}.get(g["w"].replace("the ", ""), 0)
            d = today + timedelta(days=offset)
            return _Day(*at, day=d) if offset >= 0 else _Day(*at, past=d)
        if kind == "in_units":
            n = _count(g["n"])
            unit = g["u"].rstrip("s")
            if unit == "month":
                year, month = _add_months(today, n)
                d = date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
            else:
                d = today + timedelta(days=n * {"day": 1, "week": 7, "fortnight": 14}[unit])
            if g.get("base") == "tomorrow":
                d += timedelta(days=1)
            return _Day(*at, day=d)
        if kind == "in_hours":
            if g.get("half"):
                delta = timedelta(minutes=30)
            else:
                n = _count(g["n"])
                delta = timedelta(hours=n) if g["u"].startswith("hour") else timedelta(minutes=n)
            later = local_now + delta
            return _Day(*at, day=later.date(), clock=(later.hour, later.minute))
        if kind in ("weekday", "week_weekday"):
            return self._weekday(m, today, ahead)
        if kind == "month_edge":
            year, month = _add_months(today, 1 if g.get("next") else 0)
            if g["edge"] in ("start", "beginning"):
                year, month = _add_months(today, 1)
                return _Day(*at, day=date(year, month, 1))
            return _Day(*at, day=_last_day(year, month))
        if kind == "range":
            span = _range(g["what"], today)
            return _Day(*at, span=span) if span else None
        raise AssertionError(kind)  # pragma: no cover - every pattern kind is resolved above

    def _numeric(self, m: re.Match[str], today: date) -> _Day | None:
        a, b, sep = int(m.group("a")), int(m.group("b")), m.group("sep")
        year = int(m.group("y")) if m.group("y") else None
        first = (a, b) if self.month_first and sep == "/" else (b, a)  # (month, day)
        readings: list[tuple[date | None, date | None]] = []
        for month, day in (first, (first[1], first[0])):
            if 1 <= month <= 12 and 1 <= day <= 31:
                readings.append(_month_day(today, month, day, year))
        readings = [r for r in readings if r[0] or r[1]]
        if not readings:
            return None
        chosen, past = readings[0]
        others = tuple(r[0] for r in readings[1:] if r[0] and r[0] != chosen)
        if chosen is None:
            return _Day(m.start(), m.end(), past=past)
        rolled = year is None and chosen.year > today.year
        return _Day(m.start(), m.end(), day=chosen, alternatives=(chosen, *others) if others else (), rolled=rolled)

    def _weekday(self, m: re.Match[str], today: date, ahead: bool) -> _Day:
        return replace(self._weekday_day(m, today, ahead), weekday=WEEKDAYS.index(m.group("wd")))

    def _weekday_day(self, m: re.Match[str], today: date, ahead: bool) -> _Day:
        g = m.groupdict()
        wd = WEEKDAYS.index(g["wd"])
        week = (g.get("wk") or "").replace("the following", "next")
        monday = today - timedelta(days=today.weekday())
        at = (m.start(), m.end())
        if week == "next":
            return _Day(*at, day=monday + timedelta(days=7 + wd))
        if week == "this":
            d = monday + timedelta(days=wd)
            if d > today or (d == today and ahead):
                return _Day(*at, day=d)
        days = (wd - today.weekday()) % 7
        if g.get("mod") in ("next", "following") or g.get("after"):
            days = days or 7
            d = today + timedelta(days=days)
            if g.get("after"):
                return _Day(*at, day=d + timedelta(days=7))
            if d <= monday + timedelta(days=6):  # "next Friday" said on a Wednesday: this week's or next?
                return _Day(*at, day=d, alternatives=(d, d + timedelta(days=7)))
            return _Day(*at, day=d)
        if days == 0 and not ahead:
            days = 7
        return _Day(*at, day=today + timedelta(days=days))

    # -- the rest ---------------------------------------------------------------------------

    def _fallback_parser(self, base: datetime) -> DateDataParser:
        """One parser per relative base: dateparser fixes its settings when the parser is built."""
        if self._fallback is None or self._fallback[0] != base:
            settings = {
                "RELATIVE_BASE": base,
                "PREFER_DATES_FROM": "future",
                "DATE_ORDER": "MDY" if self.month_first else "DMY",
                "RETURN_TIME_AS_PERIOD": True,
            }
            self._fallback = (base, DateDataParser(languages=[self.language], settings=settings))
        return self._fallback[1]

    def _dateparser(self, s: str, local_now: datetime, result: When) -> When:
        """dateparser on the whole message, only where our grammar may not know the words."""
        words = s.split()
        if self.language == "en" and (len(words) > 4 or not any(w in self.months for w in words)):
            return result
        if not s or len(words) > 12:
            return result
        base = local_now.replace(tzinfo=None, second=0, microsecond=0)
        data = self._fallback_parser(base).get_date_data(s)
        found = data.date_obj
        if found is None or data.period not in ("day", "time"):
            return result
        if found.date() < local_now.date():
            return replace(result, past=found.date())
        if data.period == "time":
            return replace(result, date=found.date(), time=found.time().replace(second=0, microsecond=0))
        return replace(result, date=found.date())

    def _to_business_zone(self, result: When, local_now: datetime) -> When:
        """A time in the customer's zone → the same instant on the business's wall clock."""
        assert result.time is not None and result.zone is not None
        day = result.date
        if day is None:
            day = local_now.date() if result.time > local_now.time() else local_now.date() + timedelta(days=1)
        theirs = datetime.combine(day, result.time, tzinfo=ZoneInfo(result.zone))
        ours = theirs.astimezone(self.zone)
        return replace(result, date=ours.date(), time=ours.time().replace(tzinfo=None), alternatives=())

    def _check_exists(self, result: When) -> When:
        """A wall-clock time the clocks skip (spring forward) moves forward by the gap, and says so."""
        assert result.date is not None and result.time is not None
        local = datetime.combine(result.date, result.time, tzinfo=self.zone)
        back = local.astimezone(ZoneInfo("UTC")).astimezone(self.zone)
        if back.replace(tzinfo=None) != local.replace(tzinfo=None):
            return replace(result, date=back.date(), time=back.time().replace(tzinfo=None), nonexistent=result.time)
        return result


def _window_pod(m: re.Match[str]) -> str | None:
    pod = (m.group("pod") or "").split(" ")[-1]
    return PARTS_OF_DAY.get(pod) if pod else None


# One end of a window: "2", "2pm", "2:30 pm", "14:00", "noon"; then the other, and a part of the day.
_END = r"(?:(?P<{0}noon>noon|midday)|(?P<{0}h>\d{{1,2}})(?::(?P<{0}m>[0-5]\d))?(?:\s*(?P<{0}ap>[ap]m)\b)?(?![\w/:]))"
_WINDOW = re.compile(
    r"(?:\b(?P<lead>between|from)\s+)?(?<![\w/:.])"
    + _END.format("a")
    + r"\s*(?P<sep>-|\band\b|\bto\b|\btill?\b|\buntil\b)\s*"
    + _END.format("b")
    + rf"(?!\s*(?:{_UNIT_AFTER})\b)"
    + r"(?P<pod>\s+(?:in\s+the\s+|this\s+|at\s+)?(?:morning|afternoon|evening|night)\b)?"
)
# Words of moving a booking: there "from 3 to 4pm" is from the old time to the new one.
_MOVING = re.compile(r"\b(?:move|moving|moved|reschedul\w*|change|changing|shift|push|bring|switch|swap)\b")

_MAY_VERB = re.compile(r"^\s+(?:be|i|we|you|he|she|they|it|have|not|come|work|need|want|help|get|ask|also)\b")


def _far_hint(pod: str | None, h: int) -> str | None:
    """A part of the day said elsewhere in the message only overrides business hours where it must:
    "Saturday morning … at 7" is 07:00, "this evening … at 8" is 20:00, but "morning, or at 4" stays 16:00."""
    if pod == "morning" and 5 <= h <= 11:
        return pod
    if pod in ("evening", "night") and 8 <= h <= 11:
        return pod
    return None


def _count(word: str) -> int:
    word = word.strip()
    if word.isdigit():
        return int(word)
    if word.startswith("a couple"):
        return 2
    return _NUMBER_WORDS_SMALL.get(word, 1)


def _choose(days: list[_Day], s: str) -> _Day | None:
    """The date the customer wants: the first one mentioned that is not negated ("not Friday")."""
    points = sorted((d for d in days if d.day or d.past or d.span), key=lambda d: d.start)
    floors = [0, *(d.end for d in points)][: len(points)]
    wanted = [d for d, floor in zip(points, floors, strict=True) if not negated(s, d.start, d.end, floor)] or points
    singles = [d for d in wanted if d.day or d.past]
    return singles[0] if singles else (wanted[0] if wanted else None)


_DATED = frozenset({"iso", "numeric", "month_day", "day_month", "ordinal"})
_BETWEEN_WEEKDAY_AND_DATE = re.compile(r"\s*(?:(?:on|the|of)\s+)?")


def _weekday_with_date(days: list[_Day], s: str, chosen: _Day | None) -> tuple[_Day, int] | None:
    """A weekday written next to a date ("Friday 20 March", "20/3 Fri", "Friday the 20th") when one
    of the two is the day chosen: the date, and the weekday written."""
    for said in days:
        floor = max((d.end for d in days if d.end <= said.start), default=0)
        if said.weekday is None or negated(s, said.start, said.end, floor):  # "not Friday, the 20th"
            continue
        for dated in days:
            if not dated.dated or chosen not in (said, dated):
                continue
            first, second = sorted((said, dated), key=lambda d: d.start)
            if _BETWEEN_WEEKDAY_AND_DATE.fullmatch(s[first.end : second.start]):
                return dated, said.weekday
    return None


def _nearest_weekday(day: date, weekday: int, today: date) -> date | None:
    """The day of ``weekday`` nearest ``day`` (at most three days either side), unless it has gone."""
    ahead = (weekday - day.weekday()) % 7
    nearest = day + timedelta(days=ahead if ahead <= 3 else ahead - 7)
    return nearest if nearest >= today else None


def _range(what: str, today: date) -> tuple[date, date] | None:
    monday = today - timedelta(days=today.weekday())
    sunday = monday + timedelta(days=6)
    what = _SPACES.sub(" ", what.strip())
    if what in ("this weekend", "the weekend", "weekend", "coming weekend", "this coming weekend"):
        saturday = monday + timedelta(days=5)
        return (max(saturday, today), sunday)
    if what == "next weekend":
        saturday = monday + timedelta(days=12)
        return (saturday, saturday + timedelta(days=1))
    if what in ("this week", "later this week"):
        first = today + timedelta(days=1) if what.startswith("later") else today
        return (first, sunday) if first <= sunday else None
    if what in ("next week", "the following week"):
        return (monday + timedelta(days=7), sunday + timedelta(days=7))
    if what == "week after next":
        return (monday + timedelta(days=14), sunday + timedelta(days=14))
    if what == "this month":
        return (today, _last_day(today.year, today.month))
    if what == "next month":
        year, month = _add_months(today, 1)
        return (date(year, month, 1), _last_day(year, month))
    return None


@lru_cache(maxsize=8)
def _date_patterns(months: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The date grammar, in the order it is applied: each match blanks its words for the next."""
    ordinal = r"(?:st|nd|rd|th)"
    table: list[tuple[str, str]] = [
        ("iso", r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
        (
            "numeric",
            r"(?<![\d/.:\-$₹€£])(?P<a>\d{1,2})(?P<sep>[/.\-])(?P<b>\d{1,2})"
            r"(?:(?P=sep)(?P<y>\d{4}|\d{2}))?(?![\d/.:\-%])(?<!\b24/7)",
        ),
        (
            "month_day",
            rf"\b(?P<mon>{months})\.?\s+(?:the\s+)?(?P<d>\d{{1,2}}){ordinal}?\b(?![:.]\d)(?:,?\s+(?P<y>\d{{4}})\b)?"
            rf"(?!\s*(?:{_UNIT_AFTER})\b)",
        ),
        ("day_month", rf"\b(?P<d>\d{{1,2}}){ordinal}?\s+(?:of\s+)?(?P<mon>{months})\b(?:,?\s+(?P<y>\d{{4}})\b)?"),
        (
            "ordinal",
            rf"\b(?:the\s+)?(?P<d>\d{{1,2}}){ordinal}\b(?:\s+of\s+(?:(?P<rel>this|next|the)\s+)?month\b)?"
            r"(?!\s+(?:one|option|choice|slot|person|floor|place|thing|in\s+line|of\s+them)\b)",
        ),
        ("in_hours", _IN_HOURS.pattern),
        (
            "in_units",
            r"\b(?:in|within)\s+(?P<n>\d{1,3}|an?|one|two|three|four|five|six|a\s+couple\s+of)\s+"
            r"(?P<u>days?|weeks?|fortnights?|months?)\b",
        ),
        (
            "in_units",
            r"\b(?P<n>an?|one|two|three|\d{1,3})\s+(?P<u>days?|weeks?)\s+(?:from\s+)?(?P<base>today|now|tomorrow)\b",
        ),
        (
            "relative",
            r"\b(?P<w>(?:the\s+)?day\s+after\s+tomorrow|tomorrow|today|tonight|later\s+today|yesterday"
            r"|this\s+(?:morning|afternoon|evening))\b",
        ),
        (
            "week_weekday",
            rf"\b(?P<wk>this|next|the\s+following)\s+week(?:'s)?\s+(?:on\s+)?(?P<wd>{_WD})\b",
        ),
        (
            "weekday",
            rf"\b(?:(?P<mod>next|this|coming|upcoming|following|on)\s+)?(?P<wd>{_WD})\b"
            rf"(?:\s+(?:of\s+)?(?P<wk>this|next|the\s+following)\s+week\b|\s+(?P<after>after\s+next)\b)?",
        ),
        (
            "month_edge",
            r"\b(?:the\s+)?(?P<edge>end|last\s+day|start|beginning)\s+of\s+(?:the\s+|this\s+)?(?P<next>next\s+)?month\b",
        ),
        (
            "range",
            r"\b(?P<what>(?:this\s+coming|this|next|the|coming)\s+weekend|weekend|(?:later\s+)?this\s+week"
            r"|next\s+week|the\s+following\s+week|week\s+after\s+next|this\s+month|next\s+month)\b",
        ),
    ]
    return tuple((kind, re.compile(pattern)) for kind, pattern in table)


@lru_cache(maxsize=1)
def _zone_cities() -> Mapping[str, str]:
    """ "london" → Europe/London, "new york" → America/New_York: the last part of each tz name."""
    cities: dict[str, str] = {}
    for name in sorted(available_timezones()):
        if "/" not in name or name.startswith(("Etc/", "SystemV/", "US/")):
            continue
        cities.setdefault(name.rsplit("/", 1)[1].replace("_", " ").lower(), name)
    return cities


def _zone_named(abbr: str, city: str) -> str | None:
    if abbr:
        return ZONE_ABBREVIATIONS.get(abbr)
    words = city.split()
    for i in range(len(words)):  # "in new york time" → try "in new york", "new york", "york"
        name = " ".join(words[i:])
        if name in ZONE_ABBREVIATIONS:
            return ZONE_ABBREVIATIONS[name]
        if name in _zone_cities():
            return _zone_cities()[name]
    return None
