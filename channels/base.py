"""What every channel speaks: the neutral inbound event, the neutral reply, capabilities, the protocol.

The dialogue produces :class:`OutboundMessage` values and never learns which channel it talks to;
each adapter renders them with its own limits (``Capabilities``) and reads its provider's wire
format into :class:`InboundEvent` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

EventKind = Literal["text", "choice", "status", "ignored"]


@dataclass(frozen=True, slots=True)
class Option:
    """A quick reply: ``id`` comes back when it is tapped (≤ 64 bytes, Telegram's callback limit)."""

    id: str
    label: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    label: str


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    text: str
    options: tuple[Option, ...] = ()
    link: Link | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if self.options:
            payload["options"] = [{"id": o.id, "label": o.label, "description": o.description} for o in self.options]
        if self.link:
            payload["link"] = {"url": self.link.url, "label": self.link.label}
        return payload

    @classmethod
    def from_payload(cls, text: str, payload: Mapping[str, Any]) -> OutboundMessage:
        options = tuple(Option(o["id"], o["label"], o.get("description", "")) for o in payload.get("options", ()))
        link = payload.get("link")
        return cls(text, options, Link(link["url"], link["label"]) if link else None)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One thing a provider told us. ``target`` says which of our agents it was addressed to
    (WhatsApp phone_number_id, page id, Twilio To number, Telegram path, web agent slug)."""

    channel: str
    target: str
    sender: str
    provider_message_id: str
    kind: EventKind = "text"
    text: str = ""
    choice: str | None = None  # the Option.id of a tapped quick reply
    sender_name: str | None = None
    sent_at: datetime | None = None
    status: str | None = None  # delivery status events: sent | delivered | read | failed
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_text: int = 4096
    max_buttons: int = 0  # inline buttons per message; 0 = numbered lines in the text
    button_label_max: int = 20
    max_list_rows: int = 0
    links: bool = True  # can show a tappable link button


class Channel(Protocol):
    name: str
    capabilities: Capabilities

    def verify(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        """Raise ``Unauthorized``/``Forbidden`` unless the raw body is signed by the provider."""

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[InboundEvent]:
        """Every event in a (possibly batched) body; ``MalformedRequest`` when it cannot be read."""

    async def send(self, recipient: str, message: OutboundMessage) -> str:
        """Deliver one message; returns the provider's message id."""
