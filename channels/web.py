"""The web chat channel: what the page can show, the frames it exchanges, and who the visitor is.

Everything here is pure (no I/O, no clock) so it can be fuzzed without a server:

- ``CAPABILITIES``: the page draws real buttons and links, so it has the most room of any channel;
- ``message_frame``: a stored message rendered into the JSON frame the page draws. Text is passed
  through untouched (the page inserts it with ``textContent``, never as HTML); links that are not
  ``http(s)`` are dropped so a ``javascript:`` URL can never reach an ``href``;
- ``read_frame``: one frame from the browser, size-checked and validated, or a :class:`FrameError`;
- ``sign_visitor`` / ``verify_visitor``: the visitor's identity is a random id signed with the
  deployment secret (HMAC-SHA256, bound to the agent), so a visitor can only ever resume the
  conversation of an id the server handed out, never guess someone else's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from channels.base import Capabilities, Link, Option, OutboundMessage

NAME = "web"
CAPABILITIES = Capabilities(max_text=4000, max_buttons=12, button_label_max=64, max_list_rows=0, links=True)

MAX_FRAME_BYTES = 4096  # a browser frame larger than this is refused and nothing is stored
MAX_CHOICE_ID = 64  # bytes, the same bound Option ids keep for Telegram
MAX_LABEL = 200
MAX_ZONE = 64
MAX_TOKEN = 200

_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIG_CONTEXT = b"frontdesk/web-visitor/v1"
_LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,4}")
_ZONE = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")


# ----- visitor identity ----------------------------------------------------------------------
def new_visitor_id() -> str:
    """128 random bits, URL-safe: the web conversation's ``sender``."""
    return secrets.token_urlsafe(16)


def _signature(secret: bytes, agent: str, visitor_id: str) -> str:
    message = b"\x00".join((_SIG_CONTEXT, agent.encode(), visitor_id.encode()))
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_visitor(secret: bytes, agent: str, visitor_id: str) -> str:
    """``<visitor id>.<signature>``; valid only for this agent and this deployment's secret."""
    if not _ID.fullmatch(visitor_id):
        raise ValueError("a visitor id is 16-64 URL-safe characters")
    return f"{visitor_id}.{_signature(secret, agent, visitor_id)}"


def verify_visitor(secret: bytes, agent: str, token: object) -> str | None:
    """The visitor id a token was issued for, or None for anything else (never raises)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        return None
    visitor_id, dot, signature = token.partition(".")
    if not dot or not _ID.fullmatch(visitor_id) or not signature.isascii():
        return None
    expected = _signature(secret, agent, visitor_id)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return None
    return visitor_id


# ----- server → page -------------------------------------------------------------------------
class StoredLike(Protocol):
    """What a stored conversation message offers (``bot.dialogue.manager.StoredMessage``)."""

    @property
    def seq(self) -> int: ...
    @property
    def direction(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...


def safe_url(url: object) -> str | None:
    """The URL when it is an absolute http(s) URL the page may link to, else None."""
    if not isinstance(url, str) or len(url) > 2048 or any(ord(c) < 0x21 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _options(options: Sequence[Option]) -> list[dict[str, str]]:
    limit = CAPABILITIES.button_label_max
    return [
        {"id": o.id, "label": o.label[:limit] or o.id[:limit], "description": o.description}
        for o in options[: CAPABILITIES.max_buttons]
    ]


def _link(link: Link | None) -> dict[str, str] | None:
    if link is None:
        return None
    url = safe_url(link.url)
    return {"url": url, "label": link.label or url} if url else None


def render(message: OutboundMessage) -> dict[str, Any]:
    """The drawable part of a frame: text, quick replies (bounded) and a safe link."""
    return {"text": message.text, "options": _options(message.options), "link": _link(message.link)}


def message_frame(stored: StoredLike) -> dict[str, Any]:
    """``{"type": "message", seq, direction, author, text, options, link, at}`` for the page."""
    try:
        body = render(OutboundMessage.from_payload(stored.text, stored.payload or {}))
    except (KeyError, TypeError, AttributeError):  # a payload written by an older version: show the text
        body = {"text": stored.text, "options": [], "link": None}
    return {
        "type": "message",
        "seq": stored.seq,
        "direction": stored.direction,
        "author": stored.author,
        **body,
        "at": stored.created_at.isoformat(),
    }


def hello_frame(token: str, conversation: bool, name: str) -> dict[str, Any]:
    return {"type": "hello", "token": token, "conversation": conversation, "name": name}


def typing_frame(on: bool) -> dict[str, Any]:
    return {"type": "typing", "on": on}


def error_frame(code: str) -> dict[str, Any]:
    return {"type": "error", "code": code}


# ----- page → server -------------------------------------------------------------------------
class FrameError(Exception):
    """A frame the server refuses; ``code`` goes back to the page (too_large | malformed)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Resume:
    after: int  # the last seq the page has drawn; everything after it is replayed
    timezone: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    label: str


ClientFrame = Resume | Text | Choice


def read_frame(raw: str | bytes, *, max_text: int = CAPABILITIES.max_text) -> ClientFrame:
    """Parse one browser frame; :class:`FrameError` when it is too large or not one we know."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise FrameError("too_large")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FrameError("malformed") from None
    if not isinstance(data, dict):
        raise FrameError("malformed")
    kind = data.get("type")
    if kind == "resume":
        after = data.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**53:
            raise FrameError("malformed")
        return Resume(after, _zone(data.get("tz")), _locale(data.get("locale")))
    if kind == "text":
        text = _string(data.get("text")).strip()
        if not text:
            raise FrameError("malformed")
        return Text(text[:max_text])
    if kind == "choice":
        choice = _string(data.get("id"))
        if not choice or len(choice.encode("utf-8", "surrogatepass")) > MAX_CHOICE_ID:
            raise FrameError("malformed")
        return Choice(choice, _string(data.get("label", "")).strip()[:MAX_LABEL] or choice)
    raise FrameError("malformed")


def _string(value: object) -> str:
    if not isinstance(value, str) or not _printable(value):
        raise FrameError("malformed")
    return value


def _printable(value: str) -> bool:
    """No NULs or lone surrogates: they cannot be stored or shown."""
    return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _zone(value: object) -> str | None:
    """A zone name as the browser reports it; checked for real by the dialogue manager."""
    return value if isinstance(value, str) and len(value) <= MAX_ZONE and _ZONE.fullmatch(value) else None


def _locale(value: object) -> str | None:
    return value.replace("_", "-") if isinstance(value, str) and _LOCALE.fullmatch(value) else None


def encode(frame: Mapping[str, Any]) -> str:
    """Frames go out as compact JSON; ``<``, ``>`` and ``&`` escaped so no text can look like markup."""
    return (
        json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
