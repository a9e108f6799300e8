"""A fake Meta Graph API on loopback: WhatsApp Cloud API, Messenger and Instagram Send API.

``POST /{version}/{node}/messages`` (the version segment is optional) with a bearer token. The node
decides who answers: a WhatsApp ``phone_number_id`` answers ``{"messaging_product": "whatsapp",
"contacts": [...], "messages": [{"id": "wamid..."}]}``; a Messenger page or Instagram account
answers ``{"recipient_id", "message_id"}``. Bodies are checked against the documented limits and
refused with Graph's error format (``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``), as are wrong tokens (code 190). Tests inject Graph errors with
:meth:`FakeGraph.graph_error`, plain statuses with ``fail``, and hangs with ``hang``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.messaging import Recorded, Scripted, ScriptedAnswers, record
from tests.fakes.provider import Fault, LoopbackProvider

VERSION = "v21.0"


def graph_error_body(
    code: int, message: str = "injected", *, subcode: int | None = None, kind: str = "OAuthException"
) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": secrets.token_hex(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass
class FakeGraph(LoopbackProvider, ScriptedAnswers):
    whatsapp: dict[str, str] = field(default_factory=dict)  # phone_number_id -> access token
    messenger: dict[str, str] = field(default_factory=dict)  # page id -> page access token
    instagram: dict[str, str] = field(default_factory=dict)  # IG account id -> access token
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (node, accepted body)
    _server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url(f"/{VERSION}"))

    def graph_error(
        self, code: int, *, subcode: int | None = None, status: int = 400, retry_after: int | None = None
    ) -> None:
        """The next send answers a Graph error ``code`` (and ``subcode``) with HTTP ``status``."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        self.answer_next("/", status, graph_error_body(code, subcode=subcode), headers=headers)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{node}/messages", self._messages)
        app.router.add_post("/{node}/messages", self._messages)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(await record(request))
        early, late = self.faults_for(request.path)
        if early is not None:
            return web.json_response(graph_error_body(2, "Service temporarily unavailable"), status=early.status)
        scripted = await self.scripted(request.path)
        if scripted is not None:
            return scripted
        response = await handler(request)
        if late is not None:
            return web.json_response(graph_error_body(2, "Service temporarily unavailable"), status=late.status)
        return response

    async def _messages(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        body = self.requests[-1].json
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expected = self.whatsapp.get(node) or self.messenger.get(node) or self.instagram.get(node)
        if expected is None:
            missing = f"Unsupported post request. Object with ID '{node}' does not exist"
            return _refuse(100, missing, "GraphMethodException")
        if token != expected:
            return _refuse(190, "Invalid OAuth access token - Cannot parse access token", status=401)
        if not isinstance(body, dict):
            return _refuse(100, "Invalid parameter")
        if node in self.whatsapp:
            problem = _whatsapp_problem(body)
            if problem:
                return _refuse(100, problem)
            self.sent.append((node, body))
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": f"wamid.{secrets.token_urlsafe(24)}"}],
                }
            )
        problem = _send_api_problem(body, instagram=node in self.instagram)
        if problem:
            return _refuse(100, problem)
        self.sent.append((node, body))
        answer = {"recipient_id": body["recipient"]["id"], "message_id": f"m_{secrets.token_urlsafe(24)}"}
        return web.json_response(answer)


def _refuse(code: int, message: str, kind: str = "OAuthException", *, status: int = 400) -> web.Response:
    return web.json_response(graph_error_body(code, message, kind=kind), status=status)


def _whatsapp_problem(body: dict[str, Any]) -> str | None:
    """What the Cloud API would refuse in a message body (the limits we render for)."""
    if body.get("messaging_product") != "whatsapp" or not isinstance(body.get("to"), str):
        return "(#100) The parameter messaging_product is required."
    kind = body.get("type")
    if kind == "text":
        text = body.get("text", {}).get("body", "")
        if not text or _utf16(text) > 4096:
            return "(#100) Param text['body'] must be at most 4096 characters long."
        return None
    if kind == "template":
        template = body.get("template", {})
        if not template.get("name") or not template.get("language", {}).get("code"):
            return "(#100) Template name and language are required"
        return None
    if kind != "interactive":
        return f"(#100) Unsupported message type {kind}"
    interactive = body.get("interactive", {})
    text = interactive.get("body", {}).get("text", "")
    if not text or _utf16(text) > 1024:
        return "(#100) Param interactive['body']['text'] must be at most 1024 characters long."
    action = interactive.get("action", {})
    if interactive.get("type") == "button":
        buttons = action.get("buttons", [])
        titles = [b["reply"]["title"] for b in buttons]
        if not 1 <= len(buttons) <= 3 or any(not 0 < len(t) <= 20 for t in titles) or len(set(titles)) != len(titles):
            return "(#131009) Parameter value is not valid: buttons"
        return None
    if interactive.get("type") == "list":
        rows = [r for s in action.get("sections", []) for r in s.get("rows", [])]
        if not 1 <= len(rows) <= 10 or not 0 < len(action.get("button", "")) <= 20:
            return "(#131009) Parameter value is not valid: rows"
        if any(len(r["title"]) > 24 or len(r.get("description", "")) > 72 for r in rows):
            return "(#131009) Parameter value is not valid: row"
        return None
    return "(#100) Unsupported interactive type"


def _send_api_problem(body: dict[str, Any], *, instagram: bool) -> str | None:
    """What the Messenger / Instagram Send API would refuse."""
    if not isinstance(body.get("recipient", {}).get("id"), str):
        return "(#100) The parameter recipient is required"
    message = body.get("message", {})
    text = message.get("text", "")
    too_long = len(text.encode()) > 1000 if instagram else _utf16(text) > 2000
    if not text or too_long:
        return "(#100) Length of param message[text] must be less than or equal to the limit"
    quick = message.get("quick_replies", [])
    if len(quick) > 13 or any(not 0 < len(q.get("title", "")) <= 20 or not q.get("payload") for q in quick):
        return "(#100) Invalid quick_replies"
    kind = body.get("messaging_type")
    if not instagram and kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return "(#100) messaging_type is required"
    if instagram and kind not in (None, "RESPONSE", "MESSAGE_TAG"):
        return "(#100) Invalid messaging_type"
    tags = {"HUMAN_AGENT"} if instagram else {"HUMAN_AGENT", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"}
    if (kind == "MESSAGE_TAG") != ("tag" in body) or ("tag" in body and body["tag"] not in tags):
        return "(#100) Param tag must be one of the supported message tags"
    return None
