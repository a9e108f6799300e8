"""Failed deliveries on the dashboard: a customer's SMS is answered, Twilio refuses the answer and
the relay gives up on it; the owner sees it (recipient masked, never the whole number), replays it
with the session's CSRF token, and the relay delivers it. Another business's owner cannot see or
replay it, staff cannot reach the page."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import PIPELINE
from bot.settings import Settings
from storage import customers
from storage import tables as t
from tests.conftest import FrozenClock, demo_business, make_settings, new_token, other_business
from tests.dashboard.conftest import Dashboard
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

PUBLIC = "http://desk.example.com"  # http: the test client keeps no Secure cookie
SHOP_NUMBER = "+15550100200"
CUSTOMER = "+14155550123"
MARKUP = '<img src=x onerror="window.__xss=1">Ann'


@pytest.fixture
def settings(sqlite_url: str, twilio: FakeTwilio) -> Settings:
    acme = demo_business()
    sms = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": SHOP_NUMBER}
    acme["agents"] = [
        {"slug": "acme-bot", "name": "Ada", "channels": {"sms": {**sms, "api_base_url": twilio.base_url}}}
    ]
    return make_settings(
        sqlite_url, [acme, other_business()], server={"public_url": PUBLIC}, testing={"workers": False}
    )


async def undeliverable_answer(dash: Dashboard, twilio: FakeTwilio, clock: FrozenClock) -> t.OutboxItem:
    """The customer says hello by SMS; Twilio refuses the answer for good (region not enabled)."""
    params = [("MessageSid", "SM" + "1" * 32), ("From", CUSTOMER), ("To", SHOP_NUMBER), ("Body", "hello")]
    raw, headers = twilio.inbound(f"{PUBLIC}/webhooks/sms", params)
    resp = await dash.client.post("/webhooks/sms", data=raw, headers=headers)
    assert resp.status == 200
    pipeline = dash.client.app[PIPELINE]
    await pipeline.worker.run_once()
    twilio.twilio_error(21408, "Permission to send an SMS has not been enabled for the region")
    await pipeline.relay.run_once()
    async with dash.db.writing() as session:
        (row,) = (await session.scalars(select(t.OutboxItem))).all()
        customer = await customers.upsert(
            session, row.tenant_id, CUSTOMER, clock(), name=MARKUP
        )  # who they said they are
        await session.execute(
            update(t.Conversation).where(t.Conversation.id == row.conversation_id).values(customer_id=customer.id)
        )
    assert (row.state, row.last_error, row.attempts) == ("dead", "not_permitted", 1)
    return row


async def state_of(dash: Dashboard, row_id: int) -> str:
    async with dash.db.reading() as session:
        row = await session.get(t.OutboxItem, row_id)
    assert row is not None
    return row.state


async def test_owner_sees_a_failed_delivery_masked_and_replays_it(
    dash: Dashboard, twilio: FakeTwilio, clock: FrozenClock
) -> None:
    row = await undeliverable_answer(dash, twilio, clock)
    await dash.login("owner@acme.test")
    resp = await dash.client.get("/dashboard/data/outbox")
    raw = await resp.text()
    assert resp.status == 200
    assert CUSTOMER not in raw and CUSTOMER[2:] not in raw and CUSTOMER[-7:] not in raw  # never the number
    (listed,) = (await resp.json())["messages"]
    assert listed == {
        "id": row.id,
        "conversationId": row.conversation_id,
        "channel": "sms",
        "recipient": "•••123",
        "customer": MARKUP,  # data in JSON; the page inserts it as text
        "text": row.text,
        "attempts": 1,
        "error": "not_permitted",
        "createdAt": clock().isoformat(),
    }
    status, page = await dash.get("/dashboard/outbox")
    assert status == 200 and 'data-page="outbox"' in page and ">Failed deliveries</a>" in page
    assert CUSTOMER not in page and MARKUP not in page  # the shell carries no customer data at all

    path = f"/dashboard/data/outbox/{row.id}/replay"
    status, refused = await dash.post(path, csrf="")
    assert (status, refused["code"]) == (403, "csrf")
    assert (await dash.post(path, csrf="not-the-token"))[0] == 403
    assert await state_of(dash, row.id) == "dead"

    status, replayed = await dash.post(path)
    assert (status, replayed) == (200, {"id": row.id, "state": "pending"})
    assert await state_of(dash, row.id) == "pending"
    await dash.client.app[PIPELINE].relay.run_once()  # Twilio takes it this time
    assert await state_of(dash, row.id) == "sent"
    assert [m["To"] for m in twilio.messages] == [CUSTOMER]
    _, after = await dash.get("/dashboard/data/outbox")
    assert after["messages"] == []
    assert (await dash.post(path))[0] == 404  # not dead any more: nothing to replay
    for bad in ("/dashboard/data/outbox/999999/replay", "/dashboard/data/outbox/abc/replay"):
        assert (await dash.post(bad))[0] == 404


async def test_another_business_and_staff_cannot_see_or_replay_it(
    dash: Dashboard, twilio: FakeTwilio, clock: FrozenClock
) -> None:
    row = await undeliverable_answer(dash, twilio, clock)
    await dash.login("owner@other.test")
    _, theirs = await dash.get("/dashboard/data/outbox")
    assert theirs["messages"] == []
    assert (await dash.post(f"/dashboard/data/outbox/{row.id}/replay"))[0] == 404
    assert (await dash.get("/dashboard/data/outbox", business="acme"))[0] == 404
    await dash.login("ann@acme.test")
    for path in ("/dashboard/outbox", "/dashboard/data/outbox"):
        assert (await dash.get(path))[0] == 403, path
    assert (await dash.post(f"/dashboard/data/outbox/{row.id}/replay"))[0] == 403
    status, page = await dash.get("/dashboard/conversations")
    assert status == 200 and "Failed deliveries" not in page
    assert await state_of(dash, row.id) == "dead"
    await dash.login("admin@example.com")
    _, seen = await dash.get("/dashboard/data/outbox", business="acme")
    assert [m["id"] for m in seen["messages"]] == [row.id]


async def test_the_api_lists_the_same_masked_rows(dash: Dashboard, twilio: FakeTwilio, clock: FrozenClock) -> None:
    row = await undeliverable_answer(dash, twilio, clock)
    token = await new_token(dash.db, "acme", clock)
    resp = await dash.client.get("/api/outbox", headers={"Authorization": f"Bearer {token}"})
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200 and CUSTOMER not in await resp.text()
    assert [(m["id"], m["recipient"], m["error"]) for m in body["messages"]] == [(row.id, "•••123", "not_permitted")]
