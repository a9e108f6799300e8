"""The one application context, built once at startup and read by handlers from ``request.app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from bot.dialogue.manager import DialogueManager
from bot.metrics import Metrics
from bot.settings import Settings
from storage.engine import Database

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    metrics: Metrics
    link_secret: bytes  # signs customers' self-service cancel/reschedule tokens
    dialogue: DialogueManager
    visitor_secret: bytes  # signs web chat visitor ids


CONTEXT = web.AppKey("context", AppContext)


def context(request: web.Request) -> AppContext:
    return request.app[CONTEXT]
