"""A fake Telegram Bot API on loopback: ``/bot<token>/<method>`` with Telegram's envelope.

It answers ``getMe``, ``sendMessage`` and ``answerCallbackQuery`` (other methods answer
``{"ok": true, "result": true}``), accepts JSON, url-encoded and multipart bodies (python-telegram-bot's
``Bot(token, base_url=f"{url}/bot")`` posts forms whose values are JSON-encoded), and refuses like
Telegram: a wrong token is 401, a blocked chat 403 "bot was blocked by the user", an unknown chat 400
"chat not found", too long texts and callback data 400. Tests inject errors with :meth:`api_error`
(``{"ok": false, "error_code", "description", "parameters": {"retry_after"}}``), plain statuses with
``fail``, and hangs with ``hang``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.messaging import Recorded, Scripted, ScriptedAnswers, record
from tests.fakes.provider import Fault, LoopbackProvider

TOKEN = "123456789:AAFakeTelegramTokenForFrontdeskTests"
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Frontdesk",
    "username": "frontdesk_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


def error_body(code: int, description: str, *, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decoded(value: Any) -> Any:
    """Form values arrive as strings; python-telegram-bot JSON-encodes the structured ones."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass
class FakeTelegram(LoopbackProvider, ScriptedAnswers):
    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    blocked: set[str] = field(default_factory=set)  # chat ids that blocked the bot
    unknown: set[str] = field(default_factory=set)  # chat ids Telegram does not know
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # accepted sendMessage parameters
    answered: list[dict[str, Any]] = field(default_factory=list)  # answerCallbackQuery parameters
    _next_id: int = 1
    _server: TestServer | None = None

    @property
    def base_url(self) -> str:
        """What ``api_base_url`` is set to (our adapter appends ``/bot<token>/<method>``)."""
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    def api_error(self, code: int, description: str, *, retry_after: int | None = None, method: str = "") -> None:
        """The next call (of ``method``, when given) answers this Telegram error."""
        prefix = f"/bot{next(iter(self.tokens))}/{method}" if method and self.tokens else "/bot"
        self.answer_next(prefix, code, error_body(code, description, retry_after=retry_after))

    def sent_to(self, chat_id: str | int) -> list[dict[str, Any]]:
        return [m for m in self.messages if str(m.get("chat_id")) == str(chat_id)]

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._call)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(await record(request))
        early, late = self.faults_for(request.path)
        if early is not None:
            return web.json_response(error_body(early.status, "Internal Server Error"), status=early.status)
        scripted = await self.scripted(request.path)
        if scripted is not None:
            return scripted
        response = await handler(request)
        if late is not None:
            return web.json_response(error_body(late.status, "Internal Server Error"), status=late.status)
        return response

    async def _call(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if self.tokens and token not in self.tokens:
            return web.json_response(error_body(401, "Unauthorized"), status=401)
        params = {k: _decoded(v) for k, v in {**self.requests[-1].query, **self.requests[-1].params}.items()}
        if method == "getMe":
            return _ok(BOT_USER)
        if method == "sendMessage":
            return self._send_message(params)
        if method == "answerCallbackQuery":
            if not params.get("callback_query_id"):
                return _refuse(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            if len(str(params.get("text", ""))) > 200:
                return _refuse(400, "Bad Request: text is too long")
            self.answered.append(params)
            return _ok(True)
        return _ok(True)

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        chat = str(params.get("chat_id", ""))
        text = params.get("text")
        if not chat:
            return _refuse(400, "Bad Request: chat_id is empty")
        if chat in self.blocked:
            return _refuse(403, "Forbidden: bot was blocked by the user")
        if chat in self.unknown:
            return _refuse(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _refuse(400, "Bad Request: message text is empty")
        if _utf16(text) > 4096:
            return _refuse(400, "Bad Request: message is too long")
        markup = params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    return _refuse(400, "Bad Request: BUTTON_DATA_INVALID")
        self.messages.append(params)
        message_id = self._next_id
        self._next_id += 1
        chat_id: int | str = int(chat) if chat.lstrip("-").isdigit() else chat
        return _ok(
            {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": {"id": chat_id, "type": "private"},
                "date": int(time.time()),
                "text": text,
            }
        )


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _refuse(code: int, description: str) -> web.Response:
    return web.json_response(error_body(code, description), status=code)
