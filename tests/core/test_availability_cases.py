"""The engine-level edge cases of the booking research notes (booking.md §5), one test per case.

Expected instants are written out in UTC by hand (not computed with the code under test), so
a wrong offset, a wrong DST rule or a wrong grid shows up as a plain mismatch.
Cases 19–22, 24, 25, 33 and 37 need storage or HTTP and are tested there; 23 and 26 live in
test_booking_rules.py.
"""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

import core.availability
import core.booking
import core.timezones
from core.availability import MAX_WINDOW, check_window, find_slots
from core.booking import ensure_min_notice
from core.errors import InvalidInput, PolicyViolation
from core.models import (
    AdvanceMode,
    Assignment,
    Booked,
    BusinessRules,
    DayRange,
    Interval,
    ServiceRules,
    Slot,
    StaffSchedule,
    parse_ranges,
    parse_week,
)
from core.timezones import canonical_zone_name, iso_in, local_to_utc, parse_instant, zone

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
KOLKATA = ZoneInfo("Asia/Kolkata")
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def local(day: date, hhmm: str, tz: ZoneInfo, fold: int = 0) -> datetime:
    """UTC instant of a wall-clock time that exists (built with zoneinfo directly)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m), tzinfo=tz).replace(fold=fold).astimezone(UTC)


def midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def service(**kw) -> ServiceRules:
    kw.setdefault("slug", "svc")
    kw.setdefault("duration_minutes", 60)
    kw.setdefault("staff", ("a",))
    return ServiceRules(**kw)


def staff(slug: str = "a", tz: str = "Europe/London", hours=None, **kw) -> StaffSchedule:
    return StaffSchedule(slug, tz, parse_week(hours or {"daily": ["09:00-17:00"]}), **kw)


def booked(
    start: datetime,
    end: datetime,
    *,
    who: str = "a",
    svc: str = "svc",
    before: int = 0,
    after: int = 0,
    seats_taken: int = 1,
    capacity: int = 1,
) -> Booked:
    return Booked(
        who,
        svc,
        start,
        end,
        start - timedelta(minutes=before),
        end + timedelta(minutes=after),
        seats_taken=seats_taken,
        capacity=capacity,
    )


def slots(
    first: date,
    last: date | None = None,
    *,
    tz: str = "Europe/London",
    hours=None,
    svc: ServiceRules | None = None,
    people: list[StaffSchedule] | None = None,
    business: BusinessRules | None = None,
    now: datetime | None = None,
    booked_rows=(),
    busy=None,
    only_staff: str | None = None,
) -> list[Slot]:
    """Slots starting on business-local dates ``first``..``last``."""
    biz = business or BusinessRules(tz)
    btz = ZoneInfo(biz.timezone)
    start, end = midnight(first, btz), midnight((last or first) + timedelta(days=1), btz)
    return find_slots(
        business=biz,
        service=svc or service(),
        staff=people or [staff(tz=tz, hours=hours)],
        booked=booked_rows,
        busy=busy,
        start=start,
        end=end,
        now=now if now is not None else start - timedelta(days=1),
        only_staff=only_staff,
    )


def starts(result: list[Slot]) -> list[datetime]:
    return [s.start for s in result]


def labels(result: list[Slot], tz: ZoneInfo) -> list[str]:
    return [s.start.astimezone(tz).strftime("%H:%M") for s in result]


# --- 1–3: DST in the business zone --------------------------------------------------------


def test_case_01_ny_spring_forward_skips_the_missing_hour():
    day = date(2026, 3, 8)
    result = slots(day, tz="America/New_York", hours={"daily": ["00:00-06:00"]})
    assert starts(result) == [utc(2026, 3, 8, h) for h in (5, 6, 7, 8, 9)]
    assert labels(result, NY) == ["00:00", "01:00", "03:00", "04:00", "05:00"]
    assert len(set(starts(result))) == len(result) == 5
    assert all(s.end - s.start == HOUR for s in result)
    # the business day itself is 23 h long
    assert midnight(day + timedelta(days=1), NY) - midnight(day, NY) == timedelta(hours=23)


def test_case_02_each_day_uses_its_own_offset():
    result = slots(date(2026, 3, 7), date(2026, 3, 9), tz="America/New_York")
    by_day: dict[date, list[Slot]] = {}
    for s in result:
        by_day.setdefault(s.start.astimezone(NY).date(), []).append(s)
    assert by_day[date(2026, 3, 7)][0].start == utc(2026, 3, 7, 14)  # 09:00 EST
    assert by_day[date(2026, 3, 8)][0].start == utc(2026, 3, 8, 13)  # 09:00 EDT
    assert by_day[date(2026, 3, 9)][0].start == utc(2026, 3, 9, 13)
    for day_slots in by_day.values():
        assert labels(day_slots, NY) == [f"{h:02d}:00" for h in range(9, 17)]


def test_case_03_ny_fall_back_repeats_the_hour_as_distinct_instants():
    result = slots(
        date(2026, 11, 1),
        tz="America/New_York",
        hours={"daily": ["00:00-04:00"]},
        svc=service(duration_minutes=30),
    )
    expected = [utc(2026, 11, 1, 4) + k * timedelta(minutes=30) for k in range(10)]  # 04:00Z..08:30Z
    assert starts(result) == expected
    assert labels(result, NY) == [
        "00:00",
        "00:30",
        "01:00",
        "01:30",
        "01:00",
        "01:30",
        "02:00",
        "02:30",
        "03:00",
        "03:30",
    ]
    keys = [iso_in(s.start, NY) for s in result]
    assert len(set(keys)) == len(keys) == 10
    assert "2026-11-01T01:00:00-04:00" in keys and "2026-11-01T01:00:00-05:00" in keys
    assert "2026-11-01T01:30:00-04:00" in keys and "2026-11-01T01:30:00-05:00" in keys


# --- 4–5: wall-clock requests that do not map to exactly one instant -----------------------


def test_case_04_london_nonexistent_request_is_refused_or_shifted_by_rule():
    day = date(2026, 3, 29)
    with pytest.raises(InvalidInput) as err:
        local_to_utc(day, 90, LONDON, strict=True)  # 01:30 does not exist
    assert err.value.code == "nonexistent_local_time"
    # the documented rule for working hours: forward by the gap, 01:30 GMT → 02:30 BST
    assert local_to_utc(day, 90, LONDON) == utc(2026, 3, 29, 1, 30)
    # no slot is ever labelled with a time the clocks skip
    result = slots(day, hours={"daily": ["00:00-04:00"]}, svc=service(duration_minutes=30))
    assert labels(result, LONDON) == ["00:00", "00:30", "02:00", "02:30", "03:00", "03:30"]
    for s in result:
        wall = s.start.astimezone(LONDON)
        assert local_to_utc(day, wall.hour * 60 + wall.minute, LONDON, strict=True) == s.start


def test_case_05_london_ambiguous_request_is_explicit_and_round_trips():
    day = date(2026, 10, 25)
    assert core.timezones.is_ambiguous(datetime.combine(day, time(1, 30), tzinfo=LONDON))
    first = local_to_utc(day, 90, LONDON)
    assert first == utc(2026, 10, 25, 0, 30)  # documented: first occurrence (BST)
    assert local_to_utc(day, 90, LONDON, strict=True) == first  # ambiguous is not nonexistent
    second = parse_instant("2026-10-25T01:30:00+00:00")  # an explicit offset wins
    assert second == utc(2026, 10, 25, 1, 30)
    for instant in (first, second):
        assert parse_instant(iso_in(instant, LONDON)) == instant
    assert iso_in(first, LONDON) == "2026-10-25T01:30:00+01:00"
    assert iso_in(second, LONDON) == "2026-10-25T01:30:00+00:00"
    with pytest.raises(InvalidInput):
        parse_instant("2026-10-25T01:30:00")  # naive local strings are refused
    result = slots(day, hours={"daily": ["00:00-03:00"]}, svc=service(duration_minutes=30))
    assert first in starts(result) and second in starts(result)
    assert labels(result, LONDON).count("01:30") == 2


# --- 6–9: business zone vs customer zone ----------------------------------------------------


def test_case_06_kolkata_business_seen_from_new_york():
    # Summer in NY (EDT, -4): 10:00 IST = 04:30Z = 00:30 EDT on the same calendar date.
    (s,) = slots(date(2026, 3, 10), tz="Asia/Kolkata", hours={"daily": ["10:00-11:00"]})
    assert s.start == utc(2026, 3, 10, 4, 30)
    assert iso_in(s.start, NY) == "2026-03-10T00:30:00-04:00"
    assert iso_in(s.start, KOLKATA) == "2026-03-10T10:00:00+05:30"
    # Winter in NY (EST, -5): the customer sees 23:30 on the *previous* date and groups it there.
    (w,) = slots(date(2026, 3, 2), tz="Asia/Kolkata", hours={"daily": ["10:00-11:00"]})
    assert w.start == utc(2026, 3, 2, 4, 30)
    assert w.start.astimezone(NY).date() == date(2026, 3, 1)
    assert iso_in(w.start, NY) == "2026-03-01T23:30:00-05:00"
    assert iso_in(w.start, KOLKATA) == "2026-03-02T10:00:00+05:30"


def test_case_07_half_hour_customer_zone_keeps_business_alignment():
    result = slots(date(2026, 3, 2), hours={"daily": ["09:00-12:00"]})
    assert starts(result) == [utc(2026, 3, 2, h) for h in (9, 10, 11)]
    assert labels(result, KOLKATA) == ["14:30", "15:30", "16:30"]


def test_case_08_kathmandu_quarter_hour_offset():
    result = slots(
        date(2026, 3, 2),
        tz="Asia/Kathmandu",
        hours={"daily": ["09:00-10:00"]},
        svc=service(duration_minutes=15),
    )
    assert starts(result) == [
        utc(2026, 3, 2, 3, 15),
        utc(2026, 3, 2, 3, 30),
        utc(2026, 3, 2, 3, 45),
        utc(2026, 3, 2, 4, 0),
    ]
    tz = ZoneInfo("Asia/Kathmandu")
    assert [iso_in(s.start, tz)[11:] for s in result] == [
        "09:00:00+05:45",
        "09:15:00+05:45",
        "09:30:00+05:45",
        "09:45:00+05:45",
    ]


def test_case_09_mismatched_dst_weeks_london_vs_new_york():
    result = slots(date(2026, 3, 2), date(2026, 3, 31), hours={"daily": ["09:00-10:00"]})
    seen = {s.start.astimezone(LONDON).date(): s.start for s in result}
    assert len(seen) == 30
    for day, instant in seen.items():
        assert instant.astimezone(LONDON).strftime("%H:%M") == "09:00"
        ny = instant.astimezone(NY).strftime("%H:%M")
        if date(2026, 3, 8) <= day <= date(2026, 3, 28):
            assert ny == "05:00", day  # 4 h apart while only the US has switched
        else:
            assert ny == "04:00", day
    assert seen[date(2026, 3, 9)] == utc(2026, 3, 9, 9)


# --- 10–11: notice and rolling window --------------------------------------------------------


def test_case_10_minimum_notice_boundary_is_inclusive_and_rechecked():
    day = date(2026, 3, 2)
    now = utc(2026, 3, 2, 10)  # London = UTC in March before the 29th
    svc = service(duration_minutes=15, interval_minutes=1, min_notice_minutes=60)
    result = slots(day, hours={"daily": ["09:00-13:00"]}, svc=svc, now=now)
    assert result[0].start == utc(2026, 3, 2, 11)
    assert utc(2026, 3, 2, 10, 59) not in starts(result)
    ensure_min_notice(utc(2026, 3, 2, 11), now, 60)  # the boundary is bookable
    with pytest.raises(PolicyViolation):
        ensure_min_notice(utc(2026, 3, 2, 10, 59), now, 60)
    # listed at 10:00, booked at 10:01: refused at commit, and the engine agrees
    later = now + MIN
    with pytest.raises(PolicyViolation) as err:
        ensure_min_notice(utc(2026, 3, 2, 11), later, 60)
    assert err.value.code == "min_notice"
    recheck = slots(day, hours={"daily": ["09:00-13:00"]}, svc=svc, now=later)
    assert utc(2026, 3, 2, 11) not in starts(recheck)
    assert recheck[0].start == utc(2026, 3, 2, 11, 1)


def test_case_11_rolling_window_calendar_and_business_days():
    always = {"daily": ["00:00-24:00"]}
    monday = date(2026, 3, 2)
    now = utc(2026, 3, 2, 10)
    result = slots(date(2026, 3, 31), date(2026, 4, 3), hours=always, svc=service(max_advance_days=30), now=now)
    # day 30 is 2026-04-01 (BST): open until 24:00 business time, day 31 closed
    assert result[-1].start == local(date(2026, 4, 1), "23:00", LONDON)
    assert max(s.start.astimezone(LONDON).date() for s in result) == date(2026, 4, 1)
    assert len(result) == 48

    # business days: 5 Mon–Fri days after Monday 2 March is Monday 9 March
    weekdays = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    bd = service(max_advance_days=5, advance_mode=AdvanceMode.BUSINESS_DAYS)
    days = {s.start.date() for s in slots(monday, monday + timedelta(days=10), hours=weekdays, svc=bd, now=now)}
    assert date(2026, 3, 9) in days
    assert date(2026, 3, 10) not in days
    # from a Friday, one business day reaches Monday
    friday_now = utc(2026, 3, 6, 10)
    one = service(max_advance_days=1, advance_mode=AdvanceMode.BUSINESS_DAYS)
    days = {s.start.date() for s in slots(date(2026, 3, 6), date(2026, 3, 12), hours=weekdays, svc=one, now=friday_now)}
    assert days == {date(2026, 3, 6), date(2026, 3, 9)}

    # the window ends at midnight of the *business* zone even when the staff lives elsewhere
    tokyo = BusinessRules("Asia/Tokyo")
    result = find_slots(
        business=tokyo,
        service=service(max_advance_days=1),
        staff=[staff(hours=always)],
        start=utc(2026, 3, 2),
        end=utc(2026, 3, 6),
        now=utc(2026, 3, 2, 0, 30),  # 09:30 on 2 March in Tokyo → last day 3 March (Tokyo)
    )
    assert result[-1].start == utc(2026, 3, 3, 14)  # 23:00 Tokyo on 3 March

    # a notice longer than the whole window is a setting error
    with pytest.raises(ValueError, match="min_notice"):
        service(max_advance_days=30, min_notice_minutes=31 * 1440 + 1)
    service(max_advance_days=30, min_notice_minutes=30 * 1440)


# --- 12–15: buffers and busy time ---------------------------------------------------------


def test_case_12_buffer_removes_the_adjacent_slot():
    day = date(2026, 3, 2)
    existing = booked(utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30), after=15)
    plain = service(duration_minutes=30, interval_minutes=15)
    result = starts(slots(day, hours={"daily": ["09:00-12:00"]}, svc=plain, booked_rows=[existing]))
    assert utc(2026, 3, 2, 10, 30) not in result
    assert utc(2026, 3, 2, 10, 45) in result
    assert utc(2026, 3, 2, 9, 30) in result  # ends exactly when the booking's range starts

    padded = service(duration_minutes=30, interval_minutes=15, buffer_before_minutes=10)
    result = starts(slots(day, hours={"daily": ["09:00-12:00"]}, svc=padded, booked_rows=[existing]))
    after_booking = [t for t in result if t >= utc(2026, 3, 2, 10)]
    assert after_booking[0] == utc(2026, 3, 2, 11)  # earliest 10:55, next grid point 11:00


def test_case_13_buffers_at_the_edge_of_working_hours_both_ways():
    day = date(2026, 3, 2)
    kw = dict(duration_minutes=30, buffer_before_minutes=10, buffer_after_minutes=10)
    # default: buffers only pad against busy time; the first slot starts at opening
    loose = starts(slots(day, hours={"daily": ["09:00-12:00"]}, svc=service(**kw)))
    assert loose == [utc(2026, 3, 2, 9) + k * timedelta(minutes=30) for k in range(6)]
    # buffers_within_hours: the padded range must fit inside 09:00–12:00; the grid stays on :00/:30
    strict = starts(slots(day, hours={"daily": ["09:00-12:00"]}, svc=service(buffers_within_hours=True, **kw)))
    assert strict == [utc(2026, 3, 2, 9, 30) + k * timedelta(minutes=30) for k in range(4)]
    for t in strict:
        assert t - timedelta(minutes=10) >= utc(2026, 3, 2, 9)
        assert t + timedelta(minutes=40) <= utc(2026, 3, 2, 12)


def test_case_14_external_busy_time():
    day = date(2026, 3, 2)
    busy = {"a": [Interval(utc(2026, 3, 2, 10, 15), utc(2026, 3, 2, 10, 45))]}
    result = slots(day, hours={"daily": ["09:00-12:00"]}, svc=service(duration_minutes=30), busy=busy)
    assert starts(result) == [utc(2026, 3, 2, 9), utc(2026, 3, 2, 9, 30), utc(2026, 3, 2, 11), utc(2026, 3, 2, 11, 30)]
    # an all-day event converted to the business-local day blocks exactly that day
    whole_day = {"a": [Interval(midnight(day, NY), midnight(day + timedelta(days=1), NY))]}
    result = slots(day - timedelta(days=1), day + timedelta(days=1), tz="America/New_York", busy=whole_day)
    per_day: dict[date, int] = {}
    for s in result:
        d = s.start.astimezone(NY).date()
        per_day[d] = per_day.get(d, 0) + 1
    assert per_day == {day - timedelta(days=1): 8, day + timedelta(days=1): 8}


def test_case_15_busy_policy_is_the_same_for_listing_and_booking():
    # The calendar layer turns a failed fetch into busy time over the window (fail-closed) or into
    # nothing (fail-open); the engine must answer the wide listing and the narrow commit re-check
    # the same way, whatever it is given.
    day = date(2026, 3, 2)
    svc = service(duration_minutes=30, interval_minutes=15)
    window = Interval(midnight(day, LONDON), midnight(day + timedelta(days=1), LONDON))
    policies = {
        "fail-closed": {"a": [window]},
        "fail-open": {},
        "calendar answered": {"a": [Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))]},
    }
    listed = {name: starts(slots(day, svc=svc, busy=busy)) for name, busy in policies.items()}
    assert listed["fail-closed"] == []
    assert len(listed["fail-open"]) == 31  # 09:00 .. 16:30 every 15 minutes
    assert len(listed["calendar answered"]) == 31 - 5  # 09:45 .. 10:45 are gone
    for name, busy in policies.items():
        for k in range(34):
            t = utc(2026, 3, 2, 8, 45) + k * timedelta(minutes=15)
            recheck = find_slots(
                business=BusinessRules("Europe/London"),
                service=svc,
                staff=[staff()],
                busy=busy,
                start=t,
                end=t + MIN,
                now=window.start - timedelta(days=1),
                only_staff="a",
            )
            assert starts(recheck) == ([t] if t in listed[name] else []), (name, t)


# --- 16–18: unusual day shapes ------------------------------------------------------------


def test_case_16_overnight_hours_cross_midnight_and_count_for_their_start_day():
    svc = service(duration_minutes=60, interval_minutes=30)
    hours = {"mon": ["22:00-02:00"]}  # 2 March 2026 is a Monday
    result = slots(date(2026, 3, 2), date(2026, 3, 3), hours=hours, svc=svc)
    assert starts(result) == [utc(2026, 3, 2, 22) + k * timedelta(minutes=30) for k in range(7)]
    assert result[2].start == utc(2026, 3, 2, 23) and result[2].end == utc(2026, 3, 3, 0)
    assert result[3].start == utc(2026, 3, 2, 23, 30) and result[3].end == utc(2026, 3, 3, 0, 30)
    # a booking at 23:30 fills Monday's limit; the after-midnight slots count for Tuesday
    limited = service(duration_minutes=60, interval_minutes=30, max_per_day=1)
    late = booked(utc(2026, 3, 2, 23, 30), utc(2026, 3, 3, 0, 30))
    result = slots(date(2026, 3, 2), date(2026, 3, 3), hours=hours, svc=limited, booked_rows=[late])
    assert starts(result) == [utc(2026, 3, 3, 0, 30), utc(2026, 3, 3, 1)]


def test_case_17_end_of_day_written_as_24_00():
    rng = DayRange.parse("09:00-24:00")
    assert (rng.start, rng.end) == (540, 1440)
    assert str(rng) == "09:00-24:00"
    result = slots(date(2026, 3, 2), hours={"daily": ["09:00-24:00"]})
    assert result[-1].start == utc(2026, 3, 2, 23)
    assert result[-1].end == utc(2026, 3, 3, 0)
    assert len(result) == 15
    assert all(s.start.minute == 0 for s in result)  # no 23:59 artefact
    # a whole day on the London spring-forward date has 23 hourly slots, the last at 23:00 BST
    result = slots(date(2026, 3, 29), hours={"daily": ["00:00-24:00"]})
    assert len(result) == 23
    assert result[-1].start == utc(2026, 3, 29, 22)


def test_case_18_leap_day():
    now = utc(2028, 2, 20)
    assert date(2028, 2, 29).weekday() == 1  # a Tuesday (the table's "Thursday" is a typo)
    tue = slots(date(2028, 2, 27), date(2028, 3, 2), hours={"tue": ["09:00-10:00"]}, now=now)
    assert starts(tue) == [utc(2028, 2, 29, 9)]
    thu = slots(date(2028, 2, 23), date(2028, 3, 3), hours={"thu": ["09:00-10:00"]}, now=now)
    assert starts(thu) == [utc(2028, 2, 24, 9), utc(2028, 3, 2, 9)]
    person = StaffSchedule(
        "a", "Europe/London", parse_week({}), overrides={date(2028, 2, 29): parse_ranges(["14:00-15:00"])}
    )
    result = slots(date(2028, 2, 28), date(2028, 3, 1), people=[person], now=now)
    assert starts(result) == [utc(2028, 2, 29, 14)]


# --- 27–32: teams, overrides, time off, limits, grids ---------------------------------------


def test_case_27_collective_needs_everyone_free():
    day = date(2026, 3, 2)
    team = [staff("a"), staff("b"), staff("room", hours={"daily": ["09:00-12:00"]})]
    busy = {"room": [Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))]}
    booked_b = [booked(utc(2026, 3, 2, 15), utc(2026, 3, 2, 16), who="b")]
    collective = service(staff=("a", "b", "room"), assignment=Assignment.COLLECTIVE)
    result = slots(day, svc=collective, people=team, busy=busy, booked_rows=booked_b)
    assert starts(result) == [utc(2026, 3, 2, 9), utc(2026, 3, 2, 11)]
    assert all(s.staff == ("a", "b", "room") for s in result)
    # only_staff cannot narrow a collective service to one member
    assert slots(day, svc=collective, people=team, busy=busy, booked_rows=booked_b, only_staff="a") == result
    # the same people as "any": every hour has someone free
    anyone = service(staff=("a", "b", "room"))
    result = slots(day, svc=anyone, people=team, busy=busy, booked_rows=booked_b)
    assert starts(result) == [utc(2026, 3, 2, h) for h in range(9, 17)]
    by_start = {s.start: s.staff for s in result}
    assert by_start[utc(2026, 3, 2, 10)] == ("a", "b")
    assert by_start[utc(2026, 3, 2, 15)] == ("a",)
    # a member without a schedule makes the collective service unbookable
    assert slots(day, svc=collective, people=team[:2]) == []


def test_case_28_date_override_replaces_the_day():
    day = date(2026, 3, 3)
    person = staff(overrides={day: parse_ranges(["12:00-14:00"])}, breaks={1: parse_ranges(["12:30-13:00"])})
    result = slots(day - timedelta(days=1), day + timedelta(days=1), people=[person])
    on_day = [s.start for s in result if s.start.date() == day]
    assert on_day == [utc(2026, 3, 3, 12), utc(2026, 3, 3, 13)]  # weekday break not applied either
    assert len([s for s in result if s.start.date() != day]) == 16  # neighbours untouched
    closed = staff(overrides={day: ()})
    result = slots(day - timedelta(days=1), day + timedelta(days=1), people=[closed])
    assert [s for s in result if s.start.date() == day] == []
    assert len(result) == 16
    # Pacific/Auckland (+13): the override lands on the Auckland date, not the UTC one
    akl = ZoneInfo("Pacific/Auckland")
    nz = StaffSchedule(
        "a",
        "Pacific/Auckland",
        parse_week({"daily": ["09:00-17:00"]}),
        overrides={date(2026, 3, 10): parse_ranges(["09:00-11:00"])},
    )
    result = slots(date(2026, 3, 9), date(2026, 3, 11), people=[nz], business=BusinessRules("Pacific/Auckland"))
    by_day: dict[date, list[datetime]] = {}
    for s in result:
        by_day.setdefault(s.start.astimezone(akl).date(), []).append(s.start)
    assert by_day[date(2026, 3, 10)] == [utc(2026, 3, 9, 20), utc(2026, 3, 9, 21)]
    assert len(by_day[date(2026, 3, 9)]) == 8
    assert len(by_day[date(2026, 3, 11)]) == 8


def test_case_29_multi_day_time_off_across_dst():
    off = Interval(local(date(2026, 3, 27), "15:00", LONDON), local(date(2026, 3, 30), "10:00", LONDON))
    assert off == Interval(utc(2026, 3, 27, 15), utc(2026, 3, 30, 9))
    person = staff(time_off=(off,))
    result = slots(date(2026, 3, 26), date(2026, 3, 31), people=[person], now=utc(2026, 3, 20))
    by_day: dict[date, list[str]] = {}
    for s in result:
        by_day.setdefault(s.start.astimezone(LONDON).date(), []).append(s.start.astimezone(LONDON).strftime("%H"))
    full = [f"{h:02d}" for h in range(9, 17)]
    assert by_day == {
        date(2026, 3, 26): full,
        date(2026, 3, 27): ["09", "10", "11", "12", "13", "14"],
        date(2026, 3, 30): ["10", "11", "12", "13", "14", "15", "16"],
        date(2026, 3, 31): full,
    }


def test_case_30_booking_limits_in_business_days_and_weeks():
    # per day, New York business: a 23:30 local booking is on the next UTC date but counts locally
    svc = service(max_per_day=3)
    rows = [
        booked(utc(2026, 3, 2, 14), utc(2026, 3, 2, 15)),  # 09:00 EST
        booked(utc(2026, 3, 2, 15), utc(2026, 3, 2, 16)),
        booked(utc(2026, 3, 3, 4, 30), utc(2026, 3, 3, 5, 30)),  # 23:30 EST on 2 March
    ]
    result = slots(date(2026, 3, 2), date(2026, 3, 3), tz="America/New_York", svc=svc, booked_rows=rows)
    assert {s.start.astimezone(NY).date() for s in result} == {date(2026, 3, 3)}
    assert len(result) == 8
    # a cancelled booking is not an active allocation and is not passed in: the day reopens
    result = slots(date(2026, 3, 2), tz="America/New_York", svc=svc, booked_rows=rows[:2])
    assert len(result) == 6  # 09:00 and 10:00 are taken, the rest is offered
    # bookings of another service do not count toward this service's limit
    other = [booked(r.start, r.end, svc="other") for r in rows]
    result = slots(date(2026, 3, 2), tz="America/New_York", svc=svc, booked_rows=other)
    assert len(result) == 6

    # per week: week_start decides which week a Sunday belongs to
    sunday_late = booked(local(date(2026, 3, 8), "23:30", LONDON), local(date(2026, 3, 9), "00:30", LONDON))
    weekly = service(max_per_week=1)

    def open_days(week_start: int) -> set[date]:
        result = slots(
            date(2026, 3, 2),
            date(2026, 3, 15),
            svc=weekly,
            business=BusinessRules("Europe/London", week_start=week_start),
            booked_rows=[sunday_late],
        )
        return {s.start.date() for s in result}

    two_weeks = {date(2026, 3, 2) + timedelta(days=i) for i in range(14)}
    # Monday weeks: the Sunday-night booking (crossing into Monday) fills the week 2–8 March
    assert open_days(0) == {d for d in two_weeks if d >= date(2026, 3, 9)}
    # Sunday weeks: it fills 8–14 March instead
    assert open_days(6) == {d for d in two_weeks if d < date(2026, 3, 8) or d == date(2026, 3, 15)}

    # limits are per staff member: b is still bookable when a is full
    team = [staff("a"), staff("b")]
    full_a = [booked(utc(2026, 3, 2, 9 + i), utc(2026, 3, 2, 10 + i)) for i in range(3)]
    result = slots(date(2026, 3, 2), svc=service(staff=("a", "b"), max_per_day=3), people=team, booked_rows=full_a)
    assert len(result) == 8 and all(s.staff == ("b",) for s in result)


def test_case_31_interval_differs_from_duration():
    result = slots(
        date(2026, 3, 2),
        hours={"daily": ["09:00-12:00"]},
        svc=service(duration_minutes=45, interval_minutes=30),
    )
    assert labels(result, LONDON) == ["09:00", "09:30", "10:00", "10:30", "11:00"]
    assert all(s.end - s.start == timedelta(minutes=45) for s in result)
    assert result[-1].end == utc(2026, 3, 2, 11, 45)


def test_case_32_free_range_equal_to_and_shorter_than_the_duration():
    day = date(2026, 3, 2)
    hours = {"daily": ["09:00-12:00"]}
    around = [
        booked(utc(2026, 3, 2, 9), utc(2026, 3, 2, 10)),
        booked(utc(2026, 3, 2, 11), utc(2026, 3, 2, 12)),
    ]
    result = slots(day, hours=hours, booked_rows=around)
    assert [(s.start, s.end) for s in result] == [(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))]
    shorter = [around[0], booked(utc(2026, 3, 2, 10, 59), utc(2026, 3, 2, 12))]
    assert slots(day, hours=hours, booked_rows=shorter) == []
    # the same for working hours exactly as long as the service, and one minute shorter
    assert starts(slots(day, hours={"daily": ["09:00-10:00"]})) == [utc(2026, 3, 2, 9)]
    assert slots(day, hours={"daily": ["09:00-09:59"]}) == []


# --- 34–36: clock, zone names, weekly series -------------------------------------------------


def _reads_the_clock(module) -> list[str]:
    tree = ast.parse(inspect.getsource(module))
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today", "time", "monotonic"}:
            base = node.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            if name in {"datetime", "date", "time"}:
                hits.append(f"{name}.{node.attr}")
    return hits


def test_case_34_engine_takes_now_as_input_and_never_reads_the_clock():
    for module in (core.availability, core.booking, core.timezones):
        assert _reads_the_clock(module) == [], module.__name__
    day = date(2026, 3, 2)
    svc = service(min_notice_minutes=120)
    now = utc(2026, 3, 2, 8)
    first = slots(day, svc=svc, now=now)
    assert first == slots(day, svc=svc, now=now)
    assert first[0].start == utc(2026, 3, 2, 10)
    later = slots(day, svc=svc, now=now + 3 * HOUR)
    assert later[0].start == utc(2026, 3, 2, 13)
    assert starts(later) == [t for t in starts(first) if t >= utc(2026, 3, 2, 13)]
    # far from the real clock in both directions: only the given `now` matters
    past = slots(date(2001, 5, 7), now=utc(2001, 5, 6))
    future = slots(date(2091, 5, 7), now=utc(2091, 5, 6))
    assert len(past) == len(future) == 8


def test_case_35_zone_aliases_bad_names_and_window_limit():
    assert canonical_zone_name("Asia/Calcutta") == "Asia/Kolkata"
    assert zone("Asia/Calcutta").key == "Asia/Kolkata"
    for bad in ("EST", "GMT+5:30", "Mars/Olympus", "", "IST", "Etc/GMT+5"):
        with pytest.raises(InvalidInput) as err:
            zone(bad)
        assert err.value.code == "invalid_timezone"
    # an aliased staff zone schedules exactly like the canonical one
    old = slots(date(2026, 3, 2), people=[staff(tz="Asia/Calcutta")], tz="Asia/Kolkata")
    new = slots(date(2026, 3, 2), people=[staff(tz="Asia/Kolkata")], tz="Asia/Kolkata")
    assert old == new and old[0].start == utc(2026, 3, 2, 3, 30)
    # request windows
    start = midnight(date(2026, 3, 1), NY)
    check_window(start, start + MAX_WINDOW)
    assert timedelta(days=62) == MAX_WINDOW
    # 62 business-local days are accepted, 63 refused, whichever way the clocks change inside
    troll = ZoneInfo("Antarctica/Troll")  # a two-hour DST shift
    for first, tz in (
        (date(2026, 10, 1), NY),
        (date(2026, 2, 20), NY),
        (date(2026, 10, 1), troll),
        (date(2026, 3, 1), troll),
    ):
        check_window(*core.timezones.day_bounds(first, first + timedelta(days=61), tz))
        with pytest.raises(InvalidInput, match="too long"):
            check_window(*core.timezones.day_bounds(first, first + timedelta(days=62), tz))
    for too_long in (timedelta(days=63), timedelta(days=90), timedelta(days=366)):
        with pytest.raises(InvalidInput, match="too long"):
            check_window(start, start + too_long)
    for empty in (timedelta(0), -MIN):
        with pytest.raises(InvalidInput, match="empty"):
            check_window(start, start + empty)


def test_case_36_weekly_series_keeps_local_time_across_dst():
    # every Monday 09:00 New York from 16 Feb to 6 Apr 2026 (DST starts 8 March)
    mondays = [date(2026, 2, 16) + timedelta(weeks=k) for k in range(8)]
    series = [local_to_utc(d, 9 * 60, NY) for d in mondays]
    assert [t.hour for t in series] == [14, 14, 14, 13, 13, 13, 13, 13]
    assert all(t.astimezone(NY).strftime("%a %H:%M") == "Mon 09:00" for t in series)
    # naive UTC arithmetic would drift by an hour after the change
    assert series[0] + timedelta(weeks=4) != series[4]
    # every occurrence is checked on its own against the engine
    svc = service()
    person = staff(tz="America/New_York", hours={"mon": ["09:00-12:00"]})
    blocker = booked(series[5], series[5] + HOUR)  # one week is taken
    for k, t in enumerate(series):
        found = find_slots(
            business=BusinessRules("America/New_York"),
            service=svc,
            staff=[person],
            booked=[blocker],
            start=t,
            end=t + MIN,
            now=utc(2026, 2, 15),
        )
        assert starts(found) == ([] if k == 5 else [t]), mondays[k]
