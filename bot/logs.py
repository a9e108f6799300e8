"""Logging with a redaction filter: no phone numbers, tokens or secrets reach a handler."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable

_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"\bfd_[A-Za-z0-9_-]{10,}"), "[token]"),
    (
        re.compile(r"(?i)\b(token|secret|password|api_key|authorization)(\"?\s*[:=]\s*\"?)[^\s\"',}]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"\bbot\d{6,}:[A-Za-z0-9_-]{20,}"), "bot[redacted]"),  # Telegram tokens live in URLs
    # digits that look like a phone number, but not an ISO date and time ("2026-11-21 18:10:46")
    (re.compile(r"(?<![\w.-])(?!\d{4}-\d\d-\d\d)\+?\d[\d\s().-]{6,}\d(?![\w.])"), "[phone]"),
)


class RedactingFilter(logging.Filter):
    """Scrubs the formatted message and any traceback; drops message bodies below DEBUG.

    Code that must log a customer's text passes it as ``extra={"body": ...}``; it is kept only
    when the record is at DEBUG level.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = self.scrub(text)
        if record.levelno > logging.DEBUG and hasattr(record, "body"):
            record.body = "[omitted]"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "time": self.formatTime(record),
        }
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data)


def configure(level: str = "INFO", *, json_format: bool = False, secrets: Iterable[str] = ()) -> RedactingFilter:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_format else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redactor
