"""Slot holds for paid bookings (booking.md §5 #33), in the booking service itself.

A paid booking is created ``pending_payment`` and holds its slot through the same allocation row
and no-overlap invariant as any booking. When the hold lapses the slot comes back: swept by
``expire_holds`` or, at the latest, inside the next booking's own transaction. A payment that
arrives later confirms the booking only if the slot can be taken again through the same rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from core.booking import Status
from core.errors import InvalidInput, SlotTaken
from storage import bookings, schedule
from storage import tables as t
from storage.bookings import NewBooking
from tests.conftest import FrozenClock
from tests.payments.conftest import SLOT, Harness, harness, paid_business

MIN = timedelta(minutes=1)


async def free_starts(h: Harness, service: str = "consult", staff: str | None = None) -> list[datetime]:
    day = SLOT.replace(hour=0)
    async with h.db.reading() as session:
        sched = await schedule.load(session, h.tenant, service, day, day + timedelta(days=1))
    return [s.start for s in sched.slots(SLOT - 60 * MIN, SLOT + 61 * MIN, h.clock(), staff)]


async def events(h: Harness, appointment_id: str) -> list[tuple[str | None, str, str]]:
    return [(e.from_status, e.to_status, e.reason) for e in await bookings.history(h.db, h.tenant, appointment_id)]


async def active_allocations(h: Harness) -> list[tuple[datetime, int]]:
    async with h.db.reading() as session:
        rows = await session.scalars(select(t.Allocation).where(t.Allocation.active).order_by(t.Allocation.starts_at))
        return [(a.starts_at, a.seats_taken) for a in rows]


async def test_a_paid_booking_holds_its_slot_and_a_free_one_skips_the_hold(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        free = await h.hold(SLOT + 60 * MIN, service="solo", i=2)
        assert (held.status, free.status) == (Status.PENDING_PAYMENT, Status.SCHEDULED)
        assert (held.price, held.currency, free.price) == (80000, "EUR", 0)
        async with h.db.reading() as session:
            rows = {r.id: r.hold_expires_at for r in await session.scalars(select(t.Appointment))}
        assert rows == {held.id: clock.now + 15 * MIN, free.id: None}
        assert await events(h, held.id) == [(None, "pending_payment", "booked")]
        assert SLOT not in await free_starts(h)
        with pytest.raises(SlotTaken):
            await h.hold(SLOT, i=3)
        with pytest.raises(InvalidInput, match="hold_minutes"):
            await h.hold(SLOT + 90 * MIN, i=4, minutes=0)


async def test_case_33_after_the_ttl_the_sweep_brings_the_slot_back(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.advance(minutes=14, seconds=59)
        assert await bookings.expire_holds(h.db, clock()) == []
        assert SLOT not in await free_starts(h)

        clock.advance(seconds=1)  # exactly the TTL
        released = await bookings.expire_holds(h.db, clock())
        assert [(a.id, a.status) for a in released] == [(held.id, Status.CANCELLED)]
        assert await events(h, held.id) == [
            (None, "pending_payment", "booked"),
            ("pending_payment", "cancelled", "hold_expired"),
        ]
        assert SLOT in await free_starts(h)
        assert await active_allocations(h) == []
        assert await bookings.expire_holds(h.db, clock()) == []  # once only


async def test_case_33_a_new_booking_never_fails_on_a_stale_hold(sqlite_url: str, clock: FrozenClock) -> None:
    """No sweep ran: the next booking's own transaction releases the lapsed hold first."""
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.advance(minutes=15)
        taken = await h.hold(i=2)
        assert taken.status is Status.PENDING_PAYMENT and taken.start == SLOT
        assert await h.status(held.id) == "cancelled"
        assert await active_allocations(h) == [(SLOT, 1)]


