"""A fake Stripe API on loopback: real HTTP, Stripe's wire format, recorded requests, injected faults.

It speaks what frontdesk uses: form-encoded Checkout Session create / retrieve (with
``expand[]``) / expire, and refunds; ``Idempotency-Key`` replays the first answer for the same
parameters and refuses different ones, as Stripe does. Test helpers play the customer and Stripe's
side (complete, fail, expire, refund, dispute) and return events in Stripe's envelope, signed with
the official ``stripe`` SDK so that our verifier is checked against it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.provider import Fault, LoopbackProvider


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]


def unflatten(flat: dict[str, str]) -> dict[str, Any]:
    """``a[b][0][c]=v`` → ``{"a": {"b": [{"c": "v"}]}}`` (Stripe's bracket notation)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.replace("]", "").split("[")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append({} if not nxt_is_index else [])
                if last:
                    node[index] = value
                else:
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return out


@dataclass
class FakeStripe(LoopbackProvider):
    clock: Callable[[], datetime]
    secret_key: str = "sk_test_frontdesk"
    webhook_secret: str = "whsec_frontdesk_test"
    refund_status: str = "succeeded"  # what a new refund answers: succeeded | pending
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _idempotent: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    _server: TestServer | None = None

    # ----------------------------------------------------------------------- server

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions/{id}", self._get_session)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._expire_session)
        app.router.add_post("/v1/refunds", self._create_refund)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()} if request.method == "POST" else {}
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), form, dict(request.query)))
        early, late = self.faults_for(request.path)
        if early is not None:
            return _error(early.status, "api_error", "injected fault")
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        response = await self._idempotent_call(request, handler, form)
        return _error(late.status, "api_error", "injected fault") if late else response

    async def _idempotent_call(self, request: web.Request, handler: Any, form: dict[str, str]) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None:
            return await handler(request)
        fingerprint = json.dumps([request.path, sorted(form.items())])
        if key in self._idempotent:
            seen, status, body = self._idempotent[key]
            if seen != fingerprint:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        response = await handler(request)
        assert isinstance(response, web.Response) and response.text is not None
        if not 400 <= response.status < 500:  # a request refused by validation is not saved
            self._idempotent[key] = (fingerprint, response.status, json.loads(response.text))
        return response

    # ----------------------------------------------------------------------- API

    async def _create_session(self, request: web.Request) -> web.Response:
        params = unflatten({k: str(v) for k, v in (await request.post()).items()})
        now = int(self.clock().timestamp())
        try:
            item = params["line_items"][0]
            price = item["price_data"]
            amount, currency = int(price["unit_amount"]), price["currency"]
            expires_at = int(params.get("expires_at", now + 86400))
            assert params["mode"] == "payment" and int(item["quantity"]) == 1 and price["product_data"]["name"]
        except (KeyError, IndexError, ValueError, AssertionError, TypeError):
            return _error(400, "invalid_request_error", "Missing or invalid parameters")
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            return _error(
                400,
                "invalid_request_error",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
            )
        sid = f"cs_test_{secrets.token_hex(12)}"
        self.sessions[sid] = {
            "id": sid,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "amount_subtotal": amount,
            "currency": currency,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "payment_intent": None,
            "payment_method_types": ["card"],
            "expires_at": expires_at,
            "created": now,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"https://checkout.stripe.test/c/pay/{sid}",
            "livemode": False,
            "_intent_metadata": dict(params.get("payment_intent_data", {}).get("metadata", {})),
        }
        return web.json_response(self._public(self.sessions[sid]))

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        body = self._public(session)
        expand = request.query.getall("expand[]", [])
        if "payment_intent" in expand or "payment_intent.latest_charge" in expand:
            intent = self.intents.get(session["payment_intent"] or "")
            if intent is not None:
                intent = dict(intent)
                if "payment_intent.latest_charge" in expand:
                    intent["latest_charge"] = dict(self.charges[intent["latest_charge"]])
                body["payment_intent"] = intent
        return web.json_response(body)

    async def _expire_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        if session["status"] != "open":
            return _error(
                400, "invalid_request_error", 'Only Checkout Sessions with a status in ["open"] can be expired.'
            )
        session["status"] = "expired"
        return web.json_response(self._public(session))

    async def _create_refund(self, request: web.Request) -> web.Response:
        params = unflatten({k: str(v) for k, v in (await request.post()).items()})
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            return _error(400, "invalid_request_error", "No such payment_intent")
        charge = self.charges[intent["latest_charge"]]
        amount = int(params.get("amount", charge["amount"] - charge["amount_refunded"]))
        if amount <= 0 or amount > charge["amount"] - charge["amount_refunded"]:
            return _error(400, "invalid_request_error", "Refund amount is greater than unrefunded amount on charge")
        rid = f"re_{secrets.token_hex(10)}"
        refund = {
            "id": rid,
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": intent["id"],
            "reason": params.get("reason"),
            "metadata": params.get("metadata", {}),
            "status": self.refund_status,
            "created": int(self.clock().timestamp()),
        }
        self.refunds[rid] = refund
        if self.refund_status == "succeeded":
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return web.json_response(refund)

    # ----------------------------------------------------------------------- the customer and Stripe

    def session_for(self, purchase_id: str) -> dict[str, Any]:
        [session] = [s for s in self.sessions.values() if s["client_reference_id"] == purchase_id]
        return session

    def complete(self, session_id: str, *, paid: bool = True) -> dict[str, Any]:
        """The customer pays on the hosted page: checkout.session.completed."""
        session = self.sessions[session_id]
        pi, ch = f"pi_{secrets.token_hex(10)}", f"ch_{secrets.token_hex(10)}"
        meta = dict(session["_intent_metadata"])
        self.intents[pi] = {
            "id": pi,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "currency": session["currency"],
            "status": "succeeded" if paid else "processing",
            "metadata": meta,
            "latest_charge": ch,
        }
        self.charges[ch] = {
            "id": ch,
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": 0,
            "currency": session["currency"],
            "payment_intent": pi,
            "metadata": meta,  # Stripe copies the PaymentIntent's metadata onto its charges
            "refunded": False,
            "disputed": False,
            "paid": paid,
        }
        session.update(status="complete", payment_status="paid" if paid else "unpaid", payment_intent=pi)
        return self.event("checkout.session.completed", self._public(session))

    def async_outcome(self, session_id: str, *, succeeded: bool) -> dict[str, Any]:
        session = self.sessions[session_id]
        intent = self.intents[session["payment_intent"]]
        intent["status"] = "succeeded" if succeeded else "requires_payment_method"
        session["payment_status"] = "paid" if succeeded else "unpaid"
        kind = "succeeded" if succeeded else "failed"
        return self.event(f"checkout.session.async_payment_{kind}", self._public(session))

    def expire(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session["status"] = "expired"
        return self.event("checkout.session.expired", self._public(session))

    def charge_refunded(self, payment_intent: str) -> dict[str, Any]:
        charge = self.charges[self.intents[payment_intent]["latest_charge"]]
        return self.event("charge.refunded", dict(charge))

    def refund_everything_from_dashboard(self, payment_intent: str) -> dict[str, Any]:
        charge = self.charges[self.intents[payment_intent]["latest_charge"]]
        charge.update(amount_refunded=charge["amount"], refunded=True)
        return self.event("charge.refunded", dict(charge))

    def refund_updated(self, refund_id: str, status: str) -> dict[str, Any]:
        refund = self.refunds[refund_id]
        refund["status"] = status
        if status == "succeeded":
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] += refund["amount"]
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return self.event("refund.updated", dict(refund))

    def dispute(self, payment_intent: str) -> dict[str, Any]:
        charge = self.charges[self.intents[payment_intent]["latest_charge"]]
        charge["disputed"] = True
        return self.event(
            "charge.dispute.created",
            {
                "id": f"dp_{secrets.token_hex(8)}",
                "object": "dispute",
                "amount": charge["amount"],
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": payment_intent,
                "reason": "fraudulent",
                "status": "needs_response",
            },
        )

    def event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(self.clock().timestamp()),
            "type": event_type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": obj},
        }

    def signed(self, event: dict[str, Any], *, at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST, signed by the official SDK."""
        body = json.dumps(event, indent=2)  # Stripe pretty-prints: the signature covers these exact bytes
        timestamp = int((at or self.clock()).timestamp())
        header = stripe.WebhookSignature.generate_signature_header(body, self.webhook_secret, timestamp)
        return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}

    @staticmethod
    def _public(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if not k.startswith("_")}


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)
