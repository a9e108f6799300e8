"""The conversations list's date range: ``date_from`` / ``date_to`` are days in the business's time
zone (here Asia/Kolkata, UTC+05:30), matched against when each conversation started, alongside
the other filters and the staff scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from bot.context import CONTEXT
from bot.dialogue.manager import Incoming
from bot.settings import Settings
from storage import bookings
from storage import tables as t
from tests.conftest import FrozenClock, demo_business, make_settings, other_business, tenant_of
from tests.dashboard.conftest import Dashboard, escalate


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    acme = demo_business()
    acme["timezone"] = "Asia/Kolkata"
    return make_settings(sqlite_url, [acme, other_business()])


async def started_at(
    dash: Dashboard, clock: FrozenClock, instant: datetime, sender: str, *, human: bool = False
) -> str:
    clock.now = instant
    manager = dash.client.app[CONTEXT].dialogue
    if human:
        return await escalate(manager, "acme-bot", sender)
    return (await manager.handle(Incoming("acme-bot", "web", sender, text="hello"))).conversation_id


async def test_date_range_is_in_the_business_zone_and_combines_with_the_other_filters(
    dash: Dashboard, clock: FrozenClock
) -> None:
    late_on_the_2nd = await started_at(dash, clock, datetime(2026, 3, 2, 18, 0, tzinfo=UTC), "a")  # 23:30 IST
    early_on_the_3rd = await started_at(dash, clock, datetime(2026, 3, 2, 18, 45, tzinfo=UTC), "b", human=True)
    on_the_4th = await started_at(dash, clock, datetime(2026, 3, 4, 10, 0, tzinfo=UTC), "c")  # 15:30 IST
    await dash.login("owner@acme.test")

    async def ids(**params: str) -> list[str]:
        status, body = await dash.get("/dashboard/data/conversations", **params)
        assert status == 200, body
        assert body["timezone"] == "Asia/Kolkata"
        return [c["id"] for c in body["conversations"]]

    assert await ids() == [on_the_4th, early_on_the_3rd, late_on_the_2nd]  # newest activity first
    assert await ids(date_from="2026-03-03", date_to="2026-03-03") == [early_on_the_3rd]  # 00:15 IST, 2nd in UTC
    assert await ids(date_to="2026-03-02") == [late_on_the_2nd]
    assert await ids(date_from="2026-03-03") == [on_the_4th, early_on_the_3rd]
    assert await ids(date_from="2026-03-02", date_to="2026-03-04") == [on_the_4th, early_on_the_3rd, late_on_the_2nd]
    assert await ids(date_from="2026-03-05") == []
    assert await ids(date_from="2026-03-02", date_to="2026-03-03", status="escalated") == [early_on_the_3rd]
    assert await ids(date_from="2026-03-02", date_to="2026-03-03", q="human") == [early_on_the_3rd]
    assert await ids(date_from="2026-03-04", channel="sms") == []
    for bad in ({"date_from": "2026-03-04", "date_to": "2026-03-03"}, {"date_from": "03/04/2026"}, {"date_to": "x"}):
        status, body = await dash.get("/dashboard/data/conversations", **bad)
        assert status == 422 and body["code"] == "invalid_input", bad
    status, page = await dash.get("/dashboard/conversations")
    assert status == 200 and 'data-timezone="Asia/Kolkata"' in page


async def test_date_range_keeps_staff_to_their_customers(dash: Dashboard, clock: FrozenClock) -> None:
    acme = await tenant_of(dash.db, "acme")
    anns = await bookings.create(
        dash.db,
        acme,
        bookings.NewBooking("solo", datetime(2026, 3, 5, 9, 0, tzinfo=UTC), "Ann's Client", "+14155550101", "ann"),
        clock(),
    )
    hers = await started_at(dash, clock, datetime(2026, 3, 2, 18, 45, tzinfo=UTC), "client")  # the 3rd in IST
    await started_at(dash, clock, datetime(2026, 3, 2, 19, 0, tzinfo=UTC), "stranger")  # the 3rd too
    async with dash.db.writing() as session:
        await session.execute(
            update(t.Conversation).where(t.Conversation.id == hers).values(customer_id=anns.appointment.customer.id)
        )
    await dash.login("ann@acme.test")
    _, on_the_3rd = await dash.get("/dashboard/data/conversations", date_from="2026-03-03", date_to="2026-03-03")
    assert [c["id"] for c in on_the_3rd["conversations"]] == [hers]
    _, on_the_2nd = await dash.get("/dashboard/data/conversations", date_to="2026-03-02")
    assert on_the_2nd["conversations"] == []
    await dash.login("owner@other.test")
    status, body = await dash.get("/dashboard/data/conversations", date_from="2026-03-01", date_to="2026-03-31")
    assert status == 200 and body["conversations"] == [] and body["timezone"] == "Europe/London"
