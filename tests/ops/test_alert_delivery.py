"""Alert lifecycle through the database and python-telegram-bot to a fake Telegram Bot API, and
escalation of an unacknowledged critical alert to WhatsApp (a template, through the real adapter
against a fake Graph API). Frozen clock; evaluation driven directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from bot.alerts import AdminSender, AlertDesk, ChannelSender, TelegramSender
from bot.app import prepare_database
from bot.settings import Settings
from channels.whatsapp import WhatsAppChannel, WhatsAppConfig
from storage import alerts as store
from storage.engine import Database
from tests.conftest import FrozenClock, demo_business, make_settings, tenant_of
from tests.fakes.graph_server import FakeGraph
from tests.fakes.telegram_server import TOKEN, FakeTelegram
from tests.ops.conftest import rate

CHAT = "4242"
PHONE_ID = "1098765"


@pytest_asyncio.fixture
async def telegram_api() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(whatsapp={PHONE_ID: "wa-token"})
    await fake.start()
    yield fake
    await fake.close()


def alert_settings(url: str, telegram: FakeTelegram, **alerts: Any) -> Settings:
    return make_settings(
        url,
        [demo_business()],
        alerts={
            "telegram": {"bot_token": TOKEN, "api_base_url": telegram.base_url},
            "admins": [
                {"name": "Ops", "telegram_chat_id": CHAT, "phone": "+15550100100", "channels": ["telegram", "whatsapp"]}
            ],
            "group_wait_seconds": 30,
            "group_interval_seconds": 300,
            "ack_timeout_seconds": 900,
            **alerts,
        },
    )


@pytest_asyncio.fixture
async def stack(
    sqlite_url: str, telegram_api: FakeTelegram, graph: FakeGraph, clock: FrozenClock
) -> AsyncIterator[tuple[Database, AlertDesk, Settings]]:
    settings = alert_settings(sqlite_url, telegram_api)
    db = await prepare_database(settings, clock)
    http = httpx.AsyncClient(timeout=2.0)
    telegram = TelegramSender(TOKEN, telegram_api.base_url)
    whatsapp = WhatsAppChannel(
        WhatsAppConfig(
            phone_number_id=PHONE_ID,
            access_token="wa-token",
            app_secret="s",
            verify_token="v",
            api_base_url=graph.base_url,
        ),
        agent="alerts",
        http=http,
        clock=clock,
    )
    senders: dict[str, AdminSender] = {"telegram": telegram, "whatsapp": ChannelSender(whatsapp, "admin_alert")}
    yield db, AlertDesk(db=db, settings=settings, clock=clock, senders=senders), settings
    await telegram.aclose()
    await http.aclose()
    await db.dispose()


async def test_lifecycle_sends_one_firing_and_one_resolved_message(
    stack: tuple[Database, AlertDesk, Settings], telegram_api: FakeTelegram, clock: FrozenClock
) -> None:
    db, desk, settings = stack
    await rate(db, settings, clock, 1)
    assert await desk.evaluate() == []  # firing at once (for 0), but the group waits 30 s
    tenant = await tenant_of(db, "acme")
    (alert,) = await store.list_alerts(db, tenant)
    assert (alert.rule, alert.state, alert.value) == ("low_satisfaction", "firing", 1.0)
    clock.advance(seconds=30)
    (note,) = await desk.evaluate()
    assert note.kind == "firing"
    for _ in range(5):
        clock.advance(minutes=5)
        assert await desk.evaluate() == []  # unchanged: nothing new before the repeat interval
    await rate(db, settings, clock, 5, count=20)  # the mean recovers
    clock.advance(minutes=30)
    assert await desk.evaluate() == []  # keep_firing_for (1 h) holds it
    clock.advance(minutes=31)
    (done,) = await desk.evaluate()
    assert done.kind == "resolved"
    clock.advance(hours=2)
    assert await desk.evaluate() == []
    texts = [m["text"] for m in telegram_api.sent_to(CHAT)]
    assert len(texts) == 2
    assert texts[0].startswith("[WARNING] 1 alert(s) firing for Acme Clinic") and "Low satisfaction" in texts[0]
    assert texts[1].startswith("[RESOLVED]")
    deliveries = await store.deliveries(db, tenant)
    assert sorted((d.kind, d.channel, d.status) for d in deliveries) == [
        ("firing", "telegram", "sent"),
        ("resolved", "telegram", "sent"),
    ]
    (after,) = await store.list_alerts(db, tenant)
    assert after.state == "resolved" and after.notify_count == 1


async def test_repeat_interval_and_silence(
    stack: tuple[Database, AlertDesk, Settings], telegram_api: FakeTelegram, clock: FrozenClock
) -> None:
    db, desk, settings = stack
    tenant = await tenant_of(db, "acme")
    await rate(db, settings, clock, 1)
    await desk.evaluate()
    clock.advance(seconds=30)
    assert len(await desk.evaluate()) == 1
    clock.advance(hours=23)
    await rate(db, settings, clock, 1)  # still unhappy customers
    clock.advance(hours=1)
    (repeat,) = await desk.evaluate()  # low satisfaction repeats every 24 h
    assert repeat.kind == "repeat"
    await store.create_silence(
        db, tenant, {"rule": "low_satisfaction"}, clock(), clock() + timedelta(days=3), created_by="ops", now=clock()
    )
    clock.advance(hours=23)
    await rate(db, settings, clock, 1)
    clock.advance(hours=1)
    assert await desk.evaluate() == []  # silenced: neither repeated nor resolved
    assert len(telegram_api.sent_to(CHAT)) == 2


async def test_unacknowledged_critical_escalates_to_the_next_channel(
    stack: tuple[Database, AlertDesk, Settings], telegram_api: FakeTelegram, graph: FakeGraph, clock: FrozenClock
) -> None:
    db, desk, _ = stack
    tenant = await tenant_of(db, "acme")
    for _ in range(3):
        await store.record_sync(db, tenant, "calendar", False, clock(), "timeout")
    await desk.evaluate()
    clock.advance(seconds=30)
    (note,) = await desk.evaluate()
    assert note.severity.value == "critical"
    assert len(telegram_api.sent_to(CHAT)) == 1 and graph.sent == []
    clock.advance(minutes=14)
    await desk.evaluate()
    assert graph.sent == []
    clock.advance(minutes=1)
    await desk.evaluate()  # 15 minutes without an acknowledgement: WhatsApp, as a template
    (sent,) = graph.sent
    assert sent[1]["type"] == "template" and sent[1]["template"]["name"] == "admin_alert"
    (alert,) = await store.list_alerts(db, tenant, states=["firing"])
    await store.acknowledge(db, tenant, alert.id, "ops@example.com", clock())
    clock.advance(hours=1)
    await desk.evaluate()
    assert len(graph.sent) == 1  # acknowledged: the ladder stops (and there is no third channel)
    kinds = [(d.kind, d.channel, d.status) for d in await store.deliveries(db, tenant)]
    assert ("escalation", "whatsapp", "sent") in kinds


async def test_failed_delivery_is_recorded(
    stack: tuple[Database, AlertDesk, Settings], telegram_api: FakeTelegram, clock: FrozenClock
) -> None:
    db, desk, settings = stack
    tenant = await tenant_of(db, "acme")
    telegram_api.blocked.add(CHAT)
    await rate(db, settings, clock, 1)
    await desk.evaluate()
    clock.advance(seconds=30)
    assert await desk.evaluate() == []  # nobody got it: tried again next round
    (delivery,) = await store.deliveries(db, tenant)
    assert delivery.status == "failed" and delivery.error and "Forbidden" in delivery.error
    assert "4242" not in (delivery.error or "")


def test_config_rules_merge_with_defaults(tmp_path: Path) -> None:
    settings = Settings(alerts={"rules": {"low_satisfaction": {"threshold": 3.5, "min_ratings": 8}}})
    rule = settings.alerts.rules["low_satisfaction"]
    assert (rule.threshold, rule.min_volume, rule.keep_firing_for_seconds) == (3.5, 8, 3600)
    assert set(settings.alerts.rules) == {
        "slow_responses",
        "low_satisfaction",
        "conversion_drop",
        "failed_payments",
        "sync_failure",
        "channel_down",
    }
