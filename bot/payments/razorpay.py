"""Razorpay: Payment Links in, signed events out (reference/payments.md §1.5, §2, §4.2).

JSON requests with basic auth ``key_id:key_secret``. Razorpay has no generic idempotency header, so
our business keys do that work: the link's ``reference_id`` is the purchase id (a retried create
that is refused as a duplicate finds the first link by reference) and a refund's ``receipt`` is
our refund key (looked for among the payment's refunds before asking for a new one). Webhooks are
verified on the raw body with ``X-Razorpay-Signature`` and the *webhook* secret (not the API
secret); there is no timestamp, so deduplication by ``x-razorpay-event-id`` is the replay guard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.payments import (
    EventKind,
    Link,
    LinkRequest,
    PaymentEvent,
    ProviderError,
    RefundResult,
    Remote,
    check_hex_signature,
    dig,
    hmac_hex,
    int_or_none,
    load_json,
    request_json,
    text_or_none,
)
from bot.settings import RazorpaySettings
from core.errors import Forbidden, MalformedRequest, Unauthorized
from core.payments import PurchaseStatus

# A link must stay open a little while (Razorpay refuses very short expiries; the exact minimum is
# unconfirmed): a shorter hold is ended by cancelling the link when the hold lapses.
MIN_EXPIRY = timedelta(minutes=16)

_LINK_KINDS: dict[str, EventKind] = {
    "payment_link.paid": "paid",
    "payment_link.partially_paid": "processing",
    "payment_link.expired": "expired",
    "payment_link.cancelled": "expired",
}
_REFUND_KINDS: dict[str, EventKind] = {
    "refund.processed": "refunded",
    "refund.created": "refund_pending",
    "refund.failed": "refund_failed",
}


class RazorpayProvider:
    name = "razorpay"

    def __init__(self, settings: RazorpaySettings, http: httpx.AsyncClient) -> None:
        self._key_id = settings.key_id
        self._key_secret = settings.key_secret.get_secret_value() if settings.key_secret else None
        self._webhook_secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
        self._base = settings.api_base_url.rstrip("/")
        self._http = http

    # ----------------------------------------------------------------------- inbound

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        if not self._webhook_secret:
            raise Unauthorized("payment webhooks are not configured for this provider")
        given = headers.get("x-razorpay-signature")
        if not given:
            raise Unauthorized("missing X-Razorpay-Signature header")
        if not check_hex_signature(hmac_hex(self._webhook_secret, body), given):
            raise Forbidden("bad signature")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        data = load_json(body)
        event_type, payload = data.get("event"), data.get("payload")
        if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
            raise MalformedRequest("not a Razorpay event")
        # Razorpay names the event in a header; a body without one is identified by its hash.
        event_id = headers.get("x-razorpay-event-id") or "sha256:" + hashlib.sha256(body).hexdigest()
        payment = dig(payload, "payment", "entity")
        if event_type in _LINK_KINDS:
            link = dig(payload, "payment_link", "entity")
            if not isinstance(link, dict):
                raise MalformedRequest("a payment_link event without its payment link")
            return PaymentEvent(
                event_id,
                event_type,
                _LINK_KINDS[event_type],
                purchase_id=text_or_none(link.get("reference_id")) or text_or_none(dig(link, "notes", "purchase_id")),
                provider_ref=text_or_none(link.get("id")),
                payment_ref=text_or_none(dig(payment, "id")),
                payment_method=text_or_none(dig(payment, "method")),
                amount=int_or_none(dig(payment, "amount")) or int_or_none(link.get("amount_paid")),
                currency=text_or_none(link.get("currency")),
            )
        if event_type in _REFUND_KINDS:
            refund = dig(payload, "refund", "entity")
            if not isinstance(refund, dict):
                raise MalformedRequest("a refund event without its refund")
            return PaymentEvent(
                event_id,
                event_type,
                _REFUND_KINDS[event_type],
                purchase_id=text_or_none(dig(refund, "notes", "purchase_id")),
                payment_ref=text_or_none(refund.get("payment_id")),
                amount=int_or_none(refund.get("amount")),
                currency=text_or_none(refund.get("currency")),
                refund_ref=text_or_none(refund.get("id")),
            )
        if event_type.startswith("payment.dispute."):
            dispute = dig(payload, "dispute", "entity")
            kind: EventKind = "disputed" if event_type == "payment.dispute.created" else "dispute_closed"
            return PaymentEvent(
                event_id,
                event_type,
                kind,
                payment_ref=text_or_none(dig(dispute, "payment_id")) or text_or_none(dig(payment, "id")),
                amount=int_or_none(dig(dispute, "amount")),
                currency=text_or_none(dig(dispute, "currency")),
            )
        return PaymentEvent(event_id, event_type, "ignored")

    # ----------------------------------------------------------------------- outbound

    def expiry(self, hold_expires_at: datetime, now: datetime) -> datetime:
        return max(hold_expires_at, now + MIN_EXPIRY)

    async def create_link(self, req: LinkRequest) -> Link:
        expires = req.link_expires_at
        customer: dict[str, str] = {"name": req.customer_name[:100]}
        if req.customer_phone:
            customer["contact"] = req.customer_phone
        body = {
            "amount": req.amount,
            "currency": req.currency,
            "accept_partial": False,
            "description": req.description[:2048],
            "reference_id": req.purchase_id,
            "expire_by": int(expires.timestamp()),
            "customer": customer,
            "notify": {"sms": False, "email": False},  # the link goes into the conversation instead
            "reminder_enable": False,
            "notes": {"purchase_id": req.purchase_id, "tenant_id": req.tenant_id, "appointment_id": req.appointment_id},
            "callback_url": req.return_url,
            "callback_method": "get",
        }
        try:
            link = await self._call("POST", "/v1/payment_links", json=body)
        except ProviderError as exc:
            if exc.details.get("provider_status") != 400 or "reference" not in str(exc.details.get("_reason", "")):
                raise
            found = await self._call("GET", "/v1/payment_links", params={"reference_id": req.purchase_id})
            links = [
                item
                for item in found.get("payment_links", [])
                if isinstance(item, dict) and item.get("reference_id") == req.purchase_id
            ]
            if not links:
                raise
            link = links[0]
        ref, url = text_or_none(link.get("id")), text_or_none(link.get("short_url"))
        if ref is None or url is None:
            raise ProviderError("razorpay answered without a link id or url")
        at = int_or_none(link.get("expire_by"))
        return Link(ref, url, datetime.fromtimestamp(at, UTC) if at else expires)

    async def fetch(self, ref: str) -> Remote:
        link = await self._call("GET", f"/v1/payment_links/{ref}")
        status = link.get("status")
        payments = [p for p in link.get("payments") or [] if isinstance(p, dict)]
        captured = next((p for p in payments if p.get("status") in ("captured", "refunded")), None)
        payment_ref = text_or_none(dig(captured, "payment_id"))
        if status == "paid":
            refunded = 0
            if payment_ref:
                payment = await self._call("GET", f"/v1/payments/{payment_ref}")
                refunded = int_or_none(payment.get("amount_refunded")) or 0
            return Remote(
                PurchaseStatus.REFUNDED if refunded else PurchaseStatus.COMPLETED,
                payment_ref=payment_ref,
                payment_method=text_or_none(dig(captured, "method")),
                amount=int_or_none(link.get("amount_paid")),
                refunded=refunded,
            )
        if status in ("expired", "cancelled"):
            return Remote(PurchaseStatus.EXPIRED)
        return Remote(None)

    async def refund(self, *, payment_ref: str, amount: int, currency: str, key: str, purchase_id: str) -> RefundResult:
        known = await self._call("GET", f"/v1/payments/{payment_ref}/refunds")
        for item in known.get("items") or []:
            if isinstance(item, dict) and item.get("receipt") == key:
                return _refund_result(item)
        refund = await self._call(
            "POST",
            f"/v1/payments/{payment_ref}/refund",
            json={"amount": amount, "speed": "normal", "receipt": key, "notes": {"purchase_id": purchase_id}},
        )
        return _refund_result(refund)

    async def expire(self, ref: str) -> None:
        try:
            await self._call("POST", f"/v1/payment_links/{ref}/cancel")
        except ProviderError as exc:
            if exc.details.get("provider_status", 500) >= 500:
                raise
            # 4xx: already paid, expired or cancelled.

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if not self._key_id or not self._key_secret:
            raise ProviderError("razorpay is not configured (payments.razorpay.key_id/key_secret)")
        return await request_json(
            self._http,
            "razorpay",
            method,
            self._base + path,
            reason=("error", "description"),
            json=json,
            params=params,
            auth=(self._key_id, self._key_secret),
        )


def _refund_result(refund: dict[str, Any]) -> RefundResult:
    ref = text_or_none(refund.get("id"))
    if ref is None:
        raise ProviderError("razorpay answered without a refund id")
    status = refund.get("status")
    return RefundResult(ref, settled=status == "processed", failed=status == "failed")
