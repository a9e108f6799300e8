"""A fake Anthropic Messages API on loopback, for driving the real ``anthropic`` SDK through ``base_url``.

anthropic 2.x talks through httpx2, which respx and pytest-httpx do not see, so tests point the
real client at this aiohttp server instead. It speaks ``POST /v1/messages``: it records every
request (body and headers), checks the rules the real API enforces that our engine could break
(no sampling parameters, no prefill, tool_result right after its tool_use and first in the user
turn, tools defined when tool blocks are present, tool names, at most four cache breakpoints, no
forced tool choice), and answers from a script: a list of steps, or a callable of the request.

    async with FakeAnthropic([tool_use("find_slots", {"service": "checkup"}), reply("Here you go")]) as fake:
        settings.anthropic.base_url = fake.url
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request the fake received."""

    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased names
    path: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks of the last user message, their content parsed when it is JSON."""
        last = self.messages[-1] if self.messages else {}
        found = []
        for block in last.get("content", []) if isinstance(last.get("content"), list) else []:
            if block.get("type") == "tool_result":
                parsed = dict(block)
                try:
                    parsed["data"] = json.loads(block.get("content") or "null")
                except (TypeError, ValueError):
                    parsed["data"] = block.get("content")
                found.append(parsed)
        return found

    def last_user_text(self) -> str:
        """The text of the last user message that carries text (the customer's turn)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                return content
            texts = [b.get("text", "") for b in content if b.get("type") == "text"]
            if texts:
                return "\n".join(texts)
        return ""


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted answer: a JSON body with a status, optional headers, after an optional delay."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[Recorded], Step]
Script = Sequence[Step | Responder] | Responder


def message(
    *blocks: dict[str, Any],
    stop_reason: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> Step:
    """A Messages API response; ``stop_reason`` defaults to tool_use when a tool_use block is present."""
    if stop_reason is None:
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    body = {
        "id": f"msg_fake{next(_ids):05d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake",
        "content": list(blocks),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
    return Step(body=body)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool(name: str, arguments: dict[str, Any], use_id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id or f"toolu_fake{next(_ids):05d}", "name": name, "input": arguments}


def reply(value: str, **kwargs: Any) -> Step:
    """A final text answer."""
    return message(text(value), **kwargs)


def tool_use(name: str, arguments: dict[str, Any], *more: tuple[str, dict[str, Any]], say: str = "") -> Step:
    """A response that calls one tool (or several: ``more`` as (name, arguments) pairs)."""
    blocks = [text(say)] if say else []
    blocks.append(tool(name, arguments))
    blocks.extend(tool(n, a) for n, a in more)
    return message(*blocks)


def error(status: int, kind: str, text_: str = "", *, retry_after_ms: int | None = 5, delay: float = 0.0) -> Step:
    """An error with the real body shape: ``{"type": "error", "error": {...}, "request_id": ...}``."""
    headers = {"request-id": f"req_fake{next(_ids):05d}"}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)  # keeps the SDK's retries fast in tests
    body = {
        "type": "error",
        "error": {"type": kind, "message": text_ or kind.replace("_", " ")},
        "request_id": headers["request-id"],
    }
    return Step(status=status, body=body, headers=headers, delay=delay)


def overloaded() -> Step:
    return error(529, "overloaded_error", "Overloaded")


def server_error() -> Step:
    return error(500, "api_error", "Internal server error")


def hang(seconds: float = 30.0) -> Step:
    """Answers only after ``seconds`` (a client with a shorter timeout gives up first)."""
    return Step(delay=seconds, body=reply("too late").body)


def problems(body: dict[str, Any]) -> list[str]:
    """What the real API would reject with a 400 in this request body."""
    found = []
    for banned in ("temperature", "top_p", "top_k"):
        if banned in body:
            found.append(f"{banned}: not supported by this model")
    choice = body.get("tool_choice") or {}
    if choice.get("type") in ("any", "tool"):
        found.append("tool_choice: forced tool use is not supported by this model")
    tools = body.get("tools") or []
    for item in tools:
        if not TOOL_NAME.match(str(item.get("name", ""))):
            found.append(f"tools: invalid name {item.get('name')!r}")
    if _count_breakpoints(body) > 4:
        found.append("a maximum of 4 blocks with cache_control may be provided")
    messages = body.get("messages") or []
    if not messages:
        found.append("messages: at least one message is required")
        return found
    if messages[-1].get("role") != "user":
        found.append("this model does not support assistant message prefill")
    uses_tools = False
    for index, msg in enumerate(messages):
        content = msg.get("content")
        blocks = content if isinstance(content, list) else []
        if isinstance(content, list) and not content:
            found.append(f"messages.{index}: content must be non-empty")
        if msg.get("role") == "assistant":
            use_ids = [b.get("id") for b in blocks if b.get("type") == "tool_use"]
            if use_ids:
                uses_tools = True
                following = messages[index + 1] if index + 1 < len(messages) else None
                results = _result_ids(following)
                if following is None or set(results) != set(use_ids):
                    found.append(
                        f"messages.{index + 1}: tool_use ids were found without tool_result blocks immediately "
                        f"after: {sorted(set(use_ids) - set(results))}"
                    )
        elif msg.get("role") == "user":
            kinds = [b.get("type") for b in blocks]
            if "tool_result" in kinds:
                uses_tools = True
                first_other = next((i for i, k in enumerate(kinds) if k != "tool_result"), len(kinds))
                if "tool_result" in kinds[first_other:]:
                    found.append(f"messages.{index}: tool_result blocks must come first in the content")
                previous = messages[index - 1] if index else {}
                wanted = {b.get("id") for b in previous.get("content", []) if isinstance(b, dict)}
                if previous.get("role") != "assistant" or not set(_result_ids(msg)) <= wanted:
                    found.append(f"messages.{index}: unexpected tool_use_id in tool_result blocks")
    if uses_tools and not tools:
        found.append("requests which include tool_use or tool_result blocks must define tools")
    return found


def _result_ids(msg: dict[str, Any] | None) -> list[str]:
    if not msg or not isinstance(msg.get("content"), list):
        return []
    return [b.get("tool_use_id") for b in msg["content"] if b.get("type") == "tool_result"]


def _count_breakpoints(body: dict[str, Any]) -> int:
    count = 0
    for item in body.get("tools") or []:
        count += "cache_control" in item
    system = body.get("system")
    for block in system if isinstance(system, list) else []:
        count += "cache_control" in block
    for msg in body.get("messages") or []:
        content = msg.get("content")
        for block in content if isinstance(content, list) else []:
            count += "cache_control" in block
    return count


class FakeAnthropic:
    """The fake server; ``url`` is its base URL once started (``async with`` starts and stops it)."""

    def __init__(self, script: Script = (), *, validate: bool = True) -> None:
        self.requests: list[Recorded] = []
        self.responses: list[Step] = []
        self.unplayed: list[str] = []  # requests that found the script empty
        self.validate = validate
        self._script: Responder | None = script if callable(script) else None
        self._queue: list[Step | Responder] = [] if callable(script) else list(script)
        self._prefixes: set[str] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def push(self, *steps: Step | Responder) -> None:
        """Answer the next requests with these, in order (a callable builds its answer from the request)."""
        self._queue.extend(steps)

    def script(self, script: Responder) -> None:
        """Answer with this callable once the queued steps are used up."""
        self._script = script

    @property
    def remaining(self) -> int:
        return len(self._queue)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ----- handling -----------------------------------------------------------------------------
    async def _messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return _json(400, _error_body("invalid_request_error", "body is not JSON"))
        recorded = Recorded(body, {k.lower(): v for k, v in request.headers.items()}, request.path)
        self.requests.append(recorded)
        auth = recorded.headers.get("authorization", "")
        if not (auth.startswith("Bearer ") and len(auth) > 7) and not recorded.headers.get("x-api-key"):
            return _json(401, _error_body("authentication_error", "invalid x-api-key"))
        if self.validate:
            wrong = problems(body)
            if wrong:
                return _json(400, _error_body("invalid_request_error", "; ".join(wrong)))
        if self._queue:
            queued = self._queue.pop(0)
            step = queued(recorded) if callable(queued) else queued
        elif self._script is not None:
            step = self._script(recorded)
        else:
            self.unplayed.append(recorded.last_user_text())
            return _json(400, _error_body("invalid_request_error", "fake: the script has no more steps"))
        if step.status == 200:
            step = Step(step.status, self._with_usage(step.body, body), step.headers, step.delay)
        self.responses.append(step)
        if step.delay:
            with contextlib.suppress(TimeoutError):  # closing the server ends the wait early
                await asyncio.wait_for(self._closing.wait(), step.delay)
        return _json(step.status, step.body, step.headers)

    def _with_usage(self, answer: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        """Plausible token counts (about four characters a token), with prompt caching simulated:
        the prefix up to the last tools/system breakpoint is written once, then read."""
        answer = json.loads(json.dumps(answer))
        usage = answer.setdefault("usage", {})
        total = _tokens(json.dumps({k: request.get(k) for k in ("tools", "system", "messages")}))
        prefix = _cached_prefix(request)
        read = written = 0
        if prefix:
            digest = hashlib.sha256(prefix.encode()).hexdigest()
            if digest in self._prefixes:
                read = _tokens(prefix)
            else:
                written = _tokens(prefix)
                self._prefixes.add(digest)
        if usage.get("input_tokens") is None:
            usage["input_tokens"] = max(1, total - read - written)
        if usage.get("output_tokens") is None:
            usage["output_tokens"] = max(1, _tokens(json.dumps(answer.get("content", []))))
        usage.setdefault("cache_read_input_tokens", read)
        usage.setdefault("cache_creation_input_tokens", written)
        return answer


def _cached_prefix(request: dict[str, Any]) -> str:
    parts: list[Any] = []
    tools = request.get("tools") or []
    marked = [i for i, item in enumerate(tools) if "cache_control" in item]
    if marked:
        parts.append(tools[: marked[-1] + 1])
    system = request.get("system")
    blocks = system if isinstance(system, list) else []
    marked = [i for i, block in enumerate(blocks) if "cache_control" in block]
    if marked:
        parts = [tools, blocks[: marked[-1] + 1]]
    return json.dumps(parts, sort_keys=True) if parts else ""


def _tokens(text_: str) -> int:
    return max(1, len(text_) // 4)


def _error_body(kind: str, text_: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text_}, "request_id": f"req_fake{next(_ids):05d}"}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers or {})
