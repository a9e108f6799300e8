"""Telegram Bot API: updates in at ``/webhooks/telegram/{agent}``, ``sendMessage`` out.

Telegram signs nothing; it sends the ``secret_token`` given to ``setWebhook`` in
``X-Telegram-Bot-Api-Secret-Token``, compared here in constant time. Updates are read with
python-telegram-bot's own types, so real shapes are accepted as the library understands them; a
message is text, a callback query a choice (answered with ``answerCallbackQuery`` in
:meth:`TelegramChannel.acknowledge`), media unsupported, and edits, membership changes, channel
posts and everything else ignored. Replies are plain text (no ``parse_mode``: nothing the
dialogue writes can turn into markup) with options as an inline keyboard, or numbered lines when an
option id does not fit Telegram's 64-byte ``callback_data``.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx
import telegram
from pydantic import SecretStr

from channels import delivery
from channels.base import Capabilities, ChannelConfig, DeliveryError, InboundEvent, OutboundMessage
from channels.inbound import clean, header, identifier, load_json
from channels.text import numbered, truncate, utf16_len, with_tail
from core.errors import Forbidden, MalformedRequest, Unauthorized

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_CALLBACK_DATA = 64  # bytes
MAX_TEXT = 4096  # UTF-16 code units
BUTTON_LABEL = 64
_CHAT_ID = re.compile(r"-?[0-9]{1,20}")


class TelegramConfig(ChannelConfig):
    bot_token: SecretStr = SecretStr("")
    secret_token: SecretStr = SecretStr("")
    api_base_url: str = "https://api.telegram.org"

    required: ClassVar[tuple[str, ...]] = ("bot_token", "secret_token")


class TelegramChannel:
    name = "telegram"
    capabilities = Capabilities(
        max_text=MAX_TEXT, max_buttons=12, button_label_max=BUTTON_LABEL, max_list_rows=0, links=True
    )

    def __init__(
        self,
        config: TelegramConfig,
        *,
        agent: str,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.agent = agent
        self.target = agent  # one bot per agent: the webhook path names it
        self._http = http
        self._clock = clock

    # ------------------------------------------------------------------ inbound
    def verify(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        value = header(headers, SECRET_HEADER)
        if not value:
            raise Unauthorized("missing secret token", code="signature_missing")
        expected = self.config.secret_token.get_secret_value()
        if not expected or not hmac.compare_digest(value.encode("utf-8", "surrogatepass"), expected.encode()):
            raise Forbidden("invalid secret token", code="signature_invalid")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[InboundEvent]:
        data = load_json(body)
        if not isinstance(data, dict):
            raise MalformedRequest("an update is a JSON object")
        update_id = data.get("update_id")
        if isinstance(update_id, bool) or not isinstance(update_id, int) or not 0 <= update_id < 2**63:
            raise MalformedRequest("an update has an integer update_id")
        try:
            update = telegram.Update.de_json(data, None)
        except Exception:  # the library's readers raise anything on shapes it does not expect
            raise MalformedRequest("not a Telegram update") from None
        return [self._event(update, update_id)]

    def _event(self, update: telegram.Update, update_id: int) -> InboundEvent:
        key = str(update_id)
        ignored = InboundEvent(self.name, self.target, "", key, kind="ignored", order=update_id)
        if update.message is not None:
            message = update.message
            sender = _chat_id(message.chat)
            if sender is None:
                return ignored
            common: dict[str, Any] = {
                "sender_name": _first_name(message.from_user),
                "sent_at": message.date if isinstance(message.date, datetime) else None,
                "order": update_id,
            }
            if isinstance(message.text, str):
                return InboundEvent(
                    self.name, self.target, sender, key, kind="text", text=clean(message.text), **common
                )
            return InboundEvent(self.name, self.target, sender, key, kind="unsupported", **common)
        query = update.callback_query
        if query is not None:
            return self._callback(query, key, update_id, ignored)
        return ignored  # edited messages, my_chat_member, channel posts, polls, ...

    def _callback(self, query: telegram.CallbackQuery, key: str, update_id: int, ignored: InboundEvent) -> InboundEvent:
        query_id = query.id if isinstance(query.id, str) and query.id else None
        message = query.message
        chat = getattr(message, "chat", None) if message is not None else None
        sender = _chat_id(chat) if chat is not None else None
        if sender is None and query.from_user is not None:
            sender = identifier(query.from_user.id)
        extra = {"callback_query_id": clean(query_id)} if query_id else {}
        if sender is None or not isinstance(query.data, str) or not query.data:
            return InboundEvent(self.name, self.target, sender or "", key, kind="ignored", order=update_id, extra=extra)
        data = clean(query.data)
        title = _button_text(message, query.data) or data
        return InboundEvent(
            self.name,
            self.target,
            sender,
            key,
            kind="choice",
            text=title,
            choice=data,
            sender_name=_first_name(query.from_user),
            order=update_id,
            extra=extra,
        )

    # ------------------------------------------------------------------ outbound
    def render(self, recipient: str, message: OutboundMessage) -> list[dict[str, Any]]:
        """``sendMessage`` parameters: the text (split at 4096), an inline keyboard on the last part."""
        chat: int | str = int(recipient) if _CHAT_ID.fullmatch(recipient) else recipient
        keyboard: list[list[dict[str, str]]] = []
        tail = ""
        fits = all(0 < len(o.id.encode("utf-8", "surrogatepass")) <= MAX_CALLBACK_DATA for o in message.options)
        if message.options and fits and len(message.options) <= self.capabilities.max_buttons:
            keyboard = [
                [{"text": truncate(o.label or o.id, BUTTON_LABEL, utf16_len), "callback_data": o.id}]
                for o in message.options
            ]
        elif message.options:
            tail = numbered(message.options)
        if message.link is not None:
            label = truncate(message.link.label or message.link.url, BUTTON_LABEL, utf16_len)
            keyboard.append([{"text": label, "url": message.link.url}])
        parts = with_tail(message.text, tail, MAX_TEXT, utf16_len)
        if not parts[-1].strip():  # Telegram refuses an empty text; a lone keyboard still needs one
            parts[-1] = truncate(message.link.label if message.link else "…", MAX_TEXT) or "…"
        bodies: list[dict[str, Any]] = [{"chat_id": chat, "text": part} for part in parts]
        if keyboard:
            bodies[-1]["reply_markup"] = {"inline_keyboard": keyboard}
        return bodies

    async def send(
        self,
        recipient: str,
        message: OutboundMessage,
        *,
        last_inbound_at: datetime | None = None,
        skip_parts: int = 0,
    ) -> str:
        return await delivery.send_parts(self.render(recipient, message), skip_parts, self._post)

    async def _post(self, body: dict[str, Any]) -> str:
        result = await self._call("sendMessage", body)
        sent = result.get("message_id") if isinstance(result, dict) else None
        if isinstance(sent, bool) or not isinstance(sent, int):
            raise DeliveryError("bad_response", permanent=True)
        return str(sent)

    async def acknowledge(self, event: InboundEvent) -> None:
        """Answer a callback query so the client's button spinner stops. Best effort: a failure is
        logged (the reason only) and never raised, since the event itself is already taken."""
        query_id = event.extra.get("callback_query_id")
        if not query_id:
            return
        try:
            await self._call("answerCallbackQuery", {"callback_query_id": query_id})
        except DeliveryError as failure:
            log.warning("telegram answerCallbackQuery failed: %s", failure.reason)

    async def _call(self, method: str, params: Mapping[str, Any]) -> Any:
        token = self.config.bot_token.get_secret_value()
        url = f"{self.config.api_base_url.rstrip('/')}/bot{token}/{method}"
        response = await delivery.post(self._http, url, json=dict(params))
        answer = delivery.json_object(response)
        if response.status_code < 400 and answer.get("ok") is True:
            return answer.get("result")
        failure = _error(response.status_code, answer, response.headers)
        log.warning("telegram %s failed: %s (HTTP %s)", method, failure.reason, response.status_code)
        raise failure


def _error(status: int, answer: Mapping[str, Any], headers: Mapping[str, str]) -> DeliveryError:
    code = answer.get("error_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    description = answer.get("description")
    description = description.lower() if isinstance(description, str) else ""
    parameters = answer.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    if code == 429:
        wait = delivery.retry_after(parameters.get("retry_after")) or delivery.retry_after(headers.get("retry-after"))
        return DeliveryError("rate_limited", permanent=False, retry_after=wait, status=status)
    if code == 403:
        return DeliveryError("blocked", permanent=True, status=status)
    if code == 400 and "chat not found" in description:
        return DeliveryError("chat_not_found", permanent=True, status=status)
    if code == 400 and "migrate_to_chat_id" in parameters:
        return DeliveryError("chat_migrated", permanent=True, status=status)
    if code in (401, 404):
        return DeliveryError("auth", permanent=True, status=status)  # a wrong bot token
    if status < 400:  # 200 without ok: a broken answer, not a refusal
        return DeliveryError("bad_response", permanent=False, status=status)
    return delivery.from_status(status if status >= 400 else code, headers)


def _chat_id(chat: object) -> str | None:
    return identifier(getattr(chat, "id", None))


def _first_name(user: object) -> str | None:
    name = getattr(user, "first_name", None)
    return clean(name) if isinstance(name, str) and name else None


def _button_text(message: object, data: str) -> str | None:
    """The visible label of the tapped button, read from the keyboard the message carried."""
    markup = getattr(message, "reply_markup", None)
    rows = getattr(markup, "inline_keyboard", None)
    if not isinstance(rows, tuple | list):
        return None
    for row in rows:
        for button in row if isinstance(row, tuple | list) else ():
            if getattr(button, "callback_data", None) == data and isinstance(getattr(button, "text", None), str):
                return clean(button.text)
    return None
