"""The outbox: messages for provider channels, written in the transaction that decided them.

A relay claims due rows (pending → sending, leased), sends them, and records the outcome: sent,
back to pending with a later ``next_attempt_at`` (transient failure), or dead (permanent failure,
or out of attempts). Rows of one conversation go out in order: a row is only claimable when no
earlier row of its conversation is still pending or sending. A lease that lapses in ``sending``
means the relay died mid-send: the row is retried once more and flagged ``possible_duplicate``
(the provider may have accepted it; Meta and Telegram take no idempotency key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage import tables as t
from storage.engine import Database

# Channels whose clients read the conversation's messages themselves; everything else is relayed.
LIVE_CHANNELS = frozenset({"web", "terminal"})
# Permanent failures that mean the customer cannot be reached on this channel any more.
UNREACHABLE = frozenset({"blocked", "invalid_recipient", "unsubscribed"})


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    tenant_id: str
    conversation_id: str
    message_id: str | None
    agent_id: str
    channel: str
    recipient: str
    text: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    possible_duplicate: bool
    last_inbound_at: datetime | None
    opted_out: bool
    parts_sent: int = 0  # parts of a split message an earlier attempt delivered


def relayed(channel: str) -> bool:
    return channel not in LIVE_CHANNELS


def enqueue(
    session: AsyncSession,
    conv: t.Conversation,
    message: t.Message,
    key: str,
    now: datetime,
) -> None:
    """Queue one stored outbound message for its conversation's channel (same transaction)."""
    session.add(
        t.OutboxItem(
            tenant_id=conv.tenant_id,
            conversation_id=conv.id,
            message_id=message.id,
            agent_id=conv.agent_id,
            channel=conv.channel,
            recipient=conv.sender,
            text=message.text,
            payload=dict(message.payload or {}),
            idempotency_key=key[:255],
            state="pending",
            attempts=0,
            next_attempt_at=now,
            possible_duplicate=False,
            created_at=now,
        )
    )


