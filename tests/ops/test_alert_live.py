"""Admin alerts through the live path: the real app (signed SMS webhooks, inbox worker, outbox relay
against a fake Twilio), the scheduler's own alert job (``Jobs.evaluate_alerts``, lease included)
on a real SQLite file, and admins reached through python-telegram-bot and the real Twilio adapter
on loopback fakes. Frozen clock: each evaluation runs at the instant the test names, as the
scheduler would run it every ``alerts.evaluation_seconds``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bot.app import JOBS, PIPELINE, Pipeline, create_app
from bot.context import CONTEXT
from bot.dialogue.manager import Incoming
from bot.scheduler import Jobs
from bot.settings import Settings
from storage import alerts as store
from storage import tables as t
from storage.engine import Database
from tests.conftest import T0, FrozenClock, demo_business, tenant_of
from tests.fakes.telegram_server import TOKEN, FakeTelegram
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.ops.conftest import rate

PUBLIC = "https://desk.example.com"
SHOP_NUMBER = "+15550100200"  # the business's Twilio number: customers write to it
ALERTS_NUMBER = "+15550100300"  # the number admin alerts are sent from
ADMIN_PHONE = "+15550100100"
CHAT = "4242"


@dataclass
class Live:
    client: TestClient
    clock: FrozenClock
    customers: FakeTwilio  # the business's SMS provider
    admin_sms: FakeTwilio  # the alerts' SMS account
    telegram: FakeTelegram
    settings: Settings

    @property
    def db(self) -> Database:
        return self.client.app[CONTEXT].db

    @property
    def jobs(self) -> Jobs:
        return self.client.app[JOBS]

    @property
    def pipeline(self) -> Pipeline:
        return self.client.app[PIPELINE]

    async def sms(self, sender: str, text: str) -> None:
        """A customer's SMS, as Twilio posts it (signed for the public URL)."""
        params = [("MessageSid", f"SM{abs(hash((sender, text, self.clock().isoformat()))):032d}")]
        params += [("From", sender), ("To", SHOP_NUMBER), ("Body", text)]
        raw, headers = self.customers.inbound(f"{PUBLIC}/webhooks/sms", params)
        resp = await self.client.post("/webhooks/sms", data=raw, headers={**headers, "X-Forwarded-Proto": "https"})
        assert resp.status == 200

    async def web(self, sender: str, text: str) -> None:
        await self.client.app[CONTEXT].dialogue.handle(Incoming("acme-bot", "web", sender, text=text))

    async def evaluate_at(self, **since_t0: float) -> None:
        """The scheduler's alert job, run at T0 + ``since_t0``."""
        self.clock.now = T0 + timedelta(**since_t0)
        assert await self.jobs.evaluate_alerts()

    def telegram_texts(self) -> list[str]:
        return [str(m["text"]) for m in self.telegram.sent_to(CHAT)]

    def sms_bodies(self) -> list[str]:
        return [m["Body"] for m in self.admin_sms.messages if m["To"] == ADMIN_PHONE]

    async def alerts(self) -> dict[tuple[str, str], store.AlertView]:
        """(rule, scope as "k=v,…") → the business's alert."""
        found = await store.list_alerts(self.db, await tenant_of(self.db, "acme"))
        return {(a.rule, ",".join(f"{k}={v}" for k, v in sorted(a.scope.items()))): a for a in found}

    async def deliveries(self) -> list[store.Delivery]:
        """Every attempt, oldest first (attempts of one evaluation share their time)."""
        return sorted(await store.deliveries(self.db, await tenant_of(self.db, "acme")), key=lambda d: d.at)


Start = Callable[..., Awaitable[Live]]


