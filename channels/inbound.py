"""Reading untrusted provider payloads without surprises.

``parse`` must turn any byte string into either events or :class:`MalformedRequest` (R19), so the
adapters read fields through these helpers, which answer ``None`` for a value of the wrong type
instead of raising, and clean strings that could not be stored (NULs, lone surrogates).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from core.errors import MalformedRequest

_DIGITS = re.compile(r"[0-9]{1,20}")
_SEPARATORS = re.compile(r"[ ()./-]")
MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header looked up case-insensitively (plain dicts from tests, CIMultiDict from aiohttp)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == lowered), None)
    return value if isinstance(value, str) else None


def load_json(body: bytes) -> Any:
    """The JSON value of a body, or :class:`MalformedRequest`."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedRequest("the body is not JSON") from None


def mapping(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def items(value: object) -> list[dict[str, Any]]:
    """The objects of a JSON array (other members are skipped); ``[]`` for anything else."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def clean(value: str) -> str:
    """A string that can be stored and shown: no NULs, lone surrogates replaced."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def string(value: object) -> str | None:
    """A cleaned string, or None for anything else."""
    return clean(value) if isinstance(value, str) else None


def identifier(value: object) -> str | None:
    """A provider id: a non-empty string or an integer (ids are sometimes numbers), as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return clean(value.strip())
    return None


def epoch(value: object) -> int | None:
    """Seconds since the epoch from an int or a digit string (WhatsApp sends strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_EPOCH_SECONDS:
        return value
    return None


def epoch_ms(value: object) -> int | None:
    """Milliseconds since the epoch (Messenger/Instagram timestamps)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_EPOCH_SECONDS * 1000 else None


def moment(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def stable_id(prefix: str, value: object) -> str:
    """A dedupe key for an event that has no id of its own: the same payload gives the same key."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    return f"{prefix}:{hashlib.sha256(canonical.encode('ascii')).hexdigest()[:32]}"


def e164(raw: str) -> str:
    """``"16505551234"`` or ``"+1 650 555 1234"`` → ``"+16505551234"``; a value phonenumbers cannot
    read (short codes, alphanumeric senders) comes back as given."""
    candidate = raw.strip()
    compact = _SEPARATORS.sub("", candidate)
    digits = compact[1:] if compact.startswith("+") else compact
    if not digits.isdigit() or not digits.isascii():
        return candidate
    try:
        number = phonenumbers.parse(f"+{digits}", None)
    except phonenumbers.NumberParseException:
        return candidate
    if not phonenumbers.is_possible_number(number):
        return candidate
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
