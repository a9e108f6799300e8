"""A fake Twilio Messaging API on loopback: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

Form-encoded ``To``/``From``/``Body`` with HTTP basic auth (account sid : auth token), answered
201 with a Message resource, or refused the way Twilio refuses (``{"code", "message",
"more_info", "status"}``): 20003 for wrong credentials, 21211 for a number that is not E.164,
21610 for a recipient who replied STOP (``opted_out``), 21602 for an empty body, 21617 for a body
over 1600 characters. Tests inject other errors with :meth:`FakeTwilio.twilio_error`, plain
statuses with ``fail`` and hangs with ``hang``; :meth:`inbound` plays Twilio calling our webhook.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from tests.fakes.messaging import Recorded, Scripted, ScriptedAnswers, record
from tests.fakes.provider import Fault, LoopbackProvider

ACCOUNT_SID = "ACae1b3b0bd3ef2a2b8f0a9e0c4d5f6a7b"
AUTH_TOKEN = "twilio-auth-token-for-tests"
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class FakeTwilio(LoopbackProvider, ScriptedAnswers):
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    opted_out: set[str] = field(default_factory=set)  # numbers that replied STOP
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)  # accepted forms
    _server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    def twilio_error(self, code: int, message: str = "injected", *, status: int = 400) -> None:
        self.answer_next("/2010-04-01", status, error_body(code, message, status))

    def inbound(self, url: str, params: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
        """The body and headers Twilio would POST to ``url``, signed by the official validator."""
        signature = RequestValidator(self.auth_token).compute_signature(url, dict(params))
        return urlencode(params).encode(), {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        }

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(await record(request))
        early, late = self.faults_for(request.path)
        if early is not None:
            return web.json_response(error_body(20500, "Internal Server Error", early.status), status=early.status)
        scripted = await self.scripted(request.path)
        if scripted is not None:
            return scripted
        response = await handler(request)
        if late is not None:
            return web.json_response(error_body(20500, "Internal Server Error", late.status), status=late.status)
        return response

    async def _create(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.match_info["sid"] != self.account_sid or request.headers.get("Authorization") != expected:
            return _refuse(20003, "Authenticate", 401)
        form = self.requests[-1].form
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not _E164.fullmatch(to):
            return _refuse(21211, f"The 'To' number {to} is not a valid phone number.", 400)
        if not _E164.fullmatch(sender):
            return _refuse(
                21606, "The 'From' phone number provided is not a valid message-capable Twilio phone number.", 400
            )
        if to in self.opted_out:
            return _refuse(21610, "Attempt to send to unsubscribed recipient", 400)
        if not body:
            return _refuse(21602, "Message body is required.", 400)
        if len(body) > 1600:
            return _refuse(21617, "The concatenated message body exceeds the 1600 character limit.", 400)
        self.messages.append(dict(form))
        sid = f"SM{secrets.token_hex(16)}"
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": sender,
                "body": body,
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status=201,
        )


def _refuse(code: int, message: str, status: int) -> web.Response:
    return web.json_response(error_body(code, message, status), status=status)