@pytest_asyncio.fixture
async def start(aiohttp_client: Any, sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Start]:
    customers, admin_sms, telegram = FakeTwilio(), FakeTwilio(), FakeTelegram()
    for fake in (customers, admin_sms, telegram):
        await fake.start()

    async def started(admin_channels: list[str], **alerts: Any) -> Live:
        business = demo_business()
        sms = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base_url": customers.base_url}
        business["agents"] = [
            {"slug": "acme-bot", "name": "Ada", "channels": {"sms": {**sms, "from_number": SHOP_NUMBER}}}
        ]
        settings = Settings.model_validate(
            {
                "database": {"url": sqlite_url},
                "server": {"public_url": PUBLIC},
                "businesses": [business],
                "testing": {"workers": False},
                "scheduler": {"enabled": False},
                "alerts": {
                    "telegram": {"bot_token": TOKEN, "api_base_url": telegram.base_url},
                    "sms": {**sms, "api_base_url": admin_sms.base_url, "from_number": ALERTS_NUMBER},
                    "admins": [
                        {"name": "Ops", "telegram_chat_id": CHAT, "phone": ADMIN_PHONE, "channels": admin_channels}
                    ],
                    **alerts,
                },
            }
        )
        client = await aiohttp_client(create_app(settings, clock=clock))
        return Live(client, clock, customers, admin_sms, telegram, settings)

    yield started
    for fake in (customers, admin_sms, telegram):
        await fake.close()


async def reply_times(db: Database, channel: str, seconds: float) -> None:
    """The bot's replies on ``channel`` took ``seconds`` (the frozen clock makes every reply instant)."""
    async with db.writing() as session:
        on_channel = select(t.Conversation.id).where(t.Conversation.channel == channel)
        await session.execute(
            update(t.Message)
            .where(t.Message.author == "bot", t.Message.conversation_id.in_(on_channel.scalar_subquery()))
            .values(response_ms=int(seconds * 1000))
        )


async def failing_calendar(live: Live, integration: str = "calendar") -> None:
    tenant = await tenant_of(live.db, "acme")
    for _ in range(3):
        await store.record_sync(live.db, tenant, integration, False, live.clock(), "timeout")


# ----------------------------------------------------------------------------- channel down


async def test_a_down_channel_fires_and_mutes_the_slow_responses_it_causes_until_it_resolves(start: Start) -> None:
    live = await start(["telegram"])
    live.customers.fail("/2010-04-01", 503, times=1000)  # Twilio is down for the business
    for i in range(10):
        await live.sms(f"+1415555{i:04d}", "hello")
        await live.web(f"visitor-{i}", "hello")
    await live.pipeline.worker.run_once()
    await live.pipeline.relay.run_once()
    async with live.db.reading() as session:
        rows = list(await session.scalars(select(t.OutboxItem)))
    assert len(rows) >= 10 and {r.channel for r in rows} == {"sms"}
    assert {(r.state, r.last_error) for r in rows if r.attempts} == {("pending", "unavailable")}  # retrying
    await reply_times(live.db, "sms", 120)
    await reply_times(live.db, "web", 120)

    await live.evaluate_at(minutes=0)
    alerts = await live.alerts()
    assert {key: a.state for key, a in alerts.items()} == {
        ("channel_down", "channel=sms"): "pending",
        ("slow_responses", "agent=acme-bot,channel=sms"): "pending",
        ("slow_responses", "agent=acme-bot,channel=web"): "pending",
    }
    await live.evaluate_at(minutes=5)  # channel_down holds for 5 min: firing; its group waits 30 s
    assert live.telegram_texts() == []
    await live.evaluate_at(minutes=5, seconds=30)
    (down,) = live.telegram_texts()
    assert down.startswith("[CRITICAL] 1 alert(s) firing for Acme Clinic")
    assert "Channel down (channel=sms): 100% > 50%" in down

    await live.evaluate_at(minutes=10)  # both slow_responses alerts fire now
    await live.evaluate_at(minutes=10, seconds=30)
    warning = live.telegram_texts()[-1]
    assert warning.startswith("[WARNING] 1 alert(s) firing for Acme Clinic")
    assert "Slow responses (agent=acme-bot, channel=web): 120 s > 60 s" in warning
    assert "channel=sms" not in warning  # inhibited: the same channel is down
    alerts = await live.alerts()
    assert alerts[("slow_responses", "agent=acme-bot,channel=sms")].state == "firing"  # muted, not stopped
    assert alerts[("slow_responses", "agent=acme-bot,channel=sms")].notify_count == 0

    live.customers.faults.clear()  # Twilio is back: the relay's retries go through
    live.clock.now = T0 + timedelta(minutes=11)
    await live.pipeline.relay.run_once()
    async with live.db.reading() as session:
        assert set(await session.scalars(select(t.OutboxItem.state))) == {"sent"}
    await live.evaluate_at(minutes=16)  # keep_firing_for (10 min) holds channel_down: still muted
    assert len(live.telegram_texts()) == 2

    await live.evaluate_at(minutes=21)
    resolved, resumed = live.telegram_texts()[2:]
    assert resolved.startswith("[RESOLVED] Acme Clinic: 1 alert(s) resolved")
    assert "Channel down (channel=sms): resolved after 16 min" in resolved
    assert resumed.startswith("[WARNING] 2 alert(s) firing for Acme Clinic")
    assert "Slow responses (agent=acme-bot, channel=sms): 120 s > 60 s" in resumed
    alerts = await live.alerts()
    assert alerts[("channel_down", "channel=sms")].state == "resolved"
    assert alerts[("slow_responses", "agent=acme-bot,channel=sms")].notify_count == 1
    assert {(d.channel, d.status) for d in await live.deliveries()} == {("telegram", "sent")}


