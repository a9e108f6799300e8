"""Automations: every placeholder rendered, each action logged, no-show marking with its
follow-up, the signed calendar file, and the jobs once through a real APScheduler."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import JOBS, prepare_database
from bot.context import CONTEXT
from bot.scheduler import Scheduler
from bot.settings import Settings
from core.automations import PLACEHOLDERS, ics_token, render
from core.booking import Status
from storage import automations as log_store
from storage import bookings, reminders
from tests.conftest import T0, FrozenClock, demo_business, make_settings
from tests.ops.conftest import book_in_chat, jobs_for, manager_for, system_messages

EVERYTHING = " | ".join(f"{name}={{{{{name}}}}}" for name in sorted(PLACEHOLDERS))


def business(**extra: Any) -> dict[str, Any]:
    return {
        **demo_business(),
        "video_link": "https://meet.example/acme",
        "location_details": "2nd floor, room 4",
        **extra,
    }


def test_render_fills_every_placeholder_and_refuses_unknown_ones() -> None:
    values = {name: f"<{name}>" for name in PLACEHOLDERS}
    text = render(EVERYTHING, values)
    assert all(f"{name}=<{name}>" in text for name in PLACEHOLDERS)
    try:
        render("Hi {{contact_nam}}", values)
    except ValueError as exc:
        assert "contact_nam" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown placeholder must be refused")


async def test_a_customer_in_another_zone_reads_both_times(sqlite_url: str, clock: FrozenClock) -> None:
    message = "Booked for {{appointment_date}} at {{appointment_time}}."
    settings = make_settings(sqlite_url, [business(automations={"appointment.booked": {"message": message}})])
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        jobs = jobs_for(db, settings, clock, "a", manager=manager)
        start = T0 + timedelta(days=1, hours=2)  # Tuesday 10:00 UTC, the business's zone
        booked = await book_in_chat(db, manager, clock, start, timezone="America/New_York")
        assert await jobs.automations_run() == 1
        (text,) = await system_messages(manager, booked.conversation_id)
        assert text == "Booked for Tuesday 3 March 2026 at 05:00 EST (10:00 UTC)."
    finally:
        await db.dispose()


async def test_booked_message_renders_every_placeholder_and_is_logged(sqlite_url: str, clock: FrozenClock) -> None:
    settings = make_settings(sqlite_url, [business(automations={"appointment.booked": {"message": EVERYTHING}})])
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        jobs = jobs_for(db, settings, clock, "a", manager=manager)
        booked = await book_in_chat(db, manager, clock, T0 + timedelta(days=1, hours=2))
        assert await jobs.automations_run() == 1
        assert await jobs.automations_run() == 0  # once
        (text,) = await system_messages(manager, booked.conversation_id)
        expected = {
            "contact_name": "Jane Roe",
            "appointment_date": "Tuesday 3 March 2026",
            "appointment_time": "10:00",
            "appointment_duration": "30 minutes",
            "service_name": "Solo",
            "staff_name": "Ann",
            "video_link": "https://meet.example/acme",
            "location_details": "2nd floor, room 4",
            "business_name": "Acme Clinic",
        }
        for name, value in expected.items():
            assert f"{name}={value}" in text
        (stored,) = [m for m in await manager.messages(booked.conversation_id) if m.author == "system"]
        assert stored.payload["link"]["url"].startswith("http://localhost:8080/calendar/")
        assert stored.payload["template"]["name"] == "appointment_booked"
        (run,) = await log_store.runs(db, booked.tenant_id, booked.appointment_id)
        assert (run.trigger, run.action, run.status, run.detail["ics"]) == (
            "appointment.booked",
            "message",
            "done",
            True,
        )
    finally:
        await db.dispose()


async def test_api_booking_without_conversation_is_skipped_and_logged(
    db: object, settings: Settings, clock: FrozenClock
) -> None:
    from storage.engine import Database
    from tests.conftest import tenant_of

    assert isinstance(db, Database)
    jobs = jobs_for(db, settings, clock, "a")
    tenant = await tenant_of(db, "acme")
    outcome = await bookings.create(
        db, tenant, bookings.NewBooking("solo", T0 + timedelta(days=1, hours=2), "Sam", "+14155550102"), clock()
    )
    await jobs.automations_run()
    (run,) = await log_store.runs(db, tenant, outcome.appointment.id)
    assert (run.status, run.detail) == ("skipped", {"reason": "no_conversation"})
    assert (await jobs.reminders()).planned == 0  # no chat, no chat reminder


async def test_no_show_is_marked_with_follow_up_message_and_actions(sqlite_url: str, clock: FrozenClock) -> None:
    settings = make_settings(sqlite_url, [business()], outcomes={"default": "missed", "mark_after_minutes": 60})
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        jobs = jobs_for(db, settings, clock, "a", manager=manager)
        booked = await book_in_chat(db, manager, clock, T0 + timedelta(hours=3))
        await jobs.automations_run()  # the booking confirmation
        clock.advance(hours=4)  # ended 30 minutes ago: not yet
        assert await jobs.outcomes() == []
        clock.advance(minutes=31)
        assert await jobs.outcomes() == [(booked.tenant_id, booked.appointment_id)]
        assert await jobs.outcomes() == []
        appointment = await bookings.get(db, booked.tenant_id, booked.appointment_id)
        assert appointment.status.value == "missed"
        await jobs.automations_run()
        stored = [m for m in await manager.messages(booked.conversation_id) if m.author == "system"]
        assert "we missed you" in stored[-1].text
        assert stored[-1].payload["options"][0]["id"] == "menu:book"
        actions = {(r.trigger, r.action): r for r in await log_store.runs(db, booked.tenant_id, booked.appointment_id)}
        assert actions[("appointment.no_show", "message")].status == "done"
        assert actions[("appointment.no_show", "follow_up.rebook_offer")].status == "done"
        flag = actions[("appointment.no_show", "follow_up.flag_customer")]
        assert flag.detail == {"no_shows": 1, "repeat": False}
        views = await reminders.for_appointment(db, booked.tenant_id, booked.appointment_id)
        assert all(v.state != "pending" for v in views)
    finally:
        await db.dispose()


async def test_calendar_file_needs_its_signature(client: TestClient, clock: FrozenClock) -> None:
    ctx = client.server.app[CONTEXT]
    from tests.conftest import tenant_of

    tenant = await tenant_of(ctx.db, "acme")
    outcome = await bookings.create(
        ctx.db, tenant, bookings.NewBooking("solo", T0 + timedelta(days=1, hours=2), "Sam", "+14155550102"), clock()
    )
    appointment_id = outcome.appointment.id
    good = ics_token(ctx.link_secret, appointment_id)
    resp = await client.get(f"/calendar/{appointment_id}.ics", params={"t": good})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/calendar")
    body = await resp.text()
    assert "BEGIN:VEVENT" in body and "DTSTART:20260303T100000Z" in body and "Solo" in body
    bad = await client.get(f"/calendar/{appointment_id}.ics", params={"t": good[:-2] + "xx"})
    assert bad.status == 404


async def test_jobs_run_through_a_real_apscheduler(sqlite_url: str, clock: FrozenClock) -> None:
    settings = make_settings(sqlite_url, [business()], scheduler={"tick_seconds": 0.05})
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        jobs = jobs_for(db, settings, clock, "a", manager=manager)
        booked = await book_in_chat(db, manager, clock, T0 + timedelta(days=1, hours=2))
        clock.advance(hours=2)  # the 24 h reminder is due (the frozen clock decides; APScheduler only ticks)
        arrived = asyncio.Event()
        seen: list[str] = []

        def listener(_conversation_id: str, message: Any) -> None:
            if message.author == "system":
                seen.append(message.text)
                if len(seen) >= 2:  # the booking confirmation and the reminder
                    arrived.set()

        stop_listening = manager.listen(booked.conversation_id, listener)
        scheduler = Scheduler(jobs, settings)
        scheduler.start()
        try:
            assert scheduler.running
            assert scheduler.job_ids() == ["alerts", "automations", "outcomes", "payments", "reminders", "rollups"]
            await asyncio.wait_for(arrived.wait(), timeout=10)
        finally:
            scheduler.stop()
            await scheduler.drain()  # a job still running when the database closes never finishes
            stop_listening()
        texts = await system_messages(manager, booked.conversation_id)
        assert sum("Reminder" in x for x in texts) == 1
    finally:
        await db.dispose()


async def test_app_builds_and_stops_its_scheduler(client: TestClient) -> None:
    jobs = client.server.app[JOBS]
    assert jobs.alerts is not None and jobs.payments is not None


async def test_history_that_triggers_nothing_never_holds_up_the_queue(sqlite_url: str, clock: FrozenClock) -> None:
    """A busy day of payment holds (each one a history row no automation answers) must not fill the
    queue's places: the next booking's message still goes out, and the queue holds triggers only."""
    from itertools import product

    from storage import tables as t
    from storage.automations import trigger_of
    from storage.bookings import HOLD_EXPIRED

    message = "Booked: {{service_name}}."
    settings = make_settings(sqlite_url, [business(automations={"appointment.booked": {"message": message}})])
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        jobs = jobs_for(db, settings, clock, "a", manager=manager)
        first = await book_in_chat(db, manager, clock, T0 + timedelta(days=1, hours=2))
        assert await jobs.automations_run() == 1
        statuses = [s.value for s in Status]
        reasons = ["booked", "rescheduled", "paid", HOLD_EXPIRED, "cancelled_by_customer"]
        idle = [k for k in product([None, *statuses], statuses, reasons) if trigger_of(*k) is None]
        assert len(idle) > 10
        async with db.writing() as session:  # what a few hundred holds, moves and lapses write
            for i in range(250):
                was, to, why = idle[i % len(idle)]
                session.add(
                    t.AppointmentEvent(
                        tenant_id=first.tenant_id,
                        appointment_id=first.appointment_id,
                        at=clock() - timedelta(minutes=1),
                        from_status=was,
                        to_status=to,
                        actor="payment",
                        reason=why,
                    )
                )
        assert await log_store.events_since(db, clock() - timedelta(hours=24), clock()) == []
        clock.advance(minutes=1)
        second = await book_in_chat(db, manager, clock, T0 + timedelta(days=1, hours=4), sender="visitor-2")
        assert await jobs.automations_run() == 1
        assert await system_messages(manager, second.conversation_id) == ["Booked: Solo."]
    finally:
        await db.dispose()


async def test_a_no_show_corrects_the_automatic_completed_mark_once(sqlite_url: str, clock: FrozenClock) -> None:
    """The outcomes job assumed 'completed' an hour after the end; the receptionist knows better."""
    import pytest

    from core.errors import InvalidTransition

    settings = make_settings(sqlite_url, [business()], outcomes={"default": "completed", "mark_after_minutes": 60})
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        jobs = jobs_for(db, settings, clock, "a", manager=manager)
        booked = await book_in_chat(db, manager, clock, T0 + timedelta(hours=3))
        clock.advance(hours=5)
        assert await jobs.outcomes() == [(booked.tenant_id, booked.appointment_id)]
        await jobs.automations_run()
        corrected = await bookings.mark(db, booked.tenant_id, booked.appointment_id, Status.MISSED, clock())
        assert corrected.status is Status.MISSED
        await jobs.automations_run()
        stored = [m for m in await manager.messages(booked.conversation_id) if m.author == "system"]
        assert "we missed you" in stored[-1].text
        actions = {(r.trigger, r.action): r for r in await log_store.runs(db, booked.tenant_id, booked.appointment_id)}
        assert actions[("appointment.no_show", "follow_up.flag_customer")].detail == {"no_shows": 1, "repeat": False}
        with pytest.raises(InvalidTransition):  # a person's own mark is not corrected back and forth
            await bookings.mark(db, booked.tenant_id, booked.appointment_id, Status.COMPLETED, clock())
    finally:
        await db.dispose()


async def test_a_mark_made_by_a_person_stays(sqlite_url: str, clock: FrozenClock) -> None:
    import pytest

    from core.errors import InvalidTransition

    settings = make_settings(sqlite_url, [business()])
    db = await prepare_database(settings, clock)
    try:
        manager = manager_for(db, settings, clock)
        booked = await book_in_chat(db, manager, clock, T0 + timedelta(hours=3))
        clock.advance(hours=4)
        await bookings.mark(db, booked.tenant_id, booked.appointment_id, Status.COMPLETED, clock())
        with pytest.raises(InvalidTransition):
            await bookings.mark(db, booked.tenant_id, booked.appointment_id, Status.MISSED, clock())
    finally:
        await db.dispose()
