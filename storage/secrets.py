"""Deployment secrets kept in the database when the environment does not provide them."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage import tables as t
from storage.engine import Database


async def get_or_create(db: Database, name: str) -> bytes:
    """A 256-bit secret named ``name``: created once, the same for every worker afterwards."""
    async with db.reading() as session:
        value = await session.scalar(select(t.AppSecret.value).where(t.AppSecret.name == name))
    if value is None:
        try:
            async with db.writing() as session:
                session.add(t.AppSecret(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another worker created it first
        async with db.reading() as session:
            value = await session.scalar(select(t.AppSecret.value).where(t.AppSecret.name == name))
    assert value is not None
    return bytes.fromhex(value)
