"""Payments test kit: a business with paid services, a recording notifier, and a desk wired to the
real database and, when asked, to the fake Stripe / Razorpay servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import prepare_database
from bot.payments.service import PaymentDesk
from channels.base import OutboundMessage
from core.booking import Appointment
from storage import bookings, migrate
from storage import tables as t
from storage.bookings import NewBooking
from storage.engine import Database, create_database
from tests.conftest import FrozenClock, demo_business, make_settings, other_business, tenant_of
from tests.fakes.razorpay_server import FakeRazorpay
from tests.fakes.stripe_server import FakeStripe

PUBLIC = "http://frontdesk.test"
LOCAL_SECRET = b"local-checkout-secret-for-tests-0123456789"
# Tuesday 2026-03-03 10:00 UTC: Ann works 09:00-17:00 (the demo business is in UTC).
SLOT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def paid_business(currency: str = "EUR", **consult: Any) -> dict[str, Any]:
    """The demo business plus "consult": 30 minutes with Ann only, 800.00 (minor units 80000),
    full refund 24 h before, half after."""
    acme = demo_business()
    acme["currency"] = currency
    acme["services"].append(
        {
            "slug": "consult",
            "name": "Consultation",
            "duration_minutes": 30,
            "price": 80000,
            "staff": ["ann"],
            "refund_full_hours": 24,
            "refund_partial_percent": 50,
            **consult,
        }
    )
    return acme


@dataclass
class Inbox:
    """The notifier the dialogue manager will provide: here it records what reached each conversation."""

    sent: list[tuple[str, str, OutboundMessage]] = field(default_factory=list)

    async def __call__(self, tenant_id: str, conversation_id: str, message: OutboundMessage) -> None:
        self.sent.append((tenant_id, conversation_id, message))

    def texts(self) -> list[str]:
        return [m.text for _, _, m in self.sent]


@dataclass
class Harness:
    db: Database
    desk: PaymentDesk
    inbox: Inbox
    clock: FrozenClock
    tenant: str
    http: httpx.AsyncClient

    async def conversation(self, sender: str = "visitor-1", timezone: str | None = None) -> str:
        async with self.db.writing() as session:
            agent = await session.scalar(select(t.Agent).where(t.Agent.slug == "acme-bot"))
            assert agent is not None
            row = t.Conversation(
                tenant_id=self.tenant,
                agent_id=agent.id,
                channel="web",
                sender=sender,
                timezone=timezone,
                started_at=self.clock(),
                last_activity_at=self.clock(),
            )
            session.add(row)
            await session.flush()
            return row.id

    async def hold(
        self, start: datetime = SLOT, *, i: int = 1, service: str = "consult", minutes: int | None = 15
    ) -> Appointment:
        req = NewBooking(service, start, f"Customer {i}", f"+1415555{i:04d}", hold_minutes=minutes)
        return (await bookings.create(self.db, self.tenant, req, self.clock())).appointment

    async def purchase(self, appointment_id: str) -> t.Purchase:
        async with self.db.reading() as session:
            row = await session.scalar(select(t.Purchase).where(t.Purchase.appointment_id == appointment_id))
        assert row is not None
        return row

    async def status(self, appointment_id: str) -> str:
        return (await bookings.get(self.db, self.tenant, appointment_id)).status.value

    async def history(self, purchase_id: str) -> list[tuple[str, str | None, str]]:
        async with self.db.reading() as session:
            rows = await session.scalars(
                select(t.PurchaseEvent).where(t.PurchaseEvent.purchase_id == purchase_id).order_by(t.PurchaseEvent.seq)
            )
            return [(e.kind, e.from_status, e.to_status) for e in rows]

    async def count(self, table: Any, *where: Any) -> int:
        async with self.db.reading() as session:
            return int(await session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def open_database(url: str, settings_businesses: list[dict[str, Any]], clock: FrozenClock, **extra: Any) -> Any:
    if not url.startswith("sqlite"):
        bootstrap = create_database(url, pool_size=0)
        try:
            await migrate.upgrade(bootstrap.engine)
        finally:
            await bootstrap.dispose()
    settings = make_settings(url, settings_businesses, **extra)
    return settings, await prepare_database(settings, clock)


@asynccontextmanager
async def harness(
    url: str,
    clock: FrozenClock,
    *,
    provider: str = "local",
    stripe: FakeStripe | None = None,
    stripe_url: str | None = None,
    razorpay: FakeRazorpay | None = None,
    razorpay_url: str | None = None,
    business: dict[str, Any] | None = None,
) -> AsyncIterator[Harness]:
    payments: dict[str, Any] = {"provider": provider, "hold_minutes": 15}
    if stripe is not None:
        payments["stripe"] = {
            "secret_key": stripe.secret_key,
            "webhook_secret": stripe.webhook_secret,
            "api_base_url": stripe_url,
        }
    if razorpay is not None:
        payments["razorpay"] = {
            "key_id": razorpay.key_id,
            "key_secret": razorpay.key_secret,
            "webhook_secret": razorpay.webhook_secret,
            "api_base_url": razorpay_url,
        }
    settings, db = await open_database(
        url, [business or paid_business(), other_business()], clock, payments=payments, server={"public_url": PUBLIC}
    )
    http = httpx.AsyncClient(timeout=5)
    inbox = Inbox()
    desk = PaymentDesk(db=db, settings=settings, clock=clock, http=http, notify=inbox, local_secret=LOCAL_SECRET)
    try:
        yield Harness(db, desk, inbox, clock, await tenant_of(db, "acme"), http)
    finally:
        await desk.drain()
        await http.aclose()
        await db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))
