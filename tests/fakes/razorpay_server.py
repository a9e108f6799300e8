"""A fake Razorpay API on loopback: real HTTP, Razorpay's wire format, recorded requests, injected faults.

JSON with basic auth; Payment Links (create, fetch, fetch by reference, cancel), payments and their
refunds. Test helpers play the customer and Razorpay (pay, expire, refund processed, dispute) and
return webhook bodies signed as Razorpay does: hex HMAC-SHA256 of the raw body with the webhook
secret, plus the ``x-razorpay-event-id`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.provider import Fault, LoopbackProvider


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str]


@dataclass
class FakeRazorpay(LoopbackProvider):
    clock: Callable[[], datetime]
    key_id: str = "rzp_test_frontdesk"
    key_secret: str = "rzp_key_secret"
    webhook_secret: str = "rzp_webhook_secret"
    refund_status: str = "processed"  # what a new refund answers: processed | pending
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _server: TestServer | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/payment_links", self._create_link)
        app.router.add_get("/v1/payment_links", self._list_links)
        app.router.add_get("/v1/payment_links/{id}", self._get_link)
        app.router.add_post("/v1/payment_links/{id}/cancel", self._cancel_link)
        app.router.add_get("/v1/payments/{id}", self._get_payment)
        app.router.add_get("/v1/payments/{id}/refunds", self._list_refunds)
        app.router.add_post("/v1/payments/{id}/refund", self._refund)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body, dict(request.query)))
        early, late = self.faults_for(request.path)
        if early is not None:
            return _error(early.status, "SERVER_ERROR", "injected fault")
        expected = "Basic " + base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _error(401, "BAD_REQUEST_ERROR", "The api key provided is invalid")
        response = await handler(request)
        return _error(late.status, "SERVER_ERROR", "injected fault") if late else response

    # ----------------------------------------------------------------------- API

    async def _create_link(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = int(self.clock().timestamp())
        amount, currency, reference = body.get("amount"), body.get("currency"), body.get("reference_id")
        if not isinstance(amount, int) or amount < 100 or not isinstance(currency, str):
            return _error(400, "BAD_REQUEST_ERROR", "The amount must be atleast INR 1.00")
        expire_by = body.get("expire_by")
        if expire_by is not None and expire_by < now + 15 * 60:
            return _error(400, "BAD_REQUEST_ERROR", "expire_by should be at least 15 minutes after current time")
        if reference and any(link["reference_id"] == reference for link in self.links.values()):
            return _error(400, "BAD_REQUEST_ERROR", f"Payment Link with reference_id {reference} already exists")
        lid = f"plink_{secrets.token_hex(7)}"
        self.links[lid] = {
            "id": lid,
            "accept_partial": body.get("accept_partial", False),
            "amount": amount,
            "amount_paid": 0,
            "currency": currency,
            "customer": body.get("customer", {}),
            "description": body.get("description", ""),
            "expire_by": expire_by or 0,
            "notes": body.get("notes") or {},
            "notify": body.get("notify", {}),
            "payments": None,
            "reference_id": reference or "",
            "reminder_enable": body.get("reminder_enable", True),
            "short_url": f"https://rzp.io/i/{secrets.token_urlsafe(6)}",
            "status": "created",
            "callback_url": body.get("callback_url", ""),
            "callback_method": body.get("callback_method", ""),
            "created_at": now,
            "updated_at": now,
            "user_id": "",
        }
        return web.json_response(self.links[lid])

    async def _list_links(self, request: web.Request) -> web.Response:
        reference = request.query.get("reference_id")
        found = [link for link in self.links.values() if reference is None or link["reference_id"] == reference]
        return web.json_response({"payment_links": found})

    async def _get_link(self, request: web.Request) -> web.Response:
        link = self.links.get(request.match_info["id"])
        if link is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        return web.json_response(link)

    async def _cancel_link(self, request: web.Request) -> web.Response:
        link = self.links.get(request.match_info["id"])
        if link is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        if link["status"] != "created":
            return _error(400, "BAD_REQUEST_ERROR", f"Payment Link cannot be cancelled in {link['status']} state")
        link["status"] = "cancelled"
        return web.json_response(link)

    async def _get_payment(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        return web.json_response(payment)

    async def _list_refunds(self, request: web.Request) -> web.Response:
        items = [r for r in self.refunds.values() if r["payment_id"] == request.match_info["id"]]
        return web.json_response({"entity": "collection", "count": len(items), "items": items})

    async def _refund(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        body = await request.json()
        amount = body.get("amount", payment["amount"] - payment["amount_refunded"])
        if not isinstance(amount, int) or amount <= 0 or amount > payment["amount"] - payment["amount_refunded"]:
            return _error(400, "BAD_REQUEST_ERROR", "The refund amount provided is greater than amount captured")
        rid = f"rfnd_{secrets.token_hex(7)}"
        refund = {
            "id": rid,
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment["id"],
            "notes": body.get("notes") or {},
            "receipt": body.get("receipt"),
            "status": self.refund_status,
            "speed_requested": body.get("speed", "normal"),
            "created_at": int(self.clock().timestamp()),
        }
        self.refunds[rid] = refund
        if self.refund_status == "processed":
            self._settle(refund)
        return web.json_response(refund)

    def _settle(self, refund: dict[str, Any]) -> None:
        payment = self.payments[refund["payment_id"]]
        payment["amount_refunded"] += refund["amount"]
        payment["refund_status"] = "full" if payment["amount_refunded"] >= payment["amount"] else "partial"
        if payment["refund_status"] == "full":
            payment["status"] = "refunded"

    # ----------------------------------------------------------------------- the customer and Razorpay

    def link_for(self, purchase_id: str) -> dict[str, Any]:
        [link] = [link for link in self.links.values() if link["reference_id"] == purchase_id]
        return link

    def pay(self, link_id: str, *, method: str = "upi") -> dict[str, Any]:
        link = self.links[link_id]
        now = int(self.clock().timestamp())
        pid, oid = f"pay_{secrets.token_hex(7)}", f"order_{secrets.token_hex(7)}"
        payment = {
            "id": pid,
            "entity": "payment",
            "amount": link["amount"],
            "currency": link["currency"],
            "status": "captured",
            "order_id": oid,
            "method": method,
            "amount_refunded": 0,
            "refund_status": None,
            "captured": True,
            "description": link["description"],
            "notes": [],
            "created_at": now,
        }
        self.payments[pid] = payment
        link.update(
            status="paid",
            amount_paid=link["amount"],
            payments=[
                {"amount": link["amount"], "created_at": now, "method": method, "payment_id": pid, "status": "captured"}
            ],
        )
        order = {
            "id": oid,
            "entity": "order",
            "amount": link["amount"],
            "amount_paid": link["amount"],
            "status": "paid",
        }
        return self.event(
            "payment_link.paid",
            {"payment_link": {"entity": dict(link)}, "order": {"entity": order}, "payment": {"entity": dict(payment)}},
        )

    def expire(self, link_id: str) -> dict[str, Any]:
        link = self.links[link_id]
        link["status"] = "expired"
        return self.event("payment_link.expired", {"payment_link": {"entity": dict(link)}})

    def refund_processed(self, refund_id: str) -> dict[str, Any]:
        refund = self.refunds[refund_id]
        if refund["status"] != "processed":
            refund["status"] = "processed"
            self._settle(refund)
        payment = self.payments[refund["payment_id"]]
        return self.event(
            "refund.processed", {"refund": {"entity": dict(refund)}, "payment": {"entity": dict(payment)}}
        )

    def dispute(self, payment_id: str) -> dict[str, Any]:
        payment = self.payments[payment_id]
        dispute = {
            "id": f"disp_{secrets.token_hex(7)}",
            "entity": "dispute",
            "payment_id": payment_id,
            "amount": payment["amount"],
            "currency": payment["currency"],
            "status": "open",
            "phase": "chargeback",
        }
        return self.event("payment.dispute.created", {"dispute": {"entity": dispute}, "payment": {"entity": payment}})

    def event(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "entity": "event",
            "account_id": "acc_frontdesk",
            "event": event_type,
            "contains": list(payload),
            "payload": payload,
            "created_at": int(self.clock().timestamp()),
        }

    def signed(self, event: dict[str, Any], *, event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event).encode()
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return body, {
            "X-Razorpay-Signature": signature,
            "x-razorpay-event-id": event_id or f"E{secrets.token_hex(8)}",
            "Content-Type": "application/json",
        }


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "code": code,
                "description": description,
                "source": "business",
                "reason": "input_validation_failed",
            }
        },
        status=status,
    )
