"""Stripe end to end against the fake Stripe server on loopback (real HTTP, Stripe's wire format)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio

from bot.payments import ProviderError
from bot.payments.local import checkout_token
from storage import bookings
from storage import tables as t
from tests.conftest import FrozenClock
from tests.fakes.stripe_server import FakeStripe
from tests.payments.conftest import LOCAL_SECRET, PUBLIC, SLOT, Harness, harness


@pytest_asyncio.fixture
async def kit(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[tuple[Harness, FakeStripe]]:
    fake = FakeStripe(clock=clock)
    url = await fake.start()
    try:
        async with harness(sqlite_url, clock, provider="stripe", stripe=fake, stripe_url=url) as h:
            yield h, fake
    finally:
        await fake.close()


async def deliver(h: Harness, fake: FakeStripe, event: dict[str, object]) -> None:
    body, headers = fake.signed(event)
    await h.desk.handle_webhook("stripe", body, headers, wait=True)


async def opened(h: Harness, *, i: int = 1, start: datetime = SLOT) -> tuple[str, str]:
    conv = await h.conversation(sender=f"visitor-{i}")
    held = await h.hold(start, i=i)
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=conv, locale="en")
    return held.id, checkout.purchase_id


async def test_checkout_session_carries_the_core_amount_metadata_expiry_and_a_key(
    kit: tuple[Harness, FakeStripe],
) -> None:
    h, fake = kit
    held = await h.hold()
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    [call] = fake.calls("POST", "/v1/checkout/sessions")
    pid = checkout.purchase_id
    now = int(h.clock.now.timestamp())
    assert call.headers["Idempotency-Key"] == f"checkout:{pid}:1"
    assert call.headers["Authorization"] == f"Bearer {fake.secret_key}"
    assert call.form == {
        "mode": "payment",
        "client_reference_id": pid,
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "eur",
        "line_items[0][price_data][unit_amount]": "80000",
        "line_items[0][price_data][product_data][name]": "Consultation",
        "metadata[purchase_id]": pid,
        "metadata[tenant_id]": h.tenant,
        "metadata[appointment_id]": held.id,
        "payment_intent_data[metadata][purchase_id]": pid,
        "payment_intent_data[metadata][tenant_id]": h.tenant,
        "expires_at": str(now + 46 * 60),  # the hold (15) + 31: Stripe wants >= 30 min at any retry
        "success_url": f"{PUBLIC}/pay/{checkout_token(LOCAL_SECRET, pid)}",
        "cancel_url": f"{PUBLIC}/pay/{checkout_token(LOCAL_SECRET, pid)}",
        "locale": "auto",
    }
    session = fake.session_for(pid)
    assert checkout.url == session["url"]
    assert checkout.expires_at == h.clock.now + timedelta(minutes=15)
    row = await h.purchase(held.id)
    assert (row.provider, row.provider_ref, row.link_expires_at) == (
        "stripe",
        session["id"],
        h.clock.now + timedelta(minutes=46),
    )


async def test_a_lost_answer_is_retried_with_the_same_key_and_yields_the_same_session(
    kit: tuple[Harness, FakeStripe],
) -> None:
    h, fake = kit
    held = await h.hold()
    fake.fail("/v1/checkout/sessions", 500, after=True)  # Stripe made the session, the answer got lost
    with pytest.raises(ProviderError) as err:
        await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    assert err.value.status == 503
    assert (await h.purchase(held.id)).url is None
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    calls = fake.calls("POST", "/v1/checkout/sessions")
    assert [c.headers["Idempotency-Key"] for c in calls] == [f"checkout:{checkout.purchase_id}:1"] * 2
    assert calls[1].headers.get("Idempotency-Key") and len(fake.sessions) == 1
    assert checkout.url == next(iter(fake.sessions.values()))["url"]


async def test_a_retry_minutes_later_sends_the_same_parameters(kit: tuple[Harness, FakeStripe]) -> None:
    """Stripe refuses a reused key with different parameters: the expiry is fixed by the first try."""
    h, fake = kit
    held = await h.hold()
    fake.fail("/v1/checkout/sessions", 503)  # lost before Stripe did anything
    with pytest.raises(ProviderError):
        await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    h.clock.advance(minutes=3)
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    first, second = fake.calls("POST", "/v1/checkout/sessions")
    assert first.form == second.form and first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert checkout.url == fake.session_for(checkout.purchase_id)["url"]


async def test_a_refused_request_is_asked_afresh_under_a_new_key(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    held = await h.hold()
    fake.fail("/v1/checkout/sessions", 400)
    with pytest.raises(ProviderError):
        await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    h.clock.advance(minutes=2)
    checkout = await h.desk.open(h.tenant, held.id, conversation_id=None, locale="en")
    keys = [c.headers["Idempotency-Key"] for c in fake.calls("POST", "/v1/checkout/sessions")]
    assert keys == [f"checkout:{checkout.purchase_id}:1", f"checkout:{checkout.purchase_id}:2"]
    assert len(fake.sessions) == 1 and (await h.purchase(held.id)).attempt == 2


async def test_completed_session_confirms_once_however_often_it_arrives(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    event = fake.complete(fake.session_for(pid)["id"])
    await deliver(h, fake, event)
    await deliver(h, fake, event)  # redelivered: same event id
    await deliver(h, fake, fake.event("checkout.session.completed", dict(event["data"]["object"])))  # new id
    assert await h.status(appointment) == "scheduled"
    row = await h.purchase(appointment)
    assert (row.status, row.payment_ref, row.payment_method) == (
        "completed",
        fake.session_for(pid)["payment_intent"],
        "card",
    )
    assert [text.split(",")[0] for text in h.inbox.texts()] == ["Payment of €800.00 received"]
    assert await h.count(t.WebhookEvent) == 2
    assert [k for k, _, _ in await h.history(pid)][-1] == "same:paid"


async def test_expired_after_completed_is_ignored(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    session_id = fake.session_for(pid)["id"]
    completed = fake.complete(session_id)
    expired = fake.event("checkout.session.expired", {**completed["data"]["object"], "status": "expired"})
    await deliver(h, fake, completed)
    await deliver(h, fake, expired)
    assert (await h.status(appointment), (await h.purchase(appointment)).status) == ("scheduled", "completed")
    assert [k for k, _, _ in await h.history(pid)][-1] == "stale:expired"


async def test_a_refund_seen_before_the_payment_is_settled_by_asking_stripe(kit: tuple[Harness, FakeStripe]) -> None:
    """charge.refunded arrives first (refunded from the dashboard): it skips "completed", so we fetch
    the session and follow Stripe's own state; the late "completed" is then old news."""
    h, fake = kit
    appointment, pid = await opened(h)
    completed = fake.complete(fake.session_for(pid)["id"])
    refunded = fake.refund_everything_from_dashboard(fake.session_for(pid)["payment_intent"])
    await deliver(h, fake, refunded)
    [fetch] = fake.calls("GET", "/v1/checkout/sessions/")
    assert fetch.query == {"expand[]": "payment_intent.latest_charge"}
    row = await h.purchase(appointment)
    assert (row.status, row.refund_status, row.refund_amount, row.refund_reason) == (
        "refunded",
        "succeeded",
        80000,
        "provider",
    )
    assert await h.status(appointment) == "pending_payment"  # money that came back confirms nothing
    await deliver(h, fake, completed)
    assert (await h.purchase(appointment)).status == "refunded"
    assert await h.status(appointment) == "pending_payment"
    assert [(k, a, b) for k, a, b in await h.history(pid) if a != b] == [
        ("completed", "pending", "completed"),
        ("refunded", "completed", "refunded"),
    ]
    assert h.inbox.texts() == [
        "We've refunded €800.00 for your Consultation on Tue 3 Mar, 10:00 AM UTC. "
        "It can take 5 to 10 business days to reach you."
    ]


