"""The booking service: create, cancel, reschedule, complete, no-show, list.

Every write re-checks everything (hours, buffers, notice, limits, seats, busy time) inside its
own write transaction, through the same :mod:`storage.schedule` path the slot list uses. The
database then has the last word: the no-overlap invariant on ``allocations`` (PostgreSQL
exclusion constraint, SQLite triggers under ``BEGIN IMMEDIATE``) turns any race into
:class:`~core.errors.SlotTaken`, never into a double booking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.availability import nearest
from core.booking import (
    ACTIVE,
    Appointment,
    CustomerRef,
    RotationStats,
    Status,
    ensure_min_notice,
    ensure_notice,
    ensure_started,
    ensure_transition,
    pick_round_robin,
)
from core.errors import Conflict, InvalidInput, NotFound, SlotTaken
from core.models import Assignment, Slot
from core.phones import normalize_phone
from storage import customers
from storage import schedule as schedules
from storage import tables as t
from storage.engine import Database

ROTATION_WINDOW = timedelta(days=28)
ALTERNATIVES_REACH = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class NewBooking:
    service: str
    start: datetime
    customer_name: str
    customer_phone: str
    staff: str | None = None
    idempotency_key: str | None = None
    actor: str = "api"

    def fingerprint(self) -> str:
        raw = "|".join([self.service, self.start.isoformat(), self.staff or "", self.customer_phone])
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    appointment: Appointment
    changed: bool  # False: an idempotent repeat (same key, already cancelled, ...)


def _is_overlap(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return "slot_taken" in text or "ex_allocations_no_overlap" in text or "23P01" in text


def _is_duplicate_key(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return "idempotency_key" in text


async def create(db: Database, tenant_id: str, req: NewBooking, now: datetime) -> Outcome:
    phone = normalize_phone(req.customer_phone)
    name = req.customer_name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("customer.name: give the customer's name (1-200 characters)")
    req = NewBooking(req.service, req.start, name, phone, req.staff, req.idempotency_key, req.actor)
    try:
        async with db.writing() as session:
            if req.idempotency_key:
                found = await _by_key(session, tenant_id, req)
                if found is not None:
                    return Outcome(found, False)
            appointment = await _create_in(session, tenant_id, req, now)
        return Outcome(appointment, True)
    except IntegrityError as exc:
        if _is_duplicate_key(exc) and req.idempotency_key:  # the same request raced itself
            async with db.reading() as session:
                found = await _by_key(session, tenant_id, req)
            if found is not None:
                return Outcome(found, False)
        if _is_overlap(exc):
            raise await _taken(db, tenant_id, req.service, req.start, now, req.staff) from None
        raise
    except SlotTaken as exc:
        if "alternatives" in exc.details:
            raise
        raise await _taken(db, tenant_id, req.service, req.start, now, req.staff) from None


async def _by_key(session: AsyncSession, tenant_id: str, req: NewBooking) -> Appointment | None:
    row = await session.scalar(
        select(t.Appointment).where(
            t.Appointment.tenant_id == tenant_id, t.Appointment.idempotency_key == req.idempotency_key
        )
    )
    if row is None:
        return None
    if row.request_fingerprint != req.fingerprint():
        raise Conflict("idempotency_key was already used for a different booking", code="idempotency_mismatch")
    return (await _views(session, [row]))[0]


async def _taken(
    db: Database, tenant_id: str, service: str, start: datetime, now: datetime, staff: str | None
) -> SlotTaken:
    alternatives = await alternatives_near(db, tenant_id, service, start, now, staff=staff)
    return SlotTaken("that time is no longer available", alternatives=alternatives)


async def alternatives_near(
    db: Database,
    tenant_id: str,
    service: str,
    wished: datetime,
    now: datetime,
    *,
    staff: str | None = None,
    count: int = 3,
    exclude_appointment: str | None = None,
) -> list[Slot]:
    """The free slots nearest to ``wished`` (within a week either side, never in the past)."""
    start = max(now, wished - ALTERNATIVES_REACH)
    end = max(start + timedelta(minutes=1), wished + ALTERNATIVES_REACH)
    async with db.reading() as session:
        sched = await schedules.load(session, tenant_id, service, start, end, exclude_appointment=exclude_appointment)
    return nearest(sched.slots(start, end, now, staff), wished, count)


async def _create_in(
    session: AsyncSession,
    tenant_id: str,
    req: NewBooking,
    now: datetime,
    *,
    rescheduled_from: t.Appointment | None = None,
    customer_id: str | None = None,
) -> Appointment:
    sched = await schedules.load(
        session, tenant_id, req.service, req.start - timedelta(days=1), req.start + timedelta(days=1)
    )
    service = sched.service
    if req.staff is not None and req.staff not in sched.staff_ids:
        raise InvalidInput(f"staff: {req.staff!r} does not provide {req.service!r}", code="unknown_staff")
    needs_count = service.capacity > 1 or service.max_per_day is not None or service.max_per_week is not None
    if needs_count and session.get_bind().dialect.name == "postgresql":
        # Counting rules (seats, limits) cannot be a constraint: serialise per staff member.
        await session.execute(
            select(t.Staff.id)
            .where(t.Staff.id.in_(sorted(sched.staff_ids.values())))
            .order_by(t.Staff.id)
            .with_for_update()
        )
        sched = await schedules.load(
            session, tenant_id, req.service, req.start - timedelta(days=1), req.start + timedelta(days=1)
        )
    ensure_min_notice(req.start, now, service.min_notice_minutes)
    offered = [
        s for s in sched.slots(req.start, req.start + timedelta(seconds=1), now, req.staff) if s.start == req.start
    ]
    if not offered:
        raise SlotTaken("that time is not available")
    slot = offered[0]

    order = list(slot.staff)
    if service.assignment is Assignment.ROUND_ROBIN and len(order) > 1:
        # Decided before this booking's own row exists, so it cannot count itself.
        order = await _rotation_order(session, tenant_id, sched, order, now)
    if customer_id is None:
        customer_id = await _customer(session, tenant_id, req.customer_name, req.customer_phone, now)
    status = Status.SCHEDULED
    appointment = t.Appointment(
        tenant_id=tenant_id,
        service_id=sched.service_id,
        customer_id=customer_id,
        staff_id=sched.staff_ids[slot.staff[0]],
        starts_at=slot.start,
        ends_at=slot.end,
        status=status.value,
        price=sched.price,
        currency=sched.business.currency,
        idempotency_key=req.idempotency_key,
        request_fingerprint=req.fingerprint() if req.idempotency_key else None,
        rescheduled_from_id=rescheduled_from.id if rescheduled_from else None,
        created_at=now,
        updated_at=now,
    )
    session.add(appointment)
    await session.flush()

    blocked = service.blocked(slot.start)
    if service.assignment is Assignment.COLLECTIVE:
        chosen = list(slot.staff)
        for slug in chosen:
            await _allocate(session, tenant_id, appointment, sched, slug, blocked.start, blocked.end)
    elif service.capacity > 1:
        chosen = [
            await _take_seat(
                session,
                tenant_id,
                appointment,
                sched,
                slot,
                blocked.start,
                blocked.end,
                moving_from=rescheduled_from.id if rescheduled_from else None,
            )
        ]
    else:
        chosen = [await _allocate_first_free(session, tenant_id, appointment, sched, slot, order)]
    appointment.staff_id = sched.staff_ids[chosen[0]]
    session.add(
        t.AppointmentEvent(
            tenant_id=tenant_id,
            appointment_id=appointment.id,
            at=now,
            from_status=None,
            to_status=status.value,
            actor=req.actor,
            reason="rescheduled" if rescheduled_from else "booked",
            details={"rescheduled_from": rescheduled_from.id} if rescheduled_from else {},
        )
    )
    await session.flush()
    return (await _views(session, [appointment]))[0]


async def _allocate(
    session: AsyncSession,
    tenant_id: str,
    appointment: t.Appointment,
    sched: schedules.Schedule,
    slug: str,
    blocked_start: datetime,
    blocked_end: datetime,
) -> None:
    allocation = t.Allocation(
        tenant_id=tenant_id,
        staff_id=sched.staff_ids[slug],
        service_id=sched.service_id,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        blocked_start=blocked_start,
        blocked_end=blocked_end,
        capacity=sched.service.capacity,
        seats_taken=1,
        active=True,
    )
    session.add(allocation)
    await session.flush()
    session.add(
        t.AppointmentAllocation(appointment_id=appointment.id, allocation_id=allocation.id, tenant_id=tenant_id)
    )
    await session.flush()


async def _allocate_first_free(
    session: AsyncSession,
    tenant_id: str,
    appointment: t.Appointment,
    sched: schedules.Schedule,
    slot: Slot,
    order: Sequence[str],
) -> str:
    """Try the free staff in assignment order; a lost race on one moves on to the next."""
    blocked = sched.service.blocked(slot.start)
    for slug in order:
        try:
            async with session.begin_nested():
                await _allocate(session, tenant_id, appointment, sched, slug, blocked.start, blocked.end)
            return slug
        except IntegrityError as exc:
            if not _is_overlap(exc):
                raise
    raise SlotTaken("that time was just taken")


async def _rotation_order(
    session: AsyncSession, tenant_id: str, sched: schedules.Schedule, free: Sequence[str], now: datetime
) -> list[str]:
    since = now - ROTATION_WINDOW
    ids = {sched.staff_ids[s]: s for s in free}
    joined = dict((await session.execute(select(t.Staff.id, t.Staff.joined_at).where(t.Staff.id.in_(ids)))).all())
    rows = (
        await session.execute(
            select(t.Appointment.staff_id, func.count(), func.max(t.Appointment.created_at))
            .where(
                t.Appointment.tenant_id == tenant_id,
                t.Appointment.service_id == sched.service_id,
                t.Appointment.staff_id.in_(ids),
                t.Appointment.created_at >= since,
                t.Appointment.status.notin_([Status.CANCELLED.value, Status.RESCHEDULED.value]),
            )
            .group_by(t.Appointment.staff_id)
        )
    ).all()
    counts = {staff_id: (n, last) for staff_id, n, last in rows}
    weights = {s.slug: s.weight for s in sched.staff}
    stats = []
    for staff_id, slug in ids.items():
        n, last = counts.get(staff_id, (0, None))
        start = max(since, joined.get(staff_id) or since)
        days = max((now - start) / timedelta(days=1), 1.0)
        stats.append(RotationStats(slug, weights.get(slug, 1), n, days, _aware(last)))
    first = pick_round_robin(stats)
    return [first, *(s for s in free if s != first)]


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


async def _take_seat(
    session: AsyncSession,
    tenant_id: str,
    appointment: t.Appointment,
    sched: schedules.Schedule,
    slot: Slot,
    blocked_start: datetime,
    blocked_end: datetime,
    *,
    moving_from: str | None = None,
) -> str:
    """Join an open session at this start, or open a new one with the first free staff member."""
    for slug in slot.staff:
        session_row = await session.scalar(
            select(t.Allocation).where(
                t.Allocation.staff_id == sched.staff_ids[slug],
                t.Allocation.service_id == sched.service_id,
                t.Allocation.starts_at == slot.start,
                t.Allocation.active,
            )
        )
        if session_row is None:
            continue
        mine = await session.scalar(
            select(func.count())
            .select_from(t.AppointmentAllocation)
            .join(t.Appointment, t.Appointment.id == t.AppointmentAllocation.appointment_id)
            .where(
                t.AppointmentAllocation.allocation_id == session_row.id,
                t.Appointment.customer_id == appointment.customer_id,
                t.Appointment.status.in_([s.value for s in ACTIVE]),
                t.Appointment.id.notin_([appointment.id, moving_from or appointment.id]),
            )
        )
        if mine:
            raise Conflict("you already have a seat at that time", code="already_booked")
        taken = await session.execute(
            update(t.Allocation)
            .where(t.Allocation.id == session_row.id, t.Allocation.seats_taken < t.Allocation.capacity)
            .values(seats_taken=t.Allocation.seats_taken + 1)
        )
        if taken.rowcount:  # type: ignore[attr-defined]
            session.add(
                t.AppointmentAllocation(
                    appointment_id=appointment.id, allocation_id=session_row.id, tenant_id=tenant_id
                )
            )
            return slug
    slug = slot.staff[0]
    await _allocate(session, tenant_id, appointment, sched, slug, blocked_start, blocked_end)
    return slug


async def _customer(session: AsyncSession, tenant_id: str, name: str, phone: str, now: datetime) -> str:
    return (await customers.upsert(session, tenant_id, phone, now, name=name)).id


async def _release(session: AsyncSession, appointment_id: str) -> None:
    """Give back the appointment's seats; an allocation without seats stops blocking."""
    allocation_ids = list(
        await session.scalars(
            select(t.AppointmentAllocation.allocation_id).where(
                t.AppointmentAllocation.appointment_id == appointment_id
            )
        )
    )
    for allocation_id in allocation_ids:
        await session.execute(
            update(t.Allocation)
            .where(t.Allocation.id == allocation_id)
            .values(seats_taken=t.Allocation.seats_taken - 1)
        )
        await session.execute(
            update(t.Allocation)
            .where(t.Allocation.id == allocation_id, t.Allocation.seats_taken <= 0)
            .values(active=False)
        )
    await session.flush()


