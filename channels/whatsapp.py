"""WhatsApp Cloud API: Meta-signed webhooks in, Graph ``/{phone_number_id}/messages`` out.

Inbound: every ``entry[].changes[].value`` is read (Meta batches); ``messages[]`` become text,
choice (reply button, list row, template quick reply) or unsupported events; ``statuses[]`` become
status events for our own wamids; everything else (reactions, template/quality/account updates,
errors) is ``ignored``. Outbound: up to 3 options as reply buttons, up to 10 as a list, more as
numbered lines; free-form messages only inside the 24-hour customer service window, else the
message's template, else a permanent ``window_closed`` without calling the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from channels import delivery, meta
from channels.base import Capabilities, DeliveryError, InboundEvent, Option, OutboundMessage, Template
from channels.inbound import e164, epoch, identifier, items, mapping, moment, stable_id, string
from channels.text import link_line, numbered, split, truncate, utf16_len, with_tail

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
MAX_BUTTONS = 3
BUTTON_TITLE = 20
MAX_LIST_ROWS = 10
ROW_TITLE = 24
ROW_DESCRIPTION = 72
LIST_BUTTON = 20
INTERACTIVE_BODY = 1024
MAX_BUTTON_ID = 256
MAX_ROW_ID = 200
LIST_BUTTON_LABEL = "Choose"

_STATUSES = frozenset({"sent", "delivered", "read", "failed"})
_UNSUPPORTED = frozenset(
    {"image", "audio", "video", "document", "sticker", "location", "contacts", "unknown", "unsupported", "voice"}
)
# Graph error codes only WhatsApp uses (shared ones live in channels.meta).
ERROR_CODES: dict[int, tuple[str, bool]] = {
    131047: ("window_closed", True),  # re-engagement: more than 24 h since the customer wrote
    131026: ("undeliverable", True),  # not on WhatsApp, old app, blocked
    131051: ("unsupported", True),
    131030: ("not_allowed", True),  # recipient not in the test allow-list
    131048: ("spam_limited", True),
    131042: ("payment", True),
    132000: ("template", True),
    132001: ("template", True),
    132012: ("template", True),
    130429: ("rate_limited", False),  # throughput
    131056: ("rate_limited", False),  # pair rate limit
    131057: ("unavailable", False),  # throughput upgrade / maintenance
    131000: ("unavailable", False),
    131016: ("unavailable", False),
    4: ("rate_limited", False),
    80007: ("rate_limited", False),
    0: ("auth", True),
    190: ("auth", True),
}


class WhatsAppConfig(meta.MetaAppConfig):
    phone_number_id: str = ""
    access_token: SecretStr = SecretStr("")

    required: ClassVar[tuple[str, ...]] = ("phone_number_id", "access_token", "app_secret", "verify_token")


class WhatsAppChannel:
    name = "whatsapp"
    capabilities = Capabilities(
        max_text=4096, max_buttons=MAX_BUTTONS, button_label_max=BUTTON_TITLE, max_list_rows=MAX_LIST_ROWS, links=False
    )

    def __init__(
        self,
        config: WhatsAppConfig,
        *,
        agent: str,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.agent = agent
        self.target = config.phone_number_id
        self._http = http
        self._clock = clock
        self._url = f"{config.api_base_url.rstrip('/')}/{config.phone_number_id}/messages"

    # ------------------------------------------------------------------ inbound
    def handshake(self, query: Mapping[str, str]) -> str:
        return meta.handshake(query, self.config.verify_token)

    def verify(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        meta.verify_signature(self.config.app_secret, body, headers)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[InboundEvent]:
        events: list[InboundEvent] = []
        for entry in meta.envelope(body, "whatsapp_business_account"):
            entry_id = identifier(entry.get("id")) or ""
            for change in items(entry.get("changes")):
                events.extend(self._change(change, entry_id))
        return events

    def _change(self, change: dict[str, Any], entry_id: str) -> list[InboundEvent]:
        value = mapping(change.get("value"))
        metadata = mapping(value.get("metadata"))
        target = identifier(metadata.get("phone_number_id")) or entry_id
        if change.get("field") != "messages" or not (value.get("messages") or value.get("statuses")):
            # template / quality / account updates, account-level errors, fields we do not know
            return [self._ignored(target, stable_id("whatsapp-change", change))]
        contacts = items(value.get("contacts"))
        names = {identifier(c.get("wa_id")): string(mapping(c.get("profile")).get("name")) for c in contacts}
        ours = identifier(metadata.get("display_phone_number"))
        events = [self._message(m, target, names, ours) for m in items(value.get("messages"))]
        events.extend(self._status(s, target) for s in items(value.get("statuses")))
        return events

    def _ignored(self, target: str, key: str, sender: str = "", order: int = 0) -> InboundEvent:
        return InboundEvent(self.name, target, sender, key, kind="ignored", order=order)

    def _message(
        self, message: dict[str, Any], target: str, names: Mapping[str | None, str | None], ours: str | None
    ) -> InboundEvent:
        wamid = identifier(message.get("id"))
        raw_sender = identifier(message.get("from"))
        seconds = epoch(message.get("timestamp"))
        order = seconds * 1000 if seconds is not None else 0
        if wamid is None or raw_sender is None:
            return self._ignored(target, stable_id("whatsapp-message", message), order=order)
        sender = e164(raw_sender)
        kind = string(message.get("type"))
        if raw_sender == ours or kind in ("reaction", "system", "ephemeral", "request_welcome", "order"):
            return self._ignored(target, wamid, sender, order)  # echoes of our number, reactions, system notes
        common: dict[str, Any] = {
            "sender_name": names.get(raw_sender),
            "sent_at": moment(seconds),
            "order": order,
        }
        if kind == "text":
            text = string(mapping(message.get("text")).get("body")) or ""
            return InboundEvent(self.name, target, sender, wamid, kind="text", text=text, **common)
        choice = self._choice(message)
        if choice is not None:
            option_id, title = choice
            return InboundEvent(self.name, target, sender, wamid, kind="choice", text=title, choice=option_id, **common)
        if kind in _UNSUPPORTED or kind == "interactive" or kind == "button" or message.get("errors"):
            return InboundEvent(self.name, target, sender, wamid, kind="unsupported", **common)
        return self._ignored(target, wamid, sender, order)

    @staticmethod
    def _choice(message: dict[str, Any]) -> tuple[str, str] | None:
        """(option id, visible title) of a reply-button tap, list-row tap or template quick reply."""
        if message.get("type") == "interactive":
            interactive = mapping(message.get("interactive"))
            kind = interactive.get("type")
            if kind in ("button_reply", "list_reply"):
                reply = mapping(interactive.get(kind))
                option_id = identifier(reply.get("id"))
                if option_id is not None:
                    return option_id, string(reply.get("title")) or option_id
        if message.get("type") == "button":
            button = mapping(message.get("button"))
            payload = identifier(button.get("payload"))
            if payload is not None:
                return payload, string(button.get("text")) or payload
        return None

    def _status(self, status: dict[str, Any], target: str) -> InboundEvent:
        wamid = identifier(status.get("id"))
        state = string(status.get("status"))
        seconds = epoch(status.get("timestamp"))
        order = seconds * 1000 if seconds is not None else 0
        recipient = identifier(status.get("recipient_id"))
        sender = e164(recipient) if recipient else ""
        if wamid is None or state not in _STATUSES:
            return self._ignored(target, stable_id("whatsapp-status", status), sender, order)
        extra: dict[str, Any] = {}
        errors = items(status.get("errors"))
        if state == "failed" and errors:
            code = errors[0].get("code")
            title = string(errors[0].get("title")) or string(errors[0].get("message")) or "failed"
            extra["error"] = f"{code}: {title}" if isinstance(code, int) and not isinstance(code, bool) else title
        return InboundEvent(
            self.name,
            target,
            sender,
            wamid,
            kind="status",
            status=str(state),
            sent_at=moment(seconds),
            order=order,
            extra=extra,
        )

    # ------------------------------------------------------------------ outbound
    def window_open(self, last_inbound_at: datetime | None) -> bool:
        """Free-form messages are allowed for 24 hours after the customer last wrote."""
        return last_inbound_at is not None and self._clock() - last_inbound_at < WINDOW

    def render(self, recipient: str, message: OutboundMessage) -> list[dict[str, Any]]:
        """The request bodies for ``message`` inside the customer service window."""
        to = _wa_id(recipient)
        text = message.text
        if message.link is not None:
            text = f"{text}\n\n{link_line(message.link)}" if text.strip() else link_line(message.link)
        interactive = _interactive(message.options)
        tail = numbered(message.options) if message.options and interactive is None else ""
        parts = with_tail(text, tail, self.capabilities.max_text, utf16_len)
        preview = message.link is not None
        if interactive is None:
            return [_text_body(to, part, preview=preview) for part in parts]
        *before, last = parts
        head = split(last, INTERACTIVE_BODY, utf16_len)  # an interactive body holds less than a text
        bodies = [_text_body(to, part, preview=preview) for part in [*before, *head[:-1]]]
        interactive["body"] = {"text": head[-1] or "\u2026"}
        bodies.append(_envelope(to, {"type": "interactive", "interactive": interactive}))
        return bodies

    def render_template(self, recipient: str, template: Template) -> dict[str, Any]:
        """The body of a template message, the only kind allowed outside the window."""
        body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if template.parameters:
            body["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in template.parameters]}
            ]
        return _envelope(_wa_id(recipient), {"type": "template", "template": body})

    async def send(
        self,
        recipient: str,
        message: OutboundMessage,
        *,
        last_inbound_at: datetime | None = None,
        skip_parts: int = 0,
    ) -> str:
        if self.window_open(last_inbound_at):
            bodies = self.render(recipient, message)
        elif message.template is not None:  # one template message, whatever went out before
            bodies, skip_parts = [self.render_template(recipient, message.template)], 0
        else:
            raise DeliveryError("window_closed", permanent=True)
        return await delivery.send_parts(bodies, skip_parts, self._post)

    async def _post(self, body: dict[str, Any]) -> str:
        answer = await meta.graph_post(self._http, self._url, self.config.access_token, body, ERROR_CODES)
        sent = items(answer.get("messages"))
        message_id = (identifier(sent[0].get("id")) if sent else None) or ""
        if not message_id:
            raise DeliveryError("bad_response", permanent=True)
        return message_id

    async def acknowledge(self, event: InboundEvent) -> None:
        """Nothing to do: WhatsApp needs no acknowledgement beyond the webhook's 200."""


