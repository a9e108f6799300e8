"""The built-in provider: a checkout page served by frontdesk itself, for the offline demo.

Its pay / fail buttons do not mark anything paid directly. They produce a provider event, signed
like Stripe's (``Frontdesk-Signature: t=..,v1=..``, HMAC-SHA256 with the local webhook secret) and
handed to the same verify → store → process path as a real provider's webhook. The checkout URL
carries an HMAC token of the purchase id, so links cannot be guessed from ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime

from bot.payments import (
    EventKind,
    Link,
    LinkRequest,
    PaymentEvent,
    RefundResult,
    Remote,
    check_timestamped,
    dig,
    int_or_none,
    load_json,
    sign_timestamped,
    text_or_none,
)
from core.errors import MalformedRequest

HEADER = "Frontdesk-Signature"
_KINDS: dict[str, EventKind] = {"payment.succeeded": "paid", "payment.failed": "failed"}


def checkout_token(secret: bytes, purchase_id: str) -> str:
    digest = hmac.new(secret, f"checkout:{purchase_id}".encode(), hashlib.sha256).digest()
    return f"{purchase_id}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def purchase_of(secret: bytes, token: str) -> str | None:
    """The purchase id a checkout token was made for, or None when it is not ours."""
    purchase_id, _, _ = token.partition(".")
    if not purchase_id or len(token) > 200:
        return None
    expected = checkout_token(secret, purchase_id)
    return purchase_id if hmac.compare_digest(expected.encode(), token.encode("utf-8", "surrogateescape")) else None


def checkout_event(
    secret: bytes, *, purchase_id: str, paid: bool, amount: int, currency: str, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """What the checkout page's buttons send: a signed event body and its headers."""
    event = {
        "id": f"evt_local_{secrets.token_hex(12)}",
        "type": "payment.succeeded" if paid else "payment.failed",
        "created": int(now.timestamp()),
        "data": {
            "purchase_id": purchase_id,
            "payment_id": f"lpay_{secrets.token_hex(8)}" if paid else None,
            "amount": amount,
            "currency": currency,
            "method": "local",
        },
    }
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, {HEADER: sign_timestamped(body, secret, int(now.timestamp())), "Content-Type": "application/json"}


class LocalProvider:
    name = "local"

    def __init__(self, secret: bytes, public_url: str, tolerance: int = 300) -> None:
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._tolerance = tolerance

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        check_timestamped(headers.get(HEADER.lower()), body, self._secret, now, tolerance=self._tolerance, name=HEADER)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        data = load_json(body)
        event_id, event_type, purchase_id = data.get("id"), data.get("type"), dig(data, "data", "purchase_id")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise MalformedRequest("not a local payment event")
        kind = _KINDS.get(event_type, "ignored")
        if kind != "ignored" and not isinstance(purchase_id, str):
            raise MalformedRequest("a local payment event without its purchase")
        return PaymentEvent(
            event_id,
            event_type,
            kind,
            purchase_id=text_or_none(purchase_id),
            provider_ref=f"local_{purchase_id}" if isinstance(purchase_id, str) else None,
            payment_ref=text_or_none(dig(data, "data", "payment_id")),
            payment_method=text_or_none(dig(data, "data", "method")),
            amount=int_or_none(dig(data, "data", "amount")),
            currency=text_or_none(dig(data, "data", "currency")),
        )

    def expiry(self, hold_expires_at: datetime, now: datetime) -> datetime:
        return hold_expires_at

    async def create_link(self, req: LinkRequest) -> Link:
        url = f"{self._public_url}/pay/{checkout_token(self._secret, req.purchase_id)}"
        return Link(f"local_{req.purchase_id}", url, req.hold_expires_at)

    async def fetch(self, ref: str) -> Remote:
        return Remote(None)  # no money moves anywhere else: our own records are the whole truth

    async def refund(self, *, payment_ref: str, amount: int, currency: str, key: str, purchase_id: str) -> RefundResult:
        return RefundResult(f"lrf_{hashlib.sha256(key.encode()).hexdigest()[:16]}", settled=True)

    async def expire(self, ref: str) -> None:
        return None  # the checkout page refuses a purchase that is no longer pending
