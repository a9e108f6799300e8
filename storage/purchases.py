"""Purchases, their history and the payment webhooks that move them.

Every status change goes through :func:`move`, which checks ``core.payments.TRANSITIONS`` and writes
a ``purchase_events`` row in the same transaction, so the history is complete by construction.
Webhook events are stored (deduplicated by ``UNIQUE(provider, event_id)``) before the provider is
answered, and marked processed in the transaction that applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.booking import Status
from core.errors import NotFound
from core.payments import OPEN, PurchaseStatus, ensure_move, insight_status
from storage import insights
from storage import tables as t
from storage.engine import Database


async def appointment_row(session: AsyncSession, tenant_id: str, appointment_id: str) -> t.Appointment:
    row = await session.scalar(
        select(t.Appointment).where(t.Appointment.tenant_id == tenant_id, t.Appointment.id == appointment_id)
    )
    if row is None:
        raise NotFound("no such booking")
    return row


async def by_appointment(
    session: AsyncSession, tenant_id: str, appointment_id: str, *, lock: bool = False
) -> t.Purchase | None:
    query = select(t.Purchase).where(t.Purchase.tenant_id == tenant_id, t.Purchase.appointment_id == appointment_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def locked(session: AsyncSession, purchase_id: str) -> t.Purchase | None:
    """The purchase, row-locked on PostgreSQL (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    return await session.scalar(
        select(t.Purchase)
        .where(t.Purchase.id == purchase_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def get(db: Database, tenant_id: str, purchase_id: str) -> t.Purchase:
    async with db.reading() as session:
        row = await session.scalar(
            select(t.Purchase).where(t.Purchase.tenant_id == tenant_id, t.Purchase.id == purchase_id)
        )
    if row is None:
        raise NotFound("no such purchase")
    return row


async def create(
    session: AsyncSession,
    appointment: t.Appointment,
    service: t.Service,
    *,
    provider: str,
    locale: str,
    now: datetime,
    conversation: t.Conversation | None = None,
) -> t.Purchase:
    """A pending purchase for ``appointment``: amount and currency are the appointment's own."""
    item = {
        "id": service.id,
        "slug": service.slug,
        "name": service.name,
        "quantity": 1,
        "unit_price": appointment.price,
        "total_price": appointment.price,
    }
    row = t.Purchase(
        tenant_id=appointment.tenant_id,
        appointment_id=appointment.id,
        customer_id=appointment.customer_id,
        conversation_id=conversation.id if conversation else None,
        agent_id=conversation.agent_id if conversation else None,
        channel=conversation.channel if conversation else None,
        locale=locale,
        items=[item],
        amount=appointment.price,
        currency=appointment.currency,
        provider=provider,
        status=PurchaseStatus.PENDING.value,
        hold_expires_at=appointment.hold_expires_at,
        refund_status="none",
        refund_amount=0,
        event_seq=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    note(session, row, now, "created", "system", amount=row.amount, currency=row.currency, provider=provider)
    await insights.record_purchase(session, row, None, row.status, now)
    return row


def _next_seq(row: t.Purchase) -> int:
    row.event_seq = (row.event_seq or 0) + 1
    return row.event_seq


def _add_event(
    session: AsyncSession,
    row: t.Purchase,
    now: datetime,
    kind: str,
    source: str,
    from_status: str,
    to_status: str,
    details: dict[str, Any],
) -> None:
    session.add(
        t.PurchaseEvent(
            tenant_id=row.tenant_id,
            purchase_id=row.id,
            seq=_next_seq(row),
            at=now,
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            source=source,
            details=details,
        )
    )


def note(session: AsyncSession, row: t.Purchase, now: datetime, kind: str, source: str, **details: Any) -> None:
    """A step in the purchase's history that does not change its status."""
    _add_event(session, row, now, kind, source, row.status, row.status, details)


async def move(
    session: AsyncSession,
    row: t.Purchase,
    target: PurchaseStatus,
    now: datetime,
    kind: str,
    source: str,
    **details: Any,
) -> None:
    """One forward step of the state machine, with its history row and its insights roll-up."""
    current = PurchaseStatus(row.status)
    ensure_move(current, target)
    _add_event(session, row, now, kind, source, current.value, target.value, details)
    await insights.record_purchase(session, row, current.value, target.value, now)
    row.status, row.updated_at = target.value, now
    if target is PurchaseStatus.COMPLETED:
        row.completed_at = now


async def match(
    session: AsyncSession,
    provider: str,
    *,
    purchase_id: str | None,
    provider_ref: str | None,
    payment_ref: str | None,
) -> t.Purchase | None:
    """The purchase an event is about, locked. Our own id (metadata / reference) must agree with the
    provider's object id when both are known: an event never moves someone else's purchase."""
    row = None
    if purchase_id:
        row = await locked(session, purchase_id)
        if row is not None and (
            row.provider != provider or (provider_ref and row.provider_ref and row.provider_ref != provider_ref)
        ):
            return None
    if row is None and provider_ref:
        found = await session.scalar(
            select(t.Purchase.id).where(t.Purchase.provider == provider, t.Purchase.provider_ref == provider_ref)
        )
        row = await locked(session, found) if found else None
    if row is None and payment_ref:
        found = await session.scalar(
            select(t.Purchase.id).where(t.Purchase.provider == provider, t.Purchase.payment_ref == payment_ref)
        )
        row = await locked(session, found) if found else None
    return row


# --------------------------------------------------------------------------- webhook events


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    fresh: bool  # False: a redelivery of an event we already had
    processed: bool


async def store_webhook(
    db: Database, provider: str, event_id: str, event_type: str, body: str, now: datetime
) -> Stored:
    """Keep a verified event before answering the provider; a duplicate is recognised by the constraint."""
    try:
        async with db.writing() as session:
            row = t.WebhookEvent(
                provider=provider, event_id=event_id, event_type=event_type, body=body, received_at=now, attempts=0
            )
            session.add(row)
            await session.flush()
            return Stored(row.id, True, False)
    except IntegrityError:
        async with db.reading() as session:
            existing = await session.scalar(
                select(t.WebhookEvent).where(t.WebhookEvent.provider == provider, t.WebhookEvent.event_id == event_id)
            )
        if existing is None:
            raise
        return Stored(existing.id, False, existing.processed_at is not None)


async def claim_webhook(session: AsyncSession, webhook_id: str) -> t.WebhookEvent | None:
    """The stored event if it still needs processing (locked); None once processed."""
    row = await session.scalar(
        select(t.WebhookEvent)
        .where(t.WebhookEvent.id == webhook_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None or row.processed_at is not None:
        return None
    return row


async def unprocessed_webhooks(db: Database, received_before: datetime, limit: int = 100) -> list[tuple[str, str]]:
    async with db.reading() as session:
        rows = await session.execute(
            select(t.WebhookEvent.id, t.WebhookEvent.provider)
            .where(t.WebhookEvent.processed_at.is_(None), t.WebhookEvent.received_at < received_before)
            .order_by(t.WebhookEvent.received_at)
            .limit(limit)
        )
        return [(i, p) for i, p in rows.all()]


# --------------------------------------------------------------------------- sweeps


async def released_open(session: AsyncSession) -> list[t.Purchase]:
    """Unpaid purchases whose appointment no longer holds its slot (the hold lapsed or was cancelled)."""
    ids = list(
        await session.scalars(
            select(t.Purchase.id)
            .join(t.Appointment, t.Appointment.id == t.Purchase.appointment_id)
            .where(
                t.Purchase.status.in_([s.value for s in OPEN]),
                t.Appointment.status == Status.CANCELLED.value,
            )
            .order_by(t.Purchase.id)
        )
    )
    out = []
    for purchase_id in ids:
        row = await locked(session, purchase_id)
        if row is not None and PurchaseStatus(row.status) in OPEN:
            out.append(row)
    return out


async def refunds_due(db: Database, limit: int = 100) -> list[str]:
    async with db.reading() as session:
        return list(
            await session.scalars(
                select(t.Purchase.id).where(t.Purchase.refund_status == "due").order_by(t.Purchase.id).limit(limit)
            )
        )


async def history(db: Database, tenant_id: str, purchase_id: str) -> list[t.PurchaseEvent]:
    async with db.reading() as session:
        return await _history(session, tenant_id, purchase_id)


async def _history(session: AsyncSession, tenant_id: str, purchase_id: str) -> list[t.PurchaseEvent]:
    rows = await session.scalars(
        select(t.PurchaseEvent)
        .where(t.PurchaseEvent.tenant_id == tenant_id, t.PurchaseEvent.purchase_id == purchase_id)
        .order_by(t.PurchaseEvent.seq)
    )
    return list(rows)


# --------------------------------------------------------------------------- insights


def render_insight(
    row: t.Purchase,
    events: Sequence[t.PurchaseEvent],
    *,
    first_contact_at: datetime | None = None,
    customer_messages: int | None = None,
) -> dict[str, Any]:
    """One purchase in the PurchaseInsight shape of reference/seed-shapes.md.

    Amounts are integer minor units of ``currency`` (frontdesk's rule for money everywhere).
    ``touchpoints`` are the purchase's own steps in order; ``totalInteractions`` counts the customer's
    messages in the conversation up to the payment (the steps when there is no conversation);
    ``timeToConversion`` is seconds from first contact (else the purchase's creation) to payment.
    """
    touchpoints = [
        {"type": e.kind, "status": insight_status(PurchaseStatus(e.to_status)), "source": e.source, "at": _iso(e.at)}
        for e in events
    ]
    started = first_contact_at or row.created_at
    converted = int((row.completed_at - started).total_seconds()) if row.completed_at is not None and started else None
    return {
        "purchaseId": row.id,
        "customerId": row.customer_id,
        "agentId": row.agent_id,
        "platform": row.channel,
        "purchaseType": row.purchase_type,
        "items": [
            {
                "id": item.get("id"),
                "name": item.get("name"),
                "quantity": item.get("quantity", 1),
                "unitPrice": item.get("unit_price"),
                "totalPrice": item.get("total_price"),
            }
            for item in row.items
        ],
        "totalAmount": row.amount,
        "currency": row.currency,
        "paymentMethod": row.payment_method,
        "paymentStatus": insight_status(PurchaseStatus(row.status)),
        "customerJourney": {
            "touchpoints": touchpoints,
            "totalInteractions": customer_messages if customer_messages is not None else len(touchpoints),
            "timeToConversion": converted,
        },
        # Beyond the seed shape (fields may be added): what the insights store also needs.
        "provider": row.provider,
        "providerRef": row.provider_ref,
        "refundedAmount": row.refund_amount if row.refund_status == "succeeded" else 0,
        "createdAt": _iso(row.created_at),
        "completedAt": _iso(row.completed_at),
    }


async def insight(db: Database, tenant_id: str, purchase_id: str) -> dict[str, Any]:
    async with db.reading() as session:
        row = await session.scalar(
            select(t.Purchase).where(t.Purchase.tenant_id == tenant_id, t.Purchase.id == purchase_id)
        )
        if row is None:
            raise NotFound("no such purchase")
        events = await _history(session, tenant_id, purchase_id)
        first_contact = None
        messages = None
        if row.conversation_id is not None:
            first_contact = await session.scalar(
                select(t.Conversation.started_at).where(t.Conversation.id == row.conversation_id)
            )
            counted = select(func.count()).where(
                t.Message.conversation_id == row.conversation_id, t.Message.direction == "in"
            )
            if row.completed_at is not None:
                counted = counted.where(t.Message.created_at <= row.completed_at)
            messages = int(await session.scalar(counted) or 0)
    return render_insight(row, events, first_contact_at=first_contact, customer_messages=messages)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
