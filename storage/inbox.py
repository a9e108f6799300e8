"""The inbox: provider events stored before the webhook is answered, then claimed by workers.

Deduplication is the table's unique key (tenant, channel, provider message id) with
``ON CONFLICT DO NOTHING``: a provider's retry, a concurrent duplicate or a replay after a restart
all land on the same row. Turns run one at a time per conversation, across processes: a worker
first takes the conversation's lease (a compare-and-set UPDATE on ``conversation_leases``), then
works through that conversation's rows in the provider's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import InboundEvent
from storage import tables as t
from storage.engine import Database, dialect_insert

IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Addressee:
    """The agent an event was routed to (resolved from the verified route, never the payload alone)."""

    tenant_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class ConversationKey:
    agent_id: str
    channel: str
    sender: str

    @property
    def lease_key(self) -> str:
        return f"{self.agent_id}|{self.channel}|{self.sender}"


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    tenant_id: str
    agent_id: str
    channel: str
    sender: str
    kind: str
    event: InboundEvent
    attempts: int
    received_at: datetime


def dedupe_key(event: InboundEvent) -> str:
    """Statuses of one of our messages share its id: each status is its own event."""
    if event.kind == "status":
        return f"{event.provider_message_id}#{event.status}"
    return event.provider_message_id


def event_to_json(event: InboundEvent) -> dict[str, Any]:
    return {
        "channel": event.channel,
        "target": event.target,
        "sender": event.sender,
        "provider_message_id": event.provider_message_id,
        "kind": event.kind,
        "text": event.text,
        "choice": event.choice,
        "sender_name": event.sender_name,
        "sent_at": event.sent_at.isoformat() if event.sent_at else None,
        "status": event.status,
        "order": event.order,
        "extra": dict(event.extra),
    }


def event_from_json(data: dict[str, Any]) -> InboundEvent:
    sent_at = data.get("sent_at")
    return InboundEvent(
        channel=data["channel"],
        target=data["target"],
        sender=data["sender"],
        provider_message_id=data["provider_message_id"],
        kind=data["kind"],
        text=data.get("text") or "",
        choice=data.get("choice"),
        sender_name=data.get("sender_name"),
        sent_at=datetime.fromisoformat(sent_at) if sent_at else None,
        status=data.get("status"),
        order=int(data.get("order") or 0),
        extra=data.get("extra") or {},
    )


def _row(to: Addressee, event: InboundEvent, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": to.tenant_id,
        "agent_id": to.agent_id,
        "channel": event.channel,
        "provider_message_id": dedupe_key(event)[:255],
        "sender": event.sender[:255],
        "kind": event.kind,
        "event": event_to_json(event),
        "order": event.order,
        "state": IGNORED if event.kind == "ignored" else "received",
        "attempts": 0,
        "received_at": now,
        "processed_at": now if event.kind == "ignored" else None,
    }


def _unique(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["tenant_id"], row["channel"], row["provider_message_id"]


async def store_many(
    session: AsyncSession, requests: Sequence[Sequence[tuple[Addressee, InboundEvent]]], now: datetime
) -> list[int]:
    """Insert the events of several webhook requests in one statement, every one not seen before
    (ignored kinds too, already ``ignored``, so they are indexed and deduplicated like the rest).
    Returns, per request, how many of its events were new; an event new in this batch counts for
    the first request that carried it."""
    rows = [[_row(to, event, now) for to, event in routed] for routed in requests]
    flat = [row for request in rows for row in request]
    if not flat:
        return [0] * len(requests)
    table = t.InboxItem.__table__
    statement = (
        dialect_insert(session)(table)
        .values(flat)
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "provider_message_id"])
        .returning(table.c.tenant_id, table.c.channel, table.c.provider_message_id)
    )
    fresh = {tuple(r) for r in (await session.execute(statement)).all()}
    counts = []
    for request in rows:
        new = 0
        for row in request:
            if _unique(row) in fresh:
                fresh.discard(_unique(row))
                new += 1
        counts.append(new)
    return counts


class GroupCommit:
    """Webhook requests arriving together share one write transaction (one commit, one fsync).

    Each request still gets its answer only after the commit that holds its events (store before
    ack); while one batch commits, the next one gathers. A failed commit fails every request of
    its batch, and each answers 503 so the provider retries: nothing is acknowledged unstored.
    """

    def __init__(self, db: Database, clock: Callable[[], datetime], max_batch: int = 200) -> None:
        self.db = db
        self.clock = clock
        self.max_batch = max_batch
        self._waiting: list[tuple[Sequence[tuple[Addressee, InboundEvent]], asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def store(self, routed: Sequence[tuple[Addressee, InboundEvent]]) -> int:
        """How many of ``routed`` were new, once they are committed."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieved)  # a request that went away leaves no "never retrieved" noise
        self._waiting.append((routed, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_all())
        return await asyncio.shield(done)

    async def _commit_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            try:
                async with self.db.writing(urgent=True) as session:
                    counts = await store_many(session, [routed for routed, _ in batch], self.clock())
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), new in zip(batch, counts, strict=True):
                if not done.done():
                    done.set_result(new)


def _retrieved(done: asyncio.Future[int]) -> None:
    if not done.cancelled():
        done.exception()


def _claimable(now: datetime) -> Any:
    return or_(
        t.InboxItem.state == "received",
        and_(t.InboxItem.state == "processing", t.InboxItem.lease_until < now),
    )


