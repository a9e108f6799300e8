"""The dialogue tests' manager: the real dialogue manager on a real SQLite file and a frozen clock
(the conversation harness itself is ``tests.bot.test_conversations_rules.Chat``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.dialogue.manager import DialogueManager
from bot.settings import Settings
from storage.engine import Database
from tests.bot.test_conversations_rules import manager_for
from tests.conftest import FrozenClock


@pytest_asyncio.fixture
async def manager(db: Database, settings: Settings, clock: FrozenClock) -> AsyncIterator[DialogueManager]:
    yield manager_for(db, settings, clock)
