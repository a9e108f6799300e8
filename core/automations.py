"""Automation triggers and their message templates: pure text work, no sending.

Templates use ``{{placeholder}}`` fields (Cal.com-style workflow variables). A template naming
an unknown placeholder is refused when the configuration loads, so a typo never reaches a customer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

TRIGGERS = (
    "appointment.booked",
    "appointment.cancelled",
    "appointment.rescheduled",
    "appointment.no_show",
    "appointment.completed",
    "appointment.reminder",
)
PLACEHOLDERS = frozenset(
    {
        "contact_name",
        "appointment_date",
        "appointment_time",
        "appointment_duration",
        "service_name",
        "staff_name",
        "video_link",
        "location_details",
        "business_name",
        "booking_ref",  # the short reference the chat and the booking page show
        "manage_link",  # the booking's own page (cancel, move); empty when there is nothing to manage
    }
)
_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: str) -> set[str]:
    return set(_FIELD.findall(template))


def check_template(template: str) -> None:
    unknown = placeholders(template) - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(PLACEHOLDERS))}"
        )


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every ``{{field}}``; a field without a value becomes empty text rather than staying raw."""
    check_template(template)
    filled = _FIELD.sub(lambda m: values.get(m.group(1), ""), template)
    return "\n".join(line.rstrip() for line in filled.splitlines()).strip()


def ics_token(secret: bytes, appointment_id: str) -> str:
    """The signature of an appointment's calendar-file link (nothing stored; 256-bit HMAC)."""
    digest = hmac.new(secret, f"ics:{appointment_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_ics_token(secret: bytes, appointment_id: str, token: str) -> bool:
    if not token or len(token) > 100:
        return False
    return hmac.compare_digest(ics_token(secret, appointment_id).encode(), token.encode())
