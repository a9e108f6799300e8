"""Two payers can never both end up confirmed for one slot (SQLite and PostgreSQL).

Each race is real concurrency on a real database: every payer's verified webhook is processed at
once (asyncio.gather over separate connections); PostgreSQL's exclusion constraint or SQLite's
serialised writers decide. Which payer wins is up to the scheduler; how many win is not.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from bot.payments.local import checkout_event
from core.errors import SlotTaken
from storage import bookings
from storage import tables as t
from storage.bookings import NewBooking, Outcome
from tests.conftest import FrozenClock
from tests.payments.conftest import LOCAL_SECRET, SLOT, Harness, harness

PAYERS = 8


async def pay(h: Harness, purchase_id: str) -> None:
    body, headers = checkout_event(
        LOCAL_SECRET, purchase_id=purchase_id, paid=True, amount=80000, currency="EUR", now=h.clock()
    )
    await h.desk.handle_webhook("local", body, headers, wait=True)


async def live_allocations(h: Harness) -> list[tuple[str, object]]:
    async with h.db.reading() as session:
        rows = await session.scalars(select(t.Allocation).where(t.Allocation.active))
        return [(a.staff_id, a.starts_at) for a in rows]


async def test_late_payers_race_for_one_slot(db_url: str, clock: FrozenClock) -> None:
    """Eight customers held the same slot one after another and each let the hold lapse; then all
    eight payments land at once. Exactly one is confirmed, seven are refunded in full."""
    async with harness(db_url, clock) as h:
        purchase_ids = []
        for i in range(PAYERS):
            held = await h.hold(i=i)  # its own transaction sweeps the previous lapsed hold
            purchase_ids.append((await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")).purchase_id)
            clock.advance(minutes=15)
        results = await asyncio.gather(*(pay(h, p) for p in purchase_ids), return_exceptions=True)
        assert [r for r in results if r is not None] == []
        await h.desk.drain()

        async with h.db.reading() as session:
            rows = list(await session.scalars(select(t.Purchase)))
            statuses = Counter(
                await session.scalars(select(t.Appointment.status).where(t.Appointment.tenant_id == h.tenant))
            )
        assert statuses == {"scheduled": 1, "cancelled": PAYERS - 1}
        assert Counter((r.status, r.refund_status, r.refund_reason) for r in rows) == {
            ("completed", "none", None): 1,
            ("refunded", "succeeded", "slot_unavailable"): PAYERS - 1,
        }
        assert sum(r.refund_amount for r in rows) == 80000 * (PAYERS - 1)
        assert len(await live_allocations(h)) == 1
        async with h.db.reading() as session:
            hooks = list(await session.execute(select(t.WebhookEvent.processed_at, t.WebhookEvent.outcome)))
        assert Counter((at is not None, outcome) for at, outcome in hooks) == {(True, "moved:completed"): PAYERS}
        print(f"{PAYERS} late payers for one slot on {db_url.split(':')[0]}: 1 confirmed, {PAYERS - 1} refunded")


async def test_a_new_booking_and_a_late_payment_race(db_url: str, clock: FrozenClock) -> None:
    """A's hold lapsed (nobody swept it); B books the slot while A's payment lands. Either A keeps it
    (B is told the slot is taken) or B has it (A is refunded): never both, never neither."""
    async with harness(db_url, clock) as h:
        outcomes = []
        for day in (0, 1, 2, 7):  # Friday 6 March is the demo business's holiday
            start = SLOT + timedelta(days=day)
            a = await h.hold(start, i=100 + day)
            a_purchase = (await h.desk.open(h.tenant, a.id, conversation_id=None, locale="en")).purchase_id
            clock.advance(minutes=16)
            b_req = NewBooking("consult", start, "B", f"+1415555{200 + day:04d}", hold_minutes=15)
            contenders = [pay(h, a_purchase), bookings.create(h.db, h.tenant, b_req, clock())]
            if day % 2:
                contenders.reverse()
            results = await asyncio.gather(*contenders, return_exceptions=True)
            booked = [r for r in results if isinstance(r, Outcome)]
            refused = [r for r in results if isinstance(r, SlotTaken)]
            assert [r for r in results if r is not None and not isinstance(r, Outcome | SlotTaken)] == []
            a_status = await h.status(a.id)
            a_row = await h.purchase(a.id)
            if booked:
                outcomes.append("B")
                assert (a_status, a_row.status, a_row.refund_reason) == ("cancelled", "refunded", "slot_unavailable")
                assert booked[0].appointment.status.value == "pending_payment"
            else:
                outcomes.append("A")
                assert len(refused) == 1
                assert (a_status, a_row.status) == ("scheduled", "completed")
            assert [at for _, at in await live_allocations(h)].count(start) == 1
        print(f"booking vs late payment on {db_url.split(':')[0]}: winners {outcomes}")