async def test_payment_within_the_hold_confirms(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.advance(minutes=10)
        outcome = await bookings.confirm_payment(h.db, h.tenant, held.id, clock())
        assert (outcome.result, outcome.revived, outcome.appointment.status) == ("confirmed", False, Status.SCHEDULED)
        assert (await bookings.confirm_payment(h.db, h.tenant, held.id, clock())).result == "already"
        assert await events(h, held.id) == [
            (None, "pending_payment", "booked"),
            ("pending_payment", "scheduled", "paid"),
        ]
        clock.advance(minutes=30)
        assert await bookings.expire_holds(h.db, clock()) == []  # a paid booking is no hold any more
        assert await h.status(held.id) == "scheduled"


async def test_paid_after_the_ttl_but_before_any_sweep_confirms_the_still_held_slot(
    sqlite_url: str, clock: FrozenClock
) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.advance(minutes=20)
        outcome = await bookings.confirm_payment(h.db, h.tenant, held.id, clock())
        assert (outcome.result, outcome.revived) == ("confirmed", True)
        assert await events(h, held.id) == [
            (None, "pending_payment", "booked"),
            ("pending_payment", "cancelled", "hold_expired"),
            ("cancelled", "scheduled", "paid_after_expiry"),
        ]
        assert await active_allocations(h) == [(SLOT, 1)]


async def test_case_33_late_payment_with_the_slot_taken_goes_to_refund(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        first = await h.hold()
        clock.advance(minutes=16)
        second = await h.hold(i=2)
        outcome = await bookings.confirm_payment(h.db, h.tenant, first.id, clock())
        assert (outcome.result, outcome.appointment.status) == ("refund", Status.CANCELLED)
        assert await h.status(second.id) == "pending_payment"
        assert await active_allocations(h) == [(SLOT, 1)]
        assert (await bookings.confirm_payment(h.db, h.tenant, second.id, clock())).result == "confirmed"


async def test_late_payment_with_the_slot_free_is_confirmed_through_the_same_rules(
    sqlite_url: str, clock: FrozenClock
) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.advance(minutes=30)
        await bookings.expire_holds(h.db, clock())
        assert SLOT in await free_starts(h)
        outcome = await bookings.confirm_payment(h.db, h.tenant, held.id, clock())
        assert (outcome.result, outcome.revived, outcome.appointment.staff) == ("confirmed", True, ("ann",))
        assert SLOT not in await free_starts(h)
        with pytest.raises(SlotTaken):
            await h.hold(i=2)
        # Cancelled for real later, it stays cancelled: a second payment cannot revive it.
        await bookings.cancel(h.db, h.tenant, held.id, clock(), enforce_policy=False)
        assert (await bookings.confirm_payment(h.db, h.tenant, held.id, clock())).result == "refund"


async def test_late_payment_is_refunded_when_the_customer_has_booked_that_time_since(
    sqlite_url: str, clock: FrozenClock
) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()  # the consultation with Ann, at SLOT
        clock.advance(minutes=30)
        await bookings.expire_holds(h.db, clock())
        since = await h.hold(service="class")  # the same customer, Bob's class at the same time
        assert SLOT in await free_starts(h)  # Ann is still free: only the customer is not
        outcome = await bookings.confirm_payment(h.db, h.tenant, held.id, clock())
        assert (outcome.result, outcome.appointment.status) == ("refund", Status.CANCELLED)
        assert await h.status(since.id) == "scheduled"


async def test_late_payment_for_a_slot_already_begun_is_refunded(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.now = SLOT + MIN
        assert (await bookings.confirm_payment(h.db, h.tenant, held.id, clock())).result == "refund"


async def test_payment_for_a_hold_the_customer_cancelled_is_refunded(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        await bookings.cancel(h.db, h.tenant, held.id, clock(), actor="customer", enforce_policy=False)
        assert (await bookings.confirm_payment(h.db, h.tenant, held.id, clock())).result == "refund"
        assert await active_allocations(h) == []


async def test_seated_hold_lapses_and_is_retaken_in_its_session(sqlite_url: str, clock: FrozenClock) -> None:
    business = paid_business()
    business["services"].append(
        {"slug": "workshop", "name": "Workshop", "duration_minutes": 60, "price": 2000, "staff": ["bob"], "capacity": 2}
    )
    async with harness(sqlite_url, clock, business=business) as h:
        a = await h.hold(service="workshop", i=1)
        b = await h.hold(service="workshop", i=2)
        assert await active_allocations(h) == [(SLOT, 2)]
        clock.advance(minutes=15)
        c = await h.hold(service="workshop", i=3)  # the sweep inside this booking freed both seats
        assert (await h.status(a.id), await h.status(b.id)) == ("cancelled", "cancelled")
        assert await active_allocations(h) == [(SLOT, 1)]
        assert (await bookings.confirm_payment(h.db, h.tenant, a.id, clock())).result == "confirmed"
        assert await active_allocations(h) == [(SLOT, 2)]
        assert (await bookings.confirm_payment(h.db, h.tenant, b.id, clock())).result == "refund"  # full
        assert (await bookings.confirm_payment(h.db, h.tenant, c.id, clock())).result == "confirmed"
        assert await active_allocations(h) == [(SLOT, 2)]


async def test_rescheduling_a_paid_booking_keeps_it_paid_and_is_not_a_hold(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        await bookings.confirm_payment(h.db, h.tenant, held.id, clock())
        moved = await bookings.reschedule(h.db, h.tenant, held.id, SLOT + 60 * MIN, clock())
        assert moved.status is Status.SCHEDULED


async def test_new_booking_fields_survive_normalisation(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        req = NewBooking("consult", SLOT, "  Jane  ", "+1 415 555 0001", hold_minutes=5, idempotency_key="k1")
        first = await bookings.create(h.db, h.tenant, req, clock())
        again = await bookings.create(h.db, h.tenant, req, clock())
        assert (first.changed, again.changed, again.appointment.id) == (True, False, first.appointment.id)
        assert first.appointment.customer.name == "Jane" and first.appointment.customer.phone == "+14155550001"
        async with h.db.reading() as session:
            row = await session.get(t.Appointment, first.appointment.id)
        assert row is not None and row.hold_expires_at == clock.now + 5 * MIN


async def test_late_payment_that_loses_the_race_for_its_slot_is_refunded(
    sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot looked free, but another booking took it between the look and the insert (what
    ``_allocate_first_free`` reports when the no-overlap constraint refuses every staff member)."""

    async def lost(*_args: object) -> str:
        raise SlotTaken("that time was just taken")

    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        clock.advance(minutes=30)
        await bookings.expire_holds(h.db, clock())
        monkeypatch.setattr(bookings, "_allocate_first_free", lost)
        outcome = await bookings.confirm_payment(h.db, h.tenant, held.id, clock())
        assert (outcome.result, outcome.appointment.status) == ("refund", Status.CANCELLED)
        assert outcome.appointment.start == SLOT
        monkeypatch.undo()
        assert await h.status(held.id) == "cancelled"
        assert SLOT in await free_starts(h), "nothing of the lost attempt stays behind"
