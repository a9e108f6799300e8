"""core.booking (state machine, notice, round-robin) and the documented rules of the slot engine.

Booking.md §5 cases 23 (cancellation window) and 26 (round-robin) are here; the engine rules
(grid, buffers, rolling window, limits, seats, settings validation) complete the per-case tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.availability import find_slots, last_bookable_day, nearest, week_of
from core.booking import (
    ACTIVE,
    TRANSITIONS,
    RotationStats,
    Status,
    ensure_min_notice,
    ensure_notice,
    ensure_started,
    ensure_transition,
    pick_round_robin,
)
from core.errors import Conflict, InvalidInput, InvalidTransition, PolicyViolation
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

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def service(**kw) -> ServiceRules:
    kw.setdefault("slug", "svc")
    kw.setdefault("duration_minutes", 60)
    kw.setdefault("staff", ("a",))
    return ServiceRules(**kw)


def staff(slug: str = "a", tz: str = "Europe/London", hours=None, **kw) -> StaffSchedule:
    return StaffSchedule(slug, tz, parse_week(hours or {"daily": ["09:00-17:00"]}), **kw)


def booked(start, end, *, who="a", svc="svc", blocked=None, seats_taken=1, capacity=1) -> Booked:
    bs, be = blocked or (start, end)
    return Booked(who, svc, start, end, bs, be, seats_taken=seats_taken, capacity=capacity)


def slots(
    first: date,
    last: date | None = None,
    *,
    tz: str = "Europe/London",
    hours=None,
    people=None,
    svc=None,
    business=None,
    booked_rows=(),
    now=None,
    **kw,
) -> list[Slot]:
    btz = ZoneInfo(tz)
    start = datetime.combine(first, time(0), tzinfo=btz).astimezone(UTC)
    end = datetime.combine((last or first) + timedelta(days=1), time(0), tzinfo=btz).astimezone(UTC)
    return find_slots(
        business=business or BusinessRules(tz),
        service=svc or service(),
        staff=people or [staff(tz=tz, hours=hours)],
        booked=booked_rows,
        start=start,
        end=end,
        now=now if now is not None else start - timedelta(days=1),
        **kw,
    )


def starts(result: list[Slot]) -> list[datetime]:
    return [s.start for s in result]


# --- state machine -------------------------------------------------------------------------


def test_allowed_transitions():
    for current, targets in TRANSITIONS.items():
        for target in Status:
            if target in targets:
                ensure_transition(current, target)
            else:
                with pytest.raises(InvalidTransition) as err:
                    ensure_transition(current, target)
                assert err.value.details == {"status": current.value}
                assert err.value.status == 409


def test_terminal_states_and_active_set():
    terminal = {s for s, targets in TRANSITIONS.items() if not targets}
    assert terminal == {Status.COMPLETED, Status.MISSED, Status.CANCELLED, Status.RESCHEDULED}
    assert {Status.PENDING_PAYMENT, Status.SCHEDULED} == ACTIVE
    assert Status.SCHEDULED in TRANSITIONS[Status.PENDING_PAYMENT]
    assert Status.COMPLETED not in TRANSITIONS[Status.PENDING_PAYMENT]  # unpaid cannot be completed


def test_ensure_started():
    start = utc(2026, 3, 2, 10)
    ensure_started(start, start, "completed")
    ensure_started(start, start + MIN, "missed")
    with pytest.raises(InvalidTransition):
        ensure_started(start, start - timedelta(seconds=1), "completed")


# --- case 23: cancellation window ------------------------------------------------------------


def test_case_23_cancellation_window_is_inclusive_and_absolute_across_dst():
    # 1 Nov 2026 12:00 EST; the clocks fell back at 02:00 that morning
    start = datetime(2026, 11, 1, 12, tzinfo=NY).astimezone(UTC)
    assert start == utc(2026, 11, 1, 17)
    exactly = start - timedelta(hours=24)  # 31 Oct 13:00 EDT: the wall clock says 23 h
    assert exactly.astimezone(NY).strftime("%d %H:%M") == "31 13:00"
    ensure_notice(start, exactly, 24, "cancelled")
    with pytest.raises(PolicyViolation) as err:
        ensure_notice(start, exactly + timedelta(seconds=1), 24, "cancelled")  # T−23:59:59
    assert err.value.details == {"notice_hours": 24}
    assert "24 hours" in err.value.message
    wall_24h = datetime(2026, 10, 31, 12, tzinfo=NY).astimezone(UTC)  # 25 absolute hours before
    ensure_notice(start, wall_24h, 24, "cancelled")

    # spring forward: 8 Mar 2026 12:00 EDT; 7 Mar 12:00 EST looks like 24 h but is 23 h
    start = datetime(2026, 3, 8, 12, tzinfo=NY).astimezone(UTC)
    with pytest.raises(PolicyViolation):
        ensure_notice(start, datetime(2026, 3, 7, 12, tzinfo=NY).astimezone(UTC), 24, "cancelled")
    ensure_notice(start, datetime(2026, 3, 7, 11, tzinfo=NY).astimezone(UTC), 24, "cancelled")


def test_notice_edge_rules():
    start = utc(2026, 3, 2, 10)
    ensure_notice(start, start - MIN, 0, "cancelled")  # no window configured
    ensure_notice(start, start, 0, "cancelled")
    with pytest.raises(PolicyViolation, match="already started"):
        ensure_notice(start, start + timedelta(seconds=1), 0, "cancelled")
    ensure_notice(start, start - timedelta(minutes=90), 1.5, "rescheduled")
    with pytest.raises(PolicyViolation, match=r"1\.5 hours"):
        ensure_notice(start, start - timedelta(minutes=89), 1.5, "rescheduled")
    assert issubclass(PolicyViolation, Conflict)


def test_min_notice_at_booking_time_matches_the_engine_boundary():
    now = utc(2026, 3, 2, 10)
    ensure_min_notice(now + HOUR, now, 60)
    ensure_min_notice(now, now, 0)
    with pytest.raises(PolicyViolation) as err:
        ensure_min_notice(now + HOUR - timedelta(seconds=1), now, 60)
    assert err.value.code == "min_notice"
    svc = service(duration_minutes=30, min_notice_minutes=60)
    listed = starts(slots(date(2026, 3, 2), svc=svc, now=now))
    assert listed[0] == now + HOUR
    for t in listed:
        ensure_min_notice(t, now, 60)  # everything listed is bookable at the same `now`


# --- case 26: round-robin ---------------------------------------------------------------------


@dataclass
class Member:
    slug: str
    weight: int
    bookings: int = 0
    active_days: float = 30.0
    last: datetime | None = None

    def stats(self) -> RotationStats:
        return RotationStats(self.slug, self.weight, self.bookings, self.active_days, self.last)


def book_round(members: list[Member], clock: datetime) -> str:
    chosen = pick_round_robin([m.stats() for m in members])
    member = next(m for m in members if m.slug == chosen)
    member.bookings += 1
    member.last = clock
    return chosen


def test_case_26_weights_two_to_one_over_300_bookings():
    a, b = Member("a", 2), Member("b", 1)
    clock = utc(2026, 3, 2, 9)
    for i in range(300):
        book_round([a, b], clock + i * MIN)
        if i >= 3:  # never drifts away from the 2:1 line
            assert abs(a.bookings - 2 * b.bookings) <= 2
    assert abs(a.bookings - 200) <= 10 and abs(b.bookings - 100) <= 10
    assert a.bookings + b.bookings == 300


def test_case_26_ties_go_to_the_least_recently_booked():
    t = utc(2026, 3, 2, 9)
    same = dict(weight=1, bookings=3, active_days=10.0)
    older = RotationStats("b", last_booked_at=t - HOUR, **same)
    assert pick_round_robin([RotationStats("a", last_booked_at=t, **same), older]) == "b"
    never = RotationStats("z", last_booked_at=None, **same)
    assert pick_round_robin([RotationStats("a", last_booked_at=t, **same), never]) == "z"
    # full tie: the slug decides, so the choice is deterministic
    tie = [RotationStats("b", last_booked_at=t, **same), RotationStats("a", last_booked_at=t, **same)]
    assert pick_round_robin(tie) == "a"
    # the rate outranks recency: 4 bookings at weight 2 beat 3 at weight 1
    assert pick_round_robin([RotationStats("a", 1, 3, 10.0, None), RotationStats("b", 2, 4, 10.0, t)]) == "b"
    # a simulation with equal weights alternates strictly
    a, b = Member("a", 1), Member("b", 1)
    picks = [book_round([a, b], t + i * MIN) for i in range(10)]
    assert picks == ["a", "b"] * 5


def test_case_26_unavailable_host_is_skipped():
    a, b, c = Member("a", 1), Member("b", 1), Member("c", 1)
    clock = utc(2026, 3, 2, 9)
    for i in range(90):
        free = [a, b] if i % 3 == 0 else [a, b, c]  # c is busy for every third slot
        chosen = book_round(free, clock + i * MIN)
        assert chosen in {m.slug for m in free}
    assert {m.slug: m.bookings for m in (a, b, c)} == {"a": 30, "b": 30, "c": 30}
    # even with the lowest rate, a host that is not free is never picked
    assert pick_round_robin([RotationStats("a", 1, 50, 1.0, None)]) == "a"
    with pytest.raises(ValueError):
        pick_round_robin([])


def test_case_26_new_host_is_not_flooded():
    a = Member("a", 1, bookings=90, active_days=30.0, last=utc(2026, 3, 1, 17))
    b = Member("b", 1, bookings=90, active_days=30.0, last=utc(2026, 3, 1, 16))
    c = Member("c", 1, active_days=1.0)  # joins today
    team = [a, b, c]
    first_day = []
    for day in range(30):
        for i in range(9):
            clock = utc(2026, 3, 2, 9, i) + timedelta(days=day)
            chosen = book_round(team, clock)
            if day == 0:
                first_day.append(chosen)
        for m in team:
            m.active_days += 1
    # a history-based count would give c all 9 bookings of its first day (and many more)
    assert first_day.count("c") <= 4
    assert first_day.count("a") >= 2 and first_day.count("b") >= 2
    # over the month each member gets about a third of the 270 new bookings
    assert abs(c.bookings - 90) <= 9
    assert abs((a.bookings - 90) - 90) <= 9 and abs((b.bookings - 90) - 90) <= 9


# --- settings validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 1441}, "duration_minutes"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"buffer_before_minutes": -1}, "buffers"),
        ({"buffer_after_minutes": -5}, "buffers"),
        ({"min_notice_minutes": -1}, "cannot be negative"),
        ({"max_advance_days": -1}, "cannot be negative"),
        ({"max_advance_days": 7, "min_notice_minutes": 8 * 1440 + 1}, "longer than the max_advance_days"),
        ({"max_advance_days": 0, "min_notice_minutes": 1441}, "longer than the max_advance_days"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 3, "assignment": Assignment.COLLECTIVE, "staff": ("a", "b")}, "collective"),
        ({"staff": ()}, "staff"),
        ({"max_per_day": 0}, "max_per_day"),
        ({"max_per_week": 0}, "max_per_week"),
    ],
)
def test_service_rules_refuse_bad_settings(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        service(**kw)


def test_service_rules_accept_sane_settings_and_derive_ranges():
    svc = service(
        duration_minutes=45,
        interval_minutes=15,
        buffer_before_minutes=5,
        buffer_after_minutes=10,
        max_advance_days=7,
        min_notice_minutes=7 * 1440,  # within the window: still valid
    )
    assert svc.step == timedelta(minutes=15)
    assert svc.duration == timedelta(minutes=45)
    t = utc(2026, 3, 2, 10)
    assert svc.blocked(t) == Interval(utc(2026, 3, 2, 9, 55), utc(2026, 3, 2, 10, 55))
    assert service(duration_minutes=40).step == timedelta(minutes=40)  # interval defaults to duration


def test_day_range_parsing():
    assert DayRange.parse("09:00-13:00") == DayRange(540, 780)
    assert DayRange.parse(" 9:30 - 17:05 ") == DayRange(570, 1025)
    assert DayRange.parse("22:00-02:00") == DayRange(1320, 1560)
    assert str(DayRange.parse("22:00-02:00")) == "22:00-02:00"
    for bad in ("9-17", "24:00-25:00", "09:60-10:00", "10:00-24:30", "", "09:00–17:00"):
        with pytest.raises(ValueError):
            DayRange.parse(bad)
    with pytest.raises(ValueError):
        DayRange(600, 600)
    with pytest.raises(ValueError):
        DayRange(1440, 1500)
    week = parse_week({"daily": ["09:00-12:00"], "sat": ["10:00-11:00", "08:00-09:00"], "sun": []})
    assert sorted(week) == [0, 1, 2, 3, 4, 5]  # an empty list closes the day
    assert week[5] == (DayRange(480, 540), DayRange(600, 660))
    with pytest.raises(ValueError, match="weekday"):
        parse_week({"monday": ["09:00-12:00"]})


# --- engine rules: grid ---------------------------------------------------------------------


def test_grid_is_anchored_at_each_opening_and_a_break_restarts_it():
    day = date(2026, 3, 2)
    svc = service(duration_minutes=30)
    result = slots(day, svc=svc, hours={"daily": ["09:10-11:00"]})
    assert starts(result) == [utc(2026, 3, 2, 9, 10), utc(2026, 3, 2, 9, 40), utc(2026, 3, 2, 10, 10)]
    person = staff(hours={"daily": ["09:00-12:00", "13:15-14:00"]}, breaks={0: parse_ranges(["10:00-10:45"])})
    result = slots(day, svc=svc, people=[person])
    assert starts(result) == [
        utc(2026, 3, 2, 9),
        utc(2026, 3, 2, 9, 30),
        utc(2026, 3, 2, 10, 45),  # after the break the grid restarts at 10:45
        utc(2026, 3, 2, 11, 15),
        utc(2026, 3, 2, 13, 15),  # a second range has its own grid
    ]


def test_bookings_do_not_move_the_grid():
    result = slots(
        date(2026, 3, 2),
        svc=service(duration_minutes=30),
        hours={"daily": ["09:00-12:00"]},
        booked_rows=[booked(utc(2026, 3, 2, 9, 40), utc(2026, 3, 2, 10, 20))],
    )
    assert starts(result) == [utc(2026, 3, 2, 9), utc(2026, 3, 2, 10, 30), utc(2026, 3, 2, 11), utc(2026, 3, 2, 11, 30)]


def test_buffers_within_hours_with_a_long_before_buffer_keeps_the_grid():
    svc = service(duration_minutes=30, buffer_before_minutes=40, buffers_within_hours=True)
    result = slots(date(2026, 3, 2), svc=svc, hours={"daily": ["09:00-11:00"]})
    assert starts(result) == [utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30)]


# --- engine rules: buffers and busy time ------------------------------------------------------


def test_existing_padded_range_is_what_blocks():
    day = date(2026, 3, 2)
    row = booked(
        utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30), blocked=(utc(2026, 3, 2, 9, 45), utc(2026, 3, 2, 10, 45))
    )
    grid = dict(duration_minutes=30, interval_minutes=15)
    result = starts(slots(day, svc=service(**grid), hours={"daily": ["09:00-12:00"]}, booked_rows=[row]))
    assert utc(2026, 3, 2, 9, 15) in result and utc(2026, 3, 2, 9, 30) not in result
    assert utc(2026, 3, 2, 10, 30) not in result and utc(2026, 3, 2, 10, 45) in result
    # pairwise stacking: this service's own after-buffer must also fit before the padded range
    result = starts(
        slots(day, svc=service(buffer_after_minutes=5, **grid), hours={"daily": ["09:00-12:00"]}, booked_rows=[row])
    )
    assert utc(2026, 3, 2, 9) in result and utc(2026, 3, 2, 9, 15) not in result
    # a booking of another staff member is ignored
    other = booked(row.start, row.end, who="b", blocked=(row.blocked_start, row.blocked_end))
    result = starts(slots(day, svc=service(**grid), hours={"daily": ["09:00-12:00"]}, booked_rows=[other]))
    assert len(result) == 11


def test_busy_is_padded_but_time_off_and_holidays_are_not():
    day = date(2026, 3, 2)
    svc = service(duration_minutes=30, interval_minutes=15, buffer_before_minutes=15, buffer_after_minutes=15)
    block = Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))
    padded = starts(slots(day, svc=svc, hours={"daily": ["09:00-12:00"]}, busy={"a": [block]}))
    assert max(t for t in padded if t < block.start) == utc(2026, 3, 2, 9, 15)
    assert min(t for t in padded if t > block.start) == utc(2026, 3, 2, 11, 15)
    person = staff(hours={"daily": ["09:00-12:00"]}, time_off=(block,))
    unpadded = starts(slots(day, svc=svc, people=[person]))
    assert max(t for t in unpadded if t < block.start) == utc(2026, 3, 2, 9, 30)
    assert min(t for t in unpadded if t > block.start) == utc(2026, 3, 2, 11)
    holiday = BusinessRules("Europe/London", holidays=frozenset({day}))
    result = slots(day - timedelta(days=1), day + timedelta(days=1), business=holiday)
    assert {s.start.date() for s in result} == {day - timedelta(days=1), day + timedelta(days=1)}


def test_holiday_is_a_business_local_day():
    # business in New York, staff in London: the New York holiday blocks 05:00Z..05:00Z
    holiday = BusinessRules("America/New_York", holidays=frozenset({date(2026, 3, 3)}))
    person = staff(hours={"daily": ["00:00-24:00"]})
    result = find_slots(
        business=holiday,
        service=service(),
        staff=[person],
        start=utc(2026, 3, 3),
        end=utc(2026, 3, 4, 12),
        now=utc(2026, 3, 1),
    )
    assert starts(result) == [utc(2026, 3, 3, h) for h in range(5)] + [utc(2026, 3, 4, h) for h in range(5, 12)]


# --- engine rules: rolling window --------------------------------------------------------------


def test_last_bookable_day():
    now = utc(2026, 3, 6, 23, 30)  # Friday 23:30 London, already Saturday in Tokyo
    assert last_bookable_day(service(max_advance_days=0), now, LONDON) == date(2026, 3, 6)
    assert last_bookable_day(service(max_advance_days=10), now, LONDON) == date(2026, 3, 16)
    assert last_bookable_day(service(max_advance_days=10), now, ZoneInfo("Asia/Tokyo")) == date(2026, 3, 17)
    bd = dict(advance_mode=AdvanceMode.BUSINESS_DAYS)
    assert last_bookable_day(service(max_advance_days=0, **bd), now, LONDON) == date(2026, 3, 6)
    assert last_bookable_day(service(max_advance_days=1, **bd), now, LONDON) == date(2026, 3, 9)
    assert last_bookable_day(service(max_advance_days=5, **bd), now, LONDON) == date(2026, 3, 13)
    assert last_bookable_day(service(max_advance_days=6, **bd), now, LONDON) == date(2026, 3, 16)
    saturday = utc(2026, 3, 7, 12)
    assert last_bookable_day(service(max_advance_days=1, **bd), saturday, LONDON) == date(2026, 3, 9)


def test_rolling_window_ends_at_midnight_of_today_plus_n():
    now = utc(2026, 3, 2, 15)  # 10:00 EST
    result = slots(
        date(2026, 3, 2),
        date(2026, 3, 6),
        tz="America/New_York",
        svc=service(max_advance_days=2),
        hours={"daily": ["00:00-24:00"]},
        now=now,
    )
    assert result[0].start == now
    assert result[-1].start == utc(2026, 3, 5, 4)  # 23:00 EST on 4 March (today + 2)
    assert len(result) == 14 + 24 + 24
    today_only = slots(
        date(2026, 3, 2), date(2026, 3, 6), tz="America/New_York", svc=service(max_advance_days=0), now=now
    )
    assert {s.start.astimezone(NY).date() for s in today_only} == {date(2026, 3, 2)}


# --- engine rules: limits ---------------------------------------------------------------------


def test_week_of():
    assert week_of(date(2026, 3, 8), 0) == date(2026, 3, 2)  # Sunday → Monday before
    assert week_of(date(2026, 3, 8), 6) == date(2026, 3, 8)
    assert week_of(date(2026, 3, 9), 6) == date(2026, 3, 8)
    assert week_of(date(2026, 3, 9), 0) == date(2026, 3, 9)
    assert week_of(date(2026, 3, 12), 3) == date(2026, 3, 12)  # Thursday weeks
    assert week_of(date(2026, 3, 11), 3) == date(2026, 3, 5)


def test_daily_limit_counts_in_the_business_zone_not_the_staff_zone():
    # business Tokyo, staff London: 20:00 London on 2 March is 05:00 on 3 March in Tokyo
    row = booked(utc(2026, 3, 2, 20), utc(2026, 3, 2, 21))
    person = staff(hours={"daily": ["08:00-22:00"]})
    result = find_slots(
        business=BusinessRules("Asia/Tokyo"),
        service=service(max_per_day=1),
        staff=[person],
        booked=[row],
        start=utc(2026, 3, 2, 8),
        end=utc(2026, 3, 3, 22),
        now=utc(2026, 3, 1),
    )
    # Tokyo's 3 March runs 2 March 15:00Z .. 3 March 15:00Z: all of it is full
    assert starts(result) == [utc(2026, 3, 2, h) for h in range(8, 15)] + [utc(2026, 3, 3, h) for h in range(15, 22)]


def test_weekly_limit_ignores_other_weeks_and_counts_only_reaching_it():
    weekly = service(max_per_week=2)
    one = [booked(utc(2026, 3, 3, 9), utc(2026, 3, 3, 10))]
    result = slots(date(2026, 3, 2), date(2026, 3, 8), svc=weekly, booked_rows=one)
    assert len(result) == 7 * 8 - 1  # one below the limit: everything else open
    two = [*one, booked(utc(2026, 2, 27, 9), utc(2026, 2, 27, 10)), booked(utc(2026, 3, 4, 9), utc(2026, 3, 4, 10))]
    result = slots(date(2026, 3, 2), date(2026, 3, 15), svc=weekly, booked_rows=two)
    assert min(s.start for s in result) == utc(2026, 3, 9, 9)


# --- engine rules: seats ----------------------------------------------------------------------


def seated(**kw) -> ServiceRules:
    return service(duration_minutes=60, interval_minutes=30, capacity=5, **kw)


def test_open_seats_are_joinable_at_the_exact_start():
    day = date(2026, 3, 2)
    session = booked(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11), seats_taken=2, capacity=5)
    result = slots(day, svc=seated(), hours={"daily": ["09:00-12:00"]}, booked_rows=[session])
    assert [(s.start, s.seats_left) for s in result] == [
        (utc(2026, 3, 2, 9), 5),
        (utc(2026, 3, 2, 10), 3),
        (utc(2026, 3, 2, 11), 5),
    ]
    # an off-grid session is joinable at its own start only
    off = booked(utc(2026, 3, 2, 10, 15), utc(2026, 3, 2, 11, 15), seats_taken=4, capacity=5)
    result = slots(day, svc=seated(), hours={"daily": ["09:00-12:00"]}, booked_rows=[off])
    assert [(s.start, s.seats_left) for s in result] == [(utc(2026, 3, 2, 9), 5), (utc(2026, 3, 2, 10, 15), 1)]


def test_full_or_foreign_sessions_are_not_joinable():
    day = date(2026, 3, 2)
    full = booked(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11), seats_taken=5, capacity=5)
    result = slots(day, svc=seated(), hours={"daily": ["09:00-12:00"]}, booked_rows=[full])
    assert utc(2026, 3, 2, 10) not in starts(result)
    foreign = booked(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11), svc="yoga", seats_taken=1, capacity=5)
    result = slots(day, svc=seated(), hours={"daily": ["09:00-12:00"]}, booked_rows=[foreign])
    assert starts(result) == [utc(2026, 3, 2, 9), utc(2026, 3, 2, 11)]
    # inside the minimum notice, or under busy time, a session cannot be joined either
    session = booked(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11), seats_taken=1, capacity=5)
    late = slots(day, svc=seated(min_notice_minutes=60), booked_rows=[session], now=utc(2026, 3, 2, 9, 30))
    assert utc(2026, 3, 2, 10) not in starts(late)
    busy = {"a": [Interval(utc(2026, 3, 2, 10, 30), utc(2026, 3, 2, 10, 45))]}
    result = slots(day, svc=seated(), booked_rows=[session], busy=busy)
    assert utc(2026, 3, 2, 10) not in starts(result)


def test_single_seat_services_report_no_seat_count():
    result = slots(date(2026, 3, 2))
    assert result and all(s.seats_left is None for s in result)


# --- engine rules: arguments and helpers ------------------------------------------------------


def test_find_slots_argument_checks():
    with pytest.raises(ValueError, match="timezone-aware"):
        find_slots(
            business=BusinessRules("UTC"),
            service=service(),
            staff=[staff()],
            start=datetime(2026, 3, 2),
            end=utc(2026, 3, 3),
            now=utc(2026, 3, 1),
        )
    with pytest.raises(InvalidInput) as err:
        slots(date(2026, 3, 2), only_staff="nobody")
    assert err.value.code == "unknown_staff"
    two = [staff("a"), staff("b", hours={"daily": ["13:00-14:00"]})]
    result = slots(date(2026, 3, 2), svc=service(staff=("a", "b")), people=two, only_staff="b")
    assert [(s.start, s.staff) for s in result] == [(utc(2026, 3, 2, 13), ("b",))]
    # staff listed on the service but without a schedule simply offer nothing
    assert slots(date(2026, 3, 2), svc=service(staff=("ghost",))) == []


def test_nearest():
    result = slots(date(2026, 3, 2))
    picked = nearest(result, utc(2026, 3, 2, 12, 30))  # 12:00 and 13:00 tie: both, then 11:00
    assert starts(picked) == [utc(2026, 3, 2, 11), utc(2026, 3, 2, 12), utc(2026, 3, 2, 13)]
    picked = nearest(result, utc(2026, 3, 2, 12, 30), count=1)
    assert starts(picked) == [utc(2026, 3, 2, 12)]  # earlier wins a tie
    assert nearest(result, utc(2026, 3, 9), count=2) == result[-2:]
    assert nearest([], utc(2026, 3, 2)) == []


def test_commit_recheck_sees_an_overnight_shift_that_spans_a_fall_back_day():
    # Saturday 31 Oct 2026 23:55 EDT → Sunday 1 Nov 23:50 EST: 24 h 55 min of absolute time.
    # The 23:40 EST slot on Sunday belongs to Saturday's shift; a one-minute re-check window
    # at that instant must see it exactly like the wide listing does.
    person = staff(tz="America/New_York", hours={"sat": ["23:55-23:50"]})
    svc = service(duration_minutes=5)
    t = utc(2026, 11, 2, 4, 40)  # 1 Nov 23:40 EST
    kw = dict(business=BusinessRules("America/New_York"), service=svc, staff=[person], now=utc(2026, 10, 30))
    listed = find_slots(start=t - 2 * HOUR, end=t + 2 * HOUR, **kw)
    assert t in starts(listed)
    assert starts(find_slots(start=t, end=t + MIN, **kw)) == [t]
    assert starts(find_slots(start=t, end=t + HOUR, **kw)) == [t + k * timedelta(minutes=5) for k in range(2)]
