"""The payment desk end to end with the built-in provider: link, pay, fail, lapse, refund, insight."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.dialogue.desk import ref_of
from bot.payments.local import checkout_event, checkout_token
from channels.base import Link, Option
from core.errors import Conflict, InvalidTransition, NotFound
from storage import bookings, purchases
from storage import tables as t
from tests.conftest import FrozenClock
from tests.payments.conftest import LOCAL_SECRET, PUBLIC, SLOT, Harness, harness

BOOK_AGAIN = (Option("menu:book", "Book again"),)


async def pay(h: Harness, purchase_id: str, *, paid: bool = True, amount: int = 80000) -> bytes:
    body, headers = checkout_event(
        LOCAL_SECRET, purchase_id=purchase_id, paid=paid, amount=amount, currency="EUR", now=h.clock()
    )
    await h.desk.handle_webhook("local", body, headers, wait=True)
    return body


async def test_open_creates_one_purchase_and_a_link_message(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation(timezone="Asia/Kolkata")
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en-IN")
        token = checkout_token(LOCAL_SECRET, checkout.purchase_id)
        assert checkout.url == f"{PUBLIC}/pay/{token}"
        assert (checkout.amount, checkout.currency, checkout.amount_text) == (80000, "EUR", "€800.00")
        assert checkout.expires_at == clock.now + timedelta(minutes=15)
        assert checkout.message.text == (
            "Your Consultation on Tue 3 Mar, 3:30 pm IST is held for you until 1:45 pm IST. "
            "Pay €800.00 here to confirm it."
        )
        assert checkout.message.link == Link(checkout.url, "Pay €800.00")

        again = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en-IN")
        assert (again.purchase_id, again.url) == (checkout.purchase_id, checkout.url)
        row = await h.purchase(held.id)
        assert (row.status, row.amount, row.currency, row.provider, row.provider_ref) == (
            "pending",
            80000,
            "EUR",
            "local",
            f"local_{row.id}",
        )
        assert row.items == [
            {
                "id": row.items[0]["id"],
                "slug": "consult",
                "name": "Consultation",
                "quantity": 1,
                "unit_price": 80000,
                "total_price": 80000,
            }
        ]
        assert (row.conversation_id, row.channel, row.locale) == (conv, "web", "en-IN")
        assert await h.history(row.id) == [("created", "pending", "pending"), ("link_created", "pending", "pending")]


async def test_open_refuses_what_is_not_waiting_for_payment(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        free = await h.hold(service="solo")
        with pytest.raises(InvalidTransition) as err:
            await h.desk.open(h.tenant, free.id, conversation_id=None, locale="en")
        assert err.value.code == "not_payable"
        held = await h.hold(SLOT + timedelta(hours=1), i=2)
        with pytest.raises(NotFound):
            await h.desk.open(h.tenant, held.id, conversation_id="no-such-conversation", locale="en")
        other_tenant_view = await h.desk.db.engine.dispose() if False else None  # noqa: F841 - readability
        with pytest.raises(NotFound):
            await h.desk.open("another-tenant", held.id, conversation_id=None, locale="en")
        clock.advance(minutes=15)
        with pytest.raises(Conflict) as lapsed:
            await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
        assert lapsed.value.code == "hold_expired"
        assert await h.count(t.Purchase) == 0


async def test_pay_on_the_checkout_page_confirms_in_the_conversation(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        token = checkout.url.rsplit("/", 1)[1]
        page = await h.desk.checkout_view(token)
        assert page is not None and (page.payable, page.status, page.amount_text) == (True, "pending", "€800.00")

        clock.advance(minutes=3)
        after = await h.desk.submit_local(token, paid=True)
        assert after is not None and (after.payable, after.status) == (False, "completed")
        assert await h.status(held.id) == "scheduled"
        row = await h.purchase(held.id)
        assert (row.status, row.payment_method, row.completed_at) == ("completed", "local", clock.now)
        assert row.payment_ref is not None and row.payment_ref.startswith("lpay_")
        assert h.inbox.sent == [
            (
                h.tenant,
                conv,
                h.inbox.sent[0][2].__class__(
                    "Payment of €800.00 received, thank you! Your Consultation on Tue 3 Mar, 10:00 AM UTC is confirmed."
                    f" Your reference is {ref_of(held.id)}."
                ),
            )
        ]
        assert await h.history(row.id) == [
            ("created", "pending", "pending"),
            ("link_created", "pending", "pending"),
            ("completed", "pending", "completed"),
            ("appointment_confirmed", "completed", "completed"),
        ]
        # The page cannot pay twice.
        assert await h.desk.submit_local(token, paid=True) == after
        assert await h.count(t.WebhookEvent) == 1


async def test_a_failed_attempt_can_be_retried_until_the_hold_lapses(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        token = checkout.url.rsplit("/", 1)[1]
        failed = await h.desk.submit_local(token, paid=False)
        assert failed is not None and (failed.status, failed.payable) == ("failed", True)
        await h.desk.submit_local(token, paid=True)
        assert await h.status(held.id) == "scheduled"
        assert h.inbox.texts() == [
            "Your payment of €800.00 didn't go through. You can try again with the same link until 8:15 AM UTC.",
            "Payment of €800.00 received, thank you! Your Consultation on Tue 3 Mar, 10:00 AM UTC is confirmed."
            f" Your reference is {ref_of(held.id)}.",
        ]


async def test_hold_expiry_releases_the_slot_and_tells_the_customer(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        clock.advance(minutes=14)
        assert await h.desk.expire_holds() == 0
        clock.advance(minutes=1)
        assert await h.desk.expire_holds() == 1
        assert await h.desk.expire_holds() == 0  # told once
        assert await h.status(held.id) == "cancelled"
        [(_, to, message)] = h.inbox.sent
        assert to == conv
        assert message.text == (
            "We held Tue 3 Mar, 10:00 AM UTC for you, but the payment didn't arrive in time, "
            "so the slot has been released. Would you like to book again?"
        )
        assert message.options == BOOK_AGAIN
        row = await h.purchase(held.id)
        assert row.status == "expired"
        assert (await h.history(row.id))[-1] == ("hold_expired", "pending", "expired")
        page = await h.desk.checkout_view(checkout.url.rsplit("/", 1)[1])
        assert page is not None and (page.payable, page.status) == (False, "expired")
        assert await h.desk.submit_local(checkout.url.rsplit("/", 1)[1], paid=True) == page
        assert await h.count(t.WebhookEvent) == 0


async def test_a_hold_swept_by_another_booking_is_still_reported(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        clock.advance(minutes=20)
        await h.hold(i=2)  # its transaction released the lapsed hold
        assert await h.desk.expire_holds() == 1
        assert [m.options for _, _, m in h.inbox.sent] == [BOOK_AGAIN]


async def test_late_payment_for_a_taken_slot_is_refunded_automatically(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        first = await h.hold()
        checkout = await h.desk.open(h.tenant, first.id, conversation_id=conv, locale="en")
        clock.advance(minutes=16)
        await h.desk.expire_holds()
        second = await h.hold(i=2)
        await pay(h, checkout.purchase_id)

        assert (await h.status(first.id), await h.status(second.id)) == ("cancelled", "pending_payment")
        row = await h.purchase(first.id)
        assert (row.status, row.refund_status, row.refund_amount, row.refund_reason) == (
            "refunded",
            "succeeded",
            80000,
            "slot_unavailable",
        )
        assert row.refund_ref is not None and row.refund_ref.startswith("lrf_")
        assert [k for k, _, _ in await h.history(row.id)] == [
            "created",
            "link_created",
            "hold_expired",
            "completed",
            "refund_due",
            "refund_requested",
            "refunded",
        ]
        assert h.inbox.texts()[1:] == [
            "Your payment of €800.00 arrived after the hold on Tue 3 Mar, 10:00 AM UTC had lapsed, and the slot had "
            "been taken by then. We're refunding the full €800.00. Would you like to pick another time?",
            "We've refunded €800.00 for your Consultation on Tue 3 Mar, 10:00 AM UTC. It can take 5 to 10 business "
            "days to reach you.",
        ]
        assert h.inbox.sent[1][2].options == BOOK_AGAIN


async def test_late_payment_for_a_free_slot_is_confirmed(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        clock.advance(minutes=40)
        await h.desk.expire_holds()
        await pay(h, checkout.purchase_id)
        assert await h.status(held.id) == "scheduled"
        row = await h.purchase(held.id)
        assert (row.status, row.refund_status) == ("completed", "none")
        assert h.inbox.texts()[-1].startswith("Payment of €800.00 received")


async def test_duplicate_and_stale_webhooks_change_nothing(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        body, headers = checkout_event(
            LOCAL_SECRET, purchase_id=checkout.purchase_id, paid=True, amount=80000, currency="EUR", now=clock()
        )
        await h.desk.handle_webhook("local", body, headers, wait=True)
        await h.desk.handle_webhook("local", body, headers, wait=True)  # redelivered
        await pay(h, checkout.purchase_id, paid=False)  # a late "failed": older news than "completed"
        assert await h.count(t.WebhookEvent) == 2
        assert len(h.inbox.sent) == 1
        row = await h.purchase(held.id)
        assert row.status == "completed"
        assert [k for k, _, _ in await h.history(row.id)][-1] == "stale:failed"


async def test_an_event_for_someone_elses_purchase_moves_nothing(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
        await pay(h, "no-such-purchase")
        await pay(h, checkout.purchase_id, amount=1)  # the amount is not the one we asked for
        async with h.db.reading() as session:
            outcomes = sorted(o for o in await session.scalars(select(t.WebhookEvent.outcome)) if o)
        assert outcomes == ["moved:completed", "unmatched"]
        row = await h.purchase(held.id)
        assert (row.status, row.refund_status, row.refund_reason) == ("refunded", "succeeded", "amount_mismatch")
        assert await h.status(held.id) == "pending_payment"  # a wrong amount confirms nothing


async def test_refund_preview_follows_the_policy(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        unpaid = await h.desk.refund_preview(h.tenant, held.id, clock(), "en")
        assert (unpaid.kind, unpaid.amount, unpaid.text) == (
            "unpaid",
            0,
            "Nothing has been paid for this booking, so there's nothing to refund.",
        )
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
        await pay(h, checkout.purchase_id)
        full = await h.desk.refund_preview(h.tenant, held.id, SLOT - timedelta(hours=24), "en")
        assert (full.kind, full.amount, full.currency, full.amount_text) == ("full", 80000, "EUR", "€800.00")
        assert full.text == "If you cancel now, you'll get a full refund of €800.00."
        partial = await h.desk.refund_preview(h.tenant, held.id, SLOT - timedelta(hours=2), "de-DE")
        assert (partial.kind, partial.amount, partial.amount_text) == ("partial", 40000, "400,00\xa0€")
        assert partial.text == (
            "If you cancel now, you'll get 400,00\xa0€ back (50% of 800,00\xa0€), "
            "because it's less than 24 hours before the appointment."
        )
        late = await h.desk.refund_preview(h.tenant, held.id, SLOT, "en")
        assert (late.kind, late.amount) == ("none", 0)


async def test_after_cancel_refunds_once_under_the_policy(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        await pay(h, checkout.purchase_id)
        clock.now = SLOT - timedelta(hours=2)
        await bookings.cancel(h.db, h.tenant, held.id, clock(), actor="chat:web", enforce_policy=False)
        await h.desk.after_cancel(h.tenant, held.id)
        await h.desk.after_cancel(h.tenant, held.id)  # a repeated click refunds nothing more
        row = await h.purchase(held.id)
        assert (row.status, row.refund_status, row.refund_amount, row.refund_reason) == (
            "refunded",
            "succeeded",
            40000,
            "cancelled",
        )
        assert [k for k, _, _ in await h.history(row.id)].count("refund_requested") == 1
        assert h.inbox.texts()[-1] == (
            "We've refunded €400.00 for your Consultation on Tue 3 Mar, 10:00 AM UTC. "
            "It can take 5 to 10 business days to reach you."
        )


async def test_after_cancel_by_the_business_refunds_in_full_and_an_unpaid_link_just_ends(
    sqlite_url: str, clock: FrozenClock
) -> None:
    async with harness(sqlite_url, clock) as h:
        paid = await h.hold()
        unpaid = await h.hold(SLOT + timedelta(hours=1), i=2)
        first = await h.desk.open(h.tenant, paid.id, conversation_id=None, locale="en")
        await h.desk.open(h.tenant, unpaid.id, conversation_id=None, locale="en")
        await pay(h, first.purchase_id)
        clock.now = SLOT - timedelta(minutes=30)
        for appointment in (paid, unpaid):
            await bookings.cancel(h.db, h.tenant, appointment.id, clock(), actor="api", enforce_policy=False)
            await h.desk.after_cancel(h.tenant, appointment.id)
        assert ((await h.purchase(paid.id)).status, (await h.purchase(paid.id)).refund_amount) == ("refunded", 80000)
        ended = await h.purchase(unpaid.id)
        assert (ended.status, ended.refund_status) == ("expired", "none")
        assert (await h.history(ended.id))[-1] == ("cancelled", "pending", "expired")
        assert await h.desk.expire_holds() == 0  # nothing left to tell


async def test_purchase_insight_shape(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        conv = await h.conversation()
        async with h.db.writing() as session:
            for seq, direction in enumerate(["in", "out", "in", "out", "in"], start=1):
                session.add(
                    t.Message(
                        tenant_id=h.tenant,
                        conversation_id=conv,
                        seq=seq,
                        direction=direction,
                        author="customer" if direction == "in" else "bot",
                        text="...",
                        created_at=clock.now + timedelta(minutes=seq),
                    )
                )
        clock.advance(minutes=5)
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
        clock.advance(minutes=2)
        await pay(h, checkout.purchase_id)
        row = await h.purchase(held.id)
        insight = await purchases.insight(h.db, h.tenant, row.id)
        async with h.db.reading() as session:
            agent_id = await session.scalar(select(t.Agent.id).where(t.Agent.slug == "acme-bot"))
        touch = [(p["type"], p["status"], p["source"]) for p in insight["customerJourney"]["touchpoints"]]
        assert touch == [
            ("created", "pending", "system"),
            ("link_created", "pending", "system"),
            ("completed", "completed", "webhook:local"),
            ("appointment_confirmed", "completed", "webhook:local"),
        ]
        del insight["customerJourney"]["touchpoints"]
        assert insight == {
            "purchaseId": row.id,
            "customerId": row.customer_id,
            "agentId": agent_id,
            "platform": "web",
            "purchaseType": "consultation",
            "items": [
                {
                    "id": row.items[0]["id"],
                    "name": "Consultation",
                    "quantity": 1,
                    "unitPrice": 80000,
                    "totalPrice": 80000,
                }
            ],
            "totalAmount": 80000,
            "currency": "EUR",
            "paymentMethod": "local",
            "paymentStatus": "completed",
            "customerJourney": {"totalInteractions": 3, "timeToConversion": 7 * 60},
            "provider": "local",
            "providerRef": f"local_{row.id}",
            "refundedAmount": 0,
            "createdAt": (clock.now - timedelta(minutes=2)).isoformat(),
            "completedAt": clock.now.isoformat(),
        }


async def test_insight_of_an_expired_purchase_reads_failed(sqlite_url: str, clock: FrozenClock) -> None:
    async with harness(sqlite_url, clock) as h:
        held = await h.hold()
        checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
        clock.advance(minutes=15)
        await h.desk.expire_holds()
        insight = await purchases.insight(h.db, h.tenant, checkout.purchase_id)
        assert (insight["paymentStatus"], insight["platform"], insight["agentId"]) == ("failed", None, None)
        assert insight["customerJourney"]["totalInteractions"] == 3  # created, link, expired: no conversation
        assert insight["customerJourney"]["timeToConversion"] is None
        with pytest.raises(NotFound):
            await purchases.insight(h.db, "another-tenant", checkout.purchase_id)
