"""Reminders (R27): claimed rows, sent exactly once across restarts and concurrent schedulers,
waiting for a running turn, stale ones dropped. Frozen clock throughout."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.app import prepare_database
from bot.settings import Settings
from storage import bookings, migrate, reminders
from storage.engine import create_database
from tests.conftest import T0, FrozenClock, make_settings
from tests.ops.conftest import book_in_chat, jobs_for, manager_for, system_messages

START = T0 + timedelta(days=1, hours=2)  # Tuesday 10:00 UTC; the 24 h reminder is due Monday 10:00


async def test_reminder_due_during_a_restart_is_sent_exactly_once(settings: Settings, clock: FrozenClock) -> None:
    # Two scheduler "processes" on one SQLite file: their own engines, managers and locks.
    db_a = await prepare_database(settings, clock)
    db_b = await prepare_database(settings, clock)
    try:
        manager_a = manager_for(db_a, settings, clock)
        a = jobs_for(db_a, settings, clock, "a", manager=manager_a)
        b = jobs_for(db_b, settings, clock, "b")
        booked = await book_in_chat(db_a, manager_a, clock, START)
        report = await a.reminders()
        assert (report.planned, report.sent) == (2, 0)

        clock.advance(hours=2)  # the 24 h reminder is due; "a" claims it and dies before sending
        (claimed,) = await reminders.claim_due(db_a, "a", clock(), timedelta(seconds=120))
        assert claimed.offset_minutes == 1440
        assert (await b.reminders()).sent == 0  # a live lease: not b's to send
        clock.advance(minutes=3)  # the lease lapsed: b takes over
        first, second = await asyncio.gather(b.reminders(), a.reminders())
        assert first.sent + second.sent == 1
        assert (await a.reminders()).sent == 0

        # The 1 h reminder: both processes tick at the same instant.
        clock.now = START - timedelta(hours=1)
        results = await asyncio.gather(a.reminders(), b.reminders(), a.reminders(), b.reminders())
        assert sum(r.sent for r in results) == 1

        texts = await system_messages(manager_a, booked.conversation_id)
        assert len(texts) == 2 and all("Reminder" in x for x in texts)
        states = await reminders.for_appointment(db_a, booked.tenant_id, booked.appointment_id)
        assert [(r.offset_minutes, r.state) for r in states] == [(1440, "sent"), (60, "sent")]
    finally:
        await db_a.dispose()
        await db_b.dispose()


async def test_push_done_but_not_marked_is_not_sent_again(db: object, settings: Settings, clock: FrozenClock) -> None:
    from storage.engine import Database

    assert isinstance(db, Database)
    manager = manager_for(db, settings, clock)
    a = jobs_for(db, settings, clock, "a", manager=manager)
    booked = await book_in_chat(db, manager, clock, START)
    await a.reminders()
    clock.advance(hours=2)
    (claimed,) = await reminders.claim_due(db, "a", clock(), timedelta(seconds=120))
    facts = await a.automations.facts(claimed.tenant_id, claimed.appointment_id)
    message = a.automations.message("appointment.reminder", facts, a.automations.config_for(facts, "x"))
    await manager.push(claimed.tenant_id, claimed.conversation_id, message, key=claimed.key)  # then "a" crashed
    clock.advance(minutes=3)
    b = jobs_for(db, settings, clock, "b")
    assert (await b.reminders()).sent == 1  # marked sent: the keyed push found the first message
    assert len(await system_messages(manager, booked.conversation_id)) == 1


async def test_reminder_waits_for_the_running_turn(db: object, settings: Settings, clock: FrozenClock) -> None:
    from storage.engine import Database

    assert isinstance(db, Database)
    manager = manager_for(db, settings, clock)
    jobs = jobs_for(db, settings, clock, "a", manager=manager)
    booked = await book_in_chat(db, manager, clock, START)
    await jobs.reminders()
    clock.advance(hours=2)
    async with manager._lock(("acme-bot", "web", booked.sender)):  # a turn is running
        task = asyncio.create_task(jobs.reminders())
        done, _ = await asyncio.wait({task}, timeout=0.3)
        assert not done  # the reminder waits for the turn's lock
        assert await system_messages(manager, booked.conversation_id) == []
    report = await task
    assert report.sent == 1


async def test_stale_and_cancelled_reminders_are_dropped_not_sent(
    db: object, settings: Settings, clock: FrozenClock
) -> None:
    from storage.engine import Database

    assert isinstance(db, Database)
    manager = manager_for(db, settings, clock)
    jobs = jobs_for(db, settings, clock, "a", manager=manager)
    first = await book_in_chat(db, manager, clock, START)
    second = await book_in_chat(db, manager, clock, START + timedelta(hours=2), sender="visitor-2")
    await jobs.reminders()
    await bookings.cancel(db, second.tenant_id, second.appointment_id, clock(), enforce_policy=False)
    clock.advance(hours=5)  # downtime: the 24 h reminder of the first booking is 3 hours late
    report = await jobs.reminders()
    assert report.sent == 0
    reasons = {r for _, r in report.dropped}
    assert reasons == {"stale", "appointment_cancelled"}
    clock.now = START + timedelta(minutes=5)  # down again until after the start
    report = await jobs.reminders()
    assert report.sent == 0 and {r for _, r in report.dropped} == {"appointment_started"}
    assert await system_messages(manager, first.conversation_id) == []
    views = await reminders.for_appointment(db, first.tenant_id, first.appointment_id)
    assert [v.state for v in views] == ["dropped", "dropped"]


async def test_booked_inside_the_window_gets_only_the_later_reminder(
    db: object, settings: Settings, clock: FrozenClock
) -> None:
    from storage.engine import Database

    assert isinstance(db, Database)
    manager = manager_for(db, settings, clock)
    jobs = jobs_for(db, settings, clock, "a", manager=manager)
    booked = await book_in_chat(db, manager, clock, T0 + timedelta(hours=3))
    assert (await jobs.reminders()).planned == 1
    views = await reminders.for_appointment(db, booked.tenant_id, booked.appointment_id)
    assert [v.offset_minutes for v in views] == [60]


@pytest.mark.postgres
async def test_postgres_two_concurrent_claimers_send_once(postgres_url: str, clock: FrozenClock) -> None:
    settings = make_settings(postgres_url)
    bootstrap = create_database(postgres_url)
    await migrate.upgrade(bootstrap.engine)
    await bootstrap.dispose()
    db_a = await prepare_database(settings, clock)
    db_b = await prepare_database(settings, clock)
    try:
        manager = manager_for(db_a, settings, clock)
        a = jobs_for(db_a, settings, clock, "a", manager=manager)
        b = jobs_for(db_b, settings, clock, "b")
        booked = await book_in_chat(db_a, manager, clock, START)
        await asyncio.gather(a.reminders(), b.reminders())
        clock.advance(hours=2)
        results = await asyncio.gather(*(j.reminders() for j in (a, b, a, b)))
        assert sum(r.sent for r in results) == 1
        assert len(await system_messages(manager, booked.conversation_id)) == 1
    finally:
        await db_a.dispose()
        await db_b.dispose()
