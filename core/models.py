"""Plain domain data handed to the pure engines.

Frozen dataclasses rather than pydantic models: the availability engine builds and reads many
of them, and nothing here needs validation beyond what the constructors check. Instants are
aware UTC datetimes; wall-clock rules are minutes after local midnight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = timedelta(days=1)
MAX_MINUTES = 48 * 60  # a range may run past midnight, never past the next one

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True, order=True)
class DayRange:
    """Wall-clock minutes after local midnight, half-open. ``end`` > 1440 runs into the next day."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < 1440 and self.start < self.end <= MAX_MINUTES):
            raise ValueError(f"invalid time range {self}")

    @classmethod
    def parse(cls, text: str) -> DayRange:
        """``"09:00-13:00"``; ``"22:00-02:00"`` runs overnight; ``"…-24:00"`` ends at midnight."""
        m = _RANGE.match(text)
        if not m:
            raise ValueError(f"time range must look like 09:00-17:00, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"no such time in {text!r}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            end += 1440  # overnight: it counts for the day it starts on
        return cls(start, end)

    def __str__(self) -> str:
        def hm(v: int) -> str:
            return f"{v // 60 % 24 if v != 1440 else 24:02d}:{v % 60:02d}"

        return f"{hm(self.start)}-{hm(self.end)}"


Ranges = tuple[DayRange, ...]


def parse_week(spec: Mapping[str, list[str] | tuple[str, ...]] | None) -> dict[int, Ranges]:
    """``{"mon": ["09:00-13:00", ...], ...}`` → weekday index → sorted ranges.

    Missing days are closed. ``"daily"`` applies to every weekday not given explicitly.
    """
    spec = dict(spec or {})
    out: dict[int, Ranges] = {}
    daily = spec.pop("daily", None)
    for key in spec:
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {key!r}; use one of {', '.join(WEEKDAYS)} or daily")
    for i, name in enumerate(WEEKDAYS):
        texts = spec.get(name, daily)
        if texts:
            out[i] = tuple(sorted(DayRange.parse(t) for t in texts))
    return out


def parse_ranges(texts: list[str] | tuple[str, ...]) -> Ranges:
    return tuple(sorted(DayRange.parse(t) for t in texts))


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """Half-open UTC interval."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("interval ends before it starts")

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


class Assignment(StrEnum):
    ANY = "any"
    ROUND_ROBIN = "round_robin"
    COLLECTIVE = "collective"


class AdvanceMode(StrEnum):
    CALENDAR_DAYS = "calendar_days"
    BUSINESS_DAYS = "business_days"


@dataclass(frozen=True, slots=True)
class BusinessRules:
    """What is shared by every staff member of one business."""

    timezone: str
    holidays: frozenset[date] = frozenset()
    week_start: int = 0  # 0 = Monday, 6 = Sunday: where weekly limits reset


@dataclass(frozen=True, slots=True)
class StaffSchedule:
    """One bookable person or resource, with wall-clock rules in its own zone."""

    slug: str
    timezone: str
    hours: Mapping[int, Ranges]
    breaks: Mapping[int, Ranges] = field(default_factory=dict)
    overrides: Mapping[date, Ranges] = field(default_factory=dict)  # () = closed that day
    time_off: tuple[Interval, ...] = ()
    weight: int = 1


@dataclass(frozen=True, slots=True)
class ServiceRules:
    slug: str
    duration_minutes: int
    staff: tuple[str, ...]
    interval_minutes: int | None = None  # None: same as the duration
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    min_notice_minutes: int = 0
    max_advance_days: int = 60
    advance_mode: AdvanceMode = AdvanceMode.CALENDAR_DAYS
    max_per_day: int | None = None  # per staff member, business-local day
    max_per_week: int | None = None  # per staff member, business-local week
    capacity: int = 1  # seats per slot
    assignment: Assignment = Assignment.ANY
    buffers_within_hours: bool = False  # True: buffers must also fit inside working hours
    cancel_notice_hours: float = 0  # cancelling needs at least this much notice
    reschedule_notice_hours: float = 0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.duration_minutes <= 24 * 60:
            problems.append("duration_minutes must be 1..1440")
        if self.interval_minutes is not None and not 1 <= self.interval_minutes <= 24 * 60:
            problems.append("interval_minutes must be 1..1440")
        if self.buffer_before_minutes < 0 or self.buffer_after_minutes < 0:
            problems.append("buffers cannot be negative")
        if self.min_notice_minutes < 0 or self.max_advance_days < 0:
            problems.append("min_notice_minutes and max_advance_days cannot be negative")
        if self.min_notice_minutes > (self.max_advance_days + 1) * 1440:
            problems.append(
                "min_notice_minutes is longer than the max_advance_days window: no slot could ever be offered"
            )
        if self.capacity < 1:
            problems.append("capacity must be at least 1")
        if self.capacity > 1 and self.assignment is Assignment.COLLECTIVE:
            problems.append("a collective service cannot have seats")
        if not self.staff:
            problems.append("needs at least one staff member")
        for name in ("max_per_day", "max_per_week"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1")
        if problems:
            raise ValueError(f"service {self.slug}: " + "; ".join(problems))

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes or self.duration_minutes)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def before(self) -> timedelta:
        return timedelta(minutes=self.buffer_before_minutes)

    @property
    def after(self) -> timedelta:
        return timedelta(minutes=self.buffer_after_minutes)

    def blocked(self, start: datetime) -> Interval:
        """The buffer-padded range a booking at ``start`` occupies."""
        return Interval(start - self.before, start + self.duration + self.after)


@dataclass(frozen=True, slots=True)
class Booked:
    """An active allocation of one staff member (an appointment, a seated session, a hold)."""

    staff: str
    service: str
    start: datetime
    end: datetime
    blocked_start: datetime
    blocked_end: datetime
    seats_taken: int = 1
    capacity: int = 1


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime
    staff: tuple[str, ...]
    seats_left: int | None = None  # only for services with capacity > 1
