"""Automatic completed / missed marking of appointments nobody marked by hand.

Each appointment is taken with a conditional UPDATE (still ``scheduled``), so two scheduler
processes never mark one twice; the history row written with it is what triggers the
completed / no-show automations.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from core.booking import Status
from storage import tables as t
from storage.engine import Database

AUTOMATIC = "system:outcomes"  # the actor of the marks this job makes (a person may correct one)


async def mark_overdue(
    db: Database, now: datetime, *, ended_before: datetime, ended_after: datetime, target: Status, limit: int = 200
) -> list[tuple[str, str]]:
    """Mark scheduled appointments that ended in ``[ended_after, ended_before)``; (tenant, id) of each."""
    if target not in (Status.COMPLETED, Status.MISSED):
        raise ValueError("only completed or missed")
    async with db.reading() as session:
        rows = (
            await session.execute(
                select(t.Appointment.id, t.Appointment.tenant_id)
                .where(
                    t.Appointment.status == Status.SCHEDULED.value,
                    t.Appointment.ends_at < ended_before,
                    t.Appointment.ends_at >= ended_after,
                )
                .order_by(t.Appointment.ends_at, t.Appointment.id)
                .limit(limit)
            )
        ).all()
    marked = []
    for appointment_id, tenant_id in rows:
        async with db.writing() as session:
            won = await session.execute(
                update(t.Appointment)
                .where(t.Appointment.id == appointment_id, t.Appointment.status == Status.SCHEDULED.value)
                .values(status=target.value, updated_at=now)
            )
            if not won.rowcount:  # type: ignore[attr-defined]
                continue  # marked by hand, or by another scheduler, meanwhile
            session.add(
                t.AppointmentEvent(
                    tenant_id=tenant_id,
                    appointment_id=appointment_id,
                    at=now,
                    from_status=Status.SCHEDULED.value,
                    to_status=target.value,
                    actor=AUTOMATIC,
                    reason=target.value,
                    details={"automatic": True},
                )
            )
        marked.append((tenant_id, appointment_id))
    return marked


async def no_shows(db: Database, tenant_id: str, customer_id: str) -> int:
    """How many of a customer's appointments were missed (the no-show follow-up records it)."""
    async with db.reading() as session:
        ids = await session.scalars(
            select(t.Appointment.id).where(
                t.Appointment.tenant_id == tenant_id,
                t.Appointment.customer_id == customer_id,
                t.Appointment.status == Status.MISSED.value,
            )
        )
        return len(list(ids))
