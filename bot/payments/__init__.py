"""Payment providers: one module each (``local``, ``stripe``, ``razorpay``), one small protocol.

``verify`` and ``parse`` are synchronous and pure (raw bytes in, never re-serialised JSON), so they
can be tested and fuzzed without a server; the network calls are async and use the injected
``httpx.AsyncClient`` against the provider's configurable base URL. Provider quirks stay inside
the adapter: the rest of frontdesk only sees :class:`PaymentEvent`, :class:`Link`, :class:`Remote`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

from core.errors import Forbidden, MalformedRequest, ServiceUnavailable, Unauthorized
from core.payments import PurchaseStatus

EventKind = Literal[
    "paid",  # the money is ours
    "processing",  # completed at the provider but not paid yet (delayed payment methods)
    "failed",
    "expired",
    "refund_pending",
    "refunded",
    "refund_failed",
    "disputed",
    "dispute_closed",
    "ignored",  # a kind we do not act on: answered 200 and dropped
]

# The purchase status an event reports; the other kinds are notes on the purchase's history.
OBSERVED: dict[str, PurchaseStatus] = {
    "paid": PurchaseStatus.COMPLETED,
    "failed": PurchaseStatus.FAILED,
    "expired": PurchaseStatus.EXPIRED,
    "refunded": PurchaseStatus.REFUNDED,
    "disputed": PurchaseStatus.DISPUTED,
}


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One provider event, read. ``purchase_id`` is our id echoed back (metadata, reference)."""

    event_id: str
    event_type: str  # the provider's own name for it
    kind: EventKind
    purchase_id: str | None = None
    provider_ref: str | None = None  # Checkout Session / Payment Link id
    payment_ref: str | None = None  # PaymentIntent / payment id
    payment_method: str | None = None
    amount: int | None = None  # minor units: paid, refunded or disputed, by kind
    currency: str | None = None
    refund_ref: str | None = None


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """What a provider needs to take one payment. The amount is the appointment's, from the core."""

    purchase_id: str
    tenant_id: str
    appointment_id: str
    amount: int
    currency: str
    description: str
    customer_name: str
    customer_phone: str | None
    locale: str
    hold_expires_at: datetime
    link_expires_at: datetime  # from ``Provider.expiry``, fixed at the first try: a retry sends the same
    idempotency_key: str
    return_url: str  # where the browser goes afterwards: a status page, never proof of payment


@dataclass(frozen=True, slots=True)
class Link:
    ref: str
    url: str
    expires_at: datetime  # when the provider stops taking payment on it


@dataclass(frozen=True, slots=True)
class Remote:
    """The provider's own view of a payment, fetched when events do not add up. ``status`` None:
    still open and unpaid (or the provider cannot tell)."""

    status: PurchaseStatus | None
    payment_ref: str | None = None
    payment_method: str | None = None
    amount: int | None = None
    refunded: int = 0


@dataclass(frozen=True, slots=True)
class RefundResult:
    ref: str
    settled: bool  # the money is on its way back for good (Stripe succeeded, Razorpay processed)
    failed: bool = False


class ProviderError(ServiceUnavailable):
    """The provider could not be reached or refused a call; safe to retry with the same key."""

    code = "payment_provider_unavailable"


class Provider(Protocol):
    name: str

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        """Raise ``Unauthorized``/``Forbidden`` unless ``body`` (raw bytes) is signed by the provider.
        Header names are lower-case."""

    def parse(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """The event in a verified body; ``MalformedRequest`` when it cannot be read."""

    def expiry(self, hold_expires_at: datetime, now: datetime) -> datetime:
        """When the provider should stop taking payment: the hold's end, within its own limits."""

    async def create_link(self, req: LinkRequest) -> Link: ...

    async def fetch(self, ref: str) -> Remote: ...

    async def refund(self, *, payment_ref: str, amount: int, currency: str, key: str, purchase_id: str) -> RefundResult:
        """Give ``amount`` back; ``key`` makes a retried call return the first refund, never a second."""

    async def expire(self, ref: str) -> None:
        """Stop the link taking money (best effort: a late payment is refunded anyway)."""


# --------------------------------------------------------------------------- shared wire helpers


def hmac_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def check_hex_signature(expected: str, given: str) -> bool:
    """Constant-time, on bytes (a non-ASCII header must not raise)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


def check_timestamped(
    header: str | None,
    body: bytes,
    secret: bytes | None,
    now: datetime,
    *,
    tolerance: int,
    name: str,
) -> None:
    """The ``t=<unix>,v1=<hex>[,v1=...]`` scheme (Stripe's, also used by the local checkout):
    HMAC-SHA256 over ``b"<t>." + raw body``. Any one ``v1`` may match (secret rotation); other
    schemes are ignored. Older than ``tolerance`` seconds is refused, and so, unlike the Stripe SDK,
    is a timestamp more than ``tolerance`` seconds in the future."""
    if not secret:
        raise Unauthorized("payment webhooks are not configured for this provider")
    if not header:
        raise Unauthorized(f"missing {name} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if key == "t":
            if not sep:
                raise Unauthorized(f"malformed {name} header")
            if timestamp is None:
                try:
                    timestamp = int(value)
                except ValueError:
                    raise Unauthorized(f"malformed {name} header") from None
        elif key == "v1" and sep:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise Unauthorized(f"malformed {name} header")
    expected = hmac_hex(secret, str(timestamp).encode() + b"." + body)
    if not any(check_hex_signature(expected, c) for c in candidates):
        raise Forbidden("bad signature")
    age = now.timestamp() - timestamp
    if age > tolerance or -age > tolerance:
        raise Forbidden("signature timestamp outside the tolerance")


def sign_timestamped(body: bytes, secret: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={hmac_hex(secret, str(timestamp).encode() + b'.' + body)}"


def load_json(body: bytes) -> dict[str, Any]:
    """A JSON object from raw UTF-8 bytes, else 400."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest("the body must be a JSON object")
    return data


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...`` or None when any step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def request_json(
    http: httpx.AsyncClient, provider: str, method: str, url: str, *, reason: tuple[str, ...], **kwargs: Any
) -> dict[str, Any]:
    """One provider API call: a JSON object back, or ProviderError (unreachable, 4xx/5xx, not JSON)
    carrying the status and the provider's own reason found at ``reason`` in the error body."""
    try:
        resp = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ProviderError(f"{provider} is unreachable ({type(exc).__name__})") from None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code >= 400 or not isinstance(body, dict):
        raise ProviderError(
            f"{provider} answered {resp.status_code}",
            provider_status=resp.status_code,
            _reason=text_or_none(dig(body, *reason)),
        )
    return body
