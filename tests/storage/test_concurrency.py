"""Races for one slot never double-book (reference/booking.md §4, §5 #19, #20, #21, #25).

SQLite serialises writers with ``BEGIN IMMEDIATE`` and checks overlaps in triggers; PostgreSQL
lets the exclusion constraint ``ex_allocations_no_overlap`` decide. Either way a lost race must
surface as :class:`~core.errors.SlotTaken` (HTTP 409 ``slot_taken``), never as a 500, a
"database is locked" or a second booking. Tests parametrised over ``db_url`` run on SQLite
always and on PostgreSQL when ``FRONTDESK_TEST_POSTGRES_URL`` is set.

Every assertion is about outcomes that hold whatever the interleaving: which contender wins
is up to the scheduler, how many win is not.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Boolean, bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError

from bot.app import create_app, prepare_database
from bot.context import CONTEXT
from core.booking import ACTIVE, Status
from core.errors import SlotTaken
from storage import bookings, migrate
from storage import tables as t
from storage.bookings import NewBooking, Outcome
from storage.engine import Database, create_database
from tests.conftest import (
    T0,
    FrozenClock,
    booking_body,
    demo_business,
    make_settings,
    new_token,
    other_business,
    tenant_of,
)

# Tuesday 2026-03-03 10:00 UTC: inside Ann's and Bob's 09:00-17:00 hours (the business is in UTC).
SLOT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
SLOT_ISO = "2026-03-03T10:00:00+00:00"
MIN = timedelta(minutes=1)
PROCESS_TIMEOUT_S = 120
IN_FLIGHT = 50  # attempts one process has started at once


def phone(i: int) -> str:
    """A distinct, possible E.164 number per contender."""
    return f"+1415555{i:04d}"


def businesses() -> list[dict[str, Any]]:
    """The demo business plus "quarter": 30 minutes on a 15-minute grid, Ann only."""
    acme = demo_business()
    acme["services"].append(
        {"slug": "quarter", "name": "Quarter", "duration_minutes": 30, "interval_minutes": 15, "staff": ["ann"]}
    )
    return [acme, other_business()]


async def open_database(url: str, clock: FrozenClock) -> Database:
    """SQLite migrates itself in prepare_database; PostgreSQL is migrated first, like `frontdesk migrate`."""
    if not url.startswith("sqlite"):
        bootstrap = create_database(url, pool_size=0)
        try:
            await migrate.upgrade(bootstrap.engine)
        finally:
            await bootstrap.dispose()
    return await prepare_database(make_settings(url, businesses()), clock)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest_asyncio.fixture
async def race_db(db_url: str, clock: FrozenClock) -> AsyncIterator[Database]:
    database = await open_database(db_url, clock)
    yield database
    await database.dispose()


# --------------------------------------------------------------------------- helpers


def book(
    db: Database, tenant: str, service: str, start: datetime, who: str, now: datetime
) -> Coroutine[Any, Any, Outcome]:
    return bookings.create(db, tenant, NewBooking(service, start, "Racer", who), now)


def sort_out(results: Sequence[Any]) -> tuple[list[Any], int, list[str]]:
    """(appointments created, number of SlotTaken, anything else as text)."""
    created = [r.appointment for r in results if isinstance(r, Outcome)]
    taken = sum(isinstance(r, SlotTaken) for r in results)
    other = [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, Outcome | SlotTaken)]
    return created, taken, other


async def staff_ids(db: Database, tenant: str) -> dict[str, str]:
    async with db.reading() as session:
        rows = await session.execute(select(t.Staff.slug, t.Staff.id).where(t.Staff.tenant_id == tenant))
        return dict(rows.all())


async def active_allocations(db: Database, tenant: str) -> list[t.Allocation]:
    async with db.reading() as session:
        return list(
            await session.scalars(
                select(t.Allocation)
                .where(t.Allocation.tenant_id == tenant, t.Allocation.active)
                .order_by(t.Allocation.staff_id, t.Allocation.blocked_start)
            )
        )


def assert_no_overlap(allocations: Sequence[t.Allocation]) -> None:
    """At no instant does one staff member hold two active (buffer-padded, half-open) ranges."""
    by_staff: dict[str, list[t.Allocation]] = defaultdict(list)
    for a in allocations:
        by_staff[a.staff_id].append(a)
    for rows in by_staff.values():
        rows.sort(key=lambda a: a.blocked_start)
        for before, after in itertools.pairwise(rows):
            assert before.blocked_end <= after.blocked_start, (
                f"double booking: {before.blocked_start}-{before.blocked_end} and "
                f"{after.blocked_start}-{after.blocked_end}"
            )


async def assert_consistent(db: Database, tenant: str) -> None:
    """Every live booking holds one active allocation; an allocation is active exactly while some
    live booking holds it, and its seat count is the number of those bookings."""
    released = {Status.CANCELLED.value, Status.RESCHEDULED.value}
    async with db.reading() as session:
        links = (
            await session.execute(
                select(t.AppointmentAllocation.appointment_id, t.AppointmentAllocation.allocation_id).where(
                    t.AppointmentAllocation.tenant_id == tenant
                )
            )
        ).all()
        status = dict(
            (
                await session.execute(
                    select(t.Appointment.id, t.Appointment.status).where(t.Appointment.tenant_id == tenant)
                )
            ).all()
        )
        allocations = {
            a.id: a for a in await session.scalars(select(t.Allocation).where(t.Allocation.tenant_id == tenant))
        }
    holders: dict[str, list[str]] = defaultdict(list)
    held: dict[str, list[str]] = defaultdict(list)
    for appointment_id, allocation_id in links:
        if status[appointment_id] not in released:
            holders[allocation_id].append(appointment_id)
            held[appointment_id].append(allocation_id)
    for appointment_id, state in status.items():
        if state in {s.value for s in ACTIVE}:
            assert len(held[appointment_id]) == 1, (appointment_id, state, held[appointment_id])
    for allocation_id, a in allocations.items():
        live = len(holders[allocation_id])
        assert (a.active, a.seats_taken if a.active else live) == (live > 0, live), (allocation_id, live)


# --------------------------------------------------------------------------- §5 #19 over HTTP


async def test_sqlite_http_fifty_clients_one_slot(aiohttp_client: Any, sqlite_url: str, clock: FrozenClock) -> None:
    client = await aiohttp_client(create_app(make_settings(sqlite_url), clock=clock))
    database: Database = client.server.app[CONTEXT].db
    headers = {"Authorization": f"Bearer {await new_token(database, 'acme', clock)}"}

    async def attempt(i: int) -> tuple[int, str]:
        body = booking_body(SLOT_ISO, service="solo", phone=phone(i), staff="ann")
        resp = await client.post("/api/bookings", json=body, headers=headers)
        return resp.status, await resp.text()

    started = time.perf_counter()
    replies = await asyncio.gather(*(attempt(i) for i in range(50)))
    elapsed = time.perf_counter() - started

    assert [(status, body) for status, body in replies if status >= 500] == []
    assert [body for _, body in replies if "locked" in body.lower()] == []
    assert Counter(status for status, _ in replies) == {201: 1, 409: 49}, replies
    losers = [json.loads(body) for status, body in replies if status == 409]
    assert {b["code"] for b in losers} == {"slot_taken"}
    winner = json.loads(next(body for status, body in replies if status == 201))
    assert (winner["status"], winner["staff"], winner["start"]) == ("scheduled", "ann", SLOT_ISO)

    resp = await client.get(
        "/api/bookings", params={"date_from": "2026-03-03", "date_to": "2026-03-03"}, headers=headers
    )
    assert resp.status == 200
    listed = (await resp.json())["bookings"]
    assert [(b["id"], b["status"], b["start"]) for b in listed] == [(winner["id"], "scheduled", SLOT_ISO)]

    tenant = await tenant_of(database, "acme")
    held = await active_allocations(database, tenant)
    assert [(a.starts_at, a.ends_at) for a in held] == [(SLOT, SLOT + 30 * MIN)]
    print(f"50 concurrent HTTP bookings on SQLite: {elapsed:.2f}s")


# --------------------------------------------------------------------------- §5 #20


async def test_overlapping_but_different_starts_only_one_wins(race_db: Database, clock: FrozenClock) -> None:
    """A 10:00-10:30 against B 10:15-10:45, 12 of each at once, on three days: one winner per day."""
    tenant = await tenant_of(race_db, "acme")
    n = 0
    for day in range(3):  # Tue, Wed, Thu
        a = SLOT + timedelta(days=day)
        b = a + 15 * MIN
        starts = [a, b] * 12
        results = await asyncio.gather(
            *(book(race_db, tenant, "quarter", s, phone(n + i), clock()) for i, s in enumerate(starts)),
            return_exceptions=True,
        )
        n += len(starts)
        created, taken, other = sort_out(results)
        assert other == []
        assert (len(created), taken) == (1, len(starts) - 1)
        assert created[0].start in (a, b) and created[0].staff == ("ann",)
    held = await active_allocations(race_db, tenant)
    assert len(held) == 3
    assert_no_overlap(held)
    await assert_consistent(race_db, tenant)


# --------------------------------------------------------------------------- several OS processes


def _race_worker(
    url: str,
    tenant: str,
    service: str,
    start: datetime,
    phones: list[str],
    pool_size: int,
    barrier: Any,
    results: Any,
) -> None:
    """One OS process: its own engine and pool, then all its attempts at once after the barrier."""
    try:
        results.put(asyncio.run(_race_in_process(url, tenant, service, start, phones, pool_size, barrier)))
    except BaseException:
        results.put({"crash": traceback.format_exc()})


async def _race_in_process(
    url: str, tenant: str, service: str, start: datetime, phones: list[str], pool_size: int, barrier: Any
) -> dict[str, Any]:
    db = create_database(url, pool_size=pool_size)
    try:
        async with db.reading() as session:  # connect (and import everything) before the start signal
            await session.execute(text("SELECT 1"))
        barrier.wait(timeout=PROCESS_TIMEOUT_S)
        # The pool (at most 2 x pool_size connections) is the real bound on concurrency; the
        # semaphore only keeps a slow machine's queue for it shorter than the 30 s pool timeout.
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def attempt(p: str) -> Outcome:
            async with gate:
                return await book(db, tenant, service, start, p, T0)

        started = time.perf_counter()
        results = await asyncio.gather(*(attempt(p) for p in phones), return_exceptions=True)
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    created, taken, other = sort_out(results)
    return {"created": [a.id for a in created], "taken": taken, "other": other, "seconds": elapsed}


def run_processes(
    url: str, tenant: str, service: str, start: datetime, processes: int, each: int, pool_size: int
) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_race_worker,
            args=(url, tenant, service, start, [phone(p * each + i) for i in range(each)], pool_size, barrier, results),
        )
        for p in range(processes)
    ]
    for w in workers:
        w.start()
    try:
        return [results.get(timeout=PROCESS_TIMEOUT_S) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
                w.join()


def total(reports: list[dict[str, Any]]) -> tuple[list[str], int, list[str]]:
    crashes = [r["crash"] for r in reports if "crash" in r]
    assert crashes == [], crashes[0]
    created = [i for r in reports for i in r["created"]]
    return created, sum(r["taken"] for r in reports), [o for r in reports for o in r["other"]]


async def count_rows(db: Database, tenant: str) -> tuple[int, int]:
    async with db.reading() as session:
        appointments = await session.scalar(
            select(func.count()).select_from(t.Appointment).where(t.Appointment.tenant_id == tenant)
        )
        allocations = await session.scalar(
            select(func.count()).select_from(t.Allocation).where(t.Allocation.tenant_id == tenant)
        )
    return int(appointments or 0), int(allocations or 0)


async def test_sqlite_several_processes_one_slot(sqlite_url: str, clock: FrozenClock) -> None:
    db = await open_database(sqlite_url, clock)
    try:
        tenant = await tenant_of(db, "acme")
        reports = await asyncio.to_thread(run_processes, sqlite_url, tenant, "solo", SLOT, 4, 15, 5)
        created, taken, other = total(reports)
        assert not [o for o in other if "locked" in o.lower()]
        assert other == []
        assert (len(created), taken) == (1, 59)
        assert await count_rows(db, tenant) == (1, 1)
        [held] = await active_allocations(db, tenant)
        assert (held.starts_at, held.ends_at) == (SLOT, SLOT + 30 * MIN)
        await assert_consistent(db, tenant)
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_postgres_thousand_attempts_from_four_processes(postgres_url: str, clock: FrozenClock) -> None:
    db = await open_database(postgres_url, clock)
    try:
        tenant = await tenant_of(db, "acme")
        started = time.perf_counter()
        reports = await asyncio.to_thread(run_processes, postgres_url, tenant, "solo", SLOT, 4, 250, 5)
        elapsed = time.perf_counter() - started
        created, taken, other = total(reports)
        assert other == []
        assert (len(created), taken) == (1, 999)
        assert await count_rows(db, tenant) == (1, 1)
        [held] = await active_allocations(db, tenant)
        assert (held.starts_at, held.ends_at) == (SLOT, SLOT + 30 * MIN)
        await assert_consistent(db, tenant)
        print(f"1000 attempts on PostgreSQL from 4 processes: {elapsed:.2f}s (with process start-up)")
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- the invariant itself


async def test_no_overlap_invariant_holds_for_raw_sql(race_db: Database, clock: FrozenClock) -> None:
    """Not only our repository: any writer inserting an overlapping active allocation is refused."""
    tenant = await tenant_of(race_db, "acme")
    staff = await staff_ids(race_db, tenant)
    async with race_db.reading() as session:
        service_id = await session.scalar(
            select(t.Service.id).where(t.Service.tenant_id == tenant, t.Service.slug == "solo")
        )
    first = (await book(race_db, tenant, "solo", SLOT, phone(1), clock())).appointment

    insert = text(
        "INSERT INTO allocations (id, tenant_id, staff_id, service_id, starts_at, ends_at, "
        "blocked_start, blocked_end, capacity, seats_taken, active) "
        "VALUES (:id, :tenant, :staff, :service, :start, :end, :start, :end, 1, 1, :active)"
    ).bindparams(
        bindparam("start", type_=t.UTCDateTime()),
        bindparam("end", type_=t.UTCDateTime()),
        bindparam("active", type_=Boolean()),
    )
    made = 0

    async def raw(start: datetime, minutes: int, *, active: bool = True, who: str = "ann") -> str:
        nonlocal made
        made += 1
        row_id = f"00000000-0000-4000-8000-{made:012d}"
        async with race_db.writing() as session:
            await session.execute(
                insert,
                {
                    "id": row_id,
                    "tenant": tenant,
                    "staff": staff[who],
                    "service": service_id,
                    "start": start,
                    "end": start + minutes * MIN,
                    "active": active,
                },
            )
        return row_id

    def assert_overlap_error(exc: IntegrityError) -> None:
        if race_db.is_sqlite:
            assert "slot_taken" in str(exc)
        else:
            assert "ex_allocations_no_overlap" in str(exc)
            assert getattr(exc.orig, "sqlstate", None) == "23P01"

    # Overlapping and identical active ranges of the same staff member are refused.
    for start, minutes in [(SLOT + 15 * MIN, 30), (SLOT, 30), (SLOT - 10 * MIN, 60), (SLOT + 29 * MIN, 1)]:
        with pytest.raises(IntegrityError) as caught:
            await raw(start, minutes)
        assert_overlap_error(caught.value)
    # Half-open: touching ranges on either side are fine; so is another staff member, same time.
    await raw(SLOT + 30 * MIN, 30)
    await raw(SLOT - 30 * MIN, 30)
    await raw(SLOT, 30, who="bob")
    # An inactive (cancelled) overlapping row is allowed, but it cannot be switched back on.
    dormant = await raw(SLOT + 15 * MIN, 30, active=False)
    with pytest.raises(IntegrityError) as caught:
        async with race_db.writing() as session:
            await session.execute(update(t.Allocation).where(t.Allocation.id == dormant).values(active=True))
    assert_overlap_error(caught.value)
    # Once the booking is cancelled its range is free again for exactly the same insert.
    await bookings.cancel(race_db, tenant, first.id, clock())
    await raw(SLOT, 30)

    held = await active_allocations(race_db, tenant)
    assert sorted((a.staff_id == staff["ann"], a.blocked_start) for a in held) == [
        (False, SLOT),
        (True, SLOT - 30 * MIN),
        (True, SLOT),
        (True, SLOT + 30 * MIN),
    ]
    assert_no_overlap(held)


# --------------------------------------------------------------------------- §5 #21 under load


async def test_reschedule_is_atomic_against_concurrent_bookings(race_db: Database, clock: FrozenClock) -> None:
    """While X moves 10:00 → 11:00, others grab at 10:00 and 11:00. Either X moved (and then nobody
    else has 11:00) or X kept 10:00 (and nobody else has 10:00); never a gap, never a double."""
    tenant = await tenant_of(race_db, "acme")
    outcomes = []
    n = 1000
    for day, position in enumerate([0, 10, 20]):  # the reschedule first, in the middle, last
        ten = SLOT + timedelta(days=day)
        eleven = ten + 60 * MIN
        x = (await book(race_db, tenant, "solo", ten, phone(n), clock())).appointment
        n += 1
        contenders: list[tuple[str, Any]] = []
        for _ in range(10):
            contenders.append(("ten", book(race_db, tenant, "solo", ten, phone(n), clock())))
            contenders.append(("eleven", book(race_db, tenant, "solo", eleven, phone(n + 1), clock())))
            n += 2
        contenders.insert(position, ("move", bookings.reschedule(race_db, tenant, x.id, eleven, clock())))
        results = await asyncio.gather(*(c for _, c in contenders), return_exceptions=True)
        by_kind: dict[str, list[Any]] = defaultdict(list)
        for (kind, _), result in zip(contenders, results, strict=True):
            by_kind[kind].append(result)
        [moved] = by_kind["move"]
        assert isinstance(moved, bookings.Appointment | SlotTaken), repr(moved)
        ten_won, ten_taken, ten_other = sort_out(by_kind["ten"])
        eleven_won, eleven_taken, eleven_other = sort_out(by_kind["eleven"])
        assert ten_other == [] and eleven_other == []

        old = await bookings.get(race_db, tenant, x.id)
        if isinstance(moved, SlotTaken):
            outcomes.append("kept")
            assert (old.status, old.start, old.rescheduled_to) == (Status.SCHEDULED, ten, None)
            assert (len(ten_won), ten_taken) == (0, 10)
            assert (len(eleven_won), eleven_taken) == (1, 9)
        else:
            outcomes.append("moved")
            assert (old.status, old.rescheduled_to) == (Status.RESCHEDULED, moved.id)
            assert (moved.status, moved.start, moved.rescheduled_from) == (Status.SCHEDULED, eleven, x.id)
            assert (len(eleven_won), eleven_taken) == (0, 10)
            assert len(ten_won) <= 1 and len(ten_won) + ten_taken == 10

        day_bookings = await bookings.list_between(race_db, tenant, ten - 60 * MIN, ten + 8 * 60 * MIN)
        live = Counter(a.start for a in day_bookings if a.status is Status.SCHEDULED)
        assert live[eleven] == 1 and live[ten] <= 1 and set(live) <= {ten, eleven}, live
        held = await active_allocations(race_db, tenant)
        assert_no_overlap(held)
        await assert_consistent(race_db, tenant)
    assert len(outcomes) == 3
    print(f"reschedule outcomes: {outcomes}")


# --------------------------------------------------------------------------- §5 #25


async def test_seats_race_fills_exactly_the_capacity(race_db: Database, clock: FrozenClock) -> None:
    """ "class" seats 3 (Bob, 60 minutes): 10 at once → 3 seats; a cancellation frees exactly one."""
    tenant = await tenant_of(race_db, "acme")
    results = await asyncio.gather(
        *(book(race_db, tenant, "class", SLOT, phone(i), clock()) for i in range(10)), return_exceptions=True
    )
    created, taken, other = sort_out(results)
    assert other == []
    assert (len(created), taken) == (3, 7)
    assert len({a.customer.phone for a in created}) == 3
    [session_row] = await active_allocations(race_db, tenant)
    assert (session_row.starts_at, session_row.seats_taken, session_row.capacity) == (SLOT, 3, 3)
    await assert_consistent(race_db, tenant)

    await bookings.cancel(race_db, tenant, created[0].id, clock())
    results = await asyncio.gather(
        *(book(race_db, tenant, "class", SLOT, phone(100 + i), clock()) for i in range(5)), return_exceptions=True
    )
    created, taken, other = sort_out(results)
    assert other == []
    assert (len(created), taken) == (1, 4)
    [session_row] = await active_allocations(race_db, tenant)
    assert (session_row.seats_taken, session_row.capacity) == (3, 3)
    await assert_consistent(race_db, tenant)


async def test_workers_starting_at_once_on_a_new_postgresql_database(postgres_url: str, clock: FrozenClock) -> None:
    """Several `frontdesk serve` processes started together (a deployment) each load the config:
    they take turns, so none dies on the businesses another one just inserted."""
    bootstrap = create_database(postgres_url, pool_size=0)
    try:
        await migrate.upgrade(bootstrap.engine)
    finally:
        await bootstrap.dispose()
    settings = make_settings(postgres_url, businesses())
    started = await asyncio.gather(*(prepare_database(settings, clock) for _ in range(4)), return_exceptions=True)
    try:
        assert not [r for r in started if isinstance(r, BaseException)], started
        db = started[0]
        assert isinstance(db, Database)
        async with db.reading() as session:
            slugs = list(await session.scalars(select(t.Business.slug).order_by(t.Business.slug)))
        assert slugs == sorted(b["slug"] for b in businesses())
    finally:
        for db in started:
            if isinstance(db, Database):
                await db.dispose()
