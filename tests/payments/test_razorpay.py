"""Razorpay end to end against the fake Razorpay server on loopback (real HTTP, Razorpay's wire format)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from bot.dialogue.desk import ref_of
from bot.payments import ProviderError
from bot.payments.local import checkout_token
from storage import bookings
from storage import tables as t
from tests.conftest import FrozenClock
from tests.fakes.razorpay_server import FakeRazorpay
from tests.payments.conftest import LOCAL_SECRET, PUBLIC, Harness, harness, paid_business


@pytest_asyncio.fixture
async def kit(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[tuple[Harness, FakeRazorpay]]:
    fake = FakeRazorpay(clock=clock)
    url = await fake.start()
    try:
        async with harness(
            sqlite_url,
            clock,
            provider="razorpay",
            razorpay=fake,
            razorpay_url=url,
            business=paid_business(currency="INR"),
        ) as h:
            yield h, fake
    finally:
        await fake.close()


async def deliver(h: Harness, fake: FakeRazorpay, event: dict[str, object], event_id: str | None = None) -> None:
    body, headers = fake.signed(event, event_id=event_id)
    await h.desk.handle_webhook("razorpay", body, headers, wait=True)


async def opened(h: Harness, *, i: int = 1) -> tuple[str, str]:
    conv = await h.conversation(sender=f"visitor-{i}")
    held = await h.hold(i=i)
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en-IN")
    return held.id, checkout.purchase_id


async def test_payment_link_request(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    held = await h.hold()
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en-IN")
    pid = checkout.purchase_id
    [call] = fake.calls("POST", "/v1/payment_links")
    auth = "Basic " + base64.b64encode(f"{fake.key_id}:{fake.key_secret}".encode()).decode()
    assert call.headers["Authorization"] == auth
    assert call.body == {
        "amount": 80000,
        "currency": "INR",
        "accept_partial": False,
        "description": "Consultation",
        "reference_id": pid,
        "expire_by": int((h.clock.now + timedelta(minutes=16)).timestamp()),
        "customer": {"name": "Customer 1", "contact": "+14155550001"},
        "notify": {"sms": False, "email": False},
        "reminder_enable": False,
        "notes": {"purchase_id": pid, "tenant_id": h.tenant, "appointment_id": held.id},
        "callback_url": f"{PUBLIC}/pay/{checkout_token(LOCAL_SECRET, pid)}",
        "callback_method": "get",
    }
    link = fake.link_for(pid)
    assert (checkout.url, checkout.amount_text) == (link["short_url"], "₹800.00")
    assert (await h.purchase(held.id)).provider_ref == link["id"]


async def test_a_lost_create_answer_finds_the_first_link_by_reference(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    held = await h.hold()
    fake.fail("/v1/payment_links", 502, after=True)
    with pytest.raises(ProviderError):
        await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    assert len(fake.links) == 1
    assert checkout.url == fake.link_for(checkout.purchase_id)["short_url"]
    assert [c.query for c in fake.calls("GET", "/v1/payment_links")] == [{"reference_id": checkout.purchase_id}]


async def test_paid_link_confirms_once(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    paid = fake.pay(fake.link_for(pid)["id"], method="upi")
    await deliver(h, fake, paid, event_id="Epaid1")
    await deliver(h, fake, paid, event_id="Epaid1")  # redelivered
    body, headers = fake.signed(paid)
    del headers["x-razorpay-event-id"]  # no id header: the body's hash names it
    await h.desk.handle_webhook("razorpay", body, headers, wait=True)
    await h.desk.handle_webhook("razorpay", body, headers, wait=True)
    assert await h.status(appointment) == "scheduled"
    row = await h.purchase(appointment)
    assert (row.status, row.payment_method) == ("completed", "upi")
    assert row.payment_ref is not None and row.payment_ref.startswith("pay_")
    assert h.inbox.texts() == [
        "Payment of ₹800.00 received, thank you! Your Consultation on Tue 3 Mar, 10:00 am UTC is confirmed."
        f" Your reference is {ref_of(appointment)}."
    ]
    assert await h.count(t.WebhookEvent) == 2


async def test_hold_expiry_cancels_the_link(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    link = fake.link_for(pid)
    h.clock.advance(minutes=15)
    assert await h.desk.expire_holds() == 1
    assert [c.path for c in fake.calls("POST", "/v1/payment_links/")] == [f"/v1/payment_links/{link['id']}/cancel"]
    assert link["status"] == "cancelled"
    await deliver(h, fake, fake.event("payment_link.cancelled", {"payment_link": {"entity": dict(link)}}))
    assert len(h.inbox.sent) == 1 and (await h.purchase(appointment)).status == "expired"


async def test_late_payment_is_refunded_with_a_receipt_key(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    first, pid = await opened(h)
    fake.fail("/v1/payment_links/", 500)  # cancelling the link fails: the customer can still pay
    h.clock.advance(minutes=15)
    await h.desk.expire_holds()
    await h.hold(i=2)
    paid = fake.pay(fake.link_for(pid)["id"])
    await deliver(h, fake, paid)
    payment_id = paid["payload"]["payment"]["entity"]["id"]
    [refund_call] = fake.calls("POST", f"/v1/payments/{payment_id}/refund")
    assert refund_call.body == {
        "amount": 80000,
        "speed": "normal",
        "receipt": f"refund:{pid}:1",
        "notes": {"purchase_id": pid},
    }
    row = await h.purchase(first)
    assert (row.status, row.refund_status, row.refund_reason) == ("refunded", "succeeded", "slot_unavailable")
    assert await h.status(first) == "cancelled"
    await deliver(h, fake, fake.refund_processed(next(iter(fake.refunds))))
    assert len(fake.refunds) == 1 and len(h.inbox.sent) == 3


async def test_refund_retry_finds_the_first_refund_by_receipt(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    paid = fake.pay(fake.link_for(pid)["id"])
    await deliver(h, fake, paid)
    payment_id = paid["payload"]["payment"]["entity"]["id"]
    fake.fail(f"/v1/payments/{payment_id}/refund", 504, after=True)
    await bookings.cancel(h.db, h.tenant, appointment, h.clock(), actor="api")
    await h.desk.after_cancel(h.tenant, appointment)
    assert (await h.purchase(appointment)).refund_status == "due"
    await h.desk.reconcile()
    assert len(fake.calls("POST", f"/v1/payments/{payment_id}/refund")) == 1  # never asked twice
    assert len(fake.refunds) == 1
    row = await h.purchase(appointment)
    assert (row.status, row.refund_ref) == ("refunded", next(iter(fake.refunds)))


async def test_pending_refund_settles_on_refund_processed(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    await deliver(h, fake, fake.pay(fake.link_for(pid)["id"]))
    fake.refund_status = "pending"
    h.clock.now = h.clock.now.replace(day=3, hour=8)  # 2 h before: half back under the policy
    await bookings.cancel(h.db, h.tenant, appointment, h.clock(), actor="customer", enforce_policy=False)
    await h.desk.after_cancel(h.tenant, appointment)
    row = await h.purchase(appointment)
    assert (row.status, row.refund_status, row.refund_amount) == ("completed", "requested", 40000)
    await deliver(h, fake, fake.refund_processed(row.refund_ref or ""))
    row = await h.purchase(appointment)
    assert (row.status, row.refund_status, row.refund_amount) == ("refunded", "succeeded", 40000)
    assert h.inbox.texts()[-1].startswith("We've refunded ₹400.00")


async def test_refund_before_paid_is_resolved_by_fetching_the_link(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    paid = fake.pay(fake.link_for(pid)["id"])
    payment_id = paid["payload"]["payment"]["entity"]["id"]
    fake.refunds["rfnd_x"] = {
        "id": "rfnd_x",
        "entity": "refund",
        "amount": 80000,
        "currency": "INR",
        "payment_id": payment_id,
        "notes": {"purchase_id": pid},
        "receipt": None,
        "status": "pending",
    }
    await deliver(h, fake, fake.refund_processed("rfnd_x"))
    assert [c.path for c in fake.calls("GET", "/v1/")] == [
        f"/v1/payment_links/{fake.link_for(pid)['id']}",
        f"/v1/payments/{payment_id}",
    ]
    row = await h.purchase(appointment)
    assert (row.status, row.payment_ref) == ("refunded", payment_id)
    await deliver(h, fake, paid)
    assert (await h.purchase(appointment)).status == "refunded"
    assert await h.status(appointment) == "pending_payment"


async def test_dispute(kit: tuple[Harness, FakeRazorpay]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    paid = fake.pay(fake.link_for(pid)["id"])
    await deliver(h, fake, paid)
    await deliver(h, fake, fake.dispute(paid["payload"]["payment"]["entity"]["id"]))
    assert (await h.purchase(appointment)).status == "disputed"
