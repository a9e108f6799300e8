"""The one interface both dialogue engines implement."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.dialogue.desk import Desk
from channels.base import OutboundMessage


@dataclass(frozen=True, slots=True)
class Turn:
    """One customer message as an engine sees it."""

    text: str
    choice: str | None  # the id of a tapped quick reply, when the channel has buttons
    now: datetime
    seq: int  # the inbound message's number in the conversation: keys side effects of this turn
    first: bool  # the conversation has just started
    history: tuple[tuple[str, str], ...] = field(default=())  # recent (author, text), oldest first


class Engine(Protocol):
    name: str
    reads_history: bool  # False: the manager need not load ``Turn.history`` for it

    async def respond(self, turn: Turn, desk: Desk) -> list[OutboundMessage]:
        """Answer one turn, acting only through ``desk``; may mutate ``desk.state``."""

    async def aclose(self) -> None:
        """Release clients (HTTP connections) at shutdown."""
