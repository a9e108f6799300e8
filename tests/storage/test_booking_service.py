"""The booking service (``storage.bookings``) against a real SQLite file: what it writes.

The HTTP tests show the API's answers; these look at the rows behind them (one allocation per
seated session, no partial rows, a rolled-back reschedule) and at round-robin assignment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import prepare_database
from core.booking import Status
from core.errors import Conflict, InvalidTransition, PolicyViolation, SlotTaken
from core.timezones import day_bounds, zone
from storage import bookings, schedule
from storage import tables as t
from storage.bookings import NewBooking
from storage.engine import Database
from tests.conftest import FrozenClock, demo_business, make_settings, tenant_of

TUE = datetime(2026, 3, 3, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: datetime = TUE) -> datetime:
    return day.replace(hour=hour, minute=minute)


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


def req(start: datetime, service: str = "checkup", i: int = 1, **extra: Any) -> NewBooking:
    return NewBooking(service=service, start=start, customer_name=f"Customer {i}", customer_phone=phone(i), **extra)


@asynccontextmanager
async def open_db(url: str, clock: FrozenClock, businesses: list[dict[str, Any]]) -> AsyncIterator[Database]:
    """A database loaded with ``businesses`` (for tests that do not use the ``db`` fixture)."""
    database = await prepare_database(make_settings(url, businesses), clock)
    try:
        yield database
    finally:
        await database.dispose()


async def count(db: Database, table: Any, *where: Any) -> int:
    async with db.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def allocations(db: Database) -> list[t.Allocation]:
    async with db.reading() as session:
        return list(await session.scalars(select(t.Allocation).order_by(t.Allocation.starts_at)))


# --- create -----------------------------------------------------------------------------------------


async def test_create_writes_one_appointment_one_allocation_and_one_event(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    outcome = await bookings.create(db, acme, req(at(10)), clock())
    assert outcome.changed is True
    a = outcome.appointment
    assert a.status is Status.SCHEDULED and a.service == "checkup"
    assert a.start == at(10) and a.end == at(10, 30)
    assert a.staff == ("ann",)  # "any": the first free in the service's order
    assert (a.price, a.currency) == (5000, "EUR")
    assert a.customer.phone == phone(1)
    rows = await allocations(db)
    assert [(r.starts_at.replace(tzinfo=UTC), r.seats_taken, r.active) for r in rows] == [(at(10), 1, True)]
    events = await bookings.history(db, acme, a.id)
    assert [(e.from_status, e.to_status, e.reason) for e in events] == [(None, "scheduled", "booked")]
    assert (await bookings.get(db, acme, a.id)) == a


async def test_customer_is_reused_by_phone(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    first = (await bookings.create(db, acme, req(at(9)), clock())).appointment
    second = (await bookings.create(db, acme, req(at(11)), clock())).appointment
    assert first.customer.id == second.customer.id
    assert await count(db, t.Customer) == 1


async def test_idempotency_key_repeat_and_mismatch(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    first = await bookings.create(db, acme, req(at(9), idempotency_key="k"), clock())
    again = await bookings.create(db, acme, req(at(9), idempotency_key="k"), clock())
    assert (first.changed, again.changed) == (True, False)
    assert again.appointment.id == first.appointment.id
    with pytest.raises(Conflict) as err:
        await bookings.create(db, acme, req(at(10), idempotency_key="k"), clock())
    assert err.value.code == "idempotency_mismatch"
    assert await count(db, t.Appointment) == 1
    assert await count(db, t.Allocation) == 1


async def test_taken_slot_raises_with_alternatives(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    await bookings.create(db, acme, req(at(10), "solo"), clock())
    with pytest.raises(SlotTaken) as err:
        await bookings.create(db, acme, req(at(10), "solo", i=2), clock())
    assert [s.start for s in err.value.details["alternatives"]] == [at(9), at(9, 30), at(10, 30)]
    assert await count(db, t.Appointment) == 1
    assert await count(db, t.Customer) == 1  # the loser's customer row was rolled back too


async def test_min_notice_is_checked_inside_the_write(sqlite_url: str, clock: FrozenClock) -> None:
    async with open_db(sqlite_url, clock, [demo_business(min_notice_minutes=60)]) as db:
        acme = await tenant_of(db, "acme")
        clock.now = at(10)
        ok = await bookings.create(db, acme, req(at(11), staff="ann"), clock())
        assert ok.changed
        with pytest.raises(PolicyViolation) as err:
            await bookings.create(db, acme, req(at(11), i=2, staff="bob"), clock() + timedelta(minutes=1))
        assert err.value.code == "min_notice"
        assert await count(db, t.Appointment) == 1


# --- seats and collective ---------------------------------------------------------------------------


async def test_seats_are_counted_in_one_allocation_row(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    made = [(await bookings.create(db, acme, req(at(10), "class", i=i), clock())).appointment for i in range(3)]
    assert {a.staff for a in made} == {("bob",)}
    rows = await allocations(db)
    assert [(r.capacity, r.seats_taken, r.active) for r in rows] == [(3, 3, True)]
    assert await count(db, t.AppointmentAllocation, t.AppointmentAllocation.allocation_id == rows[0].id) == 3
    with pytest.raises(SlotTaken):
        await bookings.create(db, acme, req(at(10), "class", i=9), clock())
    # Cancelling gives one seat back; the session stays while it has anyone in it.
    await bookings.cancel(db, acme, made[0].id, clock())
    assert [(r.seats_taken, r.active) for r in await allocations(db)] == [(2, True)]
    await bookings.cancel(db, acme, made[1].id, clock())
    await bookings.cancel(db, acme, made[2].id, clock())
    assert [(r.seats_taken, r.active) for r in await allocations(db)] == [(0, False)]
    # An emptied session stops blocking: the slot is offered with all its seats again.
    async with db.reading() as session:
        sched = await schedule.load(session, acme, "class", at(0), at(23))
    assert [s.seats_left for s in sched.slots(at(0), at(23), clock()) if s.start == at(10)] == [3]


async def test_same_customer_twice_in_a_session_is_already_booked(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    await bookings.create(db, acme, req(at(10), "class"), clock())
    with pytest.raises(Conflict) as err:
        await bookings.create(db, acme, req(at(10), "class"), clock())
    assert err.value.code == "already_booked"
    assert [r.seats_taken for r in await allocations(db)] == [1]
    assert await count(db, t.Appointment) == 1


async def test_collective_books_everyone_or_nothing(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    surgery = (await bookings.create(db, acme, req(at(9), "surgery"), clock())).appointment
    assert surgery.staff == ("ann", "room")
    assert await count(db, t.AppointmentAllocation, t.AppointmentAllocation.appointment_id == surgery.id) == 2
    await bookings.create(db, acme, req(at(11), "solo", i=2), clock())
    before = (await count(db, t.Appointment), await count(db, t.Allocation), await count(db, t.Customer))
    assert before == (2, 3, 2)
    with pytest.raises(SlotTaken):
        await bookings.create(db, acme, req(at(11), "surgery", i=3), clock())
    after = (await count(db, t.Appointment), await count(db, t.Allocation), await count(db, t.Customer))
    assert after == before
    # Cancelling the surgery frees both the doctor and the room.
    await bookings.cancel(db, acme, surgery.id, clock())
    assert [r.active for r in await allocations(db) if r.starts_at.replace(tzinfo=UTC) == at(9)] == [False, False]
    again = await bookings.create(db, acme, req(at(9), "surgery", i=4), clock())
    assert again.appointment.staff == ("ann", "room")


# --- reschedule ---------------------------------------------------------------------------------------


async def test_reschedule_into_own_slot_releases_and_retakes_atomically(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    old = (await bookings.create(db, acme, req(at(10), "solo"), clock())).appointment
    moved = await bookings.reschedule(db, acme, old.id, at(10), clock())
    assert moved.id != old.id and moved.start == at(10) and moved.rescheduled_from == old.id
    previous = await bookings.get(db, acme, old.id)
    assert previous.status is Status.RESCHEDULED and previous.rescheduled_to == moved.id
    # The old allocation is released (not deleted), the new one holds the same time.
    assert sorted((r.active, r.seats_taken) for r in await allocations(db)) == [(False, 0), (True, 1)]
    assert [e.to_status for e in await bookings.history(db, acme, old.id)] == ["scheduled", "rescheduled"]
    new_events = await bookings.history(db, acme, moved.id)
    assert [(e.to_status, e.reason) for e in new_events] == [("scheduled", "rescheduled")]


async def test_failed_reschedule_leaves_the_booking_as_it_was(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    mine = (await bookings.create(db, acme, req(at(10), "solo"), clock())).appointment
    await bookings.create(db, acme, req(at(11), "solo", i=2), clock())
    with pytest.raises(SlotTaken):
        await bookings.reschedule(db, acme, mine.id, at(11), clock())
    assert await bookings.get(db, acme, mine.id) == mine
    assert [(r.starts_at.replace(tzinfo=UTC), r.active, r.seats_taken) for r in await allocations(db)] == [
        (at(10), True, 1),
        (at(11), True, 1),
    ]
    assert await count(db, t.Appointment) == 2
    assert [e.to_status for e in await bookings.history(db, acme, mine.id)] == ["scheduled"]


async def test_reschedule_notice_policy(sqlite_url: str, clock: FrozenClock) -> None:
    async with open_db(sqlite_url, clock, [demo_business(reschedule_notice_hours=2)]) as db:
        acme = await tenant_of(db, "acme")
        booked = (await bookings.create(db, acme, req(at(12)), clock())).appointment
        with pytest.raises(PolicyViolation):
            await bookings.reschedule(db, acme, booked.id, at(15), at(10) + timedelta(seconds=1))
        moved = await bookings.reschedule(db, acme, booked.id, at(15), at(10))  # exactly 2 h: allowed
        assert moved.start == at(15)


# --- lifecycle ----------------------------------------------------------------------------------------


async def test_mark_only_after_the_start_and_only_once(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    a = (await bookings.create(db, acme, req(at(10), "solo"), clock())).appointment
    with pytest.raises(InvalidTransition):
        await bookings.mark(db, acme, a.id, Status.COMPLETED, at(9, 59))
    done = await bookings.mark(db, acme, a.id, Status.COMPLETED, at(10))  # the start itself counts
    assert done.status is Status.COMPLETED
    with pytest.raises(InvalidTransition):
        await bookings.mark(db, acme, a.id, Status.MISSED, at(11))
    with pytest.raises(InvalidTransition):
        await bookings.cancel(db, acme, a.id, at(11), enforce_policy=False)
    events = await bookings.history(db, acme, a.id)
    assert [(e.from_status, e.to_status) for e in events] == [(None, "scheduled"), ("scheduled", "completed")]


async def test_cancel_is_idempotent_and_records_one_event(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    a = (await bookings.create(db, acme, req(at(10), "solo"), clock())).appointment
    first = await bookings.cancel(db, acme, a.id, clock(), reason="ill")
    second = await bookings.cancel(db, acme, a.id, clock(), reason="ill")
    assert (first.changed, second.changed) == (True, False)
    assert second.appointment.status is Status.CANCELLED
    events = await bookings.history(db, acme, a.id)
    assert [e.to_status for e in events].count("cancelled") == 1


async def test_list_between_filters(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    a = (await bookings.create(db, acme, req(at(9), "solo"), clock())).appointment
    b = (await bookings.create(db, acme, req(at(16, 30), "solo", i=2), clock())).appointment
    c = (await bookings.create(db, acme, req(at(9, 0, TUE + timedelta(days=1)), "solo", i=3), clock())).appointment
    await bookings.cancel(db, acme, b.id, clock())
    day_end = TUE + timedelta(days=1)
    assert [x.id for x in await bookings.list_between(db, acme, TUE, day_end)] == [a.id, b.id]
    assert [x.id for x in await bookings.list_between(db, acme, TUE, day_end + timedelta(days=1))] == [
        a.id,
        b.id,
        c.id,
    ]
    cancelled = await bookings.list_between(db, acme, TUE, day_end, Status.CANCELLED)
    assert [x.id for x in cancelled] == [b.id]
    other = await tenant_of(db, "other")
    assert await bookings.list_between(db, other, TUE, day_end) == []


async def test_alternatives_treat_the_moved_booking_as_free(db: Database, clock: FrozenClock) -> None:
    acme = await tenant_of(db, "acme")
    mine = (await bookings.create(db, acme, req(at(10), "solo"), clock())).appointment
    await bookings.create(db, acme, req(at(10, 30), "solo", i=2), clock())
    without = await bookings.alternatives_near(db, acme, "solo", at(10), clock(), count=3)
    assert [s.start for s in without] == [at(9), at(9, 30), at(11)]
    own_free = await bookings.alternatives_near(db, acme, "solo", at(10), clock(), count=3, exclude_appointment=mine.id)
    assert [s.start for s in own_free] == [at(9), at(9, 30), at(10)]


# --- limits -------------------------------------------------------------------------------------------


def night_business() -> dict[str, Any]:
    """New York evening shifts: 23:00 local is already the next day in UTC."""
    return {
        "slug": "acme",
        "name": "Night Owls",
        "timezone": "America/New_York",
        "staff": [{"slug": "owl", "name": "Owl", "hours": {"daily": ["18:00-24:00"]}}],
        "services": [{"slug": "talk", "name": "Talk", "duration_minutes": 30, "staff": ["owl"], "max_per_day": 2}],
    }


async def test_per_day_limit_counts_the_business_local_day(sqlite_url: str, clock: FrozenClock) -> None:
    async with open_db(sqlite_url, clock, [night_business()]) as db:
        acme = await tenant_of(db, "acme")
        ny = zone("America/New_York")
        late = datetime(2026, 3, 3, 23, 0, tzinfo=ny).astimezone(UTC)  # 04:00Z on 4 March
        first = (await bookings.create(db, acme, req(late, "talk"), clock())).appointment
        await bookings.create(db, acme, req(late + timedelta(minutes=30), "talk", i=2), clock())

        async def local_day(day: int) -> list[datetime]:
            start, end = day_bounds(datetime(2026, 3, day).date(), datetime(2026, 3, day).date(), ny)
            async with db.reading() as session:
                sched = await schedule.load(session, acme, "talk", start, end)
            return [s.start.astimezone(ny).replace(tzinfo=None) for s in sched.slots(start, end, clock())]

        assert await local_day(3) == []  # both bookings count for 3 March local
        assert len(await local_day(4)) == 12  # 4 March local (which they share in UTC) is open
        with pytest.raises(SlotTaken):
            await bookings.create(db, acme, req(datetime(2026, 3, 3, 18, 0, tzinfo=ny), "talk", i=3), clock())
        # A cancelled booking does not count.
        await bookings.cancel(db, acme, first.id, clock())
        assert len(await local_day(3)) == 11
        again = await bookings.create(db, acme, req(datetime(2026, 3, 3, 18, 0, tzinfo=ny), "talk", i=3), clock())
        assert again.changed


# --- round-robin --------------------------------------------------------------------------------------


def rotation_business(ann_weight: int = 1, bob_weight: int = 1, **ann_extra: Any) -> dict[str, Any]:
    week = {"daily": ["09:00-17:00"]}
    return {
        "slug": "acme",
        "name": "Acme",
        "timezone": "UTC",
        "staff": [
            {"slug": "ann", "name": "Ann", "hours": week, "weight": ann_weight, **ann_extra},
            {"slug": "bob", "name": "Bob", "hours": week, "weight": bob_weight},
        ],
        "services": [
            {"slug": "rr", "name": "RR", "duration_minutes": 30, "staff": ["ann", "bob"], "assignment": "round_robin"}
        ],
    }


def grid(n: int) -> list[datetime]:
    """``n`` consecutive 30-minute starts from Tuesday 09:00, 16 a day."""
    return [at(9, 0, TUE + timedelta(days=i // 16)) + timedelta(minutes=30 * (i % 16)) for i in range(n)]


async def assign(db: Database, tenant: str, clock: FrozenClock, starts: list[datetime]) -> list[str]:
    out = []
    for i, start in enumerate(starts):
        clock.advance(minutes=1)
        outcome = await bookings.create(db, tenant, req(start, "rr", i=i), clock())
        out.append(outcome.appointment.staff[0])
    return out


async def test_round_robin_equal_weights_alternates(sqlite_url: str, clock: FrozenClock) -> None:
    async with open_db(sqlite_url, clock, [rotation_business()]) as db:
        got = await assign(db, await tenant_of(db, "acme"), clock, grid(8))
    assert got == ["ann", "bob"] * 4


async def test_round_robin_follows_weights(sqlite_url: str, clock: FrozenClock) -> None:
    async with open_db(sqlite_url, clock, [rotation_business(ann_weight=2)]) as db:
        got = await assign(db, await tenant_of(db, "acme"), clock, grid(30))
    assert Counter(got) == {"ann": 20, "bob": 10}
    # Ties go to the least recently booked; after that ann gets two turns for each of bob's.
    assert got[:10] == ["ann", "bob", "ann", "bob", "ann", "ann", "bob", "ann", "ann", "bob"]
    for i in range(0, len(got) - 2):
        window = got[i : i + 3]
        assert window.count("ann") >= 1 and window.count("bob") <= 2, got


async def test_round_robin_skips_an_unavailable_member(sqlite_url: str, clock: FrozenClock) -> None:
    off = {"time_off": [{"start": "2026-03-03T09:00:00", "end": "2026-03-03T10:00:00"}]}
    async with open_db(sqlite_url, clock, [rotation_business(**off)]) as db:
        acme = await tenant_of(db, "acme")
        # ann is due first (tie, alphabetical) but is away at 09:00 and 09:30.
        got = await assign(db, acme, clock, [at(9), at(9, 30), at(10), at(10, 30)])
        assert got == ["bob", "bob", "ann", "ann"]
        # Both now have two: back to alternating, the least recently booked (bob) first.
        assert await assign(db, acme, clock, [at(11), at(11, 30)]) == ["bob", "ann"]


async def test_round_robin_explicit_staff_and_cancelled_bookings(sqlite_url: str, clock: FrozenClock) -> None:
    async with open_db(sqlite_url, clock, [rotation_business()]) as db:
        acme = await tenant_of(db, "acme")
        clock.advance(minutes=1)
        await bookings.create(db, acme, req(at(9), "rr", i=1, staff="bob"), clock())
        clock.advance(minutes=1)
        ann = (await bookings.create(db, acme, req(at(9, 30), "rr", i=2, staff="ann"), clock())).appointment
        await bookings.cancel(db, acme, ann.id, clock())
        # Had the cancelled booking counted it would be a tie, won by the least recently booked (bob).
        assert await assign(db, acme, clock, [at(10)]) == ["ann"]


async def test_round_robin_weight_set_through_upsert(sqlite_url: str, clock: FrozenClock) -> None:
    """A weight changed later (as PUT /api/staff/{slug} does) is used by the next assignments."""
    from core.catalog import StaffSpec
    from storage import catalog

    async with open_db(sqlite_url, clock, [rotation_business()]) as db:
        acme = await tenant_of(db, "acme")
        async with db.writing() as session:
            spec = StaffSpec(slug="bob", name="Bob", hours={"daily": ["09:00-17:00"]}, weight=3)
            await catalog.upsert_staff(session, acme, spec, clock())
        got = await assign(db, acme, clock, grid(12))
    assert Counter(got) == {"bob": 9, "ann": 3}
