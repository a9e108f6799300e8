"""core.timezones: zone names, the wall-clock → instant rule, parsing and formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.timezones import (
    ALIASES,
    canonical_zone_name,
    day_bounds,
    exists,
    is_ambiguous,
    iso_in,
    local_to_utc,
    open_day_bounds,
    parse_day,
    parse_instant,
    zone,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # 30-minute DST shift


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def wall(day: date, h: int, m: int, tz: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.combine(day, time(h, m), tzinfo=tz).replace(fold=fold)


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Europe/London", "Europe/London"),
        ("  Europe/London ", "Europe/London"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("Z", "UTC"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Asia/Katmandu", "Asia/Kathmandu"),
        ("US/Eastern", "America/New_York"),
        ("Europe/Kiev", "Europe/Kyiv"),
    ],
)
def test_canonical_zone_name_accepts_iana_names_and_aliases(name, expected):
    assert canonical_zone_name(name) == expected
    assert zone(name).key == expected


@pytest.mark.parametrize(
    "name",
    [
        *("EST", "IST", "CET", "GMT+5:30", "UTC+3", "+05:30", "Etc/GMT+5", "Etc/GMT-14"),
        *("Mars/Olympus", "europe/london", "Europe/Londn", "", "   ", None),
    ],
)
def test_canonical_zone_name_refuses_abbreviations_offsets_and_unknown_names(name):
    with pytest.raises(InvalidInput) as err:
        canonical_zone_name(name)
    assert err.value.code == "invalid_timezone"
    assert err.value.status == 422
    with pytest.raises(InvalidInput):
        zone(name)


def test_every_alias_points_to_a_loadable_current_name():
    known = available_timezones() | {"UTC"}
    for old, new in ALIASES.items():
        assert new in known, old
        assert canonical_zone_name(new) == new  # the target is itself canonical
        assert zone(old).key == new


def test_alias_behaves_exactly_like_its_target():
    old, new = zone("Asia/Calcutta"), zone("Asia/Kolkata")
    instant = utc(2026, 3, 2, 4, 30)
    assert instant.astimezone(old).isoformat() == instant.astimezone(new).isoformat()
    assert local_to_utc(date(2026, 3, 2), 600, old) == instant


# --- wall clock → instant ------------------------------------------------------------------


def test_ordinary_local_times():
    assert local_to_utc(date(2026, 3, 2), 9 * 60, NY) == utc(2026, 3, 2, 14)
    assert local_to_utc(date(2026, 7, 2), 9 * 60, NY) == utc(2026, 7, 2, 13)
    assert local_to_utc(date(2026, 7, 2), 9 * 60, LONDON) == utc(2026, 7, 2, 8)
    assert local_to_utc(date(2026, 3, 2), 9 * 60, ZoneInfo("Asia/Kathmandu")) == utc(2026, 3, 2, 3, 15)
    assert local_to_utc(date(2026, 3, 2), 0, ZoneInfo("UTC")).tzinfo is UTC


def test_minutes_past_midnight_roll_into_the_next_days():
    assert local_to_utc(date(2026, 3, 2), 1440, LONDON) == utc(2026, 3, 3)
    assert local_to_utc(date(2026, 3, 2), 1500, LONDON) == utc(2026, 3, 3, 1)
    # 26:00 counted from 7 March in New York is 02:00 on 8 March: inside the gap → 03:00 EDT
    assert local_to_utc(date(2026, 3, 7), 26 * 60, NY) == utc(2026, 3, 8, 7)
    assert local_to_utc(date(2026, 2, 28), 1440, LONDON) == utc(2026, 3, 1)
    assert local_to_utc(date(2028, 2, 28), 1440, LONDON) == utc(2028, 2, 29)


def test_nonexistent_time_is_shifted_forward_by_the_gap():
    # New York 8 March 2026: 02:00 → 03:00 (one hour)
    assert local_to_utc(date(2026, 3, 8), 150, NY) == utc(2026, 3, 8, 7, 30)  # 02:30 → 03:30 EDT
    assert local_to_utc(date(2026, 3, 8), 120, NY) == utc(2026, 3, 8, 7)  # 02:00 → 03:00 EDT
    assert local_to_utc(date(2026, 3, 8), 180, NY) == utc(2026, 3, 8, 7)  # 03:00 EDT itself
    # London 29 March 2026: 01:00 → 02:00
    assert local_to_utc(date(2026, 3, 29), 90, LONDON) == utc(2026, 3, 29, 1, 30)  # 02:30 BST
    # Lord Howe 4 October 2026: 02:00 → 02:30, a 30-minute gap: 02:15 becomes 02:45
    shifted = local_to_utc(date(2026, 10, 4), 135, LORD_HOWE)
    assert shifted == utc(2026, 10, 3, 15, 45)
    assert shifted.astimezone(LORD_HOWE).strftime("%H:%M") == "02:45"


@pytest.mark.parametrize(
    "day, minutes, tz",
    [
        (date(2026, 3, 8), 150, NY),
        (date(2026, 3, 8), 120, NY),
        (date(2026, 3, 29), 60, LONDON),
        (date(2026, 3, 29), 119, LONDON),
        (date(2026, 10, 4), 135, LORD_HOWE),
    ],
)
def test_strict_refuses_nonexistent_times(day, minutes, tz):
    with pytest.raises(InvalidInput) as err:
        local_to_utc(day, minutes, tz, strict=True)
    assert err.value.code == "nonexistent_local_time"
    assert not exists(wall(day, minutes // 60, minutes % 60, tz))


def test_strict_accepts_the_edges_of_the_gap():
    assert local_to_utc(date(2026, 3, 8), 119, NY, strict=True) == utc(2026, 3, 8, 6, 59)
    assert local_to_utc(date(2026, 3, 8), 180, NY, strict=True) == utc(2026, 3, 8, 7)
    assert local_to_utc(date(2026, 3, 29), 120, LONDON, strict=True) == utc(2026, 3, 29, 1)


def test_ambiguous_time_resolves_to_the_first_occurrence():
    day = date(2026, 11, 1)
    assert is_ambiguous(wall(day, 1, 30, NY))
    assert local_to_utc(day, 90, NY) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, not 01:30 EST (06:30Z)
    assert local_to_utc(day, 90, NY, strict=True) == utc(2026, 11, 1, 5, 30)
    assert local_to_utc(day, 60, NY) == utc(2026, 11, 1, 5)
    assert local_to_utc(day, 120, NY) == utc(2026, 11, 1, 7)  # 02:00 EST happens once
    assert local_to_utc(date(2026, 10, 25), 90, LONDON) == utc(2026, 10, 25, 0, 30)
    assert local_to_utc(date(2026, 4, 5), 105, LORD_HOWE) == utc(2026, 4, 4, 14, 45)  # +11:00 first


def test_exists_and_is_ambiguous():
    assert exists(wall(date(2026, 3, 2), 9, 0, NY))
    assert exists(wall(date(2026, 11, 1), 1, 30, NY))
    assert exists(wall(date(2026, 11, 1), 1, 30, NY, fold=1))
    assert not exists(wall(date(2026, 3, 8), 2, 30, NY))
    assert not exists(wall(date(2026, 3, 8), 2, 30, NY, fold=1))
    assert not is_ambiguous(wall(date(2026, 3, 2), 9, 0, NY))
    assert not is_ambiguous(wall(date(2026, 11, 1), 2, 0, NY))
    assert is_ambiguous(wall(date(2026, 10, 25), 1, 0, LONDON))
    assert not is_ambiguous(wall(date(2026, 10, 25), 0, 59, LONDON))


ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Auckland"]


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(
    name=st.sampled_from(ZONES),
    instant=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
)
def test_instant_to_wall_clock_and_back(name, instant):
    tz = zone(name)
    instant = instant.replace(second=0, microsecond=0)
    seen = instant.astimezone(tz)
    back = local_to_utc(seen.date(), seen.hour * 60 + seen.minute, tz, strict=True)
    if seen.fold == 0 or not is_ambiguous(seen):
        assert back == instant
    else:  # the second occurrence of a repeated time: the rule picks the first one
        assert back < instant
        assert back.astimezone(tz).replace(tzinfo=None) == seen.replace(tzinfo=None)


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(
    name=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
    minutes=st.integers(min_value=0, max_value=1439),
)
def test_wall_clock_to_instant_follows_the_rule(name, day, minutes):
    tz = zone(name)
    local = wall(day, minutes // 60, minutes % 60, tz)
    result = local_to_utc(day, minutes, tz)
    assert result.tzinfo is UTC
    if exists(local):
        assert result.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None)
        assert local_to_utc(day, minutes, tz, strict=True) == result
        if is_ambiguous(local):
            assert result == local.replace(fold=0).astimezone(UTC)
            assert result < local.replace(fold=1).astimezone(UTC)
    else:
        gap = local.replace(fold=1).utcoffset() - local.replace(fold=0).utcoffset()
        assert gap > timedelta(0)
        shifted = result.astimezone(tz).replace(tzinfo=None)
        assert shifted == local.replace(tzinfo=None) + gap
        with pytest.raises(InvalidInput):
            local_to_utc(day, minutes, tz, strict=True)


# --- parsing and formatting ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-03-02T10:00:00Z", utc(2026, 3, 2, 10)),
        ("2026-03-02T10:00:00+00:00", utc(2026, 3, 2, 10)),
        ("2026-03-02T10:00:00+05:30", utc(2026, 3, 2, 4, 30)),
        ("2026-03-02T10:00-05:00", utc(2026, 3, 2, 15)),
        ("2026-11-01T01:30:00-04:00", utc(2026, 11, 1, 5, 30)),
        ("2026-11-01T01:30:00-05:00", utc(2026, 11, 1, 6, 30)),
    ],
)
def test_parse_instant_uses_the_given_offset(text, expected):
    value = parse_instant(text)
    assert value == expected
    assert value.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2026-03-02T10:00:00", "2026-03-02", "tomorrow", "", "2026-13-02T10:00Z"])
def test_parse_instant_refuses_naive_and_malformed_text(text):
    with pytest.raises(InvalidInput) as err:
        parse_instant(text, field="when")
    assert err.value.message.startswith("when:")


def test_parse_day():
    assert parse_day("2028-02-29", field="date_from") == date(2028, 2, 29)
    for bad in ("2027-02-29", "2026-3-2", "02/03/2026", ""):
        with pytest.raises(InvalidInput):
            parse_day(bad, field="date_from")


def test_day_bounds_follow_the_local_calendar():
    assert day_bounds(date(2026, 3, 2), date(2026, 3, 2), NY) == (utc(2026, 3, 2, 5), utc(2026, 3, 3, 5))
    start, end = day_bounds(date(2026, 3, 8), date(2026, 3, 8), NY)
    assert end - start == timedelta(hours=23)
    start, end = day_bounds(date(2026, 11, 1), date(2026, 11, 1), NY)
    assert end - start == timedelta(hours=25)
    start, end = day_bounds(date(2026, 10, 4), date(2026, 10, 4), LORD_HOWE)
    assert end - start == timedelta(hours=23, minutes=30)
    start, end = day_bounds(date(2026, 3, 1), date(2026, 3, 31), LONDON)
    assert (start, end) == (utc(2026, 3, 1), utc(2026, 3, 31, 23))


def test_iso_in_shows_the_offset_of_that_instant():
    assert iso_in(utc(2026, 3, 2, 14), NY) == "2026-03-02T09:00:00-05:00"
    assert iso_in(utc(2026, 3, 9, 13), NY) == "2026-03-09T09:00:00-04:00"
    assert iso_in(utc(2026, 11, 1, 5, 30), NY) == "2026-11-01T01:30:00-04:00"
    assert iso_in(utc(2026, 11, 1, 6, 30), NY) == "2026-11-01T01:30:00-05:00"
    assert (
        iso_in(
            utc(
                2026,
                3,
                2,
                3,
                15,
            ),
            zone("Asia/Kathmandu"),
        )
        == "2026-03-02T09:00:00+05:45"
    )
    assert iso_in(datetime(2026, 3, 2, 14, 0, 59, 999999, tzinfo=UTC), NY) == "2026-03-02T09:00:59-05:00"
    for instant in (utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)):
        assert parse_instant(iso_in(instant, NY)) == instant


def test_open_day_bounds_leave_a_missing_end_open() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    both = open_day_bounds(date(2026, 3, 3), date(2026, 3, 3), kolkata)
    assert both == (datetime(2026, 3, 2, 18, 30, tzinfo=UTC), datetime(2026, 3, 3, 18, 30, tzinfo=UTC))
    assert both == day_bounds(date(2026, 3, 3), date(2026, 3, 3), kolkata)
    assert open_day_bounds(None, date(2026, 3, 28), LONDON) == (None, datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    assert open_day_bounds(date(2026, 3, 30), None, LONDON) == (datetime(2026, 3, 29, 23, 0, tzinfo=UTC), None)
    assert open_day_bounds(None, None, NY) == (None, None)