async def _row(session: AsyncSession, tenant_id: str, appointment_id: str) -> t.Appointment:
    row = await session.scalar(
        select(t.Appointment).where(t.Appointment.tenant_id == tenant_id, t.Appointment.id == appointment_id)
    )
    if row is None:
        raise NotFound("no such booking")
    return row


def _event(
    row: t.Appointment, to: Status, now: datetime, actor: str, reason: str, **details: object
) -> t.AppointmentEvent:
    return t.AppointmentEvent(
        tenant_id=row.tenant_id,
        appointment_id=row.id,
        at=now,
        from_status=row.status,
        to_status=to.value,
        actor=actor,
        reason=reason,
        details=dict(details),
    )


async def cancel(
    db: Database,
    tenant_id: str,
    appointment_id: str,
    now: datetime,
    *,
    actor: str = "api",
    reason: str = "",
    enforce_policy: bool = True,
) -> Outcome:
    async with db.writing() as session:
        row = await _row(session, tenant_id, appointment_id)
        if row.status == Status.CANCELLED:
            return Outcome((await _views(session, [row]))[0], False)
        ensure_transition(Status(row.status), Status.CANCELLED)
        if enforce_policy:
            service = await session.get(t.Service, row.service_id)
            assert service is not None
            ensure_notice(row.starts_at, now, service.cancel_notice_hours, "cancelled")
        session.add(_event(row, Status.CANCELLED, now, actor, reason or "cancelled"))
        row.status, row.updated_at = Status.CANCELLED.value, now
        await _release(session, row.id)
        return Outcome((await _views(session, [row]))[0], True)


