"""The insights tests' PostgreSQL database: migrated, loaded with the demo businesses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.app import prepare_database
from bot.settings import Settings
from storage import migrate
from storage.engine import Database, create_database
from tests.conftest import FrozenClock, make_settings


@pytest_asyncio.fixture
async def postgres_db(postgres_url: str, clock: FrozenClock) -> AsyncIterator[tuple[Settings, Database]]:
    bare = create_database(postgres_url)
    try:
        await migrate.upgrade(bare.engine)
    finally:
        await bare.dispose()
    settings = make_settings(postgres_url)
    db = await prepare_database(settings, clock)
    try:
        yield settings, db
    finally:
        await db.dispose()
