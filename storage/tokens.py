"""API tokens: 32 random bytes shown once; only a SHA-256 hash and a short prefix are stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Unauthorized
from storage import tables as t

PREFIX = "fd_"
_TOUCH_EVERY = timedelta(minutes=5)  # last_used_at is advisory: do not write on every request


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(session: AsyncSession, tenant_id: str, now: datetime, name: str = "") -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(t.ApiToken(tenant_id=tenant_id, name=name, prefix=token[:10], token_hash=_hash(token), created_at=now))
    await session.flush()
    return token


async def tenant_for(session: AsyncSession, token: str, now: datetime) -> str:
    """The tenant a presented token belongs to, or :class:`Unauthorized`.

    The lookup is by hash (a unique index), so no secret is compared byte by byte in Python.
    """
    if not token.startswith(PREFIX) or len(token) > 200:
        raise Unauthorized("invalid API token")
    row = await session.scalar(select(t.ApiToken).where(t.ApiToken.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("invalid API token")
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
    return row.tenant_id
