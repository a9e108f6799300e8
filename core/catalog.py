"""Declarations of a business's catalogue: staff, services, holidays, overrides, time off.

The same models validate ``config.yaml`` and the management API, so both accept exactly the
same things. Conversion to the engine's plain data lives here too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import InvalidInput
from core.models import AdvanceMode, Assignment, Interval, ServiceRules, parse_ranges, parse_week
from core.timezones import canonical_zone_name

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_ranges(texts: list[str], where: str) -> list[str]:
    try:
        parse_ranges(texts)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return texts


class TimeOffSpec(Spec):
    start: datetime  # local wall-clock in the staff member's zone unless an offset is given
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> TimeOffSpec:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("give both start and end with an offset, or neither")
        if self.end <= self.start:
            raise ValueError("time off ends before it starts")
        return self

    def to_interval(self, tz: ZoneInfo) -> Interval:
        """Naive values are wall-clock times in ``tz`` (first occurrence when repeated)."""

        def instant(value: datetime) -> datetime:
            return value.replace(tzinfo=tz, fold=0) if value.tzinfo is None else value

        return Interval(instant(self.start).astimezone(UTC), instant(self.end).astimezone(UTC))


class StaffSpec(Spec):
    slug: str = Field(pattern=SLUG)
    name: str
    kind: Literal["person", "resource"] = "person"
    timezone: str | None = None  # defaults to the business's
    hours: dict[str, list[str]] = Field(default_factory=dict)
    breaks: dict[str, list[str]] = Field(default_factory=dict)
    overrides: dict[date, list[str]] = Field(default_factory=dict)  # [] = closed that day
    time_off: list[TimeOffSpec] = Field(default_factory=list)
    weight: int = Field(default=1, ge=1, le=100)

    @field_validator("hours", "breaks")
    @classmethod
    def _week(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_week(value)
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: dict[date, list[str]]) -> dict[date, list[str]]:
        for day, texts in value.items():
            _check_ranges(texts, str(day))
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _zone_name(value)


class ServiceSpec(Spec):
    slug: str = Field(pattern=SLUG)
    name: str
    description: str = ""
    duration_minutes: int = Field(ge=1, le=1440)
    price: int = Field(default=0, ge=0)  # integer minor units of the business currency
    staff: list[str] = Field(min_length=1)
    interval_minutes: int | None = Field(default=None, ge=1, le=1440)
    buffer_before_minutes: int = Field(default=0, ge=0)
    buffer_after_minutes: int = Field(default=0, ge=0)
    min_notice_minutes: int = Field(default=0, ge=0)
    max_advance_days: int = Field(default=60, ge=0, le=730)
    advance_mode: AdvanceMode = AdvanceMode.CALENDAR_DAYS
    max_per_day: int | None = Field(default=None, ge=1)
    max_per_week: int | None = Field(default=None, ge=1)
    capacity: int = Field(default=1, ge=1)
    assignment: Assignment = Assignment.ANY
    buffers_within_hours: bool = False
    cancel_notice_hours: float = Field(default=0, ge=0)
    reschedule_notice_hours: float = Field(default=0, ge=0)
    # Refund when the customer cancels a paid booking: all of it at least refund_full_hours before
    # the start (0: any time before), refund_partial_percent of it after that, nothing once started.
    refund_full_hours: float = Field(default=0, ge=0)
    refund_partial_percent: int = Field(default=0, ge=0, le=100)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSpec:
        self.to_rules()  # the engine's own checks (notice vs window, seats vs collective...)
        return self

    def to_rules(self) -> ServiceRules:
        return ServiceRules(
            slug=self.slug,
            duration_minutes=self.duration_minutes,
            staff=tuple(self.staff),
            interval_minutes=self.interval_minutes,
            buffer_before_minutes=self.buffer_before_minutes,
            buffer_after_minutes=self.buffer_after_minutes,
            min_notice_minutes=self.min_notice_minutes,
            max_advance_days=self.max_advance_days,
            advance_mode=self.advance_mode,
            max_per_day=self.max_per_day,
            max_per_week=self.max_per_week,
            capacity=self.capacity,
            assignment=self.assignment,
            buffers_within_hours=self.buffers_within_hours,
            cancel_notice_hours=self.cancel_notice_hours,
            reschedule_notice_hours=self.reschedule_notice_hours,
        )


class HolidaySpec(Spec):
    date: date
    name: str = "Holiday"


class BusinessSpec(Spec):
    slug: str = Field(pattern=SLUG)
    name: str
    timezone: str
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    locale: str = "en"
    week_start: Literal["mon", "sun"] = "mon"
    address: str = ""
    phone: str = ""
    hours: dict[str, list[str]] = Field(default_factory=dict)  # default hours of staff without their own
    holidays: list[HolidaySpec] = Field(default_factory=list)
    faq: list[dict[str, str]] = Field(default_factory=list)
    staff: list[StaffSpec] = Field(default_factory=list)
    services: list[ServiceSpec] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone_name(value)

    @field_validator("hours")
    @classmethod
    def _week(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_week(value)
        return value

    @model_validator(mode="after")
    def _references(self) -> BusinessSpec:
        staff = {s.slug for s in self.staff}
        problems = []
        for name, items in (("staff", self.staff), ("services", self.services)):
            slugs = [i.slug for i in items]
            dupes = sorted({s for s in slugs if slugs.count(s) > 1})
            if dupes:
                problems.append(f"duplicate {name} slug(s): {', '.join(dupes)}")
        for service in self.services:
            missing = [s for s in service.staff if s not in staff]
            if missing:
                problems.append(f"service {service.slug} names unknown staff: {', '.join(missing)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _zone_name(value: str) -> str:
    try:
        return canonical_zone_name(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
