"""Stripe: Checkout Sessions in, signed events out (reference/payments.md §1.2-1.4, §2, §4.2).

Requests are form-encoded with bracketed keys, authenticated with the secret key, and every POST
carries an ``Idempotency-Key`` derived from our own state, so a retry after a crash or a timeout
gets the first session or refund back instead of a second one. Webhooks are verified on the raw
bytes with ``Stripe-Signature`` (``t=..,v1=..``, 5-minute window).
"""

from __future__ import annotations

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
    check_timestamped,
    dig,
    int_or_none,
    load_json,
    request_json,
    text_or_none,
)
from bot.settings import StripeSettings
from core.errors import MalformedRequest
from core.payments import PurchaseStatus

# Checkout Sessions must expire 30 minutes to 24 hours after they are created. The session is
# asked to last until 31 minutes after the hold, so that a retried create (same key, same
# parameters) is still valid at any moment of the hold; when the hold lapses the session is
# expired through the API (and a payment that slips through is refunded or confirmed anyway).
MIN_EXPIRY = timedelta(minutes=31)
MAX_EXPIRY = timedelta(hours=23, minutes=59)

_SESSION_KINDS: dict[str, EventKind] = {
    "checkout.session.async_payment_succeeded": "paid",
    "checkout.session.async_payment_failed": "failed",
    "checkout.session.expired": "expired",
}
_REFUND_STATUS: dict[str, EventKind] = {
    "succeeded": "refunded",
    "pending": "refund_pending",
    "requires_action": "refund_pending",
    "failed": "refund_failed",
    "canceled": "refund_failed",
}


