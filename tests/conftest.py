"""Shared fixtures: a real SQLite file per test, an optional real PostgreSQL, a frozen clock,
and the real aiohttp app on a real test server."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from bot.app import create_app, prepare_database
from bot.settings import Settings
from storage import catalog, migrate, tokens
from storage.engine import Database, create_database
from tests.fakes.twilio_server import FakeTwilio

PG_ENV = "FRONTDESK_TEST_POSTGRES_URL"


class FrozenClock:
    """The only clock tests use: it moves when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


# Monday 2026-03-02 08:00 UTC (13:30 in Kolkata): the week the demo tests work in.
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def demo_business(**service_overrides: Any) -> dict[str, Any]:
    """A small business in UTC: two doctors, a room, and a few services."""
    week = ["09:00-17:00"]
    return {
        "slug": "acme",
        "name": "Acme Clinic",
        "timezone": "UTC",
        "currency": "EUR",
        "holidays": [{"date": "2026-03-06", "name": "Founders day"}],
        "staff": [
            {"slug": "ann", "name": "Ann", "hours": {d: week for d in ("mon", "tue", "wed", "thu", "fri")}},
            {"slug": "bob", "name": "Bob", "hours": {d: week for d in ("mon", "tue", "wed", "thu", "fri")}},
            {"slug": "room", "name": "Room", "kind": "resource", "hours": {"daily": ["08:00-20:00"]}},
        ],
        "services": [
            {
                "slug": "checkup",
                "name": "Check-up",
                "duration_minutes": 30,
                "price": 5000,
                "staff": ["ann", "bob"],
                "cancel_notice_hours": 24,
                **service_overrides,
            },
            {"slug": "solo", "name": "Solo", "duration_minutes": 30, "staff": ["ann"]},
            {"slug": "class", "name": "Class", "duration_minutes": 60, "staff": ["bob"], "capacity": 3},
            {
                "slug": "surgery",
                "name": "Surgery",
                "duration_minutes": 60,
                "staff": ["ann", "room"],
                "assignment": "collective",
            },
        ],
        "agents": [{"slug": "acme-bot", "name": "Ada"}],
    }


def other_business() -> dict[str, Any]:
    return {
        "slug": "other",
        "name": "Other Co",
        "timezone": "Europe/London",
        "currency": "GBP",
        "staff": [{"slug": "zed", "name": "Zed", "hours": {"daily": ["09:00-17:00"]}}],
        "services": [{"slug": "chat", "name": "Chat", "duration_minutes": 30, "staff": ["zed"]}],
        "agents": [{"slug": "other-bot", "name": "Olly"}],
    }


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """A fake Twilio Messaging API on loopback (tests/fakes/twilio_server.py)."""
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated, empty SQLite file per run: copying it is much faster than migrating."""
    path = tmp_path_factory.mktemp("template") / "frontdesk.db"

    async def build() -> None:
        database = create_database(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate.upgrade(database.engine)
        finally:
            await database.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_template: Path) -> str:
    """A real SQLite file of this test's own: a copy of the migrated template (the app still upgrades it)."""
    target = tmp_path / "frontdesk.db"
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{migrated_template}{suffix}")
        if source.exists():
            shutil.copyfile(source, Path(f"{target}{suffix}"))
    return f"sqlite+aiosqlite:///{target}"


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    base = _pg_admin_url()
    if not base and os.environ.get("FRONTDESK_REQUIRE_POSTGRES"):
        pytest.fail(f"FRONTDESK_REQUIRE_POSTGRES is set but {PG_ENV} is not")
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    import asyncpg

    name = f"fd_test_{uuid.uuid4().hex[:12]}"
    raw = base.replace("postgresql+asyncpg://", "postgresql://")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(raw)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(url: str, businesses: list[dict[str, Any]] | None = None, **extra: Any) -> Settings:
    return Settings(
        database={"url": url},
        businesses=businesses if businesses is not None else [demo_business(), other_business()],
        **extra,
    )


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url)


@pytest_asyncio.fixture
async def db(settings: Settings, clock: FrozenClock) -> AsyncIterator[Database]:
    """The configured database, migrated and loaded, without the HTTP app."""
    database = await prepare_database(settings, clock)
    yield database
    await database.dispose()


async def tenant_of(database: Database, slug: str) -> str:
    async with database.reading() as session:
        return (await catalog.business_by_slug(session, slug)).id


async def new_token(database: Database, slug: str, clock: FrozenClock) -> str:
    async with database.writing() as session:
        business = await catalog.business_by_slug(session, slug)
        return await tokens.create(session, business.id, clock())


class Api:
    """A test client that speaks to the real app with a bearer token."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.token = token

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        resp = await self.client.get(path, params=params, headers=self.headers())
        return resp.status, await resp.json()

    async def post(self, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        resp = await self.client.post(path, json=body if body is not None else {}, headers=self.headers(token))
        return resp.status, (await resp.json()) if resp.status != 204 else None

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        resp = await self.client.put(path, json=body, headers=self.headers())
        return resp.status, await resp.json()

    async def delete(self, path: str) -> int:
        resp = await self.client.delete(path, headers=self.headers())
        return resp.status


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, settings: Settings, clock: FrozenClock) -> TestClient:
    return await aiohttp_client(create_app(settings, clock=clock))


@pytest_asyncio.fixture
async def api(client: TestClient, clock: FrozenClock) -> Api:
    from bot.context import CONTEXT

    database = client.server.app[CONTEXT].db
    return Api(client, await new_token(database, "acme", clock))


def booking_body(start: str, service: str = "checkup", phone: str = "+14155550101", **extra: Any) -> dict[str, Any]:
    return {
        "agent": "acme-bot",
        "service": service,
        "start": start,
        "customer": {"name": "Jane Roe", "phone": phone},
        **extra,
    }
