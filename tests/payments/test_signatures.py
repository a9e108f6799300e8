"""Webhook signature checks against the official SDKs as oracles (reference/payments.md §3).

Sign with the oracle and verify with ours, sign with ours and verify with the oracle, then mutate
and check that both refuse. The SDKs read the real clock, so these cases use it too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import razorpay
import stripe

from bot.payments import check_timestamped, sign_timestamped
from bot.payments.local import HEADER, LocalProvider, checkout_event, checkout_token, purchase_of
from bot.payments.razorpay import RazorpayProvider
from bot.payments.stripe import StripeProvider
from bot.settings import RazorpaySettings, StripeSettings
from core.errors import Forbidden, FrontdeskError, MalformedRequest, Unauthorized

SECRET = "whsec_test_secret_0123456789"
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "checkout.session.completed"}, indent=2).encode()


HTTP = httpx.AsyncClient()  # never used: verify and parse are pure, no request is made


def ours_stripe() -> StripeProvider:
    return StripeProvider(StripeSettings.model_validate({"secret_key": "sk_test", "webhook_secret": SECRET}), HTTP)


def ours_accepts(body: bytes, header: str | None, now: datetime | None = None) -> bool:
    try:
        ours_stripe().verify(body, {"stripe-signature": header} if header is not None else {}, now or datetime.now(UTC))
    except (Unauthorized, Forbidden):
        return False
    return True


def sdk_accepts(body: bytes, header: str | None) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body, header, SECRET, tolerance=300)
    except stripe.SignatureVerificationError:
        return False
    return True


def sdk_header(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at or int(time.time()))


def sig(body: bytes, at: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_case(name: str) -> tuple[bytes, str | None]:
    """Built when the test runs: the SDK compares against the real clock."""
    now = int(time.time())
    good = sdk_header(BODY, at=now)
    cases: dict[str, tuple[bytes, str | None]] = {
        "valid": (BODY, good),
        "tampered body": (BODY.replace(b"completed", b"completeD"), good),
        "wrong secret": (BODY, sdk_header(BODY, "whsec_other", now)),
        "stale 301 s": (BODY, sdk_header(BODY, at=now - 301)),
        "fresh 290 s": (BODY, sdk_header(BODY, at=now - 290)),
        "missing header": (BODY, None),
        "empty header": (BODY, ""),
        "rotation: two v1, one right": (BODY, f"t={now},v1={sig(BODY, now, 'whsec_old')},v1={sig(BODY, now)}"),
        "v0 only": (BODY, f"t={now},v0={sig(BODY, now)}"),
        "no timestamp": (BODY, f"v1={sig(BODY, now)}"),
        "timestamp not a number": (BODY, f"t=abc,v1={sig(BODY, now)}"),
        "signature of another timestamp": (BODY, f"t={now - 1},v1={sig(BODY, now)}"),
        "space before v1": (BODY, f"t={now}, v1={sig(BODY, now)}"),
        "uppercase hex": (BODY, f"t={now},v1={sig(BODY, now).upper()}"),
        "extra unknown pair": (BODY, f"t={now},v1={sig(BODY, now)},foo=bar"),
        "whitespace-padded body": (b" " + BODY + b"\n", good),
    }
    return cases[name]


ACCEPTED = ["valid", "fresh 290 s", "rotation: two v1, one right", "extra unknown pair"]
REFUSED = [
    "tampered body",
    "wrong secret",
    "stale 301 s",
    "missing header",
    "empty header",
    "v0 only",
    "no timestamp",
    "timestamp not a number",
    "signature of another timestamp",
    "space before v1",
    "uppercase hex",
    "whitespace-padded body",
]


@pytest.mark.parametrize("name", ACCEPTED + REFUSED)
def test_stripe_verifier_agrees_with_the_sdk(name: str) -> None:
    body, header = stripe_case(name)
    expected = name in ACCEPTED
    assert sdk_accepts(body, header) is expected
    assert ours_accepts(body, header) is expected


def test_stripe_our_signature_is_accepted_by_the_sdk() -> None:
    now = int(time.time())
    header = sign_timestamped(BODY, SECRET.encode(), now)
    event = stripe.Webhook.construct_event(BODY, header, SECRET, tolerance=300)
    assert event["id"] == "evt_1"
    assert ours_accepts(BODY, header)


def test_stripe_future_timestamps_we_refuse_and_the_sdk_does_not() -> None:
    """Documented difference: the SDK only checks age; we also refuse >5 min in the future."""
    future = int(time.time()) + 600
    header = sdk_header(BODY, at=future)
    assert sdk_accepts(BODY, header) is True
    assert ours_accepts(BODY, header) is False
    assert ours_accepts(BODY, sdk_header(BODY, at=int(time.time()) + 60)) is True


def test_stripe_failures_are_401_when_unreadable_and_403_when_wrong() -> None:
    now = int(time.time())
    provider = ours_stripe()
    with pytest.raises(Unauthorized):
        provider.verify(BODY, {}, datetime.now(UTC))
    with pytest.raises(Unauthorized):
        provider.verify(BODY, {"stripe-signature": "t=1"}, datetime.now(UTC))
    with pytest.raises(Forbidden, match="bad signature"):
        provider.verify(BODY, {"stripe-signature": sdk_header(BODY, "whsec_x", now)}, datetime.now(UTC))
    with pytest.raises(Forbidden, match="tolerance"):
        provider.verify(BODY, {"stripe-signature": sdk_header(BODY, at=now - 1000)}, datetime.now(UTC))


def test_stripe_without_a_webhook_secret_fails_closed() -> None:
    unconfigured = StripeProvider(StripeSettings.model_validate({"secret_key": "sk_test"}), HTTP)
    with pytest.raises(Unauthorized, match="not configured"):
        unconfigured.verify(BODY, {"stripe-signature": sdk_header(BODY)}, datetime.now(UTC))


def test_stripe_non_utf8_body_is_refused_by_both() -> None:
    body = b'{"id": "evt_\xff"}'
    now = int(time.time())
    header = f"t={now},v1={sig(body, now)}"
    with pytest.raises(UnicodeDecodeError):
        stripe.WebhookSignature.verify_header(body, header, SECRET)
    provider = ours_stripe()
    provider.verify(body, {"stripe-signature": header}, datetime.now(UTC))  # the bytes are signed...
    with pytest.raises(MalformedRequest):
        provider.parse(body, {})  # ...but they are not a readable event: 400


# --------------------------------------------------------------------------- Razorpay

RZP_SECRET = "rzp_webhook_secret_test"


def ours_razorpay(webhook_secret: str | None = RZP_SECRET) -> RazorpayProvider:
    return RazorpayProvider(
        RazorpaySettings.model_validate(
            {"key_id": "rzp_test", "key_secret": "api-secret", "webhook_secret": webhook_secret}
        ),
        HTTP,
    )


def rzp_sdk_accepts(body: bytes, signature: str) -> bool:
    client = razorpay.Client(auth=("rzp_test", "api-secret"))
    try:
        return bool(client.utility.verify_webhook_signature(body.decode(), signature, RZP_SECRET))
    except razorpay.errors.SignatureVerificationError:
        return False


def rzp_ours_accepts(body: bytes, signature: str | None) -> bool:
    headers = {"x-razorpay-signature": signature} if signature is not None else {}
    try:
        ours_razorpay().verify(body, headers, datetime.now(UTC))
    except (Unauthorized, Forbidden):
        return False
    return True


RZP_BODY = json.dumps({"entity": "event", "event": "payment_link.paid", "payload": {}}).encode()


def rzp_sig(body: bytes, secret: str = RZP_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("name", "body", "signature", "expected"),
    [
        ("valid", RZP_BODY, rzp_sig(RZP_BODY), True),
        ("tampered body", RZP_BODY.replace(b"paid", b"pain"), rzp_sig(RZP_BODY), False),
        ("re-serialised body", json.dumps(json.loads(RZP_BODY), indent=1).encode(), rzp_sig(RZP_BODY), False),
        ("API secret instead of webhook secret", RZP_BODY, rzp_sig(RZP_BODY, "api-secret"), False),
        ("uppercase hex", RZP_BODY, rzp_sig(RZP_BODY).upper(), False),
        ("truncated", RZP_BODY, rzp_sig(RZP_BODY)[:-2], False),
        ("empty", RZP_BODY, "", False),
    ],
)
def test_razorpay_verifier_agrees_with_the_sdk(name: str, body: bytes, signature: str, expected: bool) -> None:
    assert rzp_sdk_accepts(body, signature) is expected
    assert rzp_ours_accepts(body, signature) is expected


def test_razorpay_missing_signature_and_missing_secret_fail_closed() -> None:
    assert rzp_ours_accepts(RZP_BODY, None) is False
    with pytest.raises(Unauthorized, match="not configured"):
        ours_razorpay(webhook_secret=None).verify(
            RZP_BODY, {"x-razorpay-signature": rzp_sig(RZP_BODY)}, datetime.now(UTC)
        )


def test_razorpay_our_signature_satisfies_the_sdk() -> None:
    """Our expected value is what the SDK computes (same message, same key)."""
    from bot.payments import hmac_hex

    ours = hmac_hex(RZP_SECRET.encode(), RZP_BODY)
    assert rzp_sdk_accepts(RZP_BODY, ours)


# --------------------------------------------------------------------------- the built-in provider


LOCAL = b"local-secret"


def test_local_events_use_the_stripe_scheme_and_the_sdk_accepts_them() -> None:
    now = datetime.now(UTC)
    body, headers = checkout_event(LOCAL, purchase_id="p-1", paid=True, amount=80000, currency="EUR", now=now)
    provider = LocalProvider(LOCAL, "http://frontdesk.test")
    provider.verify(body, {k.lower(): v for k, v in headers.items()}, now)
    stripe.WebhookSignature.verify_header(body, headers[HEADER], LOCAL.decode(), tolerance=300)
    event = provider.parse(body, {})
    assert (event.kind, event.purchase_id, event.amount, event.currency, event.payment_method) == (
        "paid",
        "p-1",
        80000,
        "EUR",
        "local",
    )
    with pytest.raises(Forbidden):
        provider.verify(body.replace(b"80000", b"1"), {HEADER.lower(): headers[HEADER]}, now)
    with pytest.raises(Forbidden):
        LocalProvider(b"another", "http://x").verify(body, {HEADER.lower(): headers[HEADER]}, now)


def test_checkout_tokens_name_one_purchase_and_cannot_be_forged() -> None:
    token = checkout_token(LOCAL, "p-1")
    assert purchase_of(LOCAL, token) == "p-1"
    assert purchase_of(b"other", token) is None
    assert purchase_of(LOCAL, token.replace("p-1", "p-2")) is None
    assert purchase_of(LOCAL, "p-1") is None
    assert purchase_of(LOCAL, "") is None
    assert purchase_of(LOCAL, "p-1.é") is None


def test_check_timestamped_refuses_without_a_secret() -> None:
    now = datetime.now(UTC)
    header = sign_timestamped(BODY, b"k", int(now.timestamp()))
    check_timestamped(header, BODY, b"k", now, tolerance=300, name="X")
    with pytest.raises(Unauthorized):
        check_timestamped(header, BODY, b"", now, tolerance=300, name="X")
    with pytest.raises(Unauthorized):
        check_timestamped(header, BODY, None, now, tolerance=300, name="X")


# --------------------------------------------------------------------------- reading events


def stripe_event(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"id": "evt_9", "object": "event", "type": event_type, "data": {"object": obj}}).encode()


@pytest.mark.parametrize(
    ("event_type", "obj", "kind"),
    [
        ("checkout.session.completed", {"id": "cs_1", "payment_status": "paid"}, "paid"),
        ("checkout.session.completed", {"id": "cs_1", "payment_status": "unpaid"}, "processing"),
        ("checkout.session.async_payment_succeeded", {"id": "cs_1"}, "paid"),
        ("checkout.session.async_payment_failed", {"id": "cs_1"}, "failed"),
        ("checkout.session.expired", {"id": "cs_1"}, "expired"),
        ("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 100}, "refunded"),
        ("refund.updated", {"id": "re_1", "status": "succeeded"}, "refunded"),
        ("refund.updated", {"id": "re_1", "status": "pending"}, "refund_pending"),
        ("refund.failed", {"id": "re_1", "status": "failed"}, "refund_failed"),
        ("charge.dispute.created", {"id": "dp_1", "payment_intent": "pi_1"}, "disputed"),
        ("charge.dispute.closed", {"id": "dp_1", "payment_intent": "pi_1"}, "dispute_closed"),
        ("customer.created", {"id": "cus_1"}, "ignored"),
    ],
)
def test_stripe_event_kinds(event_type: str, obj: dict[str, Any], kind: str) -> None:
    assert ours_stripe().parse(stripe_event(event_type, obj), {}).kind == kind


def test_stripe_session_event_carries_our_ids() -> None:
    obj = {
        "id": "cs_1",
        "payment_status": "paid",
        "client_reference_id": "p-1",
        "metadata": {"purchase_id": "p-1"},
        "payment_intent": "pi_1",
        "payment_method_types": ["card"],
        "amount_total": 80000,
        "currency": "eur",
    }
    event = ours_stripe().parse(stripe_event("checkout.session.completed", obj), {})
    assert (
        event.purchase_id,
        event.provider_ref,
        event.payment_ref,
        event.payment_method,
        event.amount,
        event.currency,
    ) == (
        "p-1",
        "cs_1",
        "pi_1",
        "card",
        80000,
        "EUR",
    )


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"id": "evt"}', b'{"id": 1, "type": "x", "data": {"object": {}}}', b'{"type": "x"}'],
)
def test_unreadable_stripe_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        ours_stripe().parse(body, {})


@pytest.mark.parametrize(
    ("event", "payload", "kind"),
    [
        ("payment_link.paid", {"payment_link": {"entity": {"id": "plink_1", "reference_id": "p-1"}}}, "paid"),
        ("payment_link.expired", {"payment_link": {"entity": {"id": "plink_1"}}}, "expired"),
        ("payment_link.cancelled", {"payment_link": {"entity": {"id": "plink_1"}}}, "expired"),
        ("refund.processed", {"refund": {"entity": {"id": "rfnd_1", "payment_id": "pay_1"}}}, "refunded"),
        ("refund.created", {"refund": {"entity": {"id": "rfnd_1", "payment_id": "pay_1"}}}, "refund_pending"),
        ("refund.failed", {"refund": {"entity": {"id": "rfnd_1", "payment_id": "pay_1"}}}, "refund_failed"),
        ("payment.dispute.created", {"dispute": {"entity": {"payment_id": "pay_1"}}}, "disputed"),
        ("payment.dispute.won", {"dispute": {"entity": {"payment_id": "pay_1"}}}, "dispute_closed"),
        ("payment.captured", {"payment": {"entity": {"id": "pay_1"}}}, "ignored"),
    ],
)
def test_razorpay_event_kinds(event: str, payload: dict[str, Any], kind: str) -> None:
    body = json.dumps({"entity": "event", "event": event, "payload": payload}).encode()
    parsed = ours_razorpay().parse(body, {"x-razorpay-event-id": "Eabc"})
    assert (parsed.kind, parsed.event_id) == (kind, "Eabc")


def test_razorpay_event_without_id_header_is_named_by_its_hash() -> None:
    parsed = ours_razorpay().parse(RZP_BODY.replace(b"{}", b'{"payment_link": {"entity": {"id": "plink_1"}}}'), {})
    assert parsed.event_id.startswith("sha256:") and len(parsed.event_id) == 7 + 64


@pytest.mark.parametrize(
    "body", [b"{", b'{"event": "payment_link.paid"}', b'{"event": "payment_link.paid", "payload": {}}', b"\xff"]
)
def test_unreadable_razorpay_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(FrontdeskError) as err:
        ours_razorpay().parse(body, {})
    assert err.value.status == 400
