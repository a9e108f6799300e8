"""What every channel speaks: the neutral inbound event, the neutral reply, capabilities, the protocol.

The dialogue produces :class:`OutboundMessage` values and never learns which channel it talks to;
each adapter renders them with its own limits (``Capabilities``) and reads its provider's wire
format into :class:`InboundEvent` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

EventKind = Literal["text", "choice", "status", "unsupported", "ignored"]
# text: the customer wrote; choice: tapped a quick reply/button/list row/postback (``choice`` = Option.id);
# status: a delivery receipt for one of our messages (``provider_message_id`` = our message's id,
# ``status`` = sent | delivered | read | failed); unsupported: media, stickers, locations... (the
# customer gets a polite "text only" answer); ignored: echoes, reactions, edits, unknown fields.


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
class Template:
    """A pre-approved template (WhatsApp) for messages sent outside the customer service window;
    channels without templates send ``OutboundMessage.text`` instead."""

    name: str
    language: str = "en"
    parameters: tuple[str, ...] = ()


# Why a message goes out, which decides what a channel may still send once its reply window has
# closed (Messenger's message tags): an answer to the customer, news about a booking they made, about
# a payment, or a person from the business typing.
PURPOSES = frozenset({"reply", "event_update", "purchase_update", "human"})


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    text: str
    options: tuple[Option, ...] = ()
    link: Link | None = None
    template: Template | None = None
    purpose: str = "reply"

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise ValueError(f"unknown message purpose {self.purpose!r}")

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if self.options:
            payload["options"] = [{"id": o.id, "label": o.label, "description": o.description} for o in self.options]
        if self.link:
            payload["link"] = {"url": self.link.url, "label": self.link.label}
        if self.template:
            payload["template"] = {
                "name": self.template.name,
                "language": self.template.language,
                "parameters": list(self.template.parameters),
            }
        if self.purpose != "reply":
            payload["purpose"] = self.purpose
        return payload

    @classmethod
    def from_payload(cls, text: str, payload: Mapping[str, Any]) -> OutboundMessage:
        options = tuple(Option(o["id"], o["label"], o.get("description", "")) for o in payload.get("options", ()))
        link = payload.get("link")
        tpl = payload.get("template")
        template = Template(tpl["name"], tpl.get("language", "en"), tuple(tpl.get("parameters", ()))) if tpl else None
        link_ = Link(link["url"], link["label"]) if link else None
        return cls(text, options, link_, template, payload.get("purpose") or "reply")


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
    order: int = 0  # the provider's ordering hint within one sender (Telegram update_id, Meta timestamp ms)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # extra keys the pipeline reads: "opt_out" (sms: "stop" | "start" | "help", from Twilio's
    # OptOutType), "callback_query_id" (telegram), "error" (a failed status's provider error text)


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_text: int = 4096
    max_buttons: int = 0  # inline buttons per message; 0 = numbered lines in the text
    button_label_max: int = 20
    max_list_rows: int = 0
    links: bool = True  # can show a tappable link button


class ChannelConfig(BaseModel):
    """What every channel's config block has: unknown keys refused, ids given as numbers taken as
    text, ``enabled``, and the keys it cannot run without (``registry.config_errors`` names them)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    enabled: bool = True

    required: ClassVar[tuple[str, ...]] = ()


class DeliveryError(Exception):
    """A send that did not go through. ``permanent`` ones are never retried (blocked, invalid
    recipient, outside WhatsApp's window without a template, other 4xx); transient ones (timeouts,
    connection errors, 408/429/5xx) are retried by the outbox relay, not before ``retry_after``
    seconds when the provider said so. ``reason`` is a short stable word for logs and the dashboard
    (never a phone number or a message body). ``parts_sent``: of a message split into several
    provider messages, how many the provider had accepted before this failure (a retry starts after
    them, so the customer never gets the first half twice)."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status
        self.parts_sent = 0


class Channel(Protocol):
    name: str  # whatsapp | messenger | instagram | sms | telegram
    target: str  # what the provider addresses: phone_number_id, page id, IG account id, E.164 number, agent slug
    capabilities: Capabilities

    def verify(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        """Raise ``Unauthorized`` (header missing) / ``Forbidden`` (wrong) unless the raw body is signed
        by the provider. ``url`` is the public URL the provider called (Twilio signs it)."""

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[InboundEvent]:
        """Every event in a (possibly batched) body; ``MalformedRequest`` when it cannot be read."""

    async def send(
        self,
        recipient: str,
        message: OutboundMessage,
        *,
        last_inbound_at: datetime | None = None,
        skip_parts: int = 0,
    ) -> str:
        """Deliver one message (split, rendered per capabilities); returns the provider's message id
        (the last part's). Raises :class:`DeliveryError` (with ``parts_sent``). ``last_inbound_at`` is
        when the customer last wrote (WhatsApp's 24-hour window); ``skip_parts`` are the parts an
        earlier attempt already delivered."""

    async def acknowledge(self, event: InboundEvent) -> None:
        """Provider-side housekeeping once an event is taken (Telegram: answerCallbackQuery); may no-op."""
