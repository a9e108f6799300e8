"""Appointment reminders as rows: planned, claimed, sent once, or dropped with a reason.

Rows are made for scheduled appointments booked in a conversation, one per configured offset
(an offset already past when the booking was made is skipped). The reminder job claims due rows
with a compare-and-set on ``lease_until`` (never two senders), pushes the message keyed
``reminder:<id>`` (a re-run after a crash finds it already sent), then marks the row sent.
After downtime a reminder is dropped, not sent, when its appointment has started, when it is more
than ``stale_after`` late, or when a later reminder of the same appointment is also due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from core.booking import Status
from storage import tables as t
from storage.engine import Database, dialect_insert


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    tenant_id: str
    appointment_id: str
    conversation_id: str
    offset_minutes: int
    due_at: datetime

    @property
    def key(self) -> str:
        return f"reminder:{self.id}"


@dataclass(frozen=True, slots=True)
class ReminderView:
    id: str
    appointment_id: str
    offset_minutes: int
    due_at: datetime
    state: str
    reason: str | None
    sent_at: datetime | None


async def plan(db: Database, offsets: Sequence[int], now: datetime, ahead: timedelta) -> int:
    """Make the missing reminder rows of scheduled, chat-booked appointments starting within ``ahead``."""
    if not offsets:
        return 0
    async with db.writing() as session:
        rows = (
            await session.execute(
                select(
                    t.Appointment.id,
                    t.Appointment.tenant_id,
                    t.Appointment.conversation_id,
                    t.Appointment.starts_at,
                    t.Appointment.created_at,
                ).where(
                    t.Appointment.status == Status.SCHEDULED.value,
                    t.Appointment.conversation_id.is_not(None),
                    t.Appointment.starts_at > now,
                    t.Appointment.starts_at <= now + ahead,
                )
            )
        ).all()
        if not rows:
            return 0
        have = set(
            (
                await session.execute(
                    select(t.Reminder.appointment_id, t.Reminder.offset_minutes).where(
                        t.Reminder.appointment_id.in_([r.id for r in rows])
                    )
                )
            ).all()
        )
        values = []
        for r in rows:
            for offset in sorted(set(offsets), reverse=True):
                due = r.starts_at - timedelta(minutes=offset)
                if (r.id, offset) in have or due < r.created_at:
                    continue  # already planned, or booked inside this reminder's window
                values.append(
                    {
                        "id": t.new_id(),
                        "tenant_id": r.tenant_id,
                        "appointment_id": r.id,
                        "conversation_id": r.conversation_id,
                        "offset_minutes": offset,
                        "due_at": due,
                        "state": "pending",
                        "attempts": 0,
                        "created_at": now,
                    }
                )
        if not values:
            return 0
        insert = dialect_insert(session)
        await session.execute(
            insert(t.Reminder)
            .values(values)
            .on_conflict_do_nothing(index_elements=["appointment_id", "offset_minutes"])
        )
        return len(values)


async def drop_stale(db: Database, now: datetime, stale_after: timedelta) -> list[tuple[str, str]]:
    """Drop (and say why) pending reminders that must never go out: appointment not scheduled any
    more, already started, reminder too late after downtime, or superseded by a later one also due."""
    dropped: list[tuple[str, str]] = []
    async with db.writing() as session:
        rows = (
            await session.execute(
                select(t.Reminder, t.Appointment.status, t.Appointment.starts_at)
                .join(t.Appointment, t.Appointment.id == t.Reminder.appointment_id)
                .where(
                    t.Reminder.state == "pending",
                    or_(t.Reminder.due_at <= now, t.Appointment.status != Status.SCHEDULED.value),
                    or_(t.Reminder.lease_until.is_(None), t.Reminder.lease_until <= now),
                )
                .order_by(t.Reminder.appointment_id, t.Reminder.due_at)
            )
        ).all()
        latest_due: dict[str, datetime] = {}
        for reminder, _status, _starts in rows:
            if reminder.due_at <= now:
                latest_due[reminder.appointment_id] = max(
                    latest_due.get(reminder.appointment_id, reminder.due_at), reminder.due_at
                )
        for reminder, status, starts_at in rows:
            if status != Status.SCHEDULED.value:
                reason = f"appointment_{status}"
            elif starts_at <= now:
                reason = "appointment_started"
            elif reminder.due_at < now - stale_after:
                reason = "stale"
            elif reminder.due_at < latest_due.get(reminder.appointment_id, reminder.due_at):
                reason = "superseded"
            else:
                continue
            done = await session.execute(
                update(t.Reminder)
                .where(
                    t.Reminder.id == reminder.id,
                    t.Reminder.state == "pending",
                    or_(t.Reminder.lease_until.is_(None), t.Reminder.lease_until <= now),
                )
                .values(state="dropped", reason=reason, lease_until=None)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                dropped.append((reminder.id, reason))
    return dropped


async def claim_due(db: Database, worker: str, now: datetime, lease: timedelta, limit: int = 100) -> list[Claimed]:
    """Take due reminders for ``worker``: each row is won by exactly one claimer."""
    async with db.reading() as session:
        ids = list(
            await session.scalars(
                select(t.Reminder.id)
                .where(
                    t.Reminder.state == "pending",
                    t.Reminder.due_at <= now,
                    t.Reminder.conversation_id.is_not(None),
                    or_(t.Reminder.lease_until.is_(None), t.Reminder.lease_until <= now),
                )
                .order_by(t.Reminder.due_at, t.Reminder.id)
                .limit(limit)
            )
        )
    claimed = []
    for reminder_id in ids:
        async with db.writing() as session:
            won = await session.execute(
                update(t.Reminder)
                .where(
                    t.Reminder.id == reminder_id,
                    t.Reminder.state == "pending",
                    or_(t.Reminder.lease_until.is_(None), t.Reminder.lease_until <= now),
                )
                .values(claimed_by=worker, lease_until=now + lease, attempts=t.Reminder.attempts + 1)
            )
            if not won.rowcount:  # type: ignore[attr-defined]
                continue
            row = await session.get(t.Reminder, reminder_id, populate_existing=True)
            assert row is not None and row.conversation_id is not None
            claimed.append(
                Claimed(row.id, row.tenant_id, row.appointment_id, row.conversation_id, row.offset_minutes, row.due_at)
            )
    return claimed


async def finish(
    db: Database, reminder_id: str, worker: str, now: datetime, *, sent: bool, reason: str | None = None
) -> bool:
    """Close a claimed reminder: sent, or dropped with ``reason`` (e.g. the customer opted out)."""
    async with db.writing() as session:
        done = await session.execute(
            update(t.Reminder)
            .where(t.Reminder.id == reminder_id, t.Reminder.claimed_by == worker, t.Reminder.state == "pending")
            .values(
                state="sent" if sent else "dropped",
                sent_at=now if sent else None,
                reason=reason,
                lease_until=None,
            )
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


async def release(db: Database, reminder_id: str, worker: str, retry_at: datetime) -> None:
    """A push failed: give the row back so a later tick (not before ``retry_at``) tries again."""
    async with db.writing() as session:
        await session.execute(
            update(t.Reminder)
            .where(and_(t.Reminder.id == reminder_id, t.Reminder.claimed_by == worker, t.Reminder.state == "pending"))
            .values(lease_until=retry_at)
        )


async def for_appointment(db: Database, tenant_id: str, appointment_id: str) -> list[ReminderView]:
    async with db.reading() as session:
        rows = await session.scalars(
            select(t.Reminder)
            .where(t.Reminder.tenant_id == tenant_id, t.Reminder.appointment_id == appointment_id)
            .order_by(t.Reminder.due_at)
        )
        return [
            ReminderView(r.id, r.appointment_id, r.offset_minutes, r.due_at, r.state, r.reason, r.sent_at) for r in rows
        ]
