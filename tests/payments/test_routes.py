"""The payment routes on the real app and a real test server: webhooks and the checkout page."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from bot.payments.local import HEADER, checkout_event
from bot.payments.routes import PAYMENTS
from bot.payments.service import PaymentDesk
from core.booking import Status
from storage import bookings, secrets
from storage import tables as t
from storage.bookings import NewBooking
from storage.engine import Database
from tests.conftest import FrozenClock, make_settings, other_business, tenant_of
from tests.fakes.stripe_server import FakeStripe
from tests.payments.conftest import PUBLIC, SLOT, Inbox, paid_business


async def start(
    aiohttp_client: Any, url: str, clock: FrozenClock, **extra: Any
) -> tuple[TestClient, PaymentDesk, Inbox]:
    business = paid_business(name="Consult <b>&amp;</b>")
    settings = make_settings(
        url, [business, other_business()], server={"public_url": PUBLIC, "max_body_bytes": 4096}, **extra
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    desk = client.server.app[PAYMENTS]
    inbox = Inbox()
    desk.set_notify(inbox)
    return client, desk, inbox


def db_of(client: TestClient) -> Database:
    return client.server.app[CONTEXT].db


async def held_checkout(client: TestClient, desk: PaymentDesk, clock: FrozenClock) -> tuple[str, str, str]:
    db = db_of(client)
    tenant = await tenant_of(db, "acme")
    req = NewBooking("consult", SLOT, "Jane", "+14155550101", hold_minutes=15)
    appointment = (await bookings.create(db, tenant, req, clock())).appointment
    checkout = await desk.open(tenant, appointment.id, conversation_id=None, locale="en")
    return tenant, appointment.id, checkout.url.removeprefix(PUBLIC)


async def stored_events(client: TestClient) -> int:
    async with db_of(client).reading() as session:
        return len(list(await session.scalars(select(t.WebhookEvent.id))))


async def test_local_webhook_statuses(aiohttp_client: Any, sqlite_url: str, clock: FrozenClock) -> None:
    client, desk, _ = await start(aiohttp_client, sqlite_url, clock)
    tenant, appointment_id, _ = await held_checkout(client, desk, clock)
    secret = await secrets.get_or_create(db_of(client), "payments_local")
    async with db_of(client).reading() as session:
        purchase_id = await session.scalar(select(t.Purchase.id))
    assert purchase_id is not None
    body, headers = checkout_event(
        secret, purchase_id=purchase_id, paid=True, amount=80000, currency="EUR", now=clock()
    )

    async def post(data: bytes, hdrs: dict[str, str], provider: str = "local") -> tuple[int, dict[str, Any]]:
        resp = await client.post(f"/webhooks/payments/{provider}", data=data, headers=hdrs)
        return resp.status, await resp.json()

    missing = {"success": False, "error": "missing Frontdesk-Signature header", "code": "unauthorized"}
    assert await post(body, {}) == (401, missing)
    tampered = body.replace(b"80000", b"00001")
    assert (await post(tampered, headers))[0] == 403
    wrong_key, wrong_headers = checkout_event(
        b"guess", purchase_id=purchase_id, paid=True, amount=80000, currency="EUR", now=clock()
    )
    assert (await post(wrong_key, wrong_headers))[0] == 403
    assert await stored_events(client) == 0  # nothing stored on a bad signature

    garbage = b'{"not": "an event"'
    status, answer = await post(garbage, {HEADER: checkout_sign(secret, garbage, clock)})
    assert (status, answer["code"]) == (400, "malformed")
    unknown = json.dumps({"id": "evt_x", "type": "payment.thought_about_it", "data": {}}).encode()
    assert await post(unknown, {HEADER: checkout_sign(secret, unknown, clock)}) == (200, {"received": True})
    big = b"{" + b" " * 5000 + b"}"
    status, answer = await post(big, {HEADER: checkout_sign(secret, big, clock)})
    assert (status, answer["code"]) == (413, "too_large")
    assert (await post(body, headers, provider="paypal"))[0] == 404
    assert (await post(body, headers, provider="stripe"))[0] == 404  # not configured here
    assert await stored_events(client) == 0

    assert await post(body, headers) == (200, {"received": True})
    await desk.drain()
    assert (await bookings.get(db_of(client), tenant, appointment_id)).status is Status.SCHEDULED
    assert await post(body, headers) == (200, {"received": True})  # redelivered: acknowledged, once applied
    await desk.drain()
    assert await stored_events(client) == 1


def checkout_sign(secret: bytes, body: bytes, clock: FrozenClock) -> str:
    from bot.payments import sign_timestamped

    return sign_timestamped(body, secret, int(clock().timestamp()))


async def test_checkout_page_pays_through_the_webhook_path(
    aiohttp_client: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    client, desk, _ = await start(aiohttp_client, sqlite_url, clock)
    tenant, appointment_id, path = await held_checkout(client, desk, clock)
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    page = await resp.text()
    assert "Consult &lt;b&gt;&amp;amp;&lt;/b&gt; on Tue 3 Mar, 10:00 AM UTC" in page
    assert "<b>" not in page
    assert "Pay €800.00" in page and 'name="action" value="fail"' in page

    resp = await client.post(path, data={"action": "pay"})
    assert resp.status == 200
    assert "Payment received. The confirmation is in your chat." in await resp.text()
    assert (await bookings.get(db_of(client), tenant, appointment_id)).status is Status.SCHEDULED
    again = await client.get(path)
    assert "Pay €800.00" not in await again.text()

    assert (await client.get("/pay/not-a-token")).status == 404
    assert (await client.get(path + "x")).status == 404
    assert (await client.post(path, data={"action": "refund-me"})).status == 404


async def test_stripe_webhook_over_http(aiohttp_client: Any, sqlite_url: str, clock: FrozenClock) -> None:
    fake = FakeStripe(clock=clock)
    url = await fake.start()
    try:
        payments = {
            "provider": "stripe",
            "stripe": {"secret_key": fake.secret_key, "webhook_secret": fake.webhook_secret, "api_base_url": url},
        }
        client, desk, inbox = await start(aiohttp_client, sqlite_url, clock, payments=payments)
        tenant, appointment_id, _ = await held_checkout(client, desk, clock)
        [session] = fake.sessions.values()
        body, headers = fake.signed(fake.complete(session["id"]))
        stale_body, stale_headers = fake.signed(fake.complete(session["id"]), at=clock.now.replace(hour=7))
        assert (await client.post("/webhooks/payments/stripe", data=stale_body, headers=stale_headers)).status == 403
        resp = await client.post("/webhooks/payments/stripe", data=body, headers=headers)
        assert resp.status == 200
        await desk.drain()
        assert (await bookings.get(db_of(client), tenant, appointment_id)).status is Status.SCHEDULED
        assert inbox.sent == []  # no conversation was given: nobody to tell
    finally:
        await fake.close()