async def reschedule(
    db: Database,
    tenant_id: str,
    appointment_id: str,
    new_start: datetime,
    now: datetime,
    *,
    staff: str | None = None,
    actor: str = "api",
    enforce_policy: bool = True,
) -> Appointment:
    """Move a booking atomically: its old slot is released and the new one taken in one transaction."""
    try:
        async with db.writing() as session:
            row = await _row(session, tenant_id, appointment_id)
            ensure_transition(Status(row.status), Status.RESCHEDULED)
            service = await session.get(t.Service, row.service_id)
            customer = await session.get(t.Customer, row.customer_id)
            assert service is not None and customer is not None
            if enforce_policy:
                ensure_notice(row.starts_at, now, service.reschedule_notice_hours, "rescheduled")
            await _release(session, row.id)
            req = NewBooking(service.slug, new_start, customer.name, customer.phone or "", staff, None, actor)
            moved = await _create_in(session, tenant_id, req, now, rescheduled_from=row, customer_id=customer.id)
            session.add(_event(row, Status.RESCHEDULED, now, actor, "rescheduled", rescheduled_to=moved.id))
            row.status, row.rescheduled_to_id, row.updated_at = Status.RESCHEDULED.value, moved.id, now
            await session.flush()
            return (await _views(session, [await _row(session, tenant_id, moved.id)]))[0]
    except IntegrityError as exc:
        if not _is_overlap(exc):
            raise
        raise SlotTaken("that time is no longer available") from None


