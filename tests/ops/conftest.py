"""Operations fixtures: scheduler jobs wired to the real dialogue manager, and a chat booking."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from bot.alerts import AdminSender, AlertDesk
from bot.automations import Automations
from bot.dialogue.engines import build_engines
from bot.dialogue.manager import DialogueManager, Incoming
from bot.scheduler import Jobs
from bot.settings import Settings
from storage import bookings
from storage import tables as t
from storage.engine import Database
from tests.conftest import FrozenClock, tenant_of

SECRET = b"test-link-secret"


def manager_for(db: Database, settings: Settings, clock: FrozenClock) -> DialogueManager:
    engine, fallback = build_engines(settings)
    return DialogueManager(db=db, settings=settings, clock=clock, engine=engine, fallback=fallback)


def jobs_for(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    worker: str,
    *,
    manager: DialogueManager | None = None,
    senders: Mapping[str, AdminSender] | None = None,
) -> Jobs:
    """One scheduler process's jobs (its own dialogue manager: its own in-process locks)."""
    manager = manager or manager_for(db, settings, clock)
    automations = Automations(db=db, settings=settings, clock=clock, pusher=manager, link_secret=SECRET, worker=worker)
    desk = AlertDesk(db=db, settings=settings, clock=clock, senders=dict(senders or {}))
    return Jobs(
        db=db, settings=settings, clock=clock, pusher=manager, automations=automations, alerts=desk, worker=worker
    )


@dataclass
class Booked:
    tenant_id: str
    appointment_id: str
    conversation_id: str
    sender: str


async def book_in_chat(
    db: Database,
    manager: DialogueManager,
    clock: FrozenClock,
    start: datetime,
    *,
    sender: str = "visitor-1",
    service: str = "solo",
    name: str = "Jane Roe",
    timezone: str | None = None,
) -> Booked:
    """A customer says hello on the web chat; a booking is made for that conversation."""
    result = await manager.handle(Incoming("acme-bot", "web", sender, text="hello", timezone=timezone))
    tenant_id = await tenant_of(db, "acme")
    outcome = await bookings.create(
        db,
        tenant_id,
        bookings.NewBooking(
            service, start, name, "+14155550101", conversation_id=result.conversation_id, actor="chat:web"
        ),
        clock(),
    )
    return Booked(tenant_id, outcome.appointment.id, result.conversation_id, sender)


async def system_messages(manager: DialogueManager, conversation_id: str) -> list[str]:
    return [m.text for m in await manager.messages(conversation_id) if m.author == "system"]


async def rate(db: Database, settings: Settings, clock: FrozenClock, score: int, count: int = 5) -> None:
    """``count`` new web conversations, now, each rated ``score`` (what the low-satisfaction rule reads)."""
    manager = manager_for(db, settings, clock)
    for i in range(count):
        result = await manager.handle(Incoming("acme-bot", "web", f"rater-{clock().timestamp()}-{i}", text="hello"))
        async with db.writing() as session:
            await session.execute(
                update(t.Conversation).where(t.Conversation.id == result.conversation_id).values(satisfaction=score)
            )
