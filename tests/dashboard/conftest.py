"""Dashboard fixtures: users made through storage, a logged-in test client, and a small world of
conversations and bookings in two businesses (acme and other)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.context import CONTEXT
from bot.dialogue.manager import DialogueManager, Incoming
from storage import bookings, catalog, users
from storage import tables as t
from storage.engine import Database
from tests.conftest import FrozenClock, tenant_of

PASSWORD = "correct horse battery"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
LOGIN_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def make_user(
    database: Database,
    email: str,
    role: str,
    now: datetime,
    business: str | None = None,
    staff: str | None = None,
    password: str = PASSWORD,
) -> users.User:
    async with database.writing() as session:
        tenant_id = (await catalog.business_by_slug(session, business)).id if business else None
        staff_id = (await catalog.staff_row(session, tenant_id, staff)).id if staff and tenant_id else None
        return await users.create(
            session, email=email, password=password, role=role, now=now, tenant_id=tenant_id, staff_id=staff_id
        )


class Dashboard:
    """The real app through a test client, logged in as one user at a time (cookies in its jar)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    @property
    def db(self) -> Database:
        return self.client.server.app[CONTEXT].db

    def session_cookie(self) -> str | None:
        for cookie in self.client.session.cookie_jar:
            if cookie.key == "fd_session":
                return cookie.value
        return None

    async def login_form(self) -> str:
        resp = await self.client.get("/dashboard/login")
        assert resp.status == 200
        found = LOGIN_CSRF.search(await resp.text())
        assert found is not None
        return found.group(1)

    async def login(self, email: str, password: str = PASSWORD, *, expect: int = 303, fresh: bool = True) -> Any:
        if fresh:
            self.client.session.cookie_jar.clear()
        token = await self.login_form()
        resp = await self.client.post(
            "/dashboard/login",
            data={"email": email, "password": password, "csrf": token, "next": "/dashboard/conversations"},
            allow_redirects=False,
        )
        assert resp.status == expect, await resp.text()
        if expect == 303:
            page = await self.client.get("/dashboard/conversations")
            assert page.status == 200
            found = CSRF_META.search(await page.text())
            assert found is not None
            self.csrf = found.group(1)
        return resp

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        resp = await self.client.get(path, params=params, allow_redirects=False)
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()

    async def post(self, path: str, body: Any = None, *, csrf: str | None = None, **params: str) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf} if csrf != "" else {}
        resp = await self.client.post(path, json=body or {}, params=params, headers=headers, allow_redirects=False)
        return resp.status, await resp.json()


@dataclass
class World:
    acme_escalated: str  # conversation ids
    acme_with_ann: str  # a conversation of Ann's customer (not escalated)
    other_escalated: str
    ann_booking: str  # appointment ids
    bob_booking: str
    other_booking: str
    other_dead: int  # an outbox row the relay gave up on


async def dead_send(database: Database, conversation_id: str, now: datetime, *, error: str = "blocked") -> int:
    """An outbox row of this conversation as the relay leaves one it gave up on."""
    async with database.writing() as session:
        conv = await session.get(t.Conversation, conversation_id)
        assert conv is not None
        row = t.OutboxItem(
            tenant_id=conv.tenant_id,
            conversation_id=conv.id,
            agent_id=conv.agent_id,
            channel=conv.channel,
            recipient=conv.sender,
            text="Your appointment is confirmed.",
            payload={},
            idempotency_key=f"dead:{conv.id}:{now.isoformat()}",
            state="dead",
            attempts=1,
            next_attempt_at=now,
            last_error=error,
            possible_duplicate=False,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        return row.id


async def escalate(manager: DialogueManager, agent: str, sender: str) -> str:
    await manager.handle(Incoming(agent, "web", sender, text="hello"))
    result = await manager.handle(Incoming(agent, "web", sender, text="I want to talk to a human"))
    return result.conversation_id


async def build_world(database: Database, manager: DialogueManager, clock: FrozenClock) -> World:
    now = clock()
    acme, other = await tenant_of(database, "acme"), await tenant_of(database, "other")
    ann = await bookings.create(
        database,
        acme,
        bookings.NewBooking("checkup", datetime(2026, 3, 3, 10, 0, tzinfo=UTC), "Ann's Client", "+14155550101", "ann"),
        now,
    )
    bob = await bookings.create(
        database,
        acme,
        bookings.NewBooking("checkup", datetime(2026, 3, 3, 11, 0, tzinfo=UTC), "Bob's Client", "+14155550102", "bob"),
        now,
    )
    zed = await bookings.create(
        database,
        other,
        bookings.NewBooking("chat", datetime(2026, 3, 3, 10, 0, tzinfo=UTC), "Zed's Client", "+447700900123", "zed"),
        now,
    )
    acme_escalated = await escalate(manager, "acme-bot", "visitor-acme")
    other_escalated = await escalate(manager, "other-bot", "visitor-other")
    with_ann = (await manager.handle(Incoming("acme-bot", "web", "visitor-ann", text="hello"))).conversation_id
    async with database.writing() as session:
        await session.execute(
            update(t.Conversation).where(t.Conversation.id == with_ann).values(customer_id=ann.appointment.customer.id)
        )
    return World(
        acme_escalated,
        with_ann,
        other_escalated,
        ann.appointment.id,
        bob.appointment.id,
        zed.appointment.id,
        await dead_send(database, other_escalated, now),
    )


@pytest_asyncio.fixture
async def dash(client: TestClient, clock: FrozenClock) -> Dashboard:
    d = Dashboard(client)
    now = clock()
    await make_user(d.db, "admin@example.com", "admin", now)
    await make_user(d.db, "owner@acme.test", "owner", now, "acme")
    await make_user(d.db, "owner@other.test", "owner", now, "other")
    await make_user(d.db, "ann@acme.test", "staff", now, "acme", "ann")
    return d


@pytest_asyncio.fixture
async def world(dash: Dashboard, clock: FrozenClock) -> World:
    return await build_world(dash.db, dash.client.server.app[CONTEXT].dialogue, clock)
