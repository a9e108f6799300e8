"""The Claude engine under the real dialogue manager, the real ``anthropic`` SDK and a fake Messages API.

The clock is frozen at Monday 2026-03-02 08:00 UTC; the Acme clinic (UTC, EUR) opens 09:00–17:00 on
weekdays; a check-up takes 30 minutes and costs €50.00 (5000 minor units).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.dialogue.claude import ClaudeEngine, TurnStats
from bot.dialogue.desk import Desk
from bot.dialogue.engine import Turn
from bot.dialogue.manager import DialogueManager, Incoming
from bot.settings import Settings
from channels.base import OutboundMessage
from storage import bookings
from storage import tables as t
from storage.engine import Database
from tests.conftest import FrozenClock, make_settings, tenant_of
from tests.fakes.anthropic_server import FakeAnthropic, Recorded

API_KEY = "sk-ant-test-key"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


def claude_settings(url: str, base_url: str, **anthropic: Any) -> Settings:
    conf: dict[str, Any] = {
        "base_url": base_url,
        "api_key": API_KEY,
        "model": "claude-test-model",
        "max_retries": 1,
        "request_timeout_seconds": 3.0,
        **anthropic,
    }
    return make_settings(url, anthropic=conf, dialogue={"turn_timeout_seconds": 8.0})


@pytest.fixture
def settings(sqlite_url: str, fake: FakeAnthropic) -> Settings:
    return claude_settings(sqlite_url, fake.url)


class StubFallback:
    """Stands in for the rules engine: says who answered, records the turns it saw."""

    name = "stub"
    reads_history = False

    def __init__(self) -> None:
        self.turns: list[str] = []

    async def respond(self, turn: Turn, desk: Desk) -> list[OutboundMessage]:
        self.turns.append(turn.text)
        return [OutboundMessage(f"(backup assistant) you said: {turn.text}")]


class Chat:
    """One customer talking to the acme agent through the dialogue manager."""

    def __init__(self, manager: DialogueManager, *, sender: str = "visitor-1", channel: str = "web") -> None:
        self.manager = manager
        self.sender = sender
        self.channel = channel
        self.last: list[OutboundMessage] = []
        self.conversation_id = ""

    async def say(self, text: str = "", choice: str | None = None, tz: str | None = None) -> list[OutboundMessage]:
        result = await self.manager.handle(
            Incoming("acme-bot", self.channel, self.sender, text=text, choice=choice, timezone=tz)
        )
        self.conversation_id = result.conversation_id
        self.last = [r.message for r in result.replies]
        return self.last

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.last)

    async def state(self) -> dict[str, Any]:
        async with self.manager.db.reading() as session:
            conv = await session.get(t.Conversation, self.conversation_id)
            assert conv is not None
            return dict(conv.state or {})

    async def outbound(self) -> list[str]:
        async with self.manager.db.reading() as session:
            rows = await session.scalars(
                select(t.Message.text).where(
                    t.Message.conversation_id == self.conversation_id, t.Message.direction == "out"
                )
            )
            return list(rows)


class Harness:
    """The engine, its fallback, the manager and what the engine reported per turn."""

    def __init__(self, db: Database, settings: Settings, clock: FrozenClock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.stats: list[TurnStats] = []
        self.engine = ClaudeEngine(settings, observer=self.stats.append)
        self.fallback = StubFallback()
        self.manager = DialogueManager(
            db=db, settings=settings, clock=clock, engine=self.engine, fallback=self.fallback
        )

    def chat(self, *, sender: str = "visitor-1", channel: str = "web") -> Chat:
        return Chat(self.manager, sender=sender, channel=channel)

    async def appointments(self) -> list[t.Appointment]:
        async with self.db.reading() as session:
            return list(await session.scalars(select(t.Appointment).order_by(t.Appointment.starts_at)))

    async def usage(self) -> list[t.LlmUsage]:
        async with self.db.reading() as session:
            return list(await session.scalars(select(t.LlmUsage)))

    async def book(self, start: str, name: str, phone: str, service: str = "checkup") -> str:
        """A booking made outside the chat (another customer, or this one on another day)."""
        tenant = await tenant_of(self.db, "acme")
        req = bookings.NewBooking(service, datetime.fromisoformat(start), name, phone)
        outcome = await bookings.create(self.db, tenant, req, self.clock())
        return outcome.appointment.id


@pytest_asyncio.fixture
async def harness(db: Database, settings: Settings, clock: FrozenClock) -> AsyncIterator[Harness]:
    made = Harness(db, settings, clock)
    yield made
    await made.engine.aclose()


def results(request: Recorded) -> list[dict[str, Any]]:
    return request.tool_results()


def offer_at(request: Recorded, start_prefix: str) -> str:
    """The offer_id of the offer starting at ``start_prefix`` in the last tool results the model got."""
    for result in request.tool_results():
        data = result.get("data") or {}
        for offer in data.get("offers", []) if isinstance(data, dict) else []:
            if offer["start"].startswith(start_prefix):
                return str(offer["offer_id"])
    raise AssertionError(f"no offer at {start_prefix} in {request.tool_results()}")
