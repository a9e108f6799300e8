"""The slot engine: plain data and ``now`` in, bookable slots out. No I/O, no clock reads.

Order of work (the same for listing and for the re-check at booking time, so the two can never
disagree):

1. expand each staff member's wall-clock rules day by day in *their* zone (a date override
   replaces the day, breaks split it) into UTC shifts; each shift keeps its opening instant as
   the anchor of its slot grid, so slots align in the business zone, not the customer's;
2. collect busy time: existing allocations (their buffer-padded range, padded again by this
   service's buffers: pairwise stacking), external busy intervals (padded the same way), time
   off and business holidays (not padded);
3. subtract busy time from the shifts with a sort-and-sweep;
4. step through each free segment on the grid while the service fits; drop starts inside the
   minimum notice (the boundary itself is bookable), past the rolling advance window or on a
   business-local day/week whose booking limit is reached;
5. merge staff: any / round-robin take the union, collective the intersection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.errors import InvalidInput
from core.models import (
    DAY,
    AdvanceMode,
    Assignment,
    Booked,
    BusinessRules,
    Interval,
    Ranges,
    ServiceRules,
    Slot,
    StaffSchedule,
)
from core.timezones import local_to_utc, zone

MAX_WINDOW = timedelta(days=62)


@dataclass(frozen=True, slots=True)
class Segment:
    start: datetime
    end: datetime
    anchor: datetime  # slots are anchor + k * step


def check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidInput("the date range is empty: date_to is before date_from")
    # half a day of slack for DST only: 62 local days may last 62 d + 2 h, 63 never less than 62 d 22 h
    if end - start > MAX_WINDOW + timedelta(hours=12):
        raise InvalidInput(f"the date range is too long: at most {MAX_WINDOW.days} days")


def last_bookable_day(service: ServiceRules, now: datetime, business_tz: ZoneInfo) -> date:
    """The last business-local date a slot may start on (rolling window, inclusive)."""
    today = now.astimezone(business_tz).date()
    if service.advance_mode is AdvanceMode.CALENDAR_DAYS:
        return today + timedelta(days=service.max_advance_days)
    day, left = today, service.max_advance_days
    while left > 0:
        day += DAY
        if day.weekday() < 5:
            left -= 1
    return day


def shifts_for(staff: StaffSchedule, first: date, last: date, service: ServiceRules) -> list[Segment]:
    """UTC working segments for local dates ``first``..``last`` in the staff member's zone."""
    tz = zone(staff.timezone)
    out: list[Segment] = []
    day = first
    while day <= last:
        ranges: Ranges
        breaks: Ranges
        if day in staff.overrides:
            ranges, breaks = staff.overrides[day], ()
        else:
            ranges, breaks = staff.hours.get(day.weekday(), ()), staff.breaks.get(day.weekday(), ())
        for r in ranges:
            pieces = [(r.start, r.end)]
            for b in breaks:  # a break splits the range; each piece starts its own grid
                pieces = [p for s, e in pieces for p in ((s, min(e, b.start)), (max(s, b.end), e)) if p[0] < p[1]]
            for s_min, e_min in pieces:
                opening = local_to_utc(day, s_min, tz)
                start, end = opening, local_to_utc(day, e_min, tz)
                if service.buffers_within_hours:
                    start, end = start + service.before, end - service.after
                if start < end:  # the grid stays anchored at the opening, buffers or not
                    out.append(Segment(start, end, opening))
        day += DAY
    out.sort(key=lambda seg: seg.start)
    return out


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint union of ``intervals``."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: i.start):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        elif iv.end > iv.start:
            out.append(iv)
    return out


def subtract(shifts: Sequence[Segment], busy: Sequence[Interval]) -> list[Segment]:
    """Free parts of ``shifts`` (sorted) once merged ``busy`` (sorted, disjoint) is removed."""
    out: list[Segment] = []
    j, n = 0, len(busy)
    for seg in shifts:
        while j < n and busy[j].end <= seg.start:
            j += 1
        cursor, k = seg.start, j
        while k < n and busy[k].start < seg.end:
            if busy[k].start > cursor:
                out.append(Segment(cursor, busy[k].start, seg.anchor))
            cursor = max(cursor, busy[k].end)
            k += 1
        if cursor < seg.end:
            out.append(Segment(cursor, seg.end, seg.anchor))
    return out


def _full_periods(
    booked: Sequence[Booked], service: ServiceRules, business: BusinessRules, tz: ZoneInfo
) -> tuple[set[date], set[date]]:
    """Business-local days and week starts on which this staff member reached a limit."""
    if service.max_per_day is None and service.max_per_week is None:
        return set(), set()
    per_day: dict[date, int] = {}
    per_week: dict[date, int] = {}
    for b in booked:
        if b.service != service.slug:
            continue
        day = b.start.astimezone(tz).date()
        per_day[day] = per_day.get(day, 0) + 1
        week = week_of(day, business.week_start)
        per_week[week] = per_week.get(week, 0) + 1
    full_days = {d for d, c in per_day.items() if service.max_per_day is not None and c >= service.max_per_day}
    full_weeks = {w for w, c in per_week.items() if service.max_per_week is not None and c >= service.max_per_week}
    return full_days, full_weeks


def week_of(day: date, week_start: int) -> date:
    """The first date of the (business) week holding ``day``."""
    return day - timedelta(days=(day.weekday() - week_start) % 7)