async def test_queued_sends_behind_a_failing_one_and_refused_recipients_do_not_hide_a_down_channel(
    start: Start,
) -> None:
    """Two messages per customer: the second waits behind the first in its conversation and was
    never sent. And a customer who replied STOP is their refusal, not the channel's failure."""
    live = await start(["telegram"])
    for i in range(4):
        await live.sms(f"+1415555{i:04d}", "hello")
    await live.pipeline.worker.run_once()
    live.customers.fail("/2010-04-01", 503, times=1000)
    for i in range(4):
        await live.sms(f"+1415555{i:04d}", "what are your opening hours?")
    await live.pipeline.worker.run_once()
    await live.pipeline.relay.run_once()
    async with live.db.reading() as session:
        states = [(r.state, r.attempts) for r in await session.scalars(select(t.OutboxItem).order_by(t.OutboxItem.id))]
    assert states.count(("pending", 1)) == 4 and ("pending", 0) in states  # queued behind the failing ones
    await live.evaluate_at(minutes=0)
    down = (await live.alerts())[("channel_down", "channel=sms")]
    assert (down.state, down.value) == ("pending", 1.0)  # every send that was tried failed

    live.customers.faults.clear()
    live.customers.opted_out.update({"+14155550000", "+14155550001", "+14155550002"})
    live.clock.now = T0 + timedelta(minutes=1)
    for _ in range(5):
        await live.pipeline.relay.run_once()
    async with live.db.reading() as session:
        dead = list(await session.scalars(select(t.OutboxItem.last_error).where(t.OutboxItem.state == "dead")))
    assert dead and set(dead) == {"opted_out"}
    await live.evaluate_at(minutes=1)
    assert ("channel_down", "channel=sms") not in await live.alerts()  # the pending alert vanished


async def test_a_channel_that_stays_down_keeps_its_alert_while_old_messages_keep_failing(start: Start) -> None:
    """The window counts sends by when they were last tried, not when the message was written: a
    channel still failing the retries of messages queued half an hour ago is still down."""
    live = await start(["telegram"])
    relay = live.pipeline.relay
    relay.settings = relay.settings.model_copy(update={"max_attempts": 50, "backoff_cap_seconds": 120})
    live.customers.fail("/2010-04-01", 503, times=10_000)
    for i in range(6):
        await live.sms(f"+1415555{i:04d}", "hello")
    await live.pipeline.worker.run_once()
    for minute in range(0, 31):  # the relay keeps retrying as the backoff allows, and keeps failing
        live.clock.now = T0 + timedelta(minutes=minute)
        await live.pipeline.relay.run_once()
        await live.evaluate_at(minutes=minute)
    down = (await live.alerts())[("channel_down", "channel=sms")]
    assert down.state == "firing" and down.value == 1.0
    async with live.db.reading() as session:
        rows = list(await session.scalars(select(t.OutboxItem).where(t.OutboxItem.attempts > 0)))
    assert rows and all(r.created_at == T0 for r in rows)  # written half an hour ago
    assert max(r.attempted_at for r in rows if r.attempted_at) >= T0 + timedelta(minutes=20)


# ----------------------------------------------------------------------------- quiet hours


QUIET_IN_KOLKATA = {"start": "13:00", "end": "14:30", "timezone": "Asia/Kolkata"}  # T0 is 13:30 there


