"""The automations' work queue and action log.

Triggers are read from the appointments' own history (``appointment_events``): a booking, a
cancellation, a move, a no-show or a completion is already a row there, written in the
transaction that made it. An action is claimed by inserting its log row (unique ``key``), so it is
taken once whichever scheduler process sees the event first; a claim whose process died is taken
over when its lease lapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from core.booking import Status
from storage import tables as t
from storage.bookings import HOLD_EXPIRED
from storage.engine import Database, dialect_insert


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    event_id: str
    tenant_id: str
    appointment_id: str
    trigger: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Run:
    key: str
    trigger: str
    action: str
    status: str
    detail: dict[str, Any]
    at: datetime
    appointment_id: str | None


def trigger_of(from_status: str | None, to_status: str, reason: str) -> str | None:
    """Which automation trigger an appointment history row is (None: not one)."""
    if to_status == Status.SCHEDULED.value:
        if reason == "rescheduled":
            return "appointment.rescheduled"  # the new appointment of a move
        return "appointment.booked"  # booked free, paid, or paid after its hold lapsed
    if to_status == Status.CANCELLED.value and reason != HOLD_EXPIRED:
        return "appointment.cancelled"  # a lapsed hold is the payment desk's to tell
    if to_status == Status.MISSED.value:
        return "appointment.no_show"
    if to_status == Status.COMPLETED.value:
        return "appointment.completed"
    return None


def _is_trigger() -> Any:
    """:func:`trigger_of` is not None, as SQL: rows that are no trigger (a hold taken or lapsed,
    the old half of a move) must not take places in the queue, where nothing ever marks them done."""
    events = t.AppointmentEvent
    return or_(
        events.to_status.in_((Status.SCHEDULED.value, Status.MISSED.value, Status.COMPLETED.value)),
        and_(events.to_status == Status.CANCELLED.value, events.reason != HOLD_EXPIRED),
    )


async def events_since(db: Database, since: datetime, now: datetime, limit: int = 200) -> list[TriggerEvent]:
    """Trigger events newer than ``since`` whose message action is neither done nor held by a live claim."""
    async with db.reading() as session:
        done = select(t.AutomationRun.event_id).where(
            t.AutomationRun.action == "message",
            t.AutomationRun.event_id.is_not(None),
            or_(t.AutomationRun.status != "claimed", t.AutomationRun.lease_until > now),
        )
        rows = (
            await session.execute(
                select(t.AppointmentEvent)
                .where(
                    t.AppointmentEvent.at >= since,
                    _is_trigger(),
                    t.AppointmentEvent.id.notin_(done.scalar_subquery()),
                )
                .order_by(t.AppointmentEvent.at, t.AppointmentEvent.id)
                .limit(limit)
            )
        ).scalars()
        out = []
        for e in rows:
            trigger = trigger_of(e.from_status, e.to_status, e.reason)
            if trigger is not None:
                out.append(TriggerEvent(e.id, e.tenant_id, e.appointment_id, trigger, e.at))
        return out


async def claim(
    db: Database,
    *,
    key: str,
    tenant_id: str,
    appointment_id: str | None,
    event_id: str | None,
    trigger: str,
    action: str,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Take one action: True for exactly one claimer (or for a takeover of a lapsed claim)."""
    async with db.writing() as session:
        insert = dialect_insert(session)
        inserted = await session.execute(
            insert(t.AutomationRun)
            .values(
                id=t.new_id(),
                tenant_id=tenant_id,
                appointment_id=appointment_id,
                event_id=event_id,
                key=key,
                trigger=trigger,
                action=action,
                status="claimed",
                claimed_by=worker,
                lease_until=now + lease,
                detail={},
                at=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        if inserted.rowcount:  # type: ignore[attr-defined]
            return True
        taken = await session.execute(
            update(t.AutomationRun)
            .where(
                t.AutomationRun.key == key,
                t.AutomationRun.status == "claimed",
                or_(t.AutomationRun.lease_until.is_(None), t.AutomationRun.lease_until <= now),
            )
            .values(claimed_by=worker, lease_until=now + lease)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


async def finish(db: Database, key: str, worker: str, status: str, now: datetime, **detail: Any) -> None:
    """Record what the action did: done | skipped | failed, with a reason or ids (never a message body)."""
    async with db.writing() as session:
        await session.execute(
            update(t.AutomationRun)
            .where(and_(t.AutomationRun.key == key, t.AutomationRun.claimed_by == worker))
            .values(status=status, detail=detail, lease_until=None, at=now)
        )


async def record(
    db: Database,
    *,
    key: str,
    tenant_id: str,
    appointment_id: str | None,
    trigger: str,
    action: str,
    status: str,
    now: datetime,
    event_id: str | None = None,
    **detail: Any,
) -> bool:
    """Log an action taken elsewhere in one step (idempotent by ``key``)."""
    async with db.writing() as session:
        insert = dialect_insert(session)
        done = await session.execute(
            insert(t.AutomationRun)
            .values(
                id=t.new_id(),
                tenant_id=tenant_id,
                appointment_id=appointment_id,
                event_id=event_id,
                key=key,
                trigger=trigger,
                action=action,
                status=status,
                detail=detail,
                at=now,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


async def runs(db: Database, tenant_id: str, appointment_id: str | None = None, limit: int = 200) -> list[Run]:
    """The action log, newest first (per appointment when given)."""
    async with db.reading() as session:
        query = select(t.AutomationRun).where(t.AutomationRun.tenant_id == tenant_id)
        if appointment_id is not None:
            query = query.where(t.AutomationRun.appointment_id == appointment_id)
        rows = await session.scalars(query.order_by(t.AutomationRun.at.desc(), t.AutomationRun.key).limit(limit))
        return [Run(r.key, r.trigger, r.action, r.status, dict(r.detail or {}), r.at, r.appointment_id) for r in rows]
