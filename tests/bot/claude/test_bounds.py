"""Bounds on a turn: tool calls, model calls, stop reasons, customer text, remembered history."""

from __future__ import annotations

from bot.dialogue import catalogue
from bot.dialogue.claude import MAX_CUSTOMER_CHARS, MAX_EXCHANGES
from storage.engine import Database
from tests.bot.claude.conftest import Harness, claude_settings
from tests.conftest import FrozenClock
from tests.fakes.anthropic_server import FakeAnthropic, Recorded, Step, message, reply, text, tool, tool_use


def _greedy(request: Recorded) -> Step:
    """A model that always wants another tool, unless tools are switched off."""
    if request.body.get("tool_choice") == {"type": "none"}:
        return reply("Here is everything I know.")
    return tool_use("list_services", {})


async def test_tool_calls_per_turn_are_bounded(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock
) -> None:
    harness = Harness(db, claude_settings(sqlite_url, fake.url, max_tool_calls_per_turn=3), clock)
    chat = harness.chat()
    fake.script(_greedy)
    await chat.say("tell me everything")
    assert chat.text == "Here is everything I know."
    assert len(fake.requests) == 4
    assert [r.body.get("tool_choice") for r in fake.requests] == [None, None, None, {"type": "none"}]
    assert harness.stats[0].tool_calls == 3 and harness.stats[0].model_calls == 4
    await harness.engine.aclose()


async def test_parallel_calls_over_the_bound_are_refused(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock
) -> None:
    harness = Harness(db, claude_settings(sqlite_url, fake.url, max_tool_calls_per_turn=2), clock)
    chat = harness.chat()
    fake.push(message(*(tool("business_info", {}) for _ in range(5))), reply("Done."))
    await chat.say("info please")
    results = fake.requests[1].tool_results()
    assert [bool(r.get("is_error")) for r in results] == [False, False, True, True, True]
    assert "tool call limit" in results[2]["data"]["error"]
    assert fake.requests[1].body["tool_choice"] == {"type": "none"}
    await harness.engine.aclose()


async def test_a_model_that_ignores_tool_choice_none_gets_no_tools(
    db: Database, sqlite_url: str, fake: FakeAnthropic, clock: FrozenClock
) -> None:
    harness = Harness(db, claude_settings(sqlite_url, fake.url, max_tool_calls_per_turn=1), clock)
    chat = harness.chat()
    fake.push(tool_use("list_services", {}), tool_use("list_services", {}))
    await chat.say("services?")
    assert chat.text == catalogue.text("engine.failed")
    assert harness.stats[0].tool_calls == 1
    # the stored history is still valid: the next request passes the fake's tool pairing checks
    fake.push(reply("We offer check-ups."))
    await chat.say("services?")
    assert chat.text == "We offer check-ups."
    assert fake.unplayed == []
    await harness.engine.aclose()


async def test_stop_reasons(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    fake.push(message(stop_reason="refusal"))
    await chat.say("something the model refuses")
    assert chat.text == catalogue.text("help")
    fake.push(message(text("We open at nine and close at fi"), stop_reason="max_tokens"))
    await chat.say("hours?")
    assert chat.text == "We open at nine and close at fi"
    fake.push(
        message({"type": "tool_use", "id": "toolu_cut", "name": "find_slots", "input": {}}, stop_reason="max_tokens")
    )
    await chat.say("slots?")
    assert chat.text.startswith("(backup assistant)")  # nothing usable: the fallback engine answers
    fake.push(message(text("We're at 1 Main St."), stop_reason="pause_turn"))
    await chat.say("address?")
    assert chat.text == "We're at 1 Main St."
    fake.push(message(stop_reason="pause_turn"))
    await chat.say("address??")
    assert chat.text.startswith("(backup assistant)")
    fake.push(message({"type": "thinking", "thinking": "the customer greets", "signature": "sig=="}, text("Hi!")))
    await chat.say("hi")
    assert chat.text == "Hi!"
    fake.push(reply("Fine."))
    await chat.say("and?")
    replayed = fake.requests[-1].messages[-2]
    assert replayed["content"][0] == {"type": "thinking", "thinking": "the customer greets", "signature": "sig=="}
    assert fake.unplayed == []


async def test_customer_text_is_capped(harness: Harness, fake: FakeAnthropic) -> None:
    harness.settings.dialogue.max_text_chars = 10_000  # even when the manager lets more through
    chat = harness.chat()
    fake.push(reply("That's long."))
    await chat.say("x" * 9000)
    sent = fake.requests[0].last_user_text()
    assert sent.count("x") == MAX_CUSTOMER_CHARS


async def test_history_keeps_whole_exchanges_within_bounds(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    for n in range(MAX_EXCHANGES + 3):
        if n % 3 == 0:
            fake.push(tool_use("business_info", {}))  # some exchanges carry a tool round
        fake.push(reply(f"answer {n}"))
        harness.clock.advance(minutes=5)  # stay inside the per-sender rate limit
        await chat.say(f"question {n}")
    state = await chat.state()
    exchanges = state["claude"]["exchanges"]
    assert len(exchanges) == MAX_EXCHANGES
    assert all(ex[0]["role"] == "user" and ex[-1]["role"] == "assistant" for ex in exchanges)
    last = fake.requests[-1]
    # during the last turn the ten exchanges before it were kept: the oldest remembered one starts the request
    assert last.messages[0]["content"][0]["text"].endswith("question 2")
    assert len([m for m in last.messages if m["role"] == "user" and "question" in str(m["content"])]) == 11
    # ten whole exchanges (three with a tool round) and the current one, in its tool round
    assert len(last.messages) == 2 * 10 + 2 * 3 + 3
    assert fake.unplayed == []
