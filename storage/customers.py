"""Customers of a business: one row per E.164 phone number."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound
from storage import tables as t


async def get(session: AsyncSession, tenant_id: str, customer_id: str) -> t.Customer:
    row = await session.scalar(
        select(t.Customer).where(t.Customer.tenant_id == tenant_id, t.Customer.id == customer_id)
    )
    if row is None:
        raise NotFound("no such customer")
    return row


async def by_phone(session: AsyncSession, tenant_id: str, phone: str) -> t.Customer | None:
    return await session.scalar(select(t.Customer).where(t.Customer.tenant_id == tenant_id, t.Customer.phone == phone))


async def search(session: AsyncSession, tenant_id: str, name: str | None, limit: int = 100) -> list[t.Customer]:
    query = select(t.Customer).where(t.Customer.tenant_id == tenant_id)
    if name:
        query = query.where(t.Customer.name.ilike(f"%{name}%"))
    return list(await session.scalars(query.order_by(t.Customer.created_at, t.Customer.id).limit(limit)))


async def upsert(
    session: AsyncSession,
    tenant_id: str,
    phone: str,
    now: datetime,
    *,
    name: str | None = None,
    email: str | None = None,
    timezone: str | None = None,
) -> t.Customer:
    """Find the customer by phone or create them; given fields overwrite stored ones."""
    row = await by_phone(session, tenant_id, phone)
    if row is None:
        row = t.Customer(tenant_id=tenant_id, phone=phone, name=name or "", created_at=now)
        session.add(row)
    if name:
        row.name = name
    if email is not None:
        row.email = email
    if timezone is not None:
        row.timezone = timezone
    await session.flush()
    return row


async def update(
    session: AsyncSession,
    tenant_id: str,
    customer_id: str,
    *,
    name: str | None,
    phone: str | None,
    email: str | None,
    timezone: str | None,
) -> t.Customer:
    row = await get(session, tenant_id, customer_id)
    if phone is not None and phone != row.phone:
        if await by_phone(session, tenant_id, phone) is not None:
            raise Conflict("another customer has that phone number", code="duplicate_phone")
        row.phone = phone
    for field, value in (("name", name), ("email", email), ("timezone", timezone)):
        if value is not None:
            setattr(row, field, value)
    await session.flush()
    return row
