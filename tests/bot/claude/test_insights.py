"""What a Claude conversation leaves in the insights store: intents from the tools it used (the
model reads the message; no reading of ours), and the tags the turn earned."""

from __future__ import annotations

from storage import tables as t
from tests.bot.claude.conftest import Harness
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_use


async def test_claude_turns_record_tool_intents_and_tags(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    fake.push(reply("Hello! How can I help?"))
    await chat.say("hello")
    fake.push(
        tool_use("find_slots", {"service": "checkup", "date": "2026-03-03"}),
        reply("Tomorrow I have 9:00, 9:30, 10:00… Which time suits you?"),
    )
    await chat.say("Can I book a check-up tomorrow?")
    async with harness.db.reading() as session:
        fact = await session.get(t.InsightConversation, chat.conversation_id)
    assert fact is not None
    assert [(i["intent"], i["source"], i["confidence"]) for i in fact.intents] == [
        ("book_appointment", "tool", 1.0)  # the greeting used no tool; building the prompt is not a question
    ]
    assert fact.tags == ["channel:web", "service:checkup"]
    assert fake.unplayed == []
