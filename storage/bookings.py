"""The booking service: create, cancel, reschedule, complete, no-show, list.

Every write re-checks everything (hours, buffers, notice, limits, seats, busy time) inside its
own write transaction, through the same :mod:`storage.schedule` path the slot list uses. The
database then has the last word: the no-overlap invariant on ``allocations`` (PostgreSQL
exclusion constraint, SQLite triggers under ``BEGIN IMMEDIATE``) turns any race into
:class:`~core.errors.SlotTaken`, never into a double booking.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
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
from storage import customers, insights, outcomes
from storage import schedule as schedules
from storage import tables as t
from storage.engine import Database

ROTATION_WINDOW = timedelta(days=28)
ALTERNATIVES_REACH = timedelta(days=7)
HOLD_EXPIRED = "hold_expired"  # the reason on the event that cancels an unpaid hold


@dataclass(frozen=True, slots=True)
class NewBooking:
    service: str
    start: datetime
    customer_name: str
    customer_phone: str
    staff: str | None = None
    idempotency_key: str | None = None
    actor: str = "api"
    # Paid services only: the booking is created pending_payment and holds its slot this long.
    # A free service ignores it and is scheduled at once.
    hold_minutes: int | None = None
    conversation_id: str | None = None  # the chat that booked it (insights attribute it; reminders speak there)
    agent_id: str | None = None  # without a chat: the agent credited in insights (an API booking naming one)

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
    if req.hold_minutes is not None and req.hold_minutes <= 0:
        raise InvalidInput("hold_minutes: give a positive number of minutes")
    req = dataclasses.replace(req, customer_name=name, customer_phone=phone)
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
        sched = await schedules.load(
            session, tenant_id, service, start, end, exclude_appointment=exclude_appointment, now=now
        )
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
    await _expire_holds_in(session, now, tenant_id)  # a lapsed hold never blocks a new booking
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
    held = req.hold_minutes is not None and sched.price > 0
    status = Status.PENDING_PAYMENT if held else Status.SCHEDULED
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
        hold_expires_at=now + timedelta(minutes=req.hold_minutes) if held and req.hold_minutes else None,
        conversation_id=req.conversation_id,
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
    # After the seats: a second seat in the same class is refused as that, more precisely.
    if await _overlaps(
        session, tenant_id, customer_id, slot.start, slot.end, (appointment.id, *_ids(rescheduled_from))
    ):
        raise Conflict("you already have another booking at that time", code="overlapping_booking")
    details: dict[str, object] = {}
    if rescheduled_from:
        details["rescheduled_from"] = rescheduled_from.id
    if appointment.hold_expires_at:
        details["hold_expires_at"] = appointment.hold_expires_at.isoformat()
    session.add(
        t.AppointmentEvent(
            tenant_id=tenant_id,
            appointment_id=appointment.id,
            at=now,
            from_status=None,
            to_status=status.value,
            actor=req.actor,
            reason="rescheduled" if rescheduled_from else "booked",
            details=details,
        )
    )
    await session.flush()
    await insights.record_appointment(
        session, appointment, None, status.value, now, conversation_id=req.conversation_id, agent_id=req.agent_id
    )
    return (await _views(session, [appointment]))[0]


async def _overlaps(
    session: AsyncSession, tenant_id: str, customer_id: str, start: datetime, end: datetime, exclude: Sequence[str]
) -> bool:
    """Whether the customer has another active booking with this business over ``start``-``end``,
    whatever the service (cancelled or moved ones do not count): one customer is in one place at a
    time. Every way of booking or moving asks, inside its write transaction."""
    # PostgreSQL: the customer's row is locked so two bookings of theirs at once take turns (SQLite's
    # write transaction is already the only one).
    await session.execute(select(t.Customer.id).where(t.Customer.id == customer_id).with_for_update())
    clash = await session.scalar(
        select(t.Appointment.id)
        .where(
            t.Appointment.tenant_id == tenant_id,
            t.Appointment.customer_id == customer_id,
            t.Appointment.status.in_([s.value for s in ACTIVE]),
            t.Appointment.starts_at < end,
            t.Appointment.ends_at > start,
            t.Appointment.id.notin_(list(exclude)),
        )
        .limit(1)
    )
    return clash is not None


def _ids(row: t.Appointment | None) -> tuple[str, ...]:
    return (row.id,) if row is not None else ()


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
        await insights.record_appointment(session, row, row.status, Status.CANCELLED.value, now)
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
    conversation_id: str | None = None,
) -> Appointment:
    """Move a booking atomically: its old slot is released and the new one taken in one transaction.
    The new booking keeps the old one's conversation unless ``conversation_id`` names the one moving it."""
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
            req = NewBooking(
                service.slug,
                new_start,
                customer.name,
                customer.phone or "",
                staff,
                None,
                actor,
                conversation_id=conversation_id or row.conversation_id,
            )
            moved = await _create_in(session, tenant_id, req, now, rescheduled_from=row, customer_id=customer.id)
            session.add(_event(row, Status.RESCHEDULED, now, actor, "rescheduled", rescheduled_to=moved.id))
            # what was paid goes with the booking: a later cancel of the moved one refunds it
            await session.execute(
                update(t.Purchase).where(t.Purchase.appointment_id == row.id).values(appointment_id=moved.id)
            )
            await insights.record_appointment(session, row, row.status, Status.RESCHEDULED.value, now)
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
    """Completed or missed (no-show): only once the appointment has started. The outcome the
    outcomes job assumed (``completed`` an hour after the end, by default) may be corrected once
    by a person: the customer did not come after all, or did."""
    async with db.writing() as session:
        row = await _row(session, tenant_id, appointment_id)
        if not await _corrects_automatic(session, row, target):
            ensure_transition(Status(row.status), target)
        ensure_started(row.starts_at, now, "completed" if target is Status.COMPLETED else "a no-show")
        session.add(_event(row, target, now, actor, target.value))
        await insights.record_appointment(session, row, row.status, target.value, now)
        row.status, row.updated_at = target.value, now
        return (await _views(session, [row]))[0]


