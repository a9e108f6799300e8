"""Conversations as the people behind the bot look for them: by status, channel, agent, text, and,
for a staff member, only the conversations of customers who have an appointment with them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from storage import tables as t


@dataclass(frozen=True, slots=True)
class Listed:
    conversation: t.Conversation
    agent: str
    customer: str | None


def _staff_customers(tenant_id: str, staff_id: str) -> Select[Any]:
    """Customers with any appointment (any status) where this staff member is allocated."""
    return (
        select(t.Appointment.customer_id)
        .join(t.AppointmentAllocation, t.AppointmentAllocation.appointment_id == t.Appointment.id)
        .join(t.Allocation, t.Allocation.id == t.AppointmentAllocation.allocation_id)
        .where(t.Appointment.tenant_id == tenant_id, t.Allocation.staff_id == staff_id)
    )


async def search(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None = None,
    channel: str | None = None,
    agent: str | None = None,
    staff_id: str | None = None,
    text: str | None = None,
    started_from: datetime | None = None,
    started_before: datetime | None = None,
    limit: int = 200,
) -> list[Listed]:
    """Newest activity first. ``text`` matches the customer's name or any message's text;
    ``started_from`` / ``started_before`` bound when the conversation started ([from, before))."""
    q = (
        select(t.Conversation, t.Agent.slug, t.Customer.name)
        .join(t.Agent, t.Agent.id == t.Conversation.agent_id)
        .outerjoin(t.Customer, t.Customer.id == t.Conversation.customer_id)
        .where(t.Conversation.tenant_id == tenant_id)
        .order_by(t.Conversation.last_activity_at.desc(), t.Conversation.id)
        .limit(limit)
    )
    if status:
        q = q.where(t.Conversation.status == status)
    if channel:
        q = q.where(t.Conversation.channel == channel)
    if agent:
        q = q.where(t.Agent.slug == agent)
    if started_from is not None:
        q = q.where(t.Conversation.started_at >= started_from)
    if started_before is not None:
        q = q.where(t.Conversation.started_at < started_before)
    if staff_id:
        q = q.where(t.Conversation.customer_id.in_(_staff_customers(tenant_id, staff_id)))
    if text:
        said = exists().where(
            t.Message.conversation_id == t.Conversation.id, t.Message.text.contains(text, autoescape=True)
        )
        q = q.where(t.Customer.name.contains(text, autoescape=True) | said)
    rows = (await session.execute(q)).all()
    return [Listed(c, a, n) for c, a, n in rows]


async def get(session: AsyncSession, tenant_id: str, conversation_id: str, *, staff_id: str | None = None) -> Listed:
    """One conversation of this business (and of this staff member's customers), else :class:`NotFound`."""
    found = await session.execute(
        select(t.Conversation, t.Agent.slug, t.Customer.name)
        .join(t.Agent, t.Agent.id == t.Conversation.agent_id)
        .outerjoin(t.Customer, t.Customer.id == t.Conversation.customer_id)
        .where(t.Conversation.id == conversation_id, t.Conversation.tenant_id == tenant_id)
    )
    row = found.first()
    if row is None:
        raise NotFound("no such conversation")
    listed = Listed(row[0], row[1], row[2])
    if staff_id is not None:
        customer = listed.conversation.customer_id
        mine = customer is not None and customer in set(await session.scalars(_staff_customers(tenant_id, staff_id)))
        if not mine:
            raise NotFound("no such conversation")
    return listed


async def customer_names(
    session: AsyncSession, tenant_id: str, conversation_ids: Iterable[str]
) -> dict[str, str | None]:
    """The customer's name for each of these conversations of this business (None: not known yet)."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(t.Conversation.id, t.Customer.name)
        .outerjoin(t.Customer, t.Customer.id == t.Conversation.customer_id)
        .where(t.Conversation.tenant_id == tenant_id, t.Conversation.id.in_(ids))
    )
    return {conversation_id: name for conversation_id, name in rows.all()}
