"""Businesses and their catalogue: staff, services, holidays, date overrides, time off.

Config loading and the management API both go through these upserts (keyed by natural keys:
slugs, dates), so loading the same config twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.catalog import BusinessSpec, HolidaySpec, ServiceSpec, StaffSpec, TimeOffSpec
from core.errors import InvalidInput, NotFound
from core.models import WEEKDAYS, parse_ranges
from core.timezones import zone
from storage import tables as t


@dataclass(frozen=True, slots=True)
class BusinessInfo:
    id: str
    slug: str
    name: str
    timezone: str
    currency: str
    locale: str
    week_start: int
    hours: dict[str, Any]
    info: dict[str, Any]
    catalog_version: int = 0  # changes with every write to the business's services or staff


def _info(row: t.Business) -> BusinessInfo:
    return BusinessInfo(
        row.id,
        row.slug,
        row.name,
        row.timezone,
        row.currency,
        row.locale,
        row.week_start,
        dict(row.hours),
        dict(row.info),
        row.catalog_version,
    )


async def business_by_slug(session: AsyncSession, slug: str) -> BusinessInfo:
    row = await session.scalar(select(t.Business).where(t.Business.slug == slug))
    if row is None:
        raise NotFound(f"no business {slug!r}")
    return _info(row)


async def business_by_id(session: AsyncSession, tenant_id: str) -> BusinessInfo:
    row = await session.get(t.Business, tenant_id)
    if row is None:
        raise NotFound("no such business")
    return _info(row)


async def sync_business(session: AsyncSession, spec: BusinessSpec, now: datetime) -> str:
    """Create or update a business and everything it declares; returns its tenant id."""
    row = await session.scalar(select(t.Business).where(t.Business.slug == spec.slug))
    if row is None:
        row = t.Business(slug=spec.slug, created_at=now)
        session.add(row)
    row.name, row.timezone, row.currency, row.locale = spec.name, spec.timezone, spec.currency, spec.locale
    row.week_start = WEEKDAYS.index(spec.week_start)
    row.hours = spec.hours
    row.info = {"address": spec.address, "phone": spec.phone, "faq": spec.faq}
    await session.flush()
    for staff in spec.staff:
        await upsert_staff(session, row.id, staff, now)
    for service in spec.services:
        await upsert_service(session, row.id, service)
    for holiday in spec.holidays:
        await put_holiday(session, row.id, holiday)
    return row.id


async def upsert_staff(session: AsyncSession, tenant_id: str, spec: StaffSpec, now: datetime) -> str:
    row = await session.scalar(select(t.Staff).where(t.Staff.tenant_id == tenant_id, t.Staff.slug == spec.slug))
    if row is None:
        row = t.Staff(tenant_id=tenant_id, slug=spec.slug, joined_at=now)
        session.add(row)
    row.name, row.kind, row.timezone, row.weight, row.active = (
        spec.name,
        spec.kind,
        spec.timezone,
        spec.weight,
        True,
    )
    row.hours, row.breaks = spec.hours, spec.breaks
    await session.flush()
    for day, texts in spec.overrides.items():
        await put_override(session, tenant_id, spec.slug, day, texts)
    for off in spec.time_off:
        await add_time_off(session, tenant_id, spec.slug, off)
    return row.id


async def staff_row(session: AsyncSession, tenant_id: str, slug: str) -> t.Staff:
    row = await session.scalar(select(t.Staff).where(t.Staff.tenant_id == tenant_id, t.Staff.slug == slug))
    if row is None:
        raise NotFound(f"no staff member {slug!r}")
    return row


async def list_staff(session: AsyncSession, tenant_id: str) -> list[t.Staff]:
    rows = await session.scalars(
        select(t.Staff).where(t.Staff.tenant_id == tenant_id, t.Staff.active).order_by(t.Staff.slug)
    )
    return list(rows)


async def deactivate_staff(session: AsyncSession, tenant_id: str, slug: str) -> None:
    (await staff_row(session, tenant_id, slug)).active = False


async def upsert_service(session: AsyncSession, tenant_id: str, spec: ServiceSpec) -> str:
    known = set(await session.scalars(select(t.Staff.slug).where(t.Staff.tenant_id == tenant_id)))
    missing = [s for s in spec.staff if s not in known]
    if missing:
        raise InvalidInput(f"service {spec.slug} names unknown staff: {', '.join(missing)}")
    row = await session.scalar(select(t.Service).where(t.Service.tenant_id == tenant_id, t.Service.slug == spec.slug))
    if row is None:
        row = t.Service(tenant_id=tenant_id, slug=spec.slug)
        session.add(row)
    values = spec.model_dump(exclude={"slug", "staff"})
    for key, value in values.items():
        setattr(row, key, value.value if hasattr(value, "value") else value)
    row.staff_slugs = list(spec.staff)
    row.active = True
    await session.flush()
    return row.id


def service_spec(row: t.Service) -> ServiceSpec:
    fields = {name: getattr(row, name) for name in ServiceSpec.model_fields if name != "staff"}
    return ServiceSpec(**fields, staff=list(row.staff_slugs))


async def service_row(session: AsyncSession, tenant_id: str, slug: str) -> t.Service:
    row = await session.scalar(
        select(t.Service).where(t.Service.tenant_id == tenant_id, t.Service.slug == slug, t.Service.active)
    )
    if row is None:
        raise NotFound(f"no service {slug!r}")
    return row


async def list_services(session: AsyncSession, tenant_id: str) -> list[t.Service]:
    rows = await session.scalars(
        select(t.Service).where(t.Service.tenant_id == tenant_id, t.Service.active).order_by(t.Service.slug)
    )
    return list(rows)


async def deactivate_service(session: AsyncSession, tenant_id: str, slug: str) -> None:
    (await service_row(session, tenant_id, slug)).active = False


async def put_holiday(session: AsyncSession, tenant_id: str, spec: HolidaySpec) -> None:
    row = await session.scalar(select(t.Holiday).where(t.Holiday.tenant_id == tenant_id, t.Holiday.day == spec.date))
    if row is None:
        session.add(t.Holiday(tenant_id=tenant_id, day=spec.date, name=spec.name))
    else:
        row.name = spec.name
    await session.flush()


async def list_holidays(session: AsyncSession, tenant_id: str) -> list[t.Holiday]:
    rows = await session.scalars(select(t.Holiday).where(t.Holiday.tenant_id == tenant_id).order_by(t.Holiday.day))
    return list(rows)


async def delete_holiday(session: AsyncSession, tenant_id: str, day: date) -> None:
    result = await session.execute(delete(t.Holiday).where(t.Holiday.tenant_id == tenant_id, t.Holiday.day == day))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no holiday on {day}")


async def put_override(session: AsyncSession, tenant_id: str, staff_slug: str, day: date, texts: list[str]) -> None:
    """Replace ``day``'s hours for one staff member; ``[]`` closes the day."""
    try:
        parse_ranges(texts)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    staff = await staff_row(session, tenant_id, staff_slug)
    row = await session.scalar(
        select(t.DateOverride).where(t.DateOverride.staff_id == staff.id, t.DateOverride.day == day)
    )
    if row is None:
        session.add(t.DateOverride(tenant_id=tenant_id, staff_id=staff.id, day=day, ranges=list(texts)))
    else:
        row.ranges = list(texts)
    await session.flush()


