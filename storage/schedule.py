"""Everything the slot engine needs for one service, read in one place.

Listing availability and re-checking a booking inside its write transaction both call
:func:`load`, so the two paths can never compute availability differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.availability import find_slots
from core.booking import Status
from core.models import (
    Booked,
    BusinessRules,
    Interval,
    Ranges,
    ServiceRules,
    Slot,
    StaffSchedule,
    parse_ranges,
    parse_week,
)
from storage import tables as t
from storage.catalog import BusinessInfo, business_by_id, service_row, service_spec

# Allocations this far around the window are read: limits count whole business weeks.
REACH = timedelta(days=8)


@dataclass(frozen=True, slots=True)
class Schedule:
    business: BusinessInfo
    rules: BusinessRules
    service: ServiceRules
    service_id: str
    price: int
    staff: tuple[StaffSchedule, ...]
    staff_ids: dict[str, str]  # slug → id
    booked: tuple[Booked, ...]
    busy: dict[str, list[Interval]]

    def slots(self, start: datetime, end: datetime, now: datetime, staff: str | None = None) -> list[Slot]:
        return find_slots(
            business=self.rules,
            service=self.service,
            staff=self.staff,
            booked=self.booked,
            busy=self.busy,
            start=start,
            end=end,
            now=now,
            only_staff=staff,
        )


async def load(
    session: AsyncSession,
    tenant_id: str,
    service_slug: str,
    start: datetime,
    end: datetime,
    *,
    exclude_appointment: str | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Everything the slot engine needs for one service between ``start`` and ``end``. With ``now``,
    unpaid holds that lapsed before it no longer block (the sweep releases them soon after)."""
    business = await business_by_id(session, tenant_id)
    service = await service_row(session, tenant_id, service_slug)
    rules = service_spec(service).to_rules()
    holidays = await session.scalars(select(t.Holiday.day).where(t.Holiday.tenant_id == tenant_id))
    business_rules = BusinessRules(business.timezone, frozenset(holidays), business.week_start)

    staff_rows = list(
        await session.scalars(
            select(t.Staff).where(t.Staff.tenant_id == tenant_id, t.Staff.slug.in_(rules.staff), t.Staff.active)
        )
    )
    ids = {row.slug: row.id for row in staff_rows}
    slug_of = {row.id: row.slug for row in staff_rows}
    lo, hi = start - REACH, end + REACH

    overrides: dict[str, dict[date, Ranges]] = {row.id: {} for row in staff_rows}
    for o in await session.scalars(
        select(t.DateOverride).where(
            t.DateOverride.staff_id.in_(slug_of),
            t.DateOverride.day >= lo.date(),
            t.DateOverride.day <= hi.date(),
        )
    ):
        overrides[o.staff_id][o.day] = parse_ranges(o.ranges)
    time_off: dict[str, list[Interval]] = {row.id: [] for row in staff_rows}
    for off in await session.scalars(
        select(t.TimeOff).where(t.TimeOff.staff_id.in_(slug_of), t.TimeOff.starts_at < hi, t.TimeOff.ends_at > lo)
    ):
        time_off[off.staff_id].append(Interval(off.starts_at, off.ends_at))

    schedules = tuple(
        StaffSchedule(
            slug=row.slug,
            timezone=row.timezone or business.timezone,
            hours=parse_week(row.hours or business.hours),
            breaks=parse_week(row.breaks),
            overrides=overrides[row.id],
            time_off=tuple(time_off[row.id]),
            weight=row.weight,
        )
        for row in staff_rows
    )

    services = {s.id: s.slug for s in await session.scalars(select(t.Service).where(t.Service.tenant_id == tenant_id))}
    query = select(t.Allocation).where(
        t.Allocation.staff_id.in_(slug_of),
        t.Allocation.active,
        t.Allocation.blocked_start < hi,
        t.Allocation.blocked_end > lo,
    )
    own: dict[str, int] = {}
    if exclude_appointment is not None:
        links = await session.scalars(
            select(t.AppointmentAllocation.allocation_id).where(
                t.AppointmentAllocation.appointment_id == exclude_appointment
            )
        )
        own = {allocation_id: 1 for allocation_id in links}
    if now is not None:
        lapsed = await session.execute(
            select(t.AppointmentAllocation.allocation_id, func.count())
            .join(t.Appointment, t.Appointment.id == t.AppointmentAllocation.appointment_id)
            .where(
                t.Appointment.tenant_id == tenant_id,
                t.Appointment.status == Status.PENDING_PAYMENT.value,
                t.Appointment.hold_expires_at <= now,
            )
            .group_by(t.AppointmentAllocation.allocation_id)
        )
        for allocation_id, count in lapsed.all():
            own[allocation_id] = own.get(allocation_id, 0) + int(count)
    booked = []
    for a in await session.scalars(query):
        seats = a.seats_taken - own.get(a.id, 0)
        if seats <= 0:
            continue  # the appointment being moved: its slot counts as free
        booked.append(
            Booked(
                slug_of[a.staff_id],
                services.get(a.service_id, ""),
                a.starts_at,
                a.ends_at,
                a.blocked_start,
                a.blocked_end,
                seats,
                a.capacity,
            )
        )

    busy: dict[str, list[Interval]] = {row.slug: [] for row in staff_rows}
    for b in await session.scalars(
        select(t.ExternalBusy).where(
            t.ExternalBusy.staff_id.in_(slug_of),
            and_(t.ExternalBusy.starts_at < hi, t.ExternalBusy.ends_at > lo),
        )
    ):
        busy[slug_of[b.staff_id]].append(Interval(b.starts_at, b.ends_at))

    return Schedule(business, business_rules, rules, service.id, service.price, schedules, ids, tuple(booked), busy)