async def test_quiet_hours_hold_a_warning_until_they_end_and_let_a_critical_through(start: Start) -> None:
    live = await start(["telegram"], quiet_hours=QUIET_IN_KOLKATA)
    await rate(live.db, live.settings, live.clock, 1)  # low satisfaction: a warning
    await failing_calendar(live)  # sync failure: critical
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)
    (critical,) = live.telegram_texts()
    assert critical.startswith("[CRITICAL]") and "Sync failure (integration=calendar)" in critical
    await live.evaluate_at(minutes=59)  # 14:29 in Kolkata: the warning is still held
    assert len(live.telegram_texts()) == 1
    assert [d.severity for d in await live.deliveries()] == ["critical"]  # held, not tried and failed
    await live.evaluate_at(minutes=60)  # 14:30: the quiet hours are over
    warning = live.telegram_texts()[-1]
    assert warning.startswith("[WARNING] 1 alert(s) firing for Acme Clinic") and "Low satisfaction" in warning
    await live.evaluate_at(minutes=60, seconds=20)  # (the critical one repeats hourly, from 60:30)
    assert len(live.telegram_texts()) == 2


async def test_without_the_bypass_quiet_hours_hold_critical_messages_and_escalations_too(start: Start) -> None:
    quiet = {"start": "08:10", "end": "09:00", "timezone": "UTC", "bypass": []}
    live = await start(["telegram", "sms"], quiet_hours=quiet)
    await failing_calendar(live)
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)  # 08:00:30, before the quiet hours
    assert len(live.telegram_texts()) == 1
    await live.evaluate_at(minutes=16)  # unacknowledged for 15 min, but it is quiet: no SMS yet
    await live.evaluate_at(minutes=59)
    assert live.sms_bodies() == []
    await live.evaluate_at(minutes=60)
    (escalated,) = live.sms_bodies()
    assert escalated.startswith("[CRITICAL, not acknowledged] Acme Clinic")


async def test_quiet_hours_per_admin_override_the_global_ones(start: Start) -> None:
    """Night's own quiet hours (13:00-14:30 in Kolkata, i.e. 07:30-09:00 UTC) replace the global
    ones (08:00-08:20 UTC) that Day follows: held while both are quiet, then Day is told and Night,
    still quiet, is skipped."""
    night = {"name": "Night", "telegram_chat_id": "1111", "channels": ["telegram"], "quiet_hours": QUIET_IN_KOLKATA}
    day = {"name": "Day", "telegram_chat_id": "2222", "channels": ["telegram"]}
    quiet = {"start": "08:00", "end": "08:20", "timezone": "UTC"}
    live = await start(["telegram"], admins=[night, day], quiet_hours=quiet)
    await rate(live.db, live.settings, live.clock, 1)
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)
    await live.evaluate_at(minutes=19)
    assert live.telegram.messages == [] and await live.deliveries() == []  # quiet for everyone: held
    await live.evaluate_at(minutes=20)
    (told,) = live.telegram.sent_to("2222")
    assert str(told["text"]).startswith("[WARNING] 1 alert(s) firing for Acme Clinic")
    assert live.telegram.sent_to("1111") == []
    assert sorted((d.admin, d.status, d.error) for d in await live.deliveries()) == [
        ("Day", "sent", None),
        ("Night", "skipped", "quiet_hours"),
    ]
    await live.evaluate_at(minutes=61)  # the group was told: Night is not woken later either
    assert live.telegram.sent_to("1111") == []


# ----------------------------------------------------------------------------- SMS and escalation


async def test_an_alert_reaches_an_admin_by_sms_through_twilio(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    live = await start(["sms"])
    await rate(live.db, live.settings, live.clock, 1)
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)
    (form,) = live.admin_sms.messages  # accepted with the account's basic auth
    assert (form["To"], form["From"]) == (ADMIN_PHONE, ALERTS_NUMBER)
    assert form["Body"].startswith("[WARNING] 1 alert(s) firing for Acme Clinic")
    assert "Low satisfaction (agent=acme-bot): 1.00/5 < 3.00/5" in form["Body"]
    assert form["Body"].endswith(f"{PUBLIC}/dashboard/alerts")
    (delivery,) = await live.deliveries()
    assert (delivery.kind, delivery.channel, delivery.status, delivery.error) == ("firing", "sms", "sent", None)
    assert delivery.provider_message_id and delivery.provider_message_id.startswith("SM")
    assert ADMIN_PHONE not in caplog.text and ADMIN_PHONE.lstrip("+") not in caplog.text


