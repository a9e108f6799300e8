"""``frontdesk grades`` / ``frontdesk export`` as a user runs them, and the roll-up upserts on PostgreSQL."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.settings import Settings
from core.booking import Status
from storage import bookings, insights
from storage.engine import Database
from tests.bot.test_cli import demo_config, run
from tests.bot.test_conversations_rules import Chat, manager_for
from tests.conftest import FrozenClock, tenant_of


def test_grades_and_export_commands(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    assert run("migrate", "--config", str(config), cwd=tmp_path).returncode == 0
    done = run("grades", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Agent grades" in done.stdout and "sunrise" in done.stdout and "N/A" in done.stdout
    missing = run("grades", "--agent", "nobody", "--config", str(config), cwd=tmp_path)
    assert missing.returncode == 2 and "no agent 'nobody'" in missing.stderr
    out = tmp_path / "appointments.csv"
    done = run(
        "export",
        "appointments",
        "--out",
        str(out),
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-31",
        "--config",
        str(config),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 0 appointments rows" in done.stdout
    with out.open() as fh:
        assert next(csv.reader(fh)) == insights.EXPORT_HEADERS["appointments"]
    bad = run("export", "bookings", "--out", str(out), "--config", str(config), cwd=tmp_path)
    assert bad.returncode == 2 and "KIND" in bad.stderr


@pytest.mark.postgres
async def test_rollup_upserts_on_postgresql(postgres_db: tuple[Settings, Database], clock: FrozenClock) -> None:
    settings, db = postgres_db
    tenant_id = await tenant_of(db, "acme")
    chat = Chat(manager_for(db, settings, clock))
    await chat.say("hello, lovely to meet you")
    await chat.say("I'd like a check-up tomorrow at 11")
    await chat.say("hello again")
    created = [
        await bookings.create(
            db,
            tenant_id,
            bookings.NewBooking("solo", datetime(2026, 3, 3, h, tzinfo=UTC), "P", f"+141555500{h:02d}"),
            clock(),
        )
        for h in (9, 10)
    ]
    clock.now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    await bookings.mark(db, tenant_id, created[0].appointment.id, Status.COMPLETED, clock())
    await bookings.mark(db, tenant_id, created[1].appointment.id, Status.MISSED, clock())
    async with db.reading() as session:
        kept = await insights.stored(session, tenant_id)
        fresh = await insights.recompute(session, tenant_id)
        s = await insights.total(session, tenant_id, datetime(2026, 3, 1).date(), datetime(2026, 3, 31).date())
    assert kept == fresh
    block = insights.appointment_block(s)
    assert block["completionRate"] == 50.0 and block["noShowRate"] == 50.0
    assert s["conversations"] == 1 and s["messages_in"] == 3
