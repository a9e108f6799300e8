"""What the fake messaging providers (Graph, Twilio, Telegram) share on top of ``LoopbackProvider``:
a request record that keeps JSON and form bodies, and scripted answers (a provider error in its own
wire format, a status sequence like 503, 503, 200, or a hang) consumed in order."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    raw: bytes
    json: Any = None  # the JSON body, when it was JSON
    form: dict[str, str] = field(default_factory=dict)  # the form body, when it was a form

    @property
    def params(self) -> dict[str, Any]:
        """The call's parameters whatever the encoding (Telegram accepts JSON and forms)."""
        return self.json if isinstance(self.json, dict) else dict(self.form)


@dataclass
class Scripted:
    """One canned answer for the next request under ``path_prefix`` (``status`` 0 = answer normally
    after ``delay`` seconds)."""

    path_prefix: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


async def record(request: web.Request) -> Recorded:
    raw = await request.read()
    content_type = request.content_type
    parsed: Any = None
    form: dict[str, str] = {}
    if content_type == "application/json" and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    elif content_type == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    elif content_type.startswith("multipart/"):
        form = {k: v if isinstance(v, str) else "<file>" for k, v in (await request.post()).items()}
    return Recorded(request.method, request.path, dict(request.headers), dict(request.query), raw, parsed, form)


class ScriptedAnswers:
    """Mixed into a fake that has a ``script: list[Scripted]`` field."""

    script: list[Scripted]

    def answer_next(
        self, path_prefix: str, status: int, body: Any, *, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> None:
        self.script.append(Scripted(path_prefix, status, body, dict(headers or {}), delay))

    def hang(self, path_prefix: str, seconds: float) -> None:
        """The next request under ``path_prefix`` is answered (normally) only after ``seconds``."""
        self.script.append(Scripted(path_prefix, 0, None, {}, seconds))

    async def scripted(self, path: str) -> web.Response | None:
        """Play the first scripted answer for ``path``; None to answer normally."""
        for index, step in enumerate(self.script):
            if path.startswith(step.path_prefix):
                del self.script[index]
                if step.delay:
                    await asyncio.sleep(step.delay)
                if step.status == 0:
                    return None
                return web.json_response(step.body, status=step.status, headers=step.headers)
        return None
