"""Customers' manage links: one signed link per booking to its self-service page (``/manage/bookings/{id}``).

The token in the link (``?t=``) is the credential: an expiry (unix seconds) and an HMAC-SHA256 of
the booking id and that expiry under the deployment's link secret (the one that signs the JSON
routes' per-purpose tokens; the message differs, so neither kind of token passes for the other).
Nothing is stored. A link lasts until :data:`LINK_DAYS` after its appointment ends; a moved
booking gets a link of its own (the old one says where the booking went).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from bot.settings import BusinessConfig

LINK_DAYS = 30  # a link works until this long after its appointment ends
MAX_TOKEN = 100


class Verdict(StrEnum):
    OK = "ok"
    EXPIRED = "expired"  # genuine, but too old
    BAD = "bad"  # not ours, or for another booking


@dataclass(frozen=True, slots=True)
class ManageLinks:
    secret: bytes
    public_url: str  # settings.server.public_url

    def token(self, appointment_id: str, ends_at: datetime) -> str:
        stamp = int((ends_at + timedelta(days=LINK_DAYS)).timestamp())
        return f"{stamp}.{self._mac(appointment_id, stamp)}"

    def path(self, appointment_id: str, ends_at: datetime) -> str:
        """The page's path and query (what the page itself links to: no host to get wrong)."""
        return f"/manage/bookings/{quote(appointment_id, safe='')}?t={self.token(appointment_id, ends_at)}"

    def url(self, appointment_id: str, ends_at: datetime) -> str:
        """The full link for messages (the server's public URL)."""
        return self.public_url.rstrip("/") + self.path(appointment_id, ends_at)

    def check(self, appointment_id: str, token: str, now: datetime) -> Verdict:
        stamp_text, dot, mac = (token or "").partition(".")
        if not dot or len(token) > MAX_TOKEN or not stamp_text.isdigit() or len(stamp_text) > 12:
            return Verdict.BAD
        stamp = int(stamp_text)
        if not hmac.compare_digest(self._mac(appointment_id, stamp).encode(), mac.encode()):
            return Verdict.BAD
        if now >= datetime.fromtimestamp(stamp, UTC):
            return Verdict.EXPIRED
        return Verdict.OK

    def _mac(self, appointment_id: str, stamp: int) -> str:
        digest = hmac.new(self.secret, f"page:{appointment_id}:{stamp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def address_of(businesses: Sequence[BusinessConfig], slug: str, info: Mapping[str, Any]) -> str:
    """Where the customer goes: the business's ``location_details`` from the config, else its address."""
    config = next((b for b in businesses if b.slug == slug), None)
    return (config.location_details if config else "") or str(info.get("address") or "")
