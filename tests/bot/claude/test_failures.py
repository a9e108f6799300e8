"""When the model cannot answer: API errors after the SDK's retries, a hanging server, the budget.

The manager then lets the fallback engine answer (a stub here, standing in for the rules engine);
the conversation stays usable and nothing that already happened is done twice.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.dialogue.claude import ClaudeEngine, EngineUnavailable
from bot.dialogue.engine import Engine
from bot.dialogue.manager import DialogueManager, Incoming
from bot.settings import Settings
from core.booking import Status
from storage import tables as t
from storage.engine import Database
from tests.bot.claude.conftest import Harness, claude_settings, offer_at
from tests.conftest import FrozenClock
from tests.fakes.anthropic_server import FakeAnthropic, error, hang, overloaded, reply, server_error, tool_use


@pytest.mark.parametrize("failure", [overloaded, server_error], ids=["529", "500"])
async def test_api_errors_after_retries_fall_back(harness: Harness, fake: FakeAnthropic, failure: object) -> None:
    chat = harness.chat()
    assert callable(failure)
    fake.push(failure(), failure())  # max_retries=1: two attempts, both fail
    await chat.say("hello, do you have anything on Friday?")
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]
    assert chat.text == "(backup assistant) you said: hello, do you have anything on Friday?"
    assert harness.fallback.turns == ["hello, do you have anything on Friday?"]
    # the next turn goes to the model again, with what it missed as context
    fake.push(reply("Hi again! How can I help?"))
    await chat.say("are you there?")
    assert chat.text == "Hi again! How can I help?"
    sent = fake.requests[-1]
    assert "[Earlier messages you did not see" in sent.last_user_text()
    assert "backup assistant) you said: hello" in sent.last_user_text()
    assert [m["role"] for m in sent.messages] == ["user"]
    state = await chat.state()
    assert "stale" not in state["claude"] and len(state["claude"]["exchanges"]) == 1


async def test_errors_that_are_not_retried_fall_back_at_once(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    fake.push(error(400, "invalid_request_error", "bad request", retry_after_ms=None))
    await chat.say("hi")
    assert len(fake.requests) == 1
    assert chat.text.startswith("(backup assistant)")


async def test_a_hanging_server_times_out_and_falls_back(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock
) -> None:
    settings = claude_settings(sqlite_url, fake.url, request_timeout_seconds=0.3, max_retries=0)
    harness = Harness(db, settings, clock)
    chat = harness.chat()
    fake.push(hang(30))
    began = time.monotonic()
    await chat.say("hello?")
    assert time.monotonic() - began < 3
    assert chat.text == "(backup assistant) you said: hello?"
    fake.push(reply("Sorry for the wait. How can I help?"))
    await chat.say("hello again")
    assert chat.text == "Sorry for the wait. How can I help?"
    await harness.engine.aclose()


async def test_the_engines_own_deadline_beats_the_managers_timeout(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = claude_settings(sqlite_url, fake.url, request_timeout_seconds=10, max_retries=0)
    settings.dialogue.turn_timeout_seconds = 1.0
    harness = Harness(db, settings, clock)
    chat = harness.chat()
    fake.push(hang(30))
    began = time.monotonic()
    await chat.say("hello?")
    assert 0.7 < time.monotonic() - began < 3
    assert "engine claude failed on a turn: EngineUnavailable" in caplog.text  # its own 0.8 s, not the 1 s
    assert chat.text == "(backup assistant) you said: hello?"
    await harness.engine.aclose()


async def test_failure_after_booking_says_it_is_booked_and_never_books_twice(
    harness: Harness, fake: FakeAnthropic
) -> None:
    chat = harness.chat(sender="+14155550101", channel="whatsapp")
    fake.push(
        tool_use("save_contact", {"name": "Jane Roe"}, ("find_slots", {"service": "checkup", "date": "2026-03-03"})),
        reply("9:00 or 9:30?"),
    )
    await chat.say("check-up tomorrow morning, I'm Jane Roe")
    offer = offer_at(fake.requests[1], "2026-03-03T09:00")
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("Book 9:00 tomorrow for €50.00?"))
    await chat.say("9:00")
    fake.push(tool_use("book_slot", {"offer_id": offer}), overloaded(), overloaded())
    await chat.say("yes")
    assert chat.last[0].text.startswith("You're booked! Check-up with")
    assert "Tue 3 Mar, 9:00 AM" in chat.last[0].text
    assert harness.fallback.turns == []  # answered by the engine itself: the fallback knew nothing of it
    rows = await harness.appointments()
    assert len(rows) == 1 and rows[0].status == Status.SCHEDULED.value
    # the customer says yes again: the proposal is spent, so nothing is booked twice
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("..."))
    await chat.say("yes")
    result = fake.requests[-1].tool_results()[0]
    assert result["is_error"] is True
    assert len(await harness.appointments()) == 1
    # and the history sent to the model stayed valid (the fake checks tool_use/tool_result pairing)
    assert fake.unplayed == []


async def test_over_budget_the_fallback_answers_without_calling_the_api(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock
) -> None:
    settings = claude_settings(sqlite_url, fake.url, daily_token_budget=500)
    harness = Harness(db, settings, clock)
    chat = harness.chat()
    fake.push(reply("Hello!"))
    await chat.say("hi")
    assert chat.text == "Hello!"
    used = (await harness.usage())[0]
    assert used.input_tokens + used.output_tokens >= 500  # the fake counts the real prompt: over already
    await chat.say("can I book?")
    assert len(fake.requests) == 1
    assert chat.text == "(backup assistant) you said: can I book?"
    # a new UTC day, a new budget
    clock.advance(days=1)
    fake.push(reply("Good morning!"))
    await chat.say("hello")
    assert chat.text == "Good morning!"
    async with db.reading() as session:
        days = list(await session.scalars(select(t.LlmUsage.day).order_by(t.LlmUsage.day)))
    assert [d.isoformat() for d in days] == ["2026-03-02", "2026-03-03"]
    await harness.engine.aclose()


@pytest.fixture
def rules_fallback() -> Engine:
    rules = pytest.importorskip("bot.dialogue.rules")
    engine: Engine = rules.RulesEngine()
    return engine


async def test_over_budget_the_rules_engine_answers(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock, rules_fallback: Engine
) -> None:
    settings = claude_settings(sqlite_url, fake.url, daily_token_budget=0)
    engine = ClaudeEngine(settings)
    manager = DialogueManager(db=db, settings=settings, clock=clock, engine=engine, fallback=rules_fallback)
    result = await manager.handle(Incoming("acme-bot", "web", "visitor-1", text="what are your opening hours?"))
    assert fake.requests == []
    assert result.replies and result.replies[0].text
    assert "(backup" not in result.replies[0].text


async def test_no_key_no_client_and_a_clear_error(sqlite_url: str, fake: FakeAnthropic) -> None:
    settings: Settings = claude_settings(sqlite_url, fake.url)
    settings.anthropic.api_key = None
    engine = ClaudeEngine(settings)
    assert engine._client is None  # nothing is built until the engine is used
    with pytest.raises(EngineUnavailable):
        _ = engine.client


async def test_the_client_uses_the_settings(settings: Settings) -> None:
    engine = ClaudeEngine(settings)
    assert engine._client is None
    client = engine.client
    assert str(client.base_url).rstrip("/") == settings.anthropic.base_url
    assert client.max_retries == settings.anthropic.max_retries
    assert client.timeout == settings.anthropic.request_timeout_seconds
    await engine.aclose()
