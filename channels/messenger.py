"""Facebook Messenger: Meta-signed ``page`` webhooks in, Send API ``/{page_id}/messages`` out.

Every ``entry[].messaging[]`` event is read (Meta batches them): a message is text, or a choice when
it carries a ``quick_reply`` payload, or unsupported when it carries attachments; a postback is a
choice; ``delivery.mids[]`` become delivered statuses; echoes of our own sends (``is_echo``: replying
to them loops forever), reads, reactions, edits, referrals, handover and standby events are ignored.
Replies are plain text (< 2000 characters) with up to 13 quick replies on the last part.

Instagram messaging speaks the same event format; :mod:`channels.instagram` reuses this class with
its own object kind, limits and credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from channels import delivery, meta
from channels.base import Capabilities, DeliveryError, InboundEvent, OutboundMessage
from channels.inbound import epoch_ms, identifier, items, mapping, moment, stable_id, string
from channels.text import link_line, numbered, truncate, utf16_len, with_tail

log = logging.getLogger(__name__)

MAX_QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20
MAX_PAYLOAD = 1000
_IGNORED_ATTACHMENTS = frozenset({"story_mention"})  # being mentioned in a story is not a message to answer

# Send API error codes (``error.code`` or ``error.error_subcode``); shared Graph codes live in channels.meta.
ERROR_CODES: dict[int, tuple[str, bool]] = {
    2018278: ("window_closed", True),  # code 10: sent outside the allowed window
    2018108: ("recipient_unavailable", True),  # the person is not available right now
    1545041: ("recipient_unavailable", True),
    2018001: ("recipient_unavailable", True),  # no matching user
    551: ("recipient_unavailable", True),  # this person isn't available right now
    613: ("rate_limited", False),
    1200: ("unavailable", False),  # temporary send message failure
}


class MessengerConfig(meta.MetaAppConfig):
    page_id: str = ""
    page_access_token: SecretStr = SecretStr("")

    required: ClassVar[tuple[str, ...]] = ("page_id", "page_access_token", "app_secret", "verify_token")


# The standard messaging window, and the message tags that may be sent after it, by purpose, with
# how long after the customer's last message each still may (reference/channels.md §2.3).
WINDOW = timedelta(hours=24)
MESSENGER_TAGS: Mapping[str, str] = {
    "event_update": "CONFIRMED_EVENT_UPDATE",
    "purchase_update": "POST_PURCHASE_UPDATE",
    "human": "HUMAN_AGENT",
}
TAG_WINDOWS = {"HUMAN_AGENT": timedelta(days=7)}


class MessengerChannel:
    name = "messenger"
    object_kind = "page"
    tags: ClassVar[Mapping[str, str]] = MESSENGER_TAGS
    capabilities = Capabilities(
        max_text=2000, max_buttons=MAX_QUICK_REPLIES, button_label_max=QUICK_REPLY_TITLE, max_list_rows=0, links=False
    )

    def __init__(
        self,
        config: MessengerConfig,
        *,
        agent: str,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.agent = agent
        self.target = config.page_id
        self._http = http
        self._clock = clock
        self._app_secret = config.app_secret
        self._verify_token = config.verify_token
        self._token = config.page_access_token
        self._url = f"{config.api_base_url.rstrip('/')}/{config.page_id}/messages"

    # ------------------------------------------------------------------ inbound
    def handshake(self, query: Mapping[str, str]) -> str:
        return meta.handshake(query, self._verify_token)

    def verify(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        meta.verify_signature(self._app_secret, body, headers)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[InboundEvent]:
        events: list[InboundEvent] = []
        for entry in meta.envelope(body, self.object_kind):
            entry_id = identifier(entry.get("id"))
            for event in items(entry.get("messaging")):
                events.extend(self._event(event, entry_id))
            for other in ("standby", "changes"):  # another app owns the thread; comments, mentions
                events.extend(
                    self._ignored(entry_id or "", stable_id(f"{self.name}-{other}", e)) for e in items(entry.get(other))
                )
        return events

    def _ignored(self, target: str, key: str, sender: str = "", order: int = 0) -> InboundEvent:
        return InboundEvent(self.name, target, sender, key, kind="ignored", order=order)

    def _event(self, event: dict[str, Any], entry_id: str | None) -> list[InboundEvent]:
        sender = identifier(mapping(event.get("sender")).get("id"))
        target = entry_id or identifier(mapping(event.get("recipient")).get("id")) or ""
        stamp = epoch_ms(event.get("timestamp"))
        order = stamp or 0
        sent_at = moment(stamp / 1000 if stamp is not None else None)
        fallback = self._ignored(target, stable_id(f"{self.name}-event", event), sender or "", order)
        if "message" in event:
            return [self._message(mapping(event.get("message")), sender, target, order, sent_at) or fallback]
        if "postback" in event:
            postback = mapping(event.get("postback"))
            payload = identifier(postback.get("payload"))
            if sender is None or payload is None:
                return [fallback]
            key = identifier(postback.get("mid")) or stable_id(f"{self.name}-postback", event)
            title = string(postback.get("title")) or payload
            return [self._inbound(target, sender, key, "choice", title, payload, order, sent_at)]
        if "delivery" in event:
            mids = [m for m in map(identifier, _list(mapping(event.get("delivery")).get("mids"))) if m]
            if not mids:
                return [fallback]  # only a watermark: nothing to attach it to
            return [
                InboundEvent(self.name, target, sender or "", mid, kind="status", status="delivered", order=order)
                for mid in mids
            ]
        return [fallback]  # read, reaction, message_edit, referral, optin, handover, ...

    def _message(
        self, message: dict[str, Any], sender: str | None, target: str, order: int, sent_at: datetime | None
    ) -> InboundEvent | None:
        mid = identifier(message.get("mid"))
        if mid is None or sender is None:
            return None
        if message.get("is_echo") is True:
            return self._ignored(target, mid, sender, order)  # our own send coming back
        if message.get("is_deleted") is True:
            return self._ignored(target, f"{mid}#deleted", sender, order)
        payload = identifier(mapping(message.get("quick_reply")).get("payload"))
        text = string(message.get("text"))
        if payload is not None:
            return self._inbound(target, sender, mid, "choice", text or payload, payload, order, sent_at)
        attachments = items(message.get("attachments"))
        if attachments and all(string(a.get("type")) in _IGNORED_ATTACHMENTS for a in attachments):
            return self._ignored(target, mid, sender, order)
        if text and text.strip():  # a text with a shared link carries a "fallback" attachment too
            return self._inbound(target, sender, mid, "text", text, None, order, sent_at)
        return self._inbound(target, sender, mid, "unsupported", "", None, order, sent_at)

    def _inbound(
        self,
        target: str,
        sender: str,
        key: str,
        kind: Any,
        text: str,
        choice: str | None,
        order: int,
        sent_at: datetime | None,
    ) -> InboundEvent:
        return InboundEvent(
            self.name, target, sender, key, kind=kind, text=text, choice=choice, order=order, sent_at=sent_at
        )

    # ------------------------------------------------------------------ outbound
    def _measure(self, text: str) -> int:
        """Messenger counts characters as JavaScript does."""
        return utf16_len(text)

    def _message_fields(self, recipient: str) -> dict[str, Any]:
        return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE"}

    def render(self, recipient: str, message: OutboundMessage) -> list[dict[str, Any]]:
        """Send API bodies: the text split to fit, quick replies on the last part."""
        quick = [
            {"content_type": "text", "title": truncate(o.label or o.id, QUICK_REPLY_TITLE), "payload": o.id}
            for o in message.options
        ]
        fits = len(quick) <= MAX_QUICK_REPLIES and all(0 < len(o.id) <= MAX_PAYLOAD for o in message.options)
        tails = [numbered(message.options)] if message.options and not fits else []
        if message.link is not None:
            tails.append(link_line(message.link))
        parts = with_tail(message.text, "\n\n".join(tails), self.capabilities.max_text, self._measure)
        if not parts[-1]:
            parts[-1] = "…"
        bodies = [{**self._message_fields(recipient), "message": {"text": part}} for part in parts]
        if quick and fits:
            bodies[-1]["message"]["quick_replies"] = quick
        return bodies

    def window_fields(self, message: OutboundMessage, last_inbound_at: datetime | None) -> dict[str, str]:
        """``messaging_type`` (and ``tag``) for sending ``message`` now. Inside 24 hours of the
        customer's last message anything goes (proactive news as ``UPDATE``); after that only a
        message tag that fits the message's purpose, or nothing (``window_closed``). Unknown
        ``last_inbound_at``: sent as a reply, and Meta decides."""
        since = None if last_inbound_at is None else self._clock() - last_inbound_at
        if since is None or since < WINDOW:
            proactive = message.purpose in ("event_update", "purchase_update")
            return {"messaging_type": "UPDATE" if proactive else "RESPONSE"}
        tag = self.tags.get(message.purpose)
        limit = TAG_WINDOWS.get(tag or "")
        if tag is None or (limit is not None and since >= limit):
            raise DeliveryError("window_closed", permanent=True)
        return {"messaging_type": "MESSAGE_TAG", "tag": tag}

    async def send(
        self,
        recipient: str,
        message: OutboundMessage,
        *,
        last_inbound_at: datetime | None = None,
        skip_parts: int = 0,
    ) -> str:
        fields = self.window_fields(message, last_inbound_at)
        bodies = [{**body, **fields} for body in self.render(recipient, message)]
        return await delivery.send_parts(bodies, skip_parts, self._post)

    async def _post(self, body: dict[str, Any]) -> str:
        answer = await meta.graph_post(self._http, self._url, self._token, body, ERROR_CODES)
        message_id = identifier(answer.get("message_id")) or ""
        if not message_id:
            raise DeliveryError("bad_response", permanent=True)
        return message_id

    async def acknowledge(self, event: InboundEvent) -> None:
        """Nothing to do: the webhook's 200 is the acknowledgement."""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
