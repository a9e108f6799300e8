"""What the dialogue manager decides before any engine runs, through real turns on a real SQLite
file: the opt-out said in words is the STOP keyword, on every channel."""

from __future__ import annotations

import pytest

from bot.dialogue import catalogue
from bot.dialogue.manager import DialogueManager
from storage.engine import Database
from tests.bot.test_conversations_rules import Chat, conversation

CHANNELS = [("sms", "+447700900111"), ("whatsapp", "+447700900112"), ("web", "visitor-x"), ("telegram", "5550001")]
OPT_OUTS = [
    "please stop messaging me",
    "unsubscribe",
    "Stop sending me messages!",
    "don't text me again",
    "Please unsubscribe me from these reminders",
    "remove me from your list",
]


@pytest.mark.parametrize(("channel", "sender"), CHANNELS)
@pytest.mark.parametrize("words", OPT_OUTS)
async def test_an_opt_out_in_words_is_the_stop_keyword_on_every_channel(
    manager: DialogueManager, db: Database, channel: str, sender: str, words: str
) -> None:
    keyword = Chat(manager, sender=f"{sender}9", channel=channel)
    await keyword.say("STOP")
    chat = Chat(manager, sender=sender, channel=channel)
    await chat.say("hello")
    await chat.say(words)
    assert chat.text == keyword.text == catalogue.text("optout.confirmed", "en")  # the same confirmation
    assert chat.labels == []
    assert (await conversation(db, chat.conversation_id)).opted_out  # the same recording
    assert await chat.say("book a check-up tomorrow") == []  # and the same silence after it
    assert await chat.say(words) == []  # confirmed once
    await chat.say("START")
    assert "Welcome back" in chat.text
    assert not (await conversation(db, chat.conversation_id)).opted_out


NOT_OPT_OUTS = [
    "where do I stop my car",
    "is the clinic near the bus stop",
    "I'll stop by tomorrow at 10am",
    "I'll stop texting you now, thanks",
    "can I stop at the pharmacy after my check-up",
    "don't book Ann for me",
]


@pytest.mark.parametrize("words", NOT_OPT_OUTS)
async def test_stop_inside_an_ordinary_sentence_is_no_opt_out(
    manager: DialogueManager, db: Database, words: str
) -> None:
    chat = Chat(manager, sender="+447700900113", channel="sms")
    await chat.say(words)
    assert chat.last and "unsubscribed" not in chat.text
    assert not (await conversation(db, chat.conversation_id)).opted_out
    await chat.say("book a check-up tomorrow")
    assert chat.last, "the bot still answers"