async def mark(
    db: Database, tenant_id: str, appointment_id: str, target: Status, now: datetime, *, actor: str = "api"
) -> Appointment:
    """Completed or missed (no-show): only once the appointment has started."""
    async with db.writing() as session:
        row = await _row(session, tenant_id, appointment_id)
        ensure_transition(Status(row.status), target)
        ensure_started(row.starts_at, now, "completed" if target is Status.COMPLETED else "a no-show")
        session.add(_event(row, target, now, actor, target.value))
        row.status, row.updated_at = target.value, now
        return (await _views(session, [row]))[0]


async def tenant_of(db: Database, appointment_id: str) -> str:
    """Only for requests already authenticated for this appointment id (self-service tokens)."""
    async with db.reading() as session:
        tenant_id = await session.scalar(select(t.Appointment.tenant_id).where(t.Appointment.id == appointment_id))
    if tenant_id is None:
        raise NotFound("no such booking")
    return tenant_id


async def get(db: Database, tenant_id: str, appointment_id: str) -> Appointment:
    async with db.reading() as session:
        return (await _views(session, [await _row(session, tenant_id, appointment_id)]))[0]


async def history(db: Database, tenant_id: str, appointment_id: str) -> list[t.AppointmentEvent]:
    async with db.reading() as session:
        await _row(session, tenant_id, appointment_id)
        return list(
            await session.scalars(
                select(t.AppointmentEvent)
                .where(t.AppointmentEvent.appointment_id == appointment_id)
                .order_by(t.AppointmentEvent.at)
            )
        )