class StripeProvider:
    name = "stripe"

    def __init__(self, settings: StripeSettings, http: httpx.AsyncClient) -> None:
        self._secret_key = settings.secret_key.get_secret_value() if settings.secret_key else None
        self._webhook_secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
        self._base = settings.api_base_url.rstrip("/")
        self._tolerance = settings.tolerance_seconds
        self._http = http

    # ----------------------------------------------------------------------- inbound

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
        check_timestamped(
            headers.get("stripe-signature"),
            body,
            self._webhook_secret,
            now,
            tolerance=self._tolerance,
            name="Stripe-Signature",
        )

    def parse(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        data = load_json(body)
        event_id, event_type, obj = data.get("id"), data.get("type"), dig(data, "data", "object")
        if (
            not isinstance(event_id, str)
            or not event_id
            or not isinstance(event_type, str)
            or not isinstance(obj, dict)
        ):
            raise MalformedRequest("not a Stripe event")
        if event_type.startswith("checkout.session."):
            return self._session_event(event_id, event_type, obj)
        if event_type == "charge.refunded":
            return PaymentEvent(
                event_id,
                event_type,
                "refunded",
                purchase_id=text_or_none(dig(obj, "metadata", "purchase_id")),
                payment_ref=_id(obj.get("payment_intent")),
                amount=int_or_none(obj.get("amount_refunded")),
                currency=_currency(obj.get("currency")),
            )
        if event_type in ("refund.created", "refund.updated", "refund.failed"):
            status = obj.get("status")
            kind: EventKind = (
                "refund_failed" if event_type == "refund.failed" else _REFUND_STATUS.get(str(status), "ignored")
            )
            return PaymentEvent(
                event_id,
                event_type,
                kind,
                purchase_id=text_or_none(dig(obj, "metadata", "purchase_id")),
                payment_ref=_id(obj.get("payment_intent")),
                amount=int_or_none(obj.get("amount")),
                currency=_currency(obj.get("currency")),
                refund_ref=text_or_none(obj.get("id")),
            )
        if event_type in ("charge.dispute.created", "charge.dispute.closed"):
            return PaymentEvent(
                event_id,
                event_type,
                "disputed" if event_type.endswith("created") else "dispute_closed",
                payment_ref=_id(obj.get("payment_intent")),
                amount=int_or_none(obj.get("amount")),
                currency=_currency(obj.get("currency")),
            )
        return PaymentEvent(event_id, event_type, "ignored")

    def _session_event(self, event_id: str, event_type: str, obj: dict[str, Any]) -> PaymentEvent:
        if event_type == "checkout.session.completed":
            paid = obj.get("payment_status") in ("paid", "no_payment_required")
            kind: EventKind = "paid" if paid else "processing"
        else:
            kind = _SESSION_KINDS.get(event_type, "ignored")
        methods = obj.get("payment_method_types")
        return PaymentEvent(
            event_id,
            event_type,
            kind,
            purchase_id=text_or_none(dig(obj, "metadata", "purchase_id"))
            or text_or_none(obj.get("client_reference_id")),
            provider_ref=text_or_none(obj.get("id")),
            payment_ref=_id(obj.get("payment_intent")),
            payment_method=methods[0]
            if isinstance(methods, list) and methods and isinstance(methods[0], str)
            else None,
            amount=int_or_none(obj.get("amount_total")),
            currency=_currency(obj.get("currency")),
        )

    # ----------------------------------------------------------------------- outbound

    def expiry(self, hold_expires_at: datetime, now: datetime) -> datetime:
        return min(max(hold_expires_at, now) + MIN_EXPIRY, now + MAX_EXPIRY)

    async def create_link(self, req: LinkRequest) -> Link:
        expires = req.link_expires_at
        form = {
            "mode": "payment",
            "client_reference_id": req.purchase_id,
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": req.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(req.amount),
            "line_items[0][price_data][product_data][name]": req.description,
            "metadata[purchase_id]": req.purchase_id,
            "metadata[tenant_id]": req.tenant_id,
            "metadata[appointment_id]": req.appointment_id,
            "payment_intent_data[metadata][purchase_id]": req.purchase_id,
            "payment_intent_data[metadata][tenant_id]": req.tenant_id,
            "expires_at": str(int(expires.timestamp())),
            "success_url": req.return_url,
            "cancel_url": req.return_url,
            "locale": "auto",
        }
        session = await self._call("POST", "/v1/checkout/sessions", data=form, key=req.idempotency_key)
        ref, url = text_or_none(session.get("id")), text_or_none(session.get("url"))
        if ref is None or url is None:
            raise ProviderError("stripe answered without a session id or url")
        at = int_or_none(session.get("expires_at"))
        return Link(ref, url, datetime.fromtimestamp(at, UTC) if at else expires)

    async def fetch(self, ref: str) -> Remote:
        session = await self._call(
            "GET", f"/v1/checkout/sessions/{ref}", params={"expand[]": "payment_intent.latest_charge"}
        )
        intent = session.get("payment_intent")
        charge = dig(intent, "latest_charge") if isinstance(intent, dict) else None
        refunded = int_or_none(dig(charge, "amount_refunded")) or 0
        status: PurchaseStatus | None = None
        if session.get("payment_status") in ("paid", "no_payment_required"):
            status = PurchaseStatus.COMPLETED
            if dig(charge, "disputed") is True:
                status = PurchaseStatus.DISPUTED
            elif refunded > 0:
                status = PurchaseStatus.REFUNDED
        elif session.get("status") == "expired":
            status = PurchaseStatus.EXPIRED
        methods = session.get("payment_method_types")
        return Remote(
            status,
            payment_ref=_id(intent),
            payment_method=methods[0] if isinstance(methods, list) and methods else None,
            amount=int_or_none(session.get("amount_total")),
            refunded=refunded,
        )

    async def refund(self, *, payment_ref: str, amount: int, currency: str, key: str, purchase_id: str) -> RefundResult:
        form = {
            "payment_intent": payment_ref,
            "amount": str(amount),
            "reason": "requested_by_customer",
            "metadata[purchase_id]": purchase_id,
        }
        refund = await self._call("POST", "/v1/refunds", data=form, key=key)
        ref = text_or_none(refund.get("id"))
        if ref is None:
            raise ProviderError("stripe answered without a refund id")
        status = refund.get("status")
        return RefundResult(ref, settled=status == "succeeded", failed=status in ("failed", "canceled"))

    async def expire(self, ref: str) -> None:
        try:
            await self._call("POST", f"/v1/checkout/sessions/{ref}/expire", data={}, key=f"expire:{ref}")
        except ProviderError as exc:
            if exc.details.get("provider_status", 500) >= 500:
                raise
            # 4xx: the session is no longer open (paid, or expired already): nothing to stop.

    async def _call(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        if not self._secret_key:
            raise ProviderError("stripe is not configured (payments.stripe.secret_key)")
        headers = {"Authorization": f"Bearer {self._secret_key}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await request_json(
            self._http,
            "stripe",
            method,
            self._base + path,
            reason=("error", "message"),
            data=data,
            params=params,
            headers=headers,
        )


def _id(value: Any) -> str | None:
    """An expandable field: the id string, or the expanded object's ``id``."""
    if isinstance(value, dict):
        return text_or_none(value.get("id"))
    return text_or_none(value)


def _currency(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value else None
