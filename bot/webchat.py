"""Web chat: the page, the embeddable widget and the WebSocket that carries a conversation.

Routes (404 for an agent that is unknown or has no ``channels.web.enabled: true`` in config)::

    GET /chat/{agent}             the chat page (sets the visitor cookie)
    GET /chat/{agent}/widget.js   the embed: a floating button that opens the page in an iframe
    GET /chat/_/chat.js, chat.css the page's own assets
    GET /ws/chat/{agent}          the WebSocket below

Protocol (JSON text frames, one object each)::

    client connects   /ws/chat/{agent}?token=<visitor token>   (or with the HttpOnly cookie the page set)
    server → hello    {"type": "hello", "token": T, "conversation": bool, "name": agent name}
                      T is the token given when valid, else a new signed one; the page keeps it in
                      localStorage (the cookie ``fdchat_<agent>`` is set too, so either works)
    client → resume   {"type": "resume", "after": <last seq drawn>, "tz": "<IANA zone>", "locale": "en-GB"}
    server → message  {"type": "message", seq, direction, author, text, options, link, at}
                      every stored message with seq > after, in order, then live ones as they are
                      written (the customer's own messages too, so a second tab stays in sync);
                      the page drops seqs it has already drawn
    client → text     {"type": "text", "text": "..."}
    client → choice   {"type": "choice", "id": "<option id>", "label": "<option label>"}
    server → typing   {"type": "typing", "on": true} before the turn, {"type": "typing", "on": false} after it
    server → error    {"type": "error", "code": "too_large" | "malformed" | "<error code>" | "internal"}

A frame over 4096 bytes is answered ``too_large`` and nothing is stored (frames over 64 KiB close
the socket, code 1009); bad JSON or an unknown type is ``malformed``; text is cut to
``dialogue.max_text_chars``. Times inside the bot's texts are computed by the server in the zone the
page sends. Live messages are pushed when this process writes them (``DialogueManager.listen``);
while a socket is open the database is also polled for seq > watermark every ``POLL_SECONDS`` as a
backstop for messages written by another worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bot.context import context
from bot.dialogue.manager import DialogueManager, Incoming, StoredMessage
from bot.settings import AgentConfig, Settings
from channels import web as chat
from core.errors import FrontdeskError, NotFound

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
STATIC = Path(__file__).with_name("static")
AGENT = "{agent:[a-z0-9][a-z0-9-]{0,62}}"
POLL_SECONDS = 2.0
REPLAY_BATCH = 200
SOCKET_LIMIT = 64 * 1024  # aiohttp closes the socket above this; between 4 KiB and this we answer too_large
COOKIE_MAX_AGE = 365 * 24 * 3600
SOCKETS = web.AppKey("webchat_sockets", weakref.WeakSet[web.WebSocketResponse])

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: web.Application) -> None:
    """Add the routes, and close open chats on shutdown (a socket would otherwise hold it up)."""
    app[SOCKETS] = weakref.WeakSet()
    app.router.add_routes(routes)
    app.on_shutdown.append(_close_sockets)


async def _close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"server shutdown")


def web_agent(settings: Settings, slug: str) -> AgentConfig:
    """The configured agent with web chat switched on, else :class:`NotFound`."""
    for business in settings.businesses:
        for agent in business.agents:
            if agent.slug == slug and _enabled(agent.channels.get("web", {}).get("enabled")):
                return agent
    raise NotFound("no such chat")


def _enabled(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "1"})


def cookie_name(agent: str) -> str:
    return f"fdchat_{agent}"


def _set_cookie(request: web.Request, response: web.StreamResponse, agent: str, token: str) -> None:
    secure = request.secure or context(request).settings.server.public_url.startswith("https://")
    response.set_cookie(
        cookie_name(agent),
        token,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


# ----- page and assets -----------------------------------------------------------------------
@routes.get("/chat/_/chat.js")
async def script(request: web.Request) -> web.StreamResponse:
    return _asset("chat.js", "application/javascript")


@routes.get("/chat/_/chat.css")
async def stylesheet(request: web.Request) -> web.StreamResponse:
    return _asset("chat.css", "text/css")


def _asset(name: str, content_type: str) -> web.FileResponse:
    response = web.FileResponse(
        STATIC / name, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )
    response.content_type = content_type
    response.charset = "utf-8"
    return response


@routes.get(f"/chat/{AGENT}")
async def page(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    slug = request.match_info["agent"]
    web_agent(ctx.settings, slug)
    response = web.FileResponse(STATIC / "chat.html", headers=PAGE_HEADERS)
    response.content_type = "text/html"
    response.charset = "utf-8"
    current = request.cookies.get(cookie_name(slug))
    if chat.verify_visitor(ctx.visitor_secret, slug, current) is None:
        _set_cookie(request, response, slug, chat.sign_visitor(ctx.visitor_secret, slug, chat.new_visitor_id()))
    return response


@routes.get(f"/chat/{AGENT}/widget.js")
async def widget(request: web.Request) -> web.StreamResponse:
    web_agent(context(request).settings, request.match_info["agent"])
    return web.Response(
        text=WIDGET_JS,
        content_type="application/javascript",
        headers={
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


# The embed. It finds the chat page next to its own URL, so the file is the same for every agent
# and nothing is interpolated into it.
WIDGET_JS = """\
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src || window.__frontdeskChat) { return; }
  window.__frontdeskChat = true;
  var chatUrl = script.src.replace(/\\/widget\\.js(?:[?#].*)?$/, "");
  var label = script.getAttribute("data-label") || "Chat with us";
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var open = false;
  var frame = null;
  var button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "frontdesk-chat-frame");
  var b = button.style;
  b.position = "fixed"; b.bottom = "20px"; b[side] = "20px"; b.zIndex = "2147483000";
  b.padding = "12px 18px"; b.border = "0"; b.borderRadius = "999px"; b.cursor = "pointer";
  b.background = "#1f6feb"; b.color = "#fff"; b.font = "600 15px system-ui, sans-serif";
  b.boxShadow = "0 4px 14px rgba(0,0,0,.25)";
  button.addEventListener("click", function () {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = "frontdesk-chat-frame";
      frame.src = chatUrl;
      frame.title = label;
      var f = frame.style;
      f.position = "fixed"; f.bottom = "76px"; f[side] = "20px"; f.zIndex = "2147483000";
      f.width = "min(380px, calc(100vw - 40px))"; f.height = "min(600px, calc(100vh - 110px))";
      f.border = "1px solid #d9dee7"; f.borderRadius = "12px"; f.background = "#fff";
      f.boxShadow = "0 8px 30px rgba(0,0,0,.25)";
      document.body.appendChild(frame);
    }
    open = !open;
    frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.textContent = open ? "Close chat" : label;
  });
  function mount() { document.body.appendChild(button); }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
"""


# ----- the WebSocket -------------------------------------------------------------------------
@routes.get(f"/ws/chat/{AGENT}")
async def websocket(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    slug = request.match_info["agent"]
    agent = web_agent(ctx.settings, slug)
    secret = ctx.visitor_secret
    cookie = request.cookies.get(cookie_name(slug))
    visitor = chat.verify_visitor(secret, slug, request.query.get("token")) or chat.verify_visitor(secret, slug, cookie)
    if visitor is None:
        visitor = chat.new_visitor_id()
    token = chat.sign_visitor(secret, slug, visitor)

    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=SOCKET_LIMIT)
    if token != cookie:
        _set_cookie(request, ws, slug, token)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    session = ChatSocket(ws, ctx.dialogue, slug, visitor, ctx.settings.dialogue.max_text_chars)
    try:
        await session.run(token, agent.name)
    finally:
        sockets.discard(ws)
    return ws


class ChatSocket:
    """One open socket: a reader that runs turns, and a pump that sends what was stored after the watermark."""

    def __init__(self, ws: web.WebSocketResponse, manager: DialogueManager, agent: str, visitor: str, max_text: int):
        self.ws = ws
        self.manager = manager
        self.agent = agent
        self.visitor = visitor
        self.max_text = max_text
        self.conversation_id: str | None = None
        self.watermark = 0
        self.resumed = False
        self.timezone: str | None = None
        self.locale: str | None = None
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    async def run(self, token: str, name: str) -> None:
        existing = await self.manager.conversation_for(self.agent, chat.NAME, self.visitor)
        if existing is not None:
            self._subscribe(existing)
        await self.send(chat.hello_frame(token, existing is not None, name))
        pump = asyncio.create_task(self._pump())
        try:
            await self._read()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            if self._unsubscribe is not None:
                self._unsubscribe()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self._frame(message.data)
                elif message.type == WSMsgType.BINARY:
                    await self.send(chat.error_frame("malformed"))
                elif message.type == WSMsgType.ERROR:
                    break
        except ConnectionError:
            pass  # the page went away mid-answer; what was stored is replayed on its next resume

    async def _frame(self, raw: str) -> None:
        try:
            frame = chat.read_frame(raw, max_text=self.max_text)
        except chat.FrameError as exc:
            await self.send(chat.error_frame(exc.code))
            return
        if isinstance(frame, chat.Resume):
            async with self._send_lock:  # not in the middle of a pump's batch
                self.watermark = frame.after
            self.timezone = frame.timezone or self.timezone
            self.locale = frame.locale or self.locale
            self.resumed = True
            await self.sync()
            if self.conversation_id is None and frame.after == 0:
                await self.send(chat.message_frame(await self.manager.welcome(self.agent, self.locale)))
        elif isinstance(frame, chat.Text):
            await self._turn(frame.text, None)
        else:
            await self._turn(frame.label, frame.id)

    async def _turn(self, text: str, choice: str | None) -> None:
        self.resumed = True  # a page that talks without resuming gets the whole history
        await self.send(chat.typing_frame(True))
        incoming = Incoming(
            self.agent,
            chat.NAME,
            self.visitor,
            text=text,
            choice=choice,
            timezone=self.timezone,
            locale=self.locale,
        )
        try:
            result = await self.manager.handle(incoming)
            self._subscribe(result.conversation_id)
        except FrontdeskError as exc:
            await self.send(chat.error_frame(exc.code))
        except Exception:
            log.exception("web chat turn failed")
            await self.send(chat.error_frame("internal"))
        finally:
            await self.sync()
            await self.send(chat.typing_frame(False))

    def _subscribe(self, conversation_id: str) -> None:
        if self.conversation_id is None:
            self.conversation_id = conversation_id
            self._unsubscribe = self.manager.listen(conversation_id, self._notify)

    def _notify(self, conversation_id: str, message: StoredMessage) -> None:
        self._wake.set()

    async def _pump(self) -> None:
        """Live pushes wake it at once; otherwise it looks at the database every POLL_SECONDS."""
        while not self.ws.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                await self.sync()
            except (ConnectionError, RuntimeError):
                return  # the socket went away under us
            except Exception as exc:  # the database hiccuped: try again at the next tick
                log.warning("web chat sync failed: %s", type(exc).__name__)

    async def sync(self) -> None:
        """Send every stored message after the watermark, in order, each once."""
        if not self.resumed or self.ws.closed:
            return
        if self.conversation_id is None:
            found = await self.manager.conversation_for(self.agent, chat.NAME, self.visitor)
            if found is None:
                return
            self._subscribe(found)
        assert self.conversation_id is not None
        async with self._send_lock:
            while True:
                batch = await self.manager.messages(self.conversation_id, self.watermark, limit=REPLAY_BATCH)
                for stored in batch:
                    await self.ws.send_str(chat.encode(chat.message_frame(stored)))
                    self.watermark = stored.seq
                if len(batch) < REPLAY_BATCH:
                    return

    async def send(self, frame: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            await self.ws.send_str(chat.encode(frame))