async def recover(db: Database, now: datetime) -> int:
    """Rows left in ``sending`` by a relay that died: try again, flagged as a possible duplicate."""
    async with db.writing() as session:
        result = await session.execute(
            update(t.OutboxItem)
            .where(t.OutboxItem.state == "sending", t.OutboxItem.lease_until < now)
            .values(state="pending", possible_duplicate=True, next_attempt_at=now, lease_until=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def claim_due(db: Database, holder: str, now: datetime, limit: int, lease_seconds: float) -> list[Delivery]:
    """Due rows whose conversation has nothing earlier in flight, marked sending (compare-and-set)."""
    earlier = aliased(t.OutboxItem)
    blocked = (
        select(earlier.id)
        .where(
            earlier.conversation_id == t.OutboxItem.conversation_id,
            earlier.id < t.OutboxItem.id,
            earlier.state.in_(("pending", "sending")),
        )
        .exists()
    )
    claimed: list[Delivery] = []
    async with db.reading() as session:  # an idle relay polls without taking the (SQLite) write lock
        due = await session.scalar(
            select(t.OutboxItem.id).where(t.OutboxItem.state == "pending", t.OutboxItem.next_attempt_at <= now).limit(1)
        )
    if due is None:
        return claimed
    async with db.writing() as session:
        rows = (
            await session.execute(
                select(t.OutboxItem, t.Conversation.last_inbound_at, t.Conversation.opted_out)
                .join(t.Conversation, t.Conversation.id == t.OutboxItem.conversation_id)
                .where(t.OutboxItem.state == "pending", t.OutboxItem.next_attempt_at <= now, ~blocked)
                .order_by(t.OutboxItem.next_attempt_at, t.OutboxItem.id)
                .limit(limit)
            )
        ).all()
        if not rows:
            return claimed
        # one compare-and-set for the batch: a row another relay took in between is not returned
        taken = set(
            (
                await session.execute(
                    update(t.OutboxItem)
                    .where(t.OutboxItem.id.in_([row.id for row, _, _ in rows]), t.OutboxItem.state == "pending")
                    .values(
                        state="sending",
                        attempts=t.OutboxItem.attempts + 1,
                        attempted_at=now,
                        lease_until=now + timedelta(seconds=lease_seconds),
                    )
                    .returning(t.OutboxItem.id)
                    .execution_options(synchronize_session=False)
                )
            ).scalars()
        )
        for row, last_inbound_at, opted_out in rows:
            if row.id not in taken:
                continue
            claimed.append(
                Delivery(
                    row.id,
                    row.tenant_id,
                    row.conversation_id,
                    row.message_id,
                    row.agent_id,
                    row.channel,
                    row.recipient,
                    row.text,
                    dict(row.payload or {}),
                    row.idempotency_key,
                    row.attempts + 1,
                    row.possible_duplicate,
                    last_inbound_at,
                    bool(opted_out),
                    row.parts_sent or 0,
                )
            )
    return claimed


async def mark_sent(db: Database, sent: list[tuple[Delivery, str]], now: datetime) -> None:
    """Record a batch of accepted sends in one transaction (with the provider's message ids)."""
    if not sent:
        return
    box, messages = cast(Table, t.OutboxItem.__table__), cast(Table, t.Message.__table__)
    async with db.writing() as session:  # one executemany per table, whatever the batch's size
        await session.execute(
            update(box)
            .where(box.c.id == bindparam("row_id"))
            .values(
                state="sent",
                provider_message_id=bindparam("provider_id"),
                sent_at=now,
                lease_until=None,
                last_error=None,
            ),
            [{"row_id": d.id, "provider_id": pid[:255]} for d, pid in sent],
        )
        shown = [{"row_id": d.message_id, "provider_id": pid[:255]} for d, pid in sent if d.message_id]
        if shown:
            await session.execute(
                update(messages)
                .where(messages.c.id == bindparam("row_id"))
                .values(provider_message_id=bindparam("provider_id"), status="sent"),
                shown,
            )


async def mark_retry(db: Database, delivery: Delivery, reason: str, at: datetime, parts_sent: int = 0) -> None:
    """Back to pending until ``at``; ``parts_sent`` parts of it are out and are not sent again."""
    async with db.writing() as session:
        await session.execute(
            update(t.OutboxItem)
            .where(t.OutboxItem.id == delivery.id)
            .values(
                state="pending",
                next_attempt_at=at,
                lease_until=None,
                last_error=reason[:255],
                parts_sent=max(parts_sent, delivery.parts_sent),
            )
        )


async def mark_dead(db: Database, delivery: Delivery, reason: str, now: datetime, parts_sent: int = 0) -> None:
    """Give up on a row: visible on the dashboard and replayable (a replay resumes after the parts
    already out); the customer is marked unreachable when the provider says they cannot be reached."""
    async with db.writing() as session:
        await session.execute(
            update(t.OutboxItem)
            .where(t.OutboxItem.id == delivery.id)
            .values(
                state="dead",
                lease_until=None,
                last_error=reason[:255],
                parts_sent=max(parts_sent, delivery.parts_sent),
            )
        )
        if delivery.message_id:
            await session.execute(update(t.Message).where(t.Message.id == delivery.message_id).values(status="failed"))
        if reason in UNREACHABLE:
            await session.execute(
                update(t.Conversation)
                .where(t.Conversation.id == delivery.conversation_id, t.Conversation.unreachable_at.is_(None))
                .values(unreachable_at=now)
            )


async def replay(db: Database, tenant_id: str, item_id: int, now: datetime) -> bool:
    """A person asks to try a dead row again (after the customer unblocked the bot, say)."""
    async with db.writing() as session:
        result = await session.execute(
            update(t.OutboxItem)
            .where(t.OutboxItem.id == item_id, t.OutboxItem.tenant_id == tenant_id, t.OutboxItem.state == "dead")
            .values(state="pending", attempts=0, next_attempt_at=now, last_error=None)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            conversation_id = await session.scalar(
                select(t.OutboxItem.conversation_id).where(t.OutboxItem.id == item_id)
            )
            await session.execute(
                update(t.Conversation).where(t.Conversation.id == conversation_id).values(unreachable_at=None)
            )
            return True
        return False


async def dead(db: Database, tenant_id: str, limit: int = 100) -> list[t.OutboxItem]:
    async with db.reading() as session:
        rows = await session.scalars(
            select(t.OutboxItem)
            .where(t.OutboxItem.tenant_id == tenant_id, t.OutboxItem.state == "dead")
            .order_by(t.OutboxItem.id.desc())
            .limit(limit)
        )
        return list(rows)


async def counts(db: Database) -> dict[str, int]:
    async with db.reading() as session:
        rows = await session.execute(select(t.OutboxItem.state, func.count()).group_by(t.OutboxItem.state))
        return {state: int(n) for state, n in rows.all()}


async def next_due(db: Database) -> datetime | None:
    async with db.reading() as session:
        return await session.scalar(
            select(func.min(t.OutboxItem.next_attempt_at)).where(t.OutboxItem.state == "pending")
        )