async def waiting_conversations(db: Database, now: datetime, limit: int) -> list[ConversationKey]:
    """Conversations with rows to process (new, or abandoned by a worker that died), oldest first."""
    async with db.reading() as session:
        rows = await session.execute(
            select(t.InboxItem.agent_id, t.InboxItem.channel, t.InboxItem.sender, func.min(t.InboxItem.id))
            .where(_claimable(now))
            .group_by(t.InboxItem.agent_id, t.InboxItem.channel, t.InboxItem.sender)
            .order_by(func.min(t.InboxItem.id))
            .limit(limit)
        )
        return [ConversationKey(a, c, s) for a, c, s, _ in rows.all()]


async def _take_lease(session: AsyncSession, key: ConversationKey, holder: str, now: datetime, seconds: float) -> bool:
    """Compare-and-set: the conversation is ours if we hold it, nobody does, or the lease lapsed."""
    cas = (
        update(t.ConversationLease)
        .where(
            t.ConversationLease.key == key.lease_key,
            or_(
                t.ConversationLease.holder == holder,
                t.ConversationLease.holder.is_(None),
                t.ConversationLease.lease_until < now,
            ),
        )
        .values(holder=holder, lease_until=now + timedelta(seconds=seconds))
    )
    if (await session.execute(cas)).rowcount:  # type: ignore[attr-defined]
        return True
    inserted = await session.execute(
        dialect_insert(session)(t.ConversationLease).values(key=key.lease_key).on_conflict_do_nothing()
    )
    # A first visit creates the lease row; otherwise someone else holds the conversation.
    return bool(inserted.rowcount) and bool((await session.execute(cas)).rowcount)  # type: ignore[attr-defined]


async def take_lease(db: Database, key: ConversationKey, holder: str, now: datetime, seconds: float) -> bool:
    """Take or renew the conversation's lease on its own (the worker's heartbeat)."""
    async with db.writing() as session:
        return await _take_lease(session, key, holder, now, seconds)


async def drop_lease(db: Database, key: ConversationKey, holder: str) -> None:
    async with db.writing() as session:
        await _release(session, key, holder)


async def _release(session: AsyncSession, key: ConversationKey, holder: str) -> None:
    await session.execute(
        update(t.ConversationLease)
        .where(t.ConversationLease.key == key.lease_key, t.ConversationLease.holder == holder)
        .values(holder=None, lease_until=None)
    )


async def claim_next(db: Database, key: ConversationKey, holder: str, now: datetime, seconds: float) -> Item | None:
    """:func:`claim` in a transaction of its own."""
    async with db.writing() as session:
        return await claim(session, key, holder, now, seconds)


async def claim(session: AsyncSession, key: ConversationKey, holder: str, now: datetime, seconds: float) -> Item | None:
    """Take (or renew) the conversation's lease and claim its next row in provider order, marked
    processing by ``holder``. None when another worker holds the conversation, or when nothing is
    left: then the lease is released in this same transaction. While ``holder`` holds the lease no
    other worker claims rows of this conversation. Run inside the transaction that finishes the
    previous row, the next one is claimed as that row's turn commits."""
    if not await _take_lease(session, key, holder, now, seconds):
        return None
    row = await session.scalar(
        select(t.InboxItem)
        .where(
            t.InboxItem.agent_id == key.agent_id,
            t.InboxItem.channel == key.channel,
            t.InboxItem.sender == key.sender,
            or_(_claimable(now), and_(t.InboxItem.state == "processing", t.InboxItem.claimed_by == holder)),
        )
        .order_by(t.InboxItem.order, t.InboxItem.id)
        .limit(1)
    )
    if row is None:
        await _release(session, key, holder)
        return None
    row.state = "processing"
    row.claimed_by = holder
    row.lease_until = now + timedelta(seconds=seconds)
    row.attempts += 1
    return Item(
        row.id,
        row.tenant_id,
        row.agent_id,
        row.channel,
        row.sender,
        row.kind,
        event_from_json(row.event),
        row.attempts,
        row.received_at,
    )


async def finish(session: AsyncSession, item_id: int, now: datetime, state: str = "done", error: str = "") -> None:
    """Close a row inside the transaction that did its work (the turn's, the status update's)."""
    await session.execute(
        update(t.InboxItem)
        .where(t.InboxItem.id == item_id)
        .values(state=state, processed_at=now, lease_until=None, last_error=error[:255] or None)
    )


async def apply_status(session: AsyncSession, tenant_id: str, event: InboundEvent, now: datetime) -> int:
    """A delivery receipt moves our message forward (sent → delivered → read; failed from any);
    receipts arriving out of order never move it back."""
    rank = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
    status = event.status or ""
    if status not in rank:
        return 0
    lower = [s for s, r in rank.items() if r < rank[status]] if status != "failed" else ["queued", "sent", "delivered"]
    result = await session.execute(
        update(t.Message)
        .where(
            t.Message.tenant_id == tenant_id,
            t.Message.provider_message_id == event.provider_message_id,
            t.Message.status.in_(lower),
        )
        .values(status=status)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def counts(db: Database) -> dict[str, int]:
    async with db.reading() as session:
        rows = await session.execute(select(t.InboxItem.state, func.count()).group_by(t.InboxItem.state))
        return {state: int(n) for state, n in rows.all()}
