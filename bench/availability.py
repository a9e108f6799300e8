"""Benchmark of the slot engine (``core.availability.find_slots``) against a naive scan.

Run from the repository root::

    .venv/bin/python bench/availability.py            # 20 staff, 30 days, 10,000 bookings, 5,000 busy
    .venv/bin/python bench/availability.py --quick    # 1/10 of the data (2 staff), a smoke run

In one run it builds a deterministic data set, times the engine (best of N) and a naive
per-candidate-slot scan written here, checks that both produce exactly the same slots (start, end
and staff list) — a mismatch exits with status 1 — and times the engine again at twice the data:
twice the window (60 days, the engine accepts at most 62) with twice the bookings and busy
intervals, so the density per staff and day stays the same. Timings are reported, not asserted:
missing a goal still exits 0.

Goals (from the issue): engine ≥ 50× faster than the naive scan, and engine time at 2× data at most
2.2× the time at 1×.

The naive scan stops at the first interval that blocks a candidate, as any plain loop would, so its
cost depends on how full the calendars are: the "free" column shows how many (staff, start) pairs
of empty calendars are still bookable. At the issue's numbers (25 bookings and busy intervals per
staff and day against working days of about 8 hours) calendars are nearly full.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from core.availability import find_slots  # noqa: E402
from core.models import (  # noqa: E402
    Booked,
    BusinessRules,
    Interval,
    Ranges,
    ServiceRules,
    StaffSchedule,
    parse_ranges,
    parse_week,
)

T = TypeVar("T")

SPEEDUP_GOAL = 50.0
GROWTH_GOAL = 2.2

BUSINESS_TZ = "Europe/London"
# A Monday. London falls back on Sun 25 Oct 2026 and New York on Sun 1 Nov 2026: both are inside
# the 30-day window, and a night shift runs across the repeated hour.
FIRST_DAY = date(2026, 10, 12)
BUSINESS = BusinessRules(timezone=BUSINESS_TZ, holidays=frozenset({date(2026, 10, 30), date(2026, 11, 30)}))

# Services the existing allocations belong to: slug, duration, buffer before, buffer after, weight.
BOOKED_SERVICES = (
    ("cut", 30, 0, 5, 3),
    ("trim", 15, 0, 5, 4),
    ("check", 20, 0, 0, 2),
    ("colour", 45, 5, 5, 1),
)

# Weekly patterns: (ranges, breaks). Breaks apply to every range of the day and restart the grid,
# so 14:00-14:20 makes a piece that opens at 14:20 with slots at 14:20, 14:35, ...
DAY_PATTERNS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("09:00-17:00",), ("12:30-13:15",)),
    (("08:00-12:00", "13:00-18:00"), ()),
    (("10:00-14:00", "15:00-20:00"), ("17:30-17:45",)),
    (("07:30-11:30", "12:00-16:30"), ("09:30-09:45", "14:00-14:20")),
    (("09:15-13:00", "14:00-18:45"), ()),
    (("12:00-21:00",), ("16:00-16:30",)),
)


def wall(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """UTC instant of ``minutes`` after local midnight of ``day``.

    The bench's own conversion, by the rule documented in core/timezones.py: a time in a spring-
    forward gap moves forward by the gap, a repeated time is its first occurrence (fold=0).
    """
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    label: str
    days: int
    business: BusinessRules
    service: ServiceRules
    staff: list[StaffSchedule]
    booked: list[Booked]
    busy: dict[str, list[Interval]]
    start: datetime
    end: datetime
    now: datetime

    @property
    def busy_count(self) -> int:
        return sum(len(v) for v in self.busy.values())


def make_staff(rng: random.Random, count: int) -> list[StaffSchedule]:
    """``count`` staff with varied weekly hours; the same list is used at 1× and 2×."""
    out = []
    for i in range(count):
        slug = f"staff-{i:02d}"
        if i == 1:  # a night desk: overnight ranges that cross midnight (and the fall-back night)
            tz_name = BUSINESS_TZ
            night = {
                "fri": ["20:00-02:00"],
                "sat": ["20:00-02:00"],
                "sun": ["19:00-01:45"],
                "wed": ["18:00-23:00"],
            }
            hours = parse_week(night)
            breaks = {d: parse_ranges(["23:00-23:30"]) for d in hours}
        else:
            tz_name = {2: "America/New_York", 4: "America/New_York", 3: "Europe/Dublin"}.get(i, BUSINESS_TZ)
            days_off = set(rng.sample(range(7), rng.choice((1, 1, 2))))
            hours, breaks = {}, {}
            for weekday in range(7):
                if weekday in days_off:
                    continue
                ranges, pauses = rng.choice(DAY_PATTERNS)
                hours[weekday] = parse_ranges(ranges)
                if pauses:
                    breaks[weekday] = parse_ranges(pauses)
        tz = ZoneInfo(tz_name)
        overrides: dict[date, Ranges] = {}
        time_off: list[Interval] = []
        if i % 3 == 0:  # a closed day and a day with special hours somewhere in the 60 days
            overrides[FIRST_DAY + timedelta(days=rng.randrange(60))] = ()
            overrides[FIRST_DAY + timedelta(days=rng.randrange(60))] = parse_ranges(["10:00-14:00"])
        if i % 4 == 2:  # a few days of holiday
            d = FIRST_DAY + timedelta(days=rng.randrange(55))
            time_off.append(Interval(wall(d, 0, tz), wall(d + timedelta(days=rng.randint(2, 4)), 0, tz)))
        if i % 5 == 4:  # an afternoon at the dentist, off the 15-minute grid
            d = FIRST_DAY + timedelta(days=rng.randrange(60))
            time_off.append(Interval(wall(d, 13 * 60 + 10, tz), wall(d, 16 * 60 + 20, tz)))
        out.append(
            StaffSchedule(
                slug=slug,
                timezone=tz_name,
                hours=hours,
                breaks=breaks,
                overrides=overrides,
                time_off=tuple(time_off),
            )
        )
    return out


def day_rules(person: StaffSchedule, day: date) -> tuple[Ranges, Ranges]:
    if day in person.overrides:
        return person.overrides[day], ()
    return person.hours.get(day.weekday(), ()), person.breaks.get(day.weekday(), ())


def pieces_of(ranges: Ranges, breaks: Ranges) -> list[tuple[int, int]]:
    """Working pieces (minutes) of one local day: each range minus the union of the breaks.

    Written independently of the engine's splitting: walk the sorted breaks through each range.
    """
    out = []
    for r in ranges:
        cursor = r.start
        for b in sorted(breaks):
            if b.end <= cursor or b.start >= r.end:
                continue
            if b.start > cursor:
                out.append((cursor, b.start))
            cursor = max(cursor, b.end)
        if cursor < r.end:
            out.append((cursor, r.end))
    return out


def make_dataset(
    rng: random.Random, label: str, staff: list[StaffSchedule], days: int, n_booked: int, n_busy: int
) -> Dataset:
    biz = ZoneInfo(BUSINESS_TZ)
    start = wall(FIRST_DAY, 0, biz)
    end = wall(FIRST_DAY + timedelta(days=days), 0, biz)
    service = ServiceRules(
        slug="cut",
        duration_minutes=30,
        interval_minutes=15,
        buffer_before_minutes=5,
        buffer_after_minutes=5,
        min_notice_minutes=60,
        max_advance_days=90,
        staff=tuple(s.slug for s in staff),
    )
    weights = [w for *_, w in BOOKED_SERVICES]

    booked: list[Booked] = []
    while len(booked) < n_booked:  # starts on the 15-minute grid of a working piece
        person = rng.choice(staff)
        day = FIRST_DAY + timedelta(days=rng.randrange(days))
        slug, minutes, before, after, _ = rng.choices(BOOKED_SERVICES, weights)[0]
        fitting = [(s, e) for s, e in pieces_of(*day_rules(person, day)) if e - s >= minutes]
        if not fitting:
            continue
        s, e = rng.choice(fitting)
        at = wall(day, s + 15 * rng.randrange((e - s - minutes) // 15 + 1), ZoneInfo(person.timezone))
        length = timedelta(minutes=minutes)
        booked.append(
            Booked(
                staff=person.slug,
                service=slug,
                start=at,
                end=at + length,
                blocked_start=at - timedelta(minutes=before),
                blocked_end=at + length + timedelta(minutes=after),
            )
        )

    busy: dict[str, list[Interval]] = {s.slug: [] for s in staff}
    for _ in range(n_busy):  # external calendar events: any day, 06:00-22:00 local, 5-minute steps
        person = rng.choice(staff)
        day = FIRST_DAY + timedelta(days=rng.randrange(days))
        at = wall(day, rng.randrange(6 * 60, 22 * 60, 5), ZoneInfo(person.timezone))
        busy[person.slug].append(Interval(at, at + timedelta(minutes=rng.choice((15, 30, 30, 45, 60)))))

    rng.shuffle(booked)  # the engine gets them in no particular order, as from a query
    return Dataset(
        label=label,
        days=days,
        business=BUSINESS,
        service=service,
        staff=staff,
        booked=booked,
        busy=busy,
        start=start,
        end=end,
        now=start - timedelta(minutes=7),
    )


# -------------------------------------------------------------------------------------------- naive

SlotKey = tuple[datetime, datetime, tuple[str, ...]]


def naive_slots(
    *,
    business: BusinessRules,
    service: ServiceRules,
    staff: Sequence[StaffSchedule],
    booked: Sequence[Booked],
    busy: Mapping[str, Sequence[Interval]],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[SlotKey]:
    """For every staff member and every candidate start on the grid of their working hours, scan
    every booking and busy interval of the business (and the member's time off and holidays),
    stopping at the first that blocks. Union over staff.

    Covers what this bench uses: one seat, no per-day/week limits, assignment any.
    """
    if service.capacity != 1 or service.max_per_day or service.max_per_week or service.assignment != "any":
        raise NotImplementedError("the naive scan covers single-seat, unlimited, any-assignment services")
    biz = ZoneInfo(business.timezone)
    step = timedelta(minutes=service.interval_minutes or service.duration_minutes)
    duration = timedelta(minutes=service.duration_minutes)
    before = timedelta(minutes=service.buffer_before_minutes)
    after = timedelta(minutes=service.buffer_after_minutes)
    earliest = max(start, now + timedelta(minutes=service.min_notice_minutes))
    today = now.astimezone(biz).date()
    horizon = min(end, wall(today + timedelta(days=service.max_advance_days + 1), 0, biz))
    closed = [(wall(d, 0, biz), wall(d + timedelta(days=1), 0, biz)) for d in business.holidays]
    by_slug = {s.slug: s for s in staff}

    found: dict[datetime, list[str]] = {}
    for slug in service.staff:
        person = by_slug[slug]
        tz = ZoneInfo(person.timezone)
        # A booking blocks its own padded range, widened by this service's buffers (so both
        # sides' buffers fit between them); busy time the same; time off and holidays as they are.
        # Naive on purpose: every candidate is checked against the whole table of bookings and
        # busy intervals of the business (as a per-slot "SELECT ... WHERE overlaps" would be),
        # filtering by staff member inside the scan.
        blocks = [(b.staff, b.blocked_start - after, b.blocked_end + before) for b in booked]
        blocks += [(who, i.start - after, i.end + before) for who, ivs in busy.items() for i in ivs]
        blocks += [(slug, i.start, i.end) for i in person.time_off]
        blocks += [(slug, a, b) for a, b in closed]
        # Ranges may run up to 48 h past their local midnight: start two days early.
        day = earliest.astimezone(tz).date() - timedelta(days=2)
        last = horizon.astimezone(tz).date()
        while day <= last:
            for open_min, close_min in pieces_of(*day_rules(person, day)):
                t, close = wall(day, open_min, tz), wall(day, close_min, tz)
                first = t  # the grid is anchored at the opening of the piece, buffers or not
                if service.buffers_within_hours:
                    first, close = t + before, close - after
                while t + duration <= close:
                    t_end = t + duration
                    if earliest <= t < horizon and t >= first:
                        for who, b_start, b_end in blocks:  # all of them, until one blocks t
                            if who == slug and b_start < t_end and t < b_end:
                                break
                        else:
                            found.setdefault(t, []).append(slug)
                    t += step
            day += timedelta(days=1)
    return [(t, t + duration, tuple(names)) for t, names in sorted(found.items())]


# ------------------------------------------------------------------------------------------- timing


def engine(ds: Dataset) -> list[SlotKey]:
    slots = find_slots(
        business=ds.business,
        service=ds.service,
        staff=ds.staff,
        booked=ds.booked,
        busy=ds.busy,
        start=ds.start,
        end=ds.end,
        now=ds.now,
    )
    return [(s.start, s.end, s.staff) for s in slots]


def naive(ds: Dataset) -> list[SlotKey]:
    return naive_slots(
        business=ds.business,
        service=ds.service,
        staff=ds.staff,
        booked=ds.booked,
        busy=ds.busy,
        start=ds.start,
        end=ds.end,
        now=ds.now,
    )


def best_of(runs: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Smallest wall time of ``runs`` calls (time.perf_counter) and the last result."""
    best, result = float("inf"), None
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    return best, result


def compare(label: str, got: list[SlotKey], want: list[SlotKey], console: Console) -> bool:
    """True when engine (``got``) and naive (``want``) agree; otherwise print where they differ."""
    if got == want:
        return True
    g = {t: (t_end, staff) for t, t_end, staff in got}
    w = {t: (t_end, staff) for t, t_end, staff in want}
    console.print(f"[bold red]MISMATCH[/] in {label}: engine {len(got)} slots, naive {len(want)} slots")
    for name, only in (
        ("engine only", sorted(g.keys() - w.keys())),
        ("naive only", sorted(w.keys() - g.keys())),
    ):
        if only:
            console.print(f"  {name}: {len(only)} starts, first: {', '.join(t.isoformat() for t in only[:5])}")
    differ = sorted(t for t in g.keys() & w.keys() if g[t] != w[t])
    for t in differ[:5]:
        console.print(f"  {t.isoformat()}: engine (end, staff) {g[t]}, naive {w[t]}")
    if len(got) != len(g) or len(want) != len(w):
        console.print("  repeated starts in a result")
    return False


def mark(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]MISS[/]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the data (2 staff), for a smoke run")
    parser.add_argument("--seed", type=int, default=20261012)
    parser.add_argument("--engine-runs", type=int, default=5)
    parser.add_argument("--naive-runs", type=int, default=3)
    args = parser.parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=110)  # no wrapping in logs

    scale = 10 if args.quick else 1
    n_staff, n_booked, n_busy = 20 // scale, 10_000 // scale, 5_000 // scale
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    staff = make_staff(rng, n_staff)
    one = make_dataset(rng, "1×", staff, 30, n_booked, n_busy)
    two = make_dataset(rng, "2×", staff, 60, 2 * n_booked, 2 * n_busy)
    console.print(
        f"data built in {time.perf_counter() - t0:.2f}s, seed {args.seed}"
        + (", quick: 1/10 of the data (2 staff)" if args.quick else "")
    )
    last_1, last_2 = (FIRST_DAY + timedelta(days=d - 1) for d in (one.days, two.days))
    console.print(
        f"window: {FIRST_DAY} to {last_1} ({one.days} local days, {BUSINESS_TZ}), crossing the London "
        "(25 Oct) and New York (1 Nov) fall-back changes; a night shift spans the repeated hour."
    )
    console.print(
        f"2× = the same {n_staff} staff over twice the window ({FIRST_DAY} to {last_2}, {two.days} days; "
        "the engine accepts at most 62) with twice the bookings and busy intervals: "
        "same density per staff and day."
    )

    ok = True
    rows = []
    for ds in (one, two):
        engine_s, got = best_of(args.engine_runs, lambda ds=ds: engine(ds))
        naive_runs = args.naive_runs if ds is one else 1  # at 2× the naive scan is mostly a cross-check
        naive_s, want = best_of(naive_runs, lambda ds=ds: naive(ds))
        ok = compare(ds.label, got, want, console) and ok
        # How full the calendars are: bookable (staff, start) pairs left, out of those in empty calendars.
        bare = dataclasses.replace(ds, label=f"{ds.label} with empty calendars", booked=[], busy={})
        empty = engine(bare)
        ok = compare(bare.label, empty, naive(bare), console) and ok  # the grid alone, all of it visible
        free = sum(len(staff) for *_, staff in got) / max(1, sum(len(staff) for *_, staff in empty))
        rows.append((ds, len(got), free, engine_s, naive_s))

    (_, _, _, engine_1, naive_1), (_, _, _, engine_2, _) = rows
    speedup, growth = naive_1 / engine_1, engine_2 / engine_1

    table = Table(
        title="find_slots vs naive per-candidate scan",
        caption=f"engine: best of {args.engine_runs} runs; naive: best of {args.naive_runs} at 1×, "
        "one run at 2×. "
        "free: bookable (staff, start) pairs left, out of those in empty calendars.",
    )
    for name in (
        "data",
        "staff",
        "days",
        "bookings",
        "busy",
        "slots",
        "free",
        "engine s",
        "naive s",
        "speed-up",
    ):
        table.add_column(name, justify="left" if name == "data" else "right", no_wrap=True)
    for ds, count, free, engine_s, naive_s in rows:
        table.add_row(
            ds.label,
            str(len(ds.staff)),
            str(ds.days),
            f"{len(ds.booked):,}",
            f"{ds.busy_count:,}",
            f"{count:,}",
            f"{free:.1%}",
            f"{engine_s:.4f}",
            f"{naive_s:.3f}",
            f"{naive_s / engine_s:.1f}×",
        )
    console.print(table)
    console.print(
        f"speed-up over naive at 1×: {naive_1:.3f}s / {engine_1:.4f}s = {speedup:.1f}× "
        f"(goal ≥ {SPEEDUP_GOAL:.0f}×) {mark(speedup >= SPEEDUP_GOAL)}"
    )
    console.print(
        f"engine growth at 2× data: {engine_2:.4f}s / {engine_1:.4f}s = {growth:.2f}× "
        f"(goal ≤ {GROWTH_GOAL}×) {mark(growth <= GROWTH_GOAL)}; the naive scan grew "
        f"{rows[1][4] / naive_1:.2f}×"
    )
    if ok:
        console.print(
            "engine and naive agree on every slot (start, end, staff) at 1× and 2×, also with empty calendars"
        )
        return 0
    console.print("[bold red]engine and naive results differ: see above[/]")
    return 1


if __name__ == "__main__":
    sys.exit(main())