def _holiday_intervals(business: BusinessRules, tz: ZoneInfo) -> list[Interval]:
    return [Interval(local_to_utc(d, 0, tz), local_to_utc(d + DAY, 0, tz)) for d in business.holidays]


def staff_free_starts(
    *,
    business: BusinessRules,
    service: ServiceRules,
    staff: StaffSchedule,
    booked: Sequence[Booked],
    busy: Sequence[Interval],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[datetime, int | None]:
    """Start instant → seats left (None for single-seat services) for one staff member."""
    biz_tz = zone(business.timezone)
    earliest = max(start, now + timedelta(minutes=service.min_notice_minutes))
    horizon = min(end, local_to_utc(last_bookable_day(service, now, biz_tz) + DAY, 0, biz_tz))
    if earliest >= horizon:
        return {}
    tz = zone(staff.timezone)
    # a range ends at most 48 h after its own day's midnight (MAX_MINUTES), so the previous local
    # date is the earliest whose shift can still hold a slot at ``earliest`` (whatever DST does)
    first = earliest.astimezone(tz).date() - DAY
    last = horizon.astimezone(tz).date()
    shifts = shifts_for(staff, first, last, service)

    before, after = service.before, service.after
    unpadded = [*staff.time_off, *_holiday_intervals(business, biz_tz)]
    blocking = merge(
        [
            *(Interval(b.blocked_start - after, b.blocked_end + before) for b in booked),
            *(Interval(i.start - after, i.end + before) for i in busy),
            *unpadded,
        ]
    )
    free = subtract(shifts, blocking)

    full_days, full_weeks = _full_periods(booked, service, business, biz_tz)
    limited = bool(full_days or full_weeks)
    step, duration = service.step, service.duration
    seats = service.capacity if service.capacity > 1 else None
    out: dict[datetime, int | None] = {}
    for seg in free:
        t0 = max(seg.start, earliest)
        k = -((seg.anchor - t0) // step)  # ceil((t0 - anchor) / step)
        t = seg.anchor + k * step
        while t + duration <= seg.end and t < horizon:
            if limited:
                day = t.astimezone(biz_tz).date()
                if day in full_days or week_of(day, business.week_start) in full_weeks:
                    t += step
                    continue
            out[t] = seats
            t += step

    if seats is not None:  # open seats in sessions that already exist can still be joined
        outside = merge([*busy, *unpadded])
        for b in booked:
            if (
                b.service == service.slug
                and b.seats_taken < b.capacity
                and earliest <= b.start < horizon
                and not any(i.overlaps(Interval(b.start, b.end)) for i in outside)
            ):
                out[b.start] = b.capacity - b.seats_taken
    return out


def find_slots(
    *,
    business: BusinessRules,
    service: ServiceRules,
    staff: Sequence[StaffSchedule],
    booked: Sequence[Booked] = (),
    busy: Mapping[str, Sequence[Interval]] | None = None,
    start: datetime,
    end: datetime,
    now: datetime,
    only_staff: str | None = None,
) -> list[Slot]:
    """Bookable slots of ``service`` starting in ``[start, end)``, sorted, with their free staff.

    ``booked`` are active allocations (any service) of the staff involved, covering the window
    widened by a week on each side so that limits and buffers reaching in are seen.
    """
    for instant in (start, end, now):
        if instant.tzinfo is None:
            raise ValueError("instants must be timezone-aware")
    busy = busy or {}
    by_slug = {s.slug: s for s in staff}
    wanted = [slug for slug in service.staff if only_staff is None or slug == only_staff]
    if only_staff is not None and not wanted:
        raise InvalidInput(f"{only_staff!r} does not provide {service.slug!r}", code="unknown_staff")
    if service.assignment is Assignment.COLLECTIVE:
        wanted = list(service.staff)
    booked_by: dict[str, list[Booked]] = {slug: [] for slug in wanted}
    for b in booked:
        if b.staff in booked_by:
            booked_by[b.staff].append(b)

    per_staff: list[tuple[str, dict[datetime, int | None]]] = []
    for slug in wanted:
        schedule = by_slug.get(slug)
        starts = (
            {}
            if schedule is None
            else staff_free_starts(
                business=business,
                service=service,
                staff=schedule,
                booked=booked_by[slug],
                busy=busy.get(slug, ()),
                start=start,
                end=end,
                now=now,
            )
        )
        per_staff.append((slug, starts))

    duration = service.duration
    if service.assignment is Assignment.COLLECTIVE:
        common = set.intersection(*(set(s) for _, s in per_staff)) if per_staff else set()
        everyone = tuple(slug for slug, _ in per_staff)
        return [Slot(t.astimezone(UTC), t + duration, everyone) for t in sorted(common)]

    merged: dict[datetime, tuple[list[str], int | None]] = {}
    for slug, starts in per_staff:
        for t, seats in starts.items():
            entry = merged.setdefault(t, ([], seats))
            entry[0].append(slug)
            if seats is not None and (entry[1] is None or seats > entry[1]):
                merged[t] = (entry[0], seats)
    return [Slot(t, t + duration, tuple(names), seats) for t, (names, seats) in sorted(merged.items())]


def nearest(slots: Sequence[Slot], wished: datetime, count: int = 3) -> list[Slot]:
    """The ``count`` slots closest to ``wished`` (earlier wins a tie), in time order."""
    ranked = sorted(slots, key=lambda s: (abs(s.start - wished), s.start))[:count]
    return sorted(ranked, key=lambda s: s.start)