async def test_hold_expiry_expires_the_session_and_stripes_own_expiry_is_no_news(
    kit: tuple[Harness, FakeStripe],
) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    session = fake.session_for(pid)
    h.clock.advance(minutes=15)
    assert await h.desk.expire_holds() == 1
    [call] = fake.calls("POST", f"/v1/checkout/sessions/{session['id']}/expire")
    assert call.headers["Idempotency-Key"] == f"expire:{session['id']}"
    assert session["status"] == "expired"
    await deliver(h, fake, fake.event("checkout.session.expired", fake._public(session)))
    assert len(h.inbox.sent) == 1 and (await h.purchase(appointment)).status == "expired"


async def test_late_payment_after_a_failed_expiry_call_is_refunded_with_a_key(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    first, pid = await opened(h)
    fake.fail("/v1/checkout/sessions/", 503)  # our expire call fails: the session stays open
    h.clock.advance(minutes=16)
    assert await h.desk.expire_holds() == 1
    second = await h.hold(i=2)
    h.clock.advance(minutes=4)
    completed = fake.complete(fake.session_for(pid)["id"])
    await deliver(h, fake, completed)

    [refund_call] = fake.calls("POST", "/v1/refunds")
    assert refund_call.headers["Idempotency-Key"] == f"refund:{pid}:1"
    assert refund_call.form == {
        "payment_intent": fake.session_for(pid)["payment_intent"],
        "amount": "80000",
        "reason": "requested_by_customer",
        "metadata[purchase_id]": pid,
    }
    row = await h.purchase(first)
    assert (row.status, row.refund_status, row.refund_reason) == ("refunded", "succeeded", "slot_unavailable")
    assert (await h.status(first), await h.status(second.id)) == ("cancelled", "pending_payment")
    # Stripe then tells us about the refund it made: nothing more happens.
    await deliver(h, fake, fake.charge_refunded(row.payment_ref or ""))
    assert len(fake.refunds) == 1
    assert [m.split(" ")[0:3] for m in h.inbox.texts()] == [
        ["We", "held", "Tue"],
        ["Your", "payment", "of"],
        ["We've", "refunded", "€800.00"],
    ]


async def test_a_refund_that_fails_to_start_is_retried_with_the_same_key(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    await deliver(h, fake, fake.complete(fake.session_for(pid)["id"]))
    fake.fail("/v1/refunds", 500, after=True)  # Stripe refunded, we never heard
    await bookings.cancel(h.db, h.tenant, appointment, h.clock(), actor="api")
    await h.desk.after_cancel(h.tenant, appointment)
    assert (await h.purchase(appointment)).refund_status == "due"
    assert await h.desk.reconcile() == 1
    keys = [c.headers["Idempotency-Key"] for c in fake.calls("POST", "/v1/refunds")]
    assert keys == [f"refund:{pid}:1", f"refund:{pid}:1"]
    assert len(fake.refunds) == 1  # the retry got the first refund back
    row = await h.purchase(appointment)
    assert (row.status, row.refund_status, row.refund_ref) == ("refunded", "succeeded", next(iter(fake.refunds)))
    assert await h.desk.reconcile() == 0


async def test_pending_refund_settles_on_refund_updated(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    await deliver(h, fake, fake.complete(fake.session_for(pid)["id"]))
    fake.refund_status = "pending"
    await bookings.cancel(h.db, h.tenant, appointment, h.clock(), actor="api")
    await h.desk.after_cancel(h.tenant, appointment)
    row = await h.purchase(appointment)
    assert (row.status, row.refund_status) == ("completed", "requested")
    assert len(h.inbox.sent) == 1  # only the confirmation so far
    await deliver(h, fake, fake.refund_updated(row.refund_ref or "", "succeeded"))
    row = await h.purchase(appointment)
    assert (row.status, row.refund_status, row.refund_amount) == ("refunded", "succeeded", 80000)
    assert h.inbox.texts()[-1].startswith("We've refunded €800.00")


async def test_a_dispute_stops_automatic_refunds(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    appointment, pid = await opened(h)
    await deliver(h, fake, fake.complete(fake.session_for(pid)["id"]))
    await deliver(h, fake, fake.dispute(fake.session_for(pid)["payment_intent"]))
    assert (await h.purchase(appointment)).status == "disputed"
    await bookings.cancel(h.db, h.tenant, appointment, h.clock(), actor="api")
    await h.desk.after_cancel(h.tenant, appointment)
    assert fake.calls("POST", "/v1/refunds") == []
    assert (await h.purchase(appointment)).refund_status == "none"


async def test_delayed_payment_methods(kit: tuple[Harness, FakeStripe]) -> None:
    h, fake = kit
    ok, ok_pid = await opened(h, i=1)
    bad, bad_pid = await opened(h, i=2, start=SLOT + timedelta(hours=1))
    for pid in (ok_pid, bad_pid):
        await deliver(h, fake, fake.complete(fake.session_for(pid)["id"], paid=False))  # processing
    assert (await h.status(ok), await h.status(bad)) == ("pending_payment", "pending_payment")
    await deliver(h, fake, fake.async_outcome(fake.session_for(ok_pid)["id"], succeeded=True))
    await deliver(h, fake, fake.async_outcome(fake.session_for(bad_pid)["id"], succeeded=False))
    assert (await h.status(ok), await h.status(bad)) == ("scheduled", "pending_payment")
    assert ((await h.purchase(ok)).status, (await h.purchase(bad)).status) == ("completed", "failed")
    assert [k for k, _, _ in await h.history(ok_pid)][2:] == ["processing", "completed", "appointment_confirmed"]