async def test_an_sms_twilio_refuses_is_recorded_without_the_number_and_tried_again(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    for ours in ("bot", "channels", "storage"):  # (the database driver's own DEBUG chatter is not ours)
        caplog.set_level(logging.DEBUG, logger=ours)
    live = await start(["sms"])
    live.admin_sms.opted_out.add(ADMIN_PHONE)  # the admin once replied STOP to the alerts number
    await rate(live.db, live.settings, live.clock, 1)
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)
    await live.evaluate_at(seconds=90)
    attempts = await live.deliveries()
    assert [(d.channel, d.status, d.error) for d in attempts] == [("sms", "failed", "DeliveryError: opted_out")] * 2
    assert live.admin_sms.messages == []
    assert "alert delivery via sms failed: DeliveryError: opted_out" in caplog.text
    assert ADMIN_PHONE not in caplog.text and ADMIN_PHONE.lstrip("+") not in caplog.text
    live.admin_sms.opted_out.clear()
    await live.evaluate_at(seconds=150)
    assert len(live.sms_bodies()) == 1


async def test_an_unacknowledged_critical_alert_escalates_from_telegram_to_sms(start: Start) -> None:
    live = await start(["telegram", "sms"])
    await failing_calendar(live, "calendar")
    await failing_calendar(live, "payments")
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)
    (both,) = live.telegram_texts()
    assert both.startswith("[CRITICAL] 2 alert(s) firing") and live.sms_bodies() == []
    alerts = await live.alerts()
    payments = alerts[("sync_failure", "integration=payments")]
    await store.acknowledge(live.db, await tenant_of(live.db, "acme"), payments.id, "ops@example.com", live.clock())
    await live.evaluate_at(minutes=15, seconds=29)
    assert live.sms_bodies() == []
    await live.evaluate_at(minutes=15, seconds=30)  # 15 min after the message, nobody acknowledged calendar
    (escalated,) = live.sms_bodies()
    assert escalated.startswith("[CRITICAL, not acknowledged] Acme Clinic")
    assert "integration=calendar" in escalated and "integration=payments" not in escalated
    await live.evaluate_at(minutes=45)
    assert len(live.sms_bodies()) == 1  # the ladder has no third step
    kinds = [(d.kind, d.channel, d.status) for d in await live.deliveries()]
    assert kinds == [("firing", "telegram", "sent"), ("escalation", "sms", "sent")]
    calendar = (await live.alerts())[("sync_failure", "integration=calendar")]
    assert calendar.acknowledged_at is None


async def test_a_critical_alert_goes_on_to_sms_at_once_when_telegram_fails_and_a_warning_waits(
    start: Start,
) -> None:
    live = await start(["telegram", "sms"])
    live.telegram.blocked.add(CHAT)
    await failing_calendar(live)
    await rate(live.db, live.settings, live.clock, 1)
    await live.evaluate_at(minutes=0)
    await live.evaluate_at(seconds=30)
    (critical,) = live.sms_bodies()
    assert critical.startswith("[CRITICAL] 1 alert(s) firing for Acme Clinic")
    attempts = sorted((d.severity, d.channel, d.status) for d in await live.deliveries())
    assert attempts == [
        ("critical", "sms", "sent"),
        ("critical", "telegram", "failed"),
        ("warning", "telegram", "failed"),  # a warning is not worth an SMS: tried again next round
    ]
    await live.evaluate_at(seconds=90)
    assert len(live.sms_bodies()) == 1  # the critical group was told; only the warning is retried
    assert [(d.severity, d.channel) for d in (await live.deliveries())[3:]] == [("warning", "telegram")]
    # Nobody acknowledged: the escalation's next channel is SMS, which already reached the admin
    await live.evaluate_at(minutes=15, seconds=30)
    await live.evaluate_at(minutes=45)
    assert len(live.sms_bodies()) == 1
    assert not [d for d in await live.deliveries() if d.kind == "escalation"]