def _wa_id(recipient: str) -> str:
    """WhatsApp addresses numbers as digits without the plus."""
    return recipient.strip().removeprefix("+")


def _envelope(to: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **fields}


def _text_body(to: str, text: str, *, preview: bool) -> dict[str, Any]:
    return _envelope(to, {"type": "text", "text": {"preview_url": preview, "body": text}})


def _interactive(options: tuple[Option, ...]) -> dict[str, Any] | None:
    """Reply buttons for up to 3 options, a list for up to 10; None when only numbered lines fit."""
    if not options:
        return None
    if len(options) <= MAX_BUTTONS and all(0 < len(o.id) <= MAX_BUTTON_ID for o in options):
        titles = [truncate(o.label or o.id, BUTTON_TITLE) for o in options]
        if len(set(titles)) == len(titles):  # WhatsApp refuses duplicate button titles
            pairs = zip(options, titles, strict=True)
            buttons = [{"type": "reply", "reply": {"id": o.id, "title": t}} for o, t in pairs]
            return {"type": "button", "action": {"buttons": buttons}}
    if len(options) <= MAX_LIST_ROWS and all(0 < len(o.id) <= MAX_ROW_ID for o in options):
        rows = []
        for option in options:
            row = {"id": option.id, "title": truncate(option.label or option.id, ROW_TITLE)}
            if option.description:
                row["description"] = truncate(option.description, ROW_DESCRIPTION)
            rows.append(row)
        return {
            "type": "list",
            "action": {"button": truncate(LIST_BUTTON_LABEL, LIST_BUTTON), "sections": [{"rows": rows}]},
        }
    return None