async def delete_override(session: AsyncSession, tenant_id: str, staff_slug: str, day: date) -> None:
    staff = await staff_row(session, tenant_id, staff_slug)
    result = await session.execute(
        delete(t.DateOverride).where(t.DateOverride.staff_id == staff.id, t.DateOverride.day == day)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no override on {day}")


async def list_overrides(session: AsyncSession, tenant_id: str, staff_slug: str) -> list[t.DateOverride]:
    staff = await staff_row(session, tenant_id, staff_slug)
    rows = await session.scalars(
        select(t.DateOverride).where(t.DateOverride.staff_id == staff.id).order_by(t.DateOverride.day)
    )
    return list(rows)


async def add_time_off(session: AsyncSession, tenant_id: str, staff_slug: str, spec: TimeOffSpec) -> t.TimeOff:
    staff = await staff_row(session, tenant_id, staff_slug)
    business = await session.get(t.Business, tenant_id)
    assert business is not None
    interval = spec.to_interval(zone(staff.timezone or business.timezone))
    row = await session.scalar(
        select(t.TimeOff).where(
            t.TimeOff.staff_id == staff.id,
            t.TimeOff.starts_at == interval.start,
            t.TimeOff.ends_at == interval.end,
        )
    )
    if row is None:
        row = t.TimeOff(tenant_id=tenant_id, staff_id=staff.id, starts_at=interval.start, ends_at=interval.end)
        session.add(row)
    row.reason = spec.reason
    await session.flush()
    return row


async def list_time_off(session: AsyncSession, tenant_id: str, staff_slug: str) -> list[t.TimeOff]:
    staff = await staff_row(session, tenant_id, staff_slug)
    rows = await session.scalars(select(t.TimeOff).where(t.TimeOff.staff_id == staff.id).order_by(t.TimeOff.starts_at))
    return list(rows)


async def delete_time_off(session: AsyncSession, tenant_id: str, staff_slug: str, time_off_id: str) -> None:
    staff = await staff_row(session, tenant_id, staff_slug)
    result = await session.execute(delete(t.TimeOff).where(t.TimeOff.staff_id == staff.id, t.TimeOff.id == time_off_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("no such time off")


@dataclass(frozen=True, slots=True)
class AgentInfo:
    id: str
    tenant_id: str
    slug: str
    name: str


async def upsert_agent(session: AsyncSession, tenant_id: str, slug: str, name: str, persona: str) -> None:
    row = await session.scalar(select(t.Agent).where(t.Agent.slug == slug))
    if row is None:
        session.add(t.Agent(tenant_id=tenant_id, slug=slug, name=name, persona=persona))
    elif row.tenant_id != tenant_id:
        raise InvalidInput(f"agent slug {slug!r} already belongs to another business")
    else:
        row.name, row.persona = name, persona
    await session.flush()


async def agent_by_slug(session: AsyncSession, slug: str, tenant_id: str | None = None) -> AgentInfo:
    """The agent named ``slug``; restricted to ``tenant_id`` when given (others → 404)."""
    query = select(t.Agent).where(t.Agent.slug == slug)
    if tenant_id is not None:
        query = query.where(t.Agent.tenant_id == tenant_id)
    row = await session.scalar(query)
    if row is None:
        raise NotFound(f"no agent {slug!r}")
    return AgentInfo(row.id, row.tenant_id, row.slug, row.name)


async def sole_agent(session: AsyncSession, tenant_id: str) -> AgentInfo | None:
    """The business's agent when it has exactly one; None when it has none or several."""
    rows = list(await session.scalars(select(t.Agent).where(t.Agent.tenant_id == tenant_id).limit(2)))
    if len(rows) != 1:
        return None
    return AgentInfo(rows[0].id, rows[0].tenant_id, rows[0].slug, rows[0].name)
