"""The insights store end to end: recording through real chat turns and real API bookings,
roll-ups equal to a from-scratch recomputation, tenant scoping, CSV export and the SSE stream."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.context import CONTEXT
from bot.dialogue.manager import DialogueManager
from bot.settings import Settings
from core.booking import Status
from core.payments import PurchaseStatus
from storage import bookings, insights, purchases
from storage import tables as t
from storage.engine import Database
from tests.bot.test_conversations_rules import Chat, manager_for
from tests.conftest import Api, FrozenClock, booking_body, new_token, tenant_of

DAY = date(2026, 3, 2)


async def book_by_chat(chat: Chat) -> None:
    await chat.say("hi")
    await chat.tap("Book")
    await chat.tap("Check-up")
    await chat.tap("No preference")
    await chat.tap("Tomorrow")
    await chat.tap("9:00 AM")
    await chat.tap("Yes")
    await chat.say("Ravi Kumar")
    await chat.say("+44 7700 900123")
    assert "You're booked!" in chat.text or "while you pay" in chat.text


async def assert_rollups_match(db: Database, tenant_id: str) -> dict[tuple[Any, ...], dict[str, int]]:
    async with db.reading() as session:
        kept = await insights.stored(session, tenant_id)
        fresh = await insights.recompute(session, tenant_id)
    assert kept[0] == fresh[0]
    assert kept[1] == fresh[1]
    return kept[0]


async def test_a_chat_booking_is_recorded_once_in_the_same_transactions(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    manager = manager_for(db, settings, clock)
    chat = Chat(manager)
    await book_by_chat(chat)
    assert "Rate this conversation" in chat.text
    await chat.say("5")
    tenant_id = await tenant_of(db, "acme")
    daily = await assert_rollups_match(db, tenant_id)
    async with db.reading() as session:
        agent = await insights.agent_row(session, tenant_id, "acme-bot")
        perf = await insights.agent_performance(session, tenant_id, "acme-bot", start=DAY, end=DAY, now=clock())
        steps = list(
            await session.scalars(
                select(t.FunnelEvent.step).where(t.FunnelEvent.conversation_id == chat.conversation_id)
            )
        )
        messages = await session.scalar(select(func.count()).select_from(t.Message))
        fact = await session.get(t.InsightConversation, chat.conversation_id)
    assert fact is not None
    assert sorted(steps) == sorted(
        ["conversation_started", "service_selected", "slot_selected", "details_given", "booked"]
    )
    row = daily[(agent.id, "web", DAY)]
    assert row["conversations"] == 1
    assert row["messages_in"] + row["messages_out"] == messages
    assert row["ratings"] == 1 and row["rating_sum"] == 5 and row["positive_ratings"] == 1
    assert row["completed"] == 1 and row["step_booked"] == 1
    # booked today (the day it was made, like the conversion); its state counts under its own
    # local day (tomorrow); both attributed to the chat's agent
    assert row["appt_booked"] == 1
    assert daily[(agent.id, "web", DAY + timedelta(days=1))] == {"appt_scheduled": 1}
    assert perf["businessMetrics"]["appointmentsBooked"] == 1
    assert fact.conversion_type == "appointment" and fact.conversion_value == 5000
    assert {i["intent"] for i in fact.intents} >= {"book_appointment"}
    assert perf["performanceGrade"] == "N/A"  # one conversation is below the minimum sample
    assert perf["conversationMetrics"]["totalConversations"] == 1
    assert perf["conversationMetrics"]["customerSatisfactionAvg"] == 5.0
    assert perf["conversationMetrics"]["conversationCompletionRate"] == 100.0
    assert perf["businessMetrics"]["conversionsGenerated"] == 1
    assert perf["businessMetrics"]["conversionRate"] == 100.0
    week = await insights_async_dashboard(db, tenant_id, clock)
    assert week["funnel"]["steps"][4] == {
        "step": "booked",
        "count": 1,
        "conversionFromPrevious": 100.0,
        "dropOffRate": 0.0,
    }
    assert week["heatmap"]["conversations"][0][8] == 1  # Monday, 08:00 UTC (the business zone)


async def insights_async_dashboard(db: Database, tenant_id: str, clock: FrozenClock) -> dict[str, Any]:
    async with db.reading() as session:
        return await insights.dashboard(
            session, tenant_id, "acme-bot", start=DAY, end=DAY + timedelta(days=6), now=clock()
        )


async def test_seed_appointment_example_through_the_api(api: Api, clock: FrozenClock) -> None:
    first = await api.post("/api/bookings", booking_body("2026-03-02T09:00:00+00:00"))
    second = await api.post("/api/bookings", booking_body("2026-03-02T10:00:00+00:00", phone="+14155550102"))
    assert first[0] == 201 and second[0] == 201
    clock.advance(hours=3)
    assert (await api.post(f"/api/bookings/{first[1]['id']}/complete"))[0] == 200
    assert (await api.post(f"/api/bookings/{second[1]['id']}/no-show"))[0] == 200
    status, body = await api.get("/api/analytics/system/performance", date_from="2026-03-01", date_to="2026-03-31")
    assert status == 200
    assert body["appointmentMetrics"]["totalAppointments"] == 2
    assert body["appointmentMetrics"]["completionRate"] == 50.0
    assert body["appointmentMetrics"]["noShowRate"] == 50.0
    assert set(body["overallMetrics"]) >= {
        "totalActiveAgents",
        "totalCustomers",
        "totalConversations",
        "totalRevenue",
        "systemUptime",
        "averageResponseTime",
    }
    db = api.client.server.app[CONTEXT].db
    async with db.reading() as session:
        missed = await session.get(t.InsightAppointment, second[1]["id"])
    assert missed is not None and missed.follow_ups == ["send_reschedule_link", "call_customer"]
    await assert_rollups_match(db, await tenant_of(db, "acme"))

    status, text = await csv_export(api, "appointments")
    rows = list(csv.reader(io.StringIO(text)))
    assert status == 200
    assert rows[0] == insights.EXPORT_HEADERS["appointments"]
    assert sorted(r[5] for r in rows[1:]) == ["completed", "missed"]


async def csv_export(api: Api, kind: str) -> tuple[int, str]:
    resp = await api.client.get(
        "/api/analytics/export",
        params={"kind": kind, "date_from": "2026-03-01", "date_to": "2026-03-31"},
        headers=api.headers(),
    )
    assert resp.headers["Content-Type"].startswith("text/csv")
    return resp.status, await resp.text()


async def test_seed_purchase_example(sqlite_url: str, clock: FrozenClock) -> None:
    from bot.app import prepare_database
    from tests.conftest import demo_business, make_settings, other_business

    settings = make_settings(sqlite_url, [demo_business(price=1800), other_business()])
    db = await prepare_database(settings, clock)
    try:
        tenant_id = await tenant_of(db, "acme")
        req = bookings.NewBooking(
            "checkup", datetime(2026, 3, 3, 9, tzinfo=UTC), "Jane", "+14155550101", hold_minutes=15
        )
        outcome = await bookings.create(db, tenant_id, req, clock())
        async with db.writing() as session:
            appt = await purchases.appointment_row(session, tenant_id, outcome.appointment.id)
            service = await session.get(t.Service, appt.service_id)
            assert service is not None
            row = await purchases.create(session, appt, service, provider="local", locale="en", now=clock())
            await purchases.move(session, row, PurchaseStatus.COMPLETED, clock(), "paid", "webhook:local")
            await bookings.confirm_payment_in(session, tenant_id, appt.id, clock())
        async with db.reading() as session:
            s = await insights.total(session, tenant_id, DAY, DAY + timedelta(days=1))
        assert insights.purchase_block(s) == {
            "totalPurchases": 1,
            "completedPurchases": 1,
            "totalRevenue": 1800,
            "averageOrderValue": 1800,
            "completionRate": 100.0,
            "failureRate": 0.0,
        }
        assert s["appt_scheduled"] == 1 and s["appt_pending_payment"] == 0 and s["appt_booked"] == 1
        await assert_rollups_match(db, tenant_id)
    finally:
        await db.dispose()


async def test_another_business_ids_are_not_found(api: Api, clock: FrozenClock) -> None:
    created = await api.post("/api/bookings", booking_body("2026-03-02T09:00:00+00:00"))
    customer_id = created[1]["customer"]["id"]
    assert (await api.get(f"/api/analytics/customer/{customer_id}/insight"))[0] == 200
    db = api.client.server.app[CONTEXT].db
    other = Api(api.client, await new_token(db, "other", clock))
    for path in (
        f"/api/analytics/customer/{customer_id}/insight",
        "/api/analytics/agent/acme-bot/performance",
        "/api/analytics/dashboard/acme-bot",
        "/api/analytics/realtime/acme-bot",
    ):
        status, body = await other.get(path)
        assert status == 404, path
        assert body["success"] is False
    status, body = await other.get("/api/analytics/comparison")
    assert status == 200 and [c["agentSlug"] for c in body["comparisons"]] == ["other-bot"]
    status, text = await csv_export(other, "appointments")
    assert status == 200 and text.strip().splitlines() == [",".join(insights.EXPORT_HEADERS["appointments"])]


async def test_endpoints_answer_the_seed_shapes(api: Api, client: TestClient, clock: FrozenClock) -> None:
    manager = client.server.app[CONTEXT].dialogue
    await book_by_chat(Chat(manager))
    created = await api.post("/api/bookings", booking_body("2026-03-04T09:00:00+00:00", phone="+14155550109"))
    status, perf = await api.get("/api/analytics/agent/acme-bot/performance")
    assert status == 200
    assert set(perf) >= {
        "agentId",
        "performanceGrade",
        "conversationMetrics",
        "businessMetrics",
        "strengths",
        "improvementAreas",
    }
    assert set(perf["conversationMetrics"]) >= {
        "totalConversations",
        "averageConversationDuration",
        "averageResponseTime",
        "conversationCompletionRate",
        "customerSatisfactionAvg",
        "escalationRate",
    }
    assert set(perf["businessMetrics"]) >= {
        "totalRevenue",
        "conversionsGenerated",
        "conversionRate",
        "averageOrderValue",
        "appointmentsBooked",
        "appointmentCompletionRate",
        "noShowRate",
    }
    status, cust = await api.get(f"/api/analytics/customer/{created[1]['customer']['id']}/insight")
    assert status == 200
    assert cust["behavioralInsights"]["customerSegment"] == "new"
    assert set(cust) >= {
        "customerId",
        "profile",
        "engagementMetrics",
        "businessMetrics",
        "behavioralInsights",
        "journeyAnalysis",
    }
    assert cust["journeyAnalysis"]["stage"] == "decision"
    status, comp = await api.get("/api/analytics/comparison")
    assert status == 200 and set(comp["summary"]) == {
        "totalAgents",
        "avgSatisfaction",
        "totalRevenue",
        "avgConversionRate",
    }
    status, funnel = await api.get("/api/analytics/funnel", channel="web")
    assert status == 200 and [s["count"] for s in funnel["steps"]] == [1, 1, 1, 1, 1, 0]
    status, dash = await api.get("/api/analytics/dashboard/acme-bot", date_from="2026-03-02", date_to="2026-03-08")
    assert status == 200
    assert len(dash["dailyTrend"]) == 7 and dash["trends"]["totalConversations"] == 100.0
    assert len(dash["heatmap"]["conversations"]) == 7
    status, _ = await api.get("/api/analytics/funnel", date_from="2026-03-09", date_to="2026-03-01")
    assert status == 422


async def test_realtime_stream_receives_a_booking(api: Api) -> None:
    resp = await api.client.get(
        "/api/analytics/realtime/acme-bot", params={"max_events": "1", "poll": "0.2"}, headers=api.headers()
    )
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    created = await api.post("/api/bookings", booking_body("2026-03-02T09:00:00+00:00"))
    body = await asyncio.wait_for(resp.text(), timeout=10)
    assert "event: appointment_scheduled" in body
    assert created[1]["id"] in body


async def test_randomised_history_rollups_equal_a_recount(db: Database, settings: Settings, clock: FrozenClock) -> None:
    """Many customers on several channels booking, cancelling, completing, no-showing, over days."""
    manager: DialogueManager = manager_for(db, settings, clock)
    tenant_id = await tenant_of(db, "acme")
    rng = random.Random(20260302)
    booked: list[str] = []
    for n in range(10):
        chat = Chat(
            manager,
            sender=f"+4477009001{n:02d}" if n % 3 == 0 else f"visitor-{n}",
            channel=["web", "whatsapp", "telegram"][n % 3],
        )
        await chat.say(rng.choice(["hi", "hello there, this is great", "terrible service", "book"]))
        if rng.random() < 0.6:
            await chat.say("I'd like a check-up tomorrow at 11")
            await chat.say(rng.choice(["yes", "no"]))
        clock.advance(minutes=rng.randint(1, 300))
    for n in range(6):
        start = datetime(2026, 3, 9, 9, tzinfo=UTC) + timedelta(hours=n)
        out = await bookings.create(db, tenant_id, bookings.NewBooking("solo", start, "P", f"+1415555{n:04d}"), clock())
        booked.append(out.appointment.id)
    await bookings.cancel(db, tenant_id, booked[0], clock(), enforce_policy=False)
    await bookings.reschedule(
        db, tenant_id, booked[1], datetime(2026, 3, 10, 9, tzinfo=UTC), clock(), enforce_policy=False
    )
    clock.now = datetime(2026, 3, 9, 16, tzinfo=UTC)
    await bookings.mark(db, tenant_id, booked[2], Status.COMPLETED, clock())
    await bookings.mark(db, tenant_id, booked[3], Status.MISSED, clock())
    daily = await assert_rollups_match(db, tenant_id)
    assert sum(v.get("appt_booked", 0) for v in daily.values()) == 6
    assert sum(v.get("appt_rescheduled", 0) for v in daily.values()) == 1
    assert sum(v.get("conversations", 0) for v in daily.values()) == 10
    async with db.writing() as session:
        await insights.rebuild(session, tenant_id)
    assert await assert_rollups_match(db, tenant_id) == daily


async def test_system_performance_shows_the_business_open_admin_alerts_only(api: Any, clock: Any) -> None:
    from core.alerts import Alert, AlertState, Change, Severity
    from storage import alerts as alert_store

    db = api.client.server.app[CONTEXT].db
    acme, other = await tenant_of(db, "acme"), await tenant_of(db, "other")
    firing = [
        Alert(
            f"fp-{tenant}",
            tenant,
            "slow_response",
            Severity.WARNING,
            {},
            AlertState.FIRING,
            42.0,
            30.0,
            12,
            clock.now,
            clock.now,
            firing_since=clock.now,
        )
        for tenant in (acme, other)
    ]
    await alert_store.apply(db, [Change(None, a) for a in firing], clock.now)
    status, body = await api.get("/api/analytics/system/performance", date_from="2026-03-01", date_to="2026-03-31")
    assert status == 200
    assert [(a["rule"], a["state"]) for a in body["adminAlerts"]] == [("slow_response", "firing")]
    assert len(body["adminAlerts"]) == 1  # the other business's alert is not shown
