"""Property tests of the slot engine against a brute-force oracle.

Random weekly hours (overnight ranges included), breaks, overrides, time off, holidays,
durations, intervals, buffers, notice, limits, existing bookings and busy intervals, in zones
with whole-hour, half-hour and quarter-hour offsets and DST shifts, around DST transition days.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from core.availability import Segment, find_slots, merge, subtract
from core.models import (
    Assignment,
    Booked,
    BusinessRules,
    DayRange,
    Interval,
    ServiceRules,
    Slot,
    StaffSchedule,
)
from core.timezones import local_to_utc, zone

SETTINGS = settings(derandomize=True, max_examples=200, deadline=None, database=None)
ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
]
# DST transition days of the zones above, plus an ordinary day
BASE_DAYS = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 9, 27),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 6, 15),
]
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)


@cache
def fives(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Multiples of 5 minutes: every instant in these tests is on a 5-minute UTC grid."""
    return st.integers(lo // 5, hi // 5).map(lambda v: v * 5)


@st.composite
def day_ranges(draw, *, overnight: bool = True) -> DayRange:
    start = draw(fives(0, 1435))
    longest = 1439 if overnight else 1440 - start
    length = draw(st.one_of(fives(5, max(5, longest)), fives(min(120, longest), max(5, longest))))
    return DayRange(start, min(start + length, 2880 if overnight else 1440))


@cache
def ranges_list(max_size: int, min_size: int = 0, **kw) -> st.SearchStrategy[tuple[DayRange, ...]]:
    return st.lists(day_ranges(**kw), min_size=min_size, max_size=max_size).map(lambda rs: tuple(sorted(rs)))


@dataclass(frozen=True)
class Scenario:
    business: BusinessRules
    service: ServiceRules
    staff: StaffSchedule
    booked: tuple[Booked, ...]
    busy: tuple[Interval, ...]
    start: datetime
    end: datetime
    now: datetime

    def run(self, *, booked=None, busy=None, start=None, end=None) -> list[Slot]:
        return find_slots(
            business=self.business,
            service=self.service,
            staff=[self.staff],
            booked=self.booked if booked is None else booked,
            busy={self.staff.slug: list(self.busy if busy is None else busy)},
            start=self.start if start is None else start,
            end=self.end if end is None else end,
            now=self.now,
        )


@st.composite
def scenarios(draw) -> Scenario:
    staff_tz = draw(st.sampled_from(ZONES))
    biz_tz = draw(st.one_of(st.just(staff_tz), st.sampled_from(ZONES)))
    base = draw(st.sampled_from(BASE_DAYS))
    window_start = local_to_utc(base - DAY, 0, zone(biz_tz)) + draw(fives(0, 600)) * MIN
    window_end = window_start + draw(st.one_of(fives(60, 3 * 1440), fives(1440, 3 * 1440))) * MIN
    dates = [base + timedelta(days=i) for i in range(-2, 4)]

    hours = {wd: rs for wd in range(7) if draw(st.integers(0, 4)) < 4 and (rs := draw(ranges_list(2, min_size=1)))}
    breaks = {wd: rs for wd in range(7) if (rs := draw(ranges_list(1, overnight=False)))}
    overrides = {}
    if draw(st.booleans()):
        overrides[draw(st.sampled_from(dates))] = draw(ranges_list(2))
    time_off = ()
    if draw(st.integers(0, 3)) == 3:
        t0 = window_start + draw(fives(-1440, 3 * 1440)) * MIN
        time_off = (Interval(t0, t0 + draw(fives(5, 1440)) * MIN),)
    holidays = frozenset()
    if draw(st.integers(0, 3)) == 3:
        holidays = frozenset({draw(st.sampled_from(dates))})

    service = ServiceRules(
        slug="svc",
        duration_minutes=draw(st.one_of(fives(5, 60), fives(5, 180))),
        staff=("a",),
        interval_minutes=draw(st.one_of(st.none(), fives(5, 120))),
        buffer_before_minutes=draw(st.one_of(st.just(0), fives(0, 30))),
        buffer_after_minutes=draw(st.one_of(st.just(0), fives(0, 30))),
        min_notice_minutes=draw(st.one_of(st.just(0), fives(0, 600))),
        max_advance_days=draw(st.sampled_from([60, 60, 60, 0, 1, 2, 3])),
        max_per_day=draw(st.one_of(st.none(), st.integers(1, 3))),
        buffers_within_hours=draw(st.booleans()),
    )

    def some_booking() -> Booked:
        t0 = window_start + draw(fives(-1440, 4 * 1440)) * MIN
        t1 = t0 + draw(fives(5, 180)) * MIN
        before, after = draw(fives(0, 30)) * MIN, draw(fives(0, 30)) * MIN
        return Booked("a", draw(st.sampled_from(["svc", "svc", "other"])), t0, t1, t0 - before, t1 + after)

    def some_busy() -> Interval:
        t0 = window_start + draw(fives(-1440, 4 * 1440)) * MIN
        return Interval(t0, t0 + draw(fives(5, 240)) * MIN)

    booked = tuple(some_booking() for _ in range(draw(st.integers(0, 6))))
    busy = tuple(some_busy() for _ in range(draw(st.integers(0, 4))))
    now = window_start + draw(fives(-2 * 1440, 720)) * MIN + draw(st.integers(0, 59)) * timedelta(seconds=1)
    return Scenario(
        business=BusinessRules(biz_tz, holidays=holidays, week_start=draw(st.integers(0, 6))),
        service=service,
        staff=StaffSchedule("a", staff_tz, hours, breaks, overrides, time_off),
        booked=booked,
        busy=busy,
        start=window_start,
        end=window_end,
        now=now,
    )


# --- oracle -----------------------------------------------------------------------------------


def overlap(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> bool:
    """Half-open ranges share at least one instant."""
    return max(a0, b0) < min(a1, b1)


def working_pieces(sc: Scenario) -> list[tuple[datetime, datetime]]:
    """(opening, closing) instants of every working piece near the window, breaks removed."""
    person, tz = sc.staff, zone(sc.staff.timezone)
    out = []
    day = (sc.start - 3 * DAY).astimezone(tz).date()
    while day <= (sc.end + DAY).astimezone(tz).date():
        if day in person.overrides:
            ranges, breaks = person.overrides[day], ()
        else:
            ranges, breaks = person.hours.get(day.weekday(), ()), person.breaks.get(day.weekday(), ())
        for r in ranges:
            # walk the range in 5-minute steps (all times are multiples of 5) and cut out breaks
            runs: list[list[int]] = []
            for m in range(r.start, r.end, 5):
                if any(b.start <= m < b.end for b in breaks):
                    continue
                if runs and runs[-1][1] == m:
                    runs[-1][1] = m + 5
                else:
                    runs.append([m, m + 5])
            out.extend((local_to_utc(day, s, tz), local_to_utc(day, e, tz)) for s, e in runs)
        day += DAY
    return out


def expected_starts(sc: Scenario) -> set[datetime]:
    svc, biz_tz = sc.service, zone(sc.business.timezone)
    step, dur, before, after = svc.step, svc.duration, svc.before, svc.after
    earliest = max(sc.start, sc.now + timedelta(minutes=svc.min_notice_minutes))
    today = sc.now.astimezone(biz_tz).date()
    horizon = min(sc.end, local_to_utc(today + timedelta(days=svc.max_advance_days + 1), 0, biz_tz))
    unpadded = [*sc.staff.time_off]
    unpadded += [Interval(local_to_utc(d, 0, biz_tz), local_to_utc(d + DAY, 0, biz_tz)) for d in sc.business.holidays]
    per_day: dict[date, int] = {}
    for b in sc.booked:
        if b.service == svc.slug:
            d = b.start.astimezone(biz_tz).date()
            per_day[d] = per_day.get(d, 0) + 1

    found = set()
    for opening, closing in working_pieces(sc):
        lo, hi = opening, closing
        if svc.buffers_within_hours:
            lo, hi = opening + before, closing - after
        t = opening
        while t + dur <= hi:
            if (
                t >= lo
                and earliest <= t < horizon
                and not any(overlap(t - before, t + dur + after, b.blocked_start, b.blocked_end) for b in sc.booked)
                and not any(overlap(t - before, t + dur + after, i.start, i.end) for i in sc.busy)
                and not any(overlap(t, t + dur, i.start, i.end) for i in unpadded)
                and (svc.max_per_day is None or per_day.get(t.astimezone(biz_tz).date(), 0) < svc.max_per_day)
            ):
                found.add(t)
            t += step
    return found


# --- properties -------------------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios())
def test_slots_are_exactly_the_valid_grid_points(sc: Scenario):
    result = sc.run()
    got = [s.start for s in result]
    assert got == sorted(set(got)), "sorted and unique by start"
    assert set(got) == expected_starts(sc)
    assert all(s.staff == ("a",) and s.seats_left is None for s in result)


@SETTINGS
@given(sc=scenarios())
def test_every_slot_respects_hours_buffers_busy_and_notice(sc: Scenario):
    """The invariants checked one by one, so a failure names the broken rule."""
    svc = sc.service
    pieces = working_pieces(sc)
    earliest = sc.now + timedelta(minutes=svc.min_notice_minutes)
    for s in sc.run():
        assert s.end - s.start == svc.duration
        assert s.start.utcoffset() == timedelta(0)
        assert sc.start <= s.start < sc.end
        assert s.start >= earliest, "no slot inside the minimum notice"
        lo, hi = s.start, s.end
        if svc.buffers_within_hours:
            lo, hi = lo - svc.before, hi + svc.after
        assert any(o <= lo and hi <= c and (s.start - o) % svc.step == timedelta(0) for o, c in pieces), (
            "inside one working piece, on the grid anchored at its opening"
        )
        padded = (s.start - svc.before, s.end + svc.after)
        for b in sc.booked:
            assert not overlap(*padded, b.blocked_start, b.blocked_end)
        for i in sc.busy:
            assert not overlap(*padded, i.start, i.end)
        for i in sc.staff.time_off:
            assert not overlap(s.start, s.end, i.start, i.end)


@SETTINGS
@given(sc=scenarios(), seed=st.integers(0, 2**16))
def test_result_is_deterministic_and_order_independent(sc: Scenario, seed: int):
    first = sc.run()
    assert sc.run() == first
    rng = random.Random(seed)
    booked, busy = list(sc.booked), list(sc.busy)
    rng.shuffle(booked)
    rng.shuffle(busy)
    assert sc.run(booked=booked, busy=busy) == first


@SETTINGS
@given(sc=scenarios(), picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
def test_commit_recheck_agrees_with_the_listing(sc: Scenario, picks: list[int]):
    """Re-checking one instant with a one-minute window gives the same answer as the listing."""
    listed = {s.start for s in sc.run()}
    candidates = sorted(listed)[:3] + sorted(listed)[-3:] + [sc.start + 5 * k * MIN for k in picks]
    for t in candidates:
        if not sc.start <= t < sc.end:
            continue
        narrow = sc.run(start=t, end=t + MIN)
        assert [s.start for s in narrow] == ([t] if t in listed else []), t


@SETTINGS
@given(sc=scenarios(), other_hours=st.dictionaries(st.integers(0, 6), ranges_list(2).filter(bool), max_size=7))
def test_any_is_the_union_and_collective_the_intersection(sc: Scenario, other_hours):
    second = StaffSchedule("b", sc.staff.timezone, other_hours)
    kw = dict(business=sc.business, booked=sc.booked, busy={"a": list(sc.busy)}, start=sc.start, end=sc.end, now=sc.now)

    def starts_for(assignment: Assignment, staff: tuple[str, ...]) -> dict[datetime, tuple[str, ...]]:
        svc = ServiceRules(
            slug="svc",
            duration_minutes=sc.service.duration_minutes,
            staff=staff,
            interval_minutes=sc.service.interval_minutes,
            buffer_before_minutes=sc.service.buffer_before_minutes,
            buffer_after_minutes=sc.service.buffer_after_minutes,
            min_notice_minutes=sc.service.min_notice_minutes,
            max_advance_days=sc.service.max_advance_days,
            max_per_day=sc.service.max_per_day,
            buffers_within_hours=sc.service.buffers_within_hours,
            assignment=assignment,
        )
        return {s.start: s.staff for s in find_slots(service=svc, staff=[sc.staff, second], **kw)}

    only_a = starts_for(Assignment.ANY, ("a",))
    only_b = starts_for(Assignment.ANY, ("b",))
    either = starts_for(Assignment.ANY, ("a", "b"))
    assert set(either) == set(only_a) | set(only_b)
    for t, who in either.items():
        assert who == tuple(slug for slug, own in (("a", only_a), ("b", only_b)) if t in own)
    assert starts_for(Assignment.ROUND_ROBIN, ("a", "b")) == either
    both = starts_for(Assignment.COLLECTIVE, ("a", "b"))
    assert set(both) == set(only_a) & set(only_b)
    assert all(who == ("a", "b") for who in both.values())


# --- the interval helpers on their own ---------------------------------------------------------

T0 = datetime(2026, 3, 2, tzinfo=UTC)
offsets = st.tuples(fives(0, 600), fives(0, 300)).map(lambda p: Interval(T0 + p[0] * MIN, T0 + (p[0] + p[1]) * MIN))


def covered(intervals, t: datetime) -> bool:
    return any(i.start <= t < i.end for i in intervals)


@SETTINGS
@given(intervals=st.lists(offsets, max_size=8))
def test_merge_is_a_sorted_disjoint_union(intervals):
    merged = merge(intervals)
    assert all(a.end < b.start for a, b in pairwise(merged))
    assert all(i.start < i.end for i in merged)
    for k in range(0, 905, 5):
        t = T0 + k * MIN
        assert covered(merged, t) == covered(intervals, t)


@SETTINGS
@given(shifts=st.lists(offsets, max_size=4), busy=st.lists(offsets, max_size=6))
def test_subtract_leaves_exactly_the_free_time(shifts, busy):
    segments = [Segment(i.start, i.end, i.start) for i in sorted(shifts, key=lambda i: i.start) if i.start < i.end]
    free = subtract(segments, merge(busy))
    for seg in free:
        assert seg.start < seg.end
        assert any(s.start <= seg.start and seg.end <= s.end and s.anchor == seg.anchor for s in segments)
    for k in range(0, 905, 5):
        t = T0 + k * MIN
        assert covered(free, t) == (covered(segments, t) and not covered(busy, t))