async def _corrects_automatic(session: AsyncSession, row: t.Appointment, target: Status) -> bool:
    """``completed`` ↔ ``missed`` over a mark the outcomes job made, which no person has marked since."""
    outcome = (Status.COMPLETED.value, Status.MISSED.value)
    if {row.status, target.value} != set(outcome):
        return False
    markers = set(
        await session.scalars(
            select(t.AppointmentEvent.actor).where(
                t.AppointmentEvent.appointment_id == row.id, t.AppointmentEvent.to_status.in_(outcome)
            )
        )
    )
    return markers == {outcomes.AUTOMATIC}


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


# --------------------------------------------------------------------------- payment holds


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """What a verified payment did to its appointment: ``confirmed`` (now scheduled), ``already``
    (it was scheduled before: a repeat), or ``refund`` (the slot is gone: give the money back)."""

    result: str  # confirmed | already | refund
    appointment: Appointment
    revived: bool = False  # confirmed after its hold had lapsed, the slot being still free


async def _expire_holds_in(session: AsyncSession, now: datetime, tenant_id: str | None) -> list[t.Appointment]:
    """Cancel every unpaid hold whose time is up and release its slot, in the caller's transaction.

    Rows are taken in id order and each is claimed with a conditional UPDATE, so concurrent sweeps
    (and bookings, which sweep first) neither release a hold twice nor deadlock on PostgreSQL.
    """
    query = select(t.Appointment.id).where(
        t.Appointment.status == Status.PENDING_PAYMENT.value,
        t.Appointment.hold_expires_at.is_not(None),
        t.Appointment.hold_expires_at <= now,
    )
    if tenant_id is not None:
        query = query.where(t.Appointment.tenant_id == tenant_id)
    released = []
    for appointment_id in list(await session.scalars(query.order_by(t.Appointment.id))):
        claimed = await session.execute(
            update(t.Appointment)
            .where(t.Appointment.id == appointment_id, t.Appointment.status == Status.PENDING_PAYMENT.value)
            .values(status=Status.CANCELLED.value, updated_at=now)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            continue  # another transaction got there first (it was paid, or swept)
        row = await session.get(t.Appointment, appointment_id, populate_existing=True)
        assert row is not None
        session.add(
            t.AppointmentEvent(
                tenant_id=row.tenant_id,
                appointment_id=row.id,
                at=now,
                from_status=Status.PENDING_PAYMENT.value,
                to_status=Status.CANCELLED.value,
                actor="system",
                reason=HOLD_EXPIRED,
                details={"hold_expires_at": row.hold_expires_at.isoformat() if row.hold_expires_at else None},
            )
        )
        await insights.record_appointment(session, row, Status.PENDING_PAYMENT.value, Status.CANCELLED.value, now)
        await _release(session, row.id)
        released.append(row)
    return released


async def expire_holds(db: Database, now: datetime) -> list[Appointment]:
    """The sweep: release every lapsed unpaid hold (all tenants) and say which."""
    async with db.writing() as session:
        return await _views(session, await _expire_holds_in(session, now, None))


async def _locked_row(session: AsyncSession, tenant_id: str, appointment_id: str) -> t.Appointment:
    row = await session.scalar(
        select(t.Appointment)
        .where(t.Appointment.tenant_id == tenant_id, t.Appointment.id == appointment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound("no such booking")
    return row


async def _revivable(session: AsyncSession, row: t.Appointment) -> bool:
    """Cancelled only because its hold lapsed, and never confirmed since."""
    reasons = set(
        (
            await session.execute(
                select(t.AppointmentEvent.reason, t.AppointmentEvent.to_status).where(
                    t.AppointmentEvent.appointment_id == row.id
                )
            )
        ).all()
    )
    return (HOLD_EXPIRED, Status.CANCELLED.value) in reasons and all(to != Status.SCHEDULED.value for _, to in reasons)


async def _retake(session: AsyncSession, row: t.Appointment, now: datetime) -> bool:
    """Take the lapsed hold's slot again, if it is still bookable, through the same rules and the
    same no-overlap invariant as a new booking. False (and nothing written) when it is gone."""
    if row.starts_at <= now:
        return False
    service = await session.get(t.Service, row.service_id)
    assert service is not None
    before = list(
        await session.scalars(
            select(t.Staff.slug)
            .join(t.Allocation, t.Allocation.staff_id == t.Staff.id)
            .join(t.AppointmentAllocation, t.AppointmentAllocation.allocation_id == t.Allocation.id)
            .where(t.AppointmentAllocation.appointment_id == row.id)
            .order_by(t.Staff.slug)
        )
    )
    staff_row = await session.get(t.Staff, row.staff_id)
    preferred = staff_row.slug if staff_row is not None else (before[0] if before else None)
    try:
        async with session.begin_nested():
            sched = await schedules.load(
                session,
                row.tenant_id,
                service.slug,
                row.starts_at - timedelta(days=1),
                row.starts_at + timedelta(days=1),
            )
            rules = sched.service
            counting = rules.capacity > 1 or rules.max_per_day is not None or rules.max_per_week is not None
            if counting and session.get_bind().dialect.name == "postgresql":
                await session.execute(
                    select(t.Staff.id)
                    .where(t.Staff.id.in_(sorted(sched.staff_ids.values())))
                    .order_by(t.Staff.id)
                    .with_for_update()
                )
                sched = await schedules.load(
                    session,
                    row.tenant_id,
                    service.slug,
                    row.starts_at - timedelta(days=1),
                    row.starts_at + timedelta(days=1),
                )
            offered = [
                s
                for s in sched.slots(row.starts_at, row.starts_at + timedelta(seconds=1), now, preferred)
                if s.start == row.starts_at and s.end == row.ends_at
            ]
            if not offered:
                return False
            if await _overlaps(session, row.tenant_id, row.customer_id, row.starts_at, row.ends_at, (row.id,)):
                return False  # what they booked since the hold lapsed stands: the late payment is refunded
            slot = offered[0]
            # The old links point at released allocations; the slot is taken afresh below.
            await session.execute(
                delete(t.AppointmentAllocation).where(t.AppointmentAllocation.appointment_id == row.id)
            )
            blocked = rules.blocked(slot.start)
            if rules.assignment is Assignment.COLLECTIVE:
                for slug in slot.staff:
                    await _allocate(session, row.tenant_id, row, sched, slug, blocked.start, blocked.end)
                chosen = slot.staff[0]
            elif rules.capacity > 1:
                chosen = await _take_seat(session, row.tenant_id, row, sched, slot, blocked.start, blocked.end)
            else:
                chosen = await _allocate_first_free(session, row.tenant_id, row, sched, slot, slot.staff[:1])
            row.staff_id = sched.staff_ids[chosen]
            await session.flush()
    except IntegrityError as exc:
        if not _is_overlap(exc):
            raise
        return False
    except (SlotTaken, Conflict):
        return False
    return True


async def confirm_payment_in(
    session: AsyncSession, tenant_id: str, appointment_id: str, now: datetime, *, actor: str = "payment"
) -> PaymentOutcome:
    """A verified payment for this appointment, inside the caller's write transaction.

    pending_payment → scheduled. A hold that lapsed (and was released) is taken again only if its
    slot is still free; otherwise the answer is ``refund``: a late payment never double-books.
    """
    await _expire_holds_in(session, now, tenant_id)  # same lock order as bookings: id order first
    row = await _locked_row(session, tenant_id, appointment_id)
    if row.status == Status.SCHEDULED.value:
        return PaymentOutcome("already", (await _views(session, [row]))[0])
    if row.status == Status.PENDING_PAYMENT.value:
        ensure_transition(Status.PENDING_PAYMENT, Status.SCHEDULED)
        session.add(_event(row, Status.SCHEDULED, now, actor, "paid"))
        await insights.record_appointment(session, row, row.status, Status.SCHEDULED.value, now)
        row.status, row.updated_at = Status.SCHEDULED.value, now
        await session.flush()
        return PaymentOutcome("confirmed", (await _views(session, [row]))[0])
    if row.status == Status.CANCELLED.value and await _revivable(session, row) and await _retake(session, row, now):
        # The one way out of "cancelled": the customer paid for exactly this slot and it is free.
        session.add(_event(row, Status.SCHEDULED, now, actor, "paid_after_expiry"))
        await insights.record_appointment(session, row, row.status, Status.SCHEDULED.value, now)
        row.status, row.updated_at = Status.SCHEDULED.value, now
        await session.flush()
        return PaymentOutcome("confirmed", (await _views(session, [row]))[0], revived=True)
    return PaymentOutcome("refund", (await _views(session, [row]))[0])


async def confirm_payment(
    db: Database, tenant_id: str, appointment_id: str, now: datetime, *, actor: str = "payment"
) -> PaymentOutcome:
    async with db.writing() as session:
        return await confirm_payment_in(session, tenant_id, appointment_id, now, actor=actor)


async def expire_hold_in(session: AsyncSession, tenant_id: str, appointment_id: str, now: datetime) -> bool:
    """Release one unpaid hold early (its payment link expired at the provider). True if released."""
    row = await _locked_row(session, tenant_id, appointment_id)
    if row.status != Status.PENDING_PAYMENT.value:
        return False
    session.add(_event(row, Status.CANCELLED, now, "system", HOLD_EXPIRED, early=True))
    await insights.record_appointment(session, row, row.status, Status.CANCELLED.value, now)
    row.status, row.updated_at = Status.CANCELLED.value, now
    await _release(session, row.id)
    return True


async def hold_lapsed(session: AsyncSession, tenant_id: str, appointment_id: str) -> bool:
    """Cancelled because its unpaid hold ran out (and never confirmed since)."""
    row = await _row(session, tenant_id, appointment_id)
    return row.status == Status.CANCELLED.value and await _revivable(session, row)


async def last_cancellation(session: AsyncSession, appointment_id: str) -> t.AppointmentEvent | None:
    """Who cancelled and when (a lapsed hold's own cancellation is not one)."""
    return await session.scalar(
        select(t.AppointmentEvent)
        .where(
            t.AppointmentEvent.appointment_id == appointment_id,
            t.AppointmentEvent.to_status == Status.CANCELLED.value,
            t.AppointmentEvent.reason != HOLD_EXPIRED,
        )
        .order_by(t.AppointmentEvent.at.desc())
        .limit(1)
    )