async def list_between(
    db: Database,
    tenant_id: str,
    start: datetime,
    end: datetime,
    status: Status | None = None,
    limit: int = 1000,
) -> list[Appointment]:
    async with db.reading() as session:
        query = select(t.Appointment).where(
            t.Appointment.tenant_id == tenant_id,
            t.Appointment.starts_at >= start,
            t.Appointment.starts_at < end,
        )
        if status is not None:
            query = query.where(t.Appointment.status == status.value)
        rows = list(await session.scalars(query.order_by(t.Appointment.starts_at, t.Appointment.id).limit(limit)))
        return await _views(session, rows)


async def _views(session: AsyncSession, rows: Sequence[t.Appointment]) -> list[Appointment]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    services = dict(
        (
            await session.execute(
                select(t.Service.id, t.Service.slug).where(t.Service.id.in_({r.service_id for r in rows}))
            )
        ).all()
    )
    customers = {
        c.id: c
        for c in await session.scalars(select(t.Customer).where(t.Customer.id.in_({r.customer_id for r in rows})))
    }
    staff: dict[str, list[str]] = {i: [] for i in ids}
    links = await session.execute(
        select(t.AppointmentAllocation.appointment_id, t.Staff.slug)
        .join(t.Allocation, t.Allocation.id == t.AppointmentAllocation.allocation_id)
        .join(t.Staff, t.Staff.id == t.Allocation.staff_id)
        .where(t.AppointmentAllocation.appointment_id.in_(ids))
        .order_by(t.Staff.slug)
    )
    for appointment_id, slug in links:
        staff[appointment_id].append(slug)
    out = []
    for r in rows:
        c = customers[r.customer_id]
        out.append(
            Appointment(
                id=r.id,
                status=Status(r.status),
                service=services[r.service_id],
                staff=tuple(staff[r.id]),
                start=r.starts_at,
                end=r.ends_at,
                customer=CustomerRef(c.id, c.name, c.phone),
                price=r.price,
                currency=r.currency,
                created_at=r.created_at,
                rescheduled_from=r.rescheduled_from_id,
                rescheduled_to=r.rescheduled_to_id,
            )
        )
    return out
