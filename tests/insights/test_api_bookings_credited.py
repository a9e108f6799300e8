"""Bookings made through ``POST /api/bookings`` count for an agent: the one the body names, else
the business's only agent; with several agents and none named they stay unattributed
(docs/insights.md §1, "Who an appointment counts for")."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from storage import insights
from storage import tables as t
from tests.conftest import Api, FrozenClock, booking_body, demo_business, make_settings, new_token, tenant_of
from tests.insights.test_store import assert_rollups_match


async def test_an_api_booking_counts_for_the_agent_it_names_or_the_only_agent(api: Api) -> None:
    named = await api.post("/api/bookings", booking_body("2026-03-03T09:00:00+00:00"))
    unnamed_body = booking_body("2026-03-03T10:00:00+00:00", phone="+14155550102")
    del unnamed_body["agent"]
    unnamed = await api.post("/api/bookings", unnamed_body)
    assert named[0] == 201 and unnamed[0] == 201
    status, perf = await api.get(
        "/api/analytics/agent/acme-bot/performance", date_from="2026-03-01", date_to="2026-03-31"
    )
    assert status == 200
    assert perf["businessMetrics"]["appointmentsBooked"] == 2  # acme has one agent: both are its
    assert perf["appointmentMetrics"]["totalAppointments"] == 2
    assert perf["conversationMetrics"]["totalConversations"] == 0  # credited bookings are not conversations
    status, _ = await api.post("/api/bookings", booking_body("2026-03-03T11:00:00+00:00") | {"agent": "other-bot"})
    assert status == 404  # another business's agent
    moved = await api.post(f"/api/bookings/{named[1]['id']}/reschedule", {"start": "2026-03-04T09:00:00+00:00"})
    assert moved[0] == 200
    status, perf = await api.get(
        "/api/analytics/agent/acme-bot/performance", date_from="2026-03-01", date_to="2026-03-31"
    )
    assert perf["businessMetrics"]["appointmentsBooked"] == 2  # the replacement is no new booking ...
    assert perf["appointmentMetrics"]["totalAppointments"] == 2  # ... and stays the agent's
    db = api.client.app[CONTEXT].db
    await assert_rollups_match(db, await tenant_of(db, "acme"))


async def test_with_several_agents_an_api_booking_naming_none_stays_unattributed(
    aiohttp_client: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    business = demo_business() | {"agents": [{"slug": "acme-bot", "name": "Ada"}, {"slug": "acme-desk", "name": "Dee"}]}
    client = await aiohttp_client(create_app(make_settings(sqlite_url, [business]), clock=clock))
    db = client.app[CONTEXT].db
    api = Api(client, await new_token(db, "acme", clock))
    unnamed_body = booking_body("2026-03-03T09:00:00+00:00")
    del unnamed_body["agent"]
    assert (await api.post("/api/bookings", unnamed_body))[0] == 201
    named = booking_body("2026-03-03T10:00:00+00:00", phone="+14155550102") | {"agent": "acme-desk"}
    assert (await api.post("/api/bookings", named))[0] == 201

    booked = {}
    for slug in ("acme-bot", "acme-desk"):
        status, perf = await api.get(
            f"/api/analytics/agent/{slug}/performance", date_from="2026-03-01", date_to="2026-03-31"
        )
        assert status == 200
        booked[slug] = perf["businessMetrics"]["appointmentsBooked"]
    assert booked == {"acme-bot": 0, "acme-desk": 1}
    tenant_id = await tenant_of(db, "acme")
    async with db.reading() as session:
        march = date(2026, 3, 1), date(2026, 3, 31)
        by_agent = {r["agent_id"]: r for r in await insights.sums(session, tenant_id, *march, by=["agent_id"])}
        desk = await session.scalar(select(t.Agent.id).where(t.Agent.slug == "acme-desk"))
    assert by_agent[""]["appt_booked"] == 1 and by_agent[desk]["appt_booked"] == 1
    await assert_rollups_match(db, tenant_id)
