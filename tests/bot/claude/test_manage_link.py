"""With the Claude engine too, the answer to a booking made in the turn carries the booking's own
page (its manage link), whatever the model wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest_asyncio

from bot.dialogue.manager import DialogueManager
from bot.links import ManageLinks, Verdict
from bot.payments.service import PaymentDesk, unwired_notify
from bot.settings import Settings
from core.booking import Status
from storage.engine import Database
from tests.bot.claude.conftest import Chat, Harness, offer_at
from tests.conftest import FrozenClock
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_use

LINKS = ManageLinks(b"k" * 32, "http://localhost:8080")


@pytest_asyncio.fixture
async def paying(db: Database, settings: Settings, clock: FrozenClock) -> AsyncIterator[Harness]:
    """The harness, its manager with a payment desk (which makes the links), as ``bot.app`` wires it."""
    made = Harness(db, settings, clock)
    async with httpx.AsyncClient() as http:
        desk = PaymentDesk(
            db=db, settings=settings, clock=clock, http=http, notify=unwired_notify, local_secret=b"l" * 32, links=LINKS
        )
        made.manager = DialogueManager(
            db=db, settings=settings, clock=clock, engine=made.engine, fallback=made.fallback, payments=desk
        )
        yield made
    await made.engine.aclose()


async def test_the_booked_answer_links_to_the_booking_page(
    paying: Harness, fake: FakeAnthropic, clock: FrozenClock
) -> None:
    chat: Chat = paying.chat()
    fake.push(tool_use("find_slots", {"service": "solo", "date": "2026-03-03"}), reply("9:00, 9:30, … Which one?"))
    await chat.say("A solo tomorrow, please")
    offer = offer_at(fake.requests[1], "2026-03-03T10:00")
    fake.push(
        tool_use("save_contact", {"name": "Jane Roe", "phone": "+1 415 555 0101"}, ("book_slot", {"offer_id": offer})),
        reply("Shall I book the solo tomorrow at 10:00?"),
    )
    await chat.say("10am. Jane Roe, +1 415 555 0101")
    assert chat.last[0].link is None  # a proposal: nothing booked yet
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("Done, see you tomorrow at 10!"))
    await chat.say("yes")

    (row,) = await paying.appointments()
    assert row.status == Status.SCHEDULED.value
    answer = chat.last[0]
    assert answer.text == "Done, see you tomorrow at 10!" and answer.link is not None
    url = urlsplit(answer.link.url)
    assert url.path == f"/manage/bookings/{row.id}"
    assert LINKS.check(row.id, parse_qs(url.query)["t"][0], clock()) is Verdict.OK
