from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot.app import load_config, prepare_database
from storage import migrate
from storage import tables as t
from storage.engine import create_database
from tests.conftest import FrozenClock, make_settings


async def test_sqlite_file_is_migrated_configured_and_safe(tmp_path: Path, clock: FrozenClock) -> None:
    path = tmp_path / "fd.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}")
    db = await prepare_database(settings, clock)
    try:
        assert not await migrate.pending(db.engine)
        async with db.reading() as session:
            journal = (await session.execute(text("PRAGMA journal_mode"))).scalar()
            fks = (await session.execute(text("PRAGMA foreign_keys"))).scalar()
            timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar()
        assert (journal, fks, timeout) == ("wal", 1, 10_000)
    finally:
        await db.dispose()
    triggers = {r[0] for r in sqlite3.connect(path).execute("select name from sqlite_master where type='trigger'")}
    assert {"allocations_no_overlap_insert", "allocations_no_overlap_update"} <= triggers


async def test_config_loading_is_idempotent(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'fd.db'}")
    db = await prepare_database(settings, clock)
    try:
        await load_config(db, settings, clock)
        await load_config(db, settings, clock)
        async with db.reading() as session:
            counts = [
                len(list(await session.scalars(select(model))))
                for model in (t.Business, t.Staff, t.Service, t.Holiday, t.Agent)
            ]
        assert counts == [2, 4, 5, 1, 2]
    finally:
        await db.dispose()


async def test_sqlite_overlap_trigger_refuses_any_writer(db: object) -> None:
    from storage.engine import Database

    assert isinstance(db, Database)
    async with db.reading() as session:
        staff = await session.scalar(select(t.Staff).where(t.Staff.slug == "ann"))
        service = await session.scalar(select(t.Service).where(t.Service.slug == "solo"))
    assert staff is not None and service is not None
    values = (f"'{staff.tenant_id}'", f"'{staff.id}'", f"'{service.id}'")
    insert = (
        "INSERT INTO allocations (id, tenant_id, staff_id, service_id, starts_at, ends_at, blocked_start,"
        " blocked_end, capacity, seats_taken, active) VALUES ('{id}', {0}, {1}, {2}, '{s}', '{e}', '{s}', '{e}',"
        " 1, 1, {active})"
    )
    async with db.writing() as session:
        await session.execute(
            text(
                insert.format(
                    *values, id="a1", s="2026-03-03 10:00:00.000000", e="2026-03-03 10:30:00.000000", active=1
                )
            )
        )
        # adjacent (half-open) is fine; an inactive overlapping row is fine
        await session.execute(
            text(
                insert.format(
                    *values, id="a2", s="2026-03-03 10:30:00.000000", e="2026-03-03 11:00:00.000000", active=1
                )
            )
        )
        await session.execute(
            text(
                insert.format(
                    *values, id="a3", s="2026-03-03 10:15:00.000000", e="2026-03-03 10:45:00.000000", active=0
                )
            )
        )
    with pytest.raises(Exception, match="slot_taken"):
        async with db.writing() as session:
            await session.execute(
                text(
                    insert.format(
                        *values,
                        id="a4",
                        s="2026-03-03 10:15:00.000000",
                        e="2026-03-03 10:45:00.000000",
                        active=1,
                    )
                )
            )
    with pytest.raises(Exception, match="slot_taken"):
        async with db.writing() as session:
            await session.execute(text("UPDATE allocations SET active = 1 WHERE id = 'a3'"))


@pytest.mark.postgres
async def test_postgres_migrates_and_refuses_to_start_until_migrated(postgres_url: str, clock: FrozenClock) -> None:
    from core.errors import ConfigError

    settings = make_settings(postgres_url)
    with pytest.raises(ConfigError, match="frontdesk migrate"):
        await prepare_database(settings, clock)
    engine = create_database(postgres_url).engine
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # twice is harmless
        assert not await migrate.pending(engine)
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    text("select count(*) from pg_constraint where conname = 'ex_allocations_no_overlap'")
                )
            ).scalar()
        assert found == 1
    finally:
        await engine.dispose()
    db = await prepare_database(settings, clock)
    await db.dispose()
