"""Prometheus metrics, in a registry owned by the app (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "frontdesk_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "frontdesk_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=r
        )
        self.bookings = Counter(
            "frontdesk_bookings_total", "Booking operations by outcome", ["operation", "outcome"], registry=r
        )
        self.errors = Counter("frontdesk_errors_total", "Errors answered to clients", ["code"], registry=r)
        self.webhooks = Counter(
            "frontdesk_webhook_events_total",
            "Webhook events stored, by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.webhook_rejected = Counter(
            "frontdesk_webhook_rejected_total", "Webhook requests refused", ["channel", "reason"], registry=r
        )
        self.turns = Counter("frontdesk_inbox_turns_total", "Inbox rows processed", ["channel", "outcome"], registry=r)
        self.deliveries = Counter(
            "frontdesk_outbox_deliveries_total", "Outbox delivery attempts", ["channel", "outcome"], registry=r
        )
        self.ack_latency = Histogram(
            "frontdesk_webhook_ack_seconds", "Webhook receipt to answer", ["channel"], registry=r
        )
