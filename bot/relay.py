"""The outbox relay: delivers queued messages through their channel's adapter, with retries.

Transient failures (timeouts, connection errors, 408/429/5xx) come back after an exponential
backoff with full jitter, never before the provider's ``Retry-After``; permanent ones (other 4xx,
a blocked bot, WhatsApp's closed window without a template) go dead at once, visible and
replayable. The relay is the only retry layer for messages: adapters try once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.faults import Faults
from bot.metrics import Metrics
from bot.settings import OutboxSettings
from channels.base import Channel, DeliveryError, OutboundMessage
from storage import outbox
from storage.engine import Database

log = logging.getLogger(__name__)


def backoff_seconds(attempt: int, settings: OutboxSettings, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(attempt-1))]."""
    ceiling = min(settings.backoff_cap_seconds, settings.backoff_base_seconds * 2 ** max(attempt - 1, 0))
    return rng.uniform(0, ceiling)


class OutboxRelay:
    def __init__(
        self,
        *,
        db: Database,
        channels: Mapping[tuple[str, str], Channel],  # (agent id, channel name) → adapter
        settings: OutboxSettings,
        clock: Callable[[], datetime],
        metrics: Metrics,
        rng: random.Random | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.db = db
        self.channels = channels
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.faults = faults or Faults()
        self.holder = f"relay-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._recovered_at: datetime | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: recover abandoned sends, deliver what is due, sleep until woken or polled."""
        while True:
            try:
                busy = await self.run_once()
            except Exception as exc:  # the database hiccuped: try again on the next pass
                log.warning("outbox pass failed: %s", type(exc).__name__)
                busy = 0
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def run_once(self) -> int:
        """One pass; returns how many rows it tried to deliver."""
        now = self.clock()
        # abandoned sends only appear when a lease lapses: looking every half lease is enough
        if self._recovered_at is None or now - self._recovered_at >= timedelta(seconds=self.settings.lease_seconds / 2):
            self._recovered_at = now
            recovered = await outbox.recover(self.db, now)
            if recovered:
                log.warning("outbox: %d message(s) may be delivered twice (relay stopped mid-send)", recovered)
        batch = await outbox.claim_due(self.db, self.holder, now, self.settings.batch_size, self.settings.lease_seconds)
        if batch:
            accepted = await asyncio.gather(*(self._deliver(d) for d in batch))
            sent = [(d, provider_id) for d, provider_id in zip(batch, accepted, strict=True) if provider_id is not None]
            if sent:
                await outbox.mark_sent(self.db, sent, self.clock())
                for delivery, _ in sent:
                    self.metrics.deliveries.labels(delivery.channel, "sent").inc()
        return len(batch)

    async def _deliver(self, delivery: outbox.Delivery) -> str | None:
        """Send one row; the provider's id when it was accepted (marked sent with the batch)."""
        now = self.clock()
        if delivery.opted_out:
            await outbox.mark_dead(self.db, delivery, "opted_out", now)
            return None
        adapter = self.channels.get((delivery.agent_id, delivery.channel))
        if adapter is None:
            await outbox.mark_dead(self.db, delivery, "channel_not_configured", now)
            self.metrics.deliveries.labels(delivery.channel, "dead").inc()
            return None
        if delivery.possible_duplicate:
            log.warning("outbox: possible_duplicate resend of %s on %s", delivery.idempotency_key, delivery.channel)
        message = OutboundMessage.from_payload(delivery.text, delivery.payload)
        try:
            provider_id = await adapter.send(
                delivery.recipient,
                message,
                last_inbound_at=delivery.last_inbound_at,
                skip_parts=delivery.parts_sent,
            )
        except DeliveryError as exc:
            await self._failed(delivery, exc)
            return None
        except Exception as exc:  # an adapter bug must not stop the relay: retry like a transient error
            log.exception("outbox: adapter %s raised %s", delivery.channel, type(exc).__name__)
            await self._failed(delivery, DeliveryError("adapter_error", permanent=False))
            return None
        self.faults.crash_if("after_provider_accept")
        return provider_id

    async def _failed(self, delivery: outbox.Delivery, exc: DeliveryError) -> None:
        now = self.clock()
        if exc.permanent or delivery.attempts >= self.settings.max_attempts:
            reason = exc.reason if exc.permanent else f"gave_up:{exc.reason}"
            await outbox.mark_dead(self.db, delivery, reason, now, exc.parts_sent)
            self.metrics.deliveries.labels(delivery.channel, "dead").inc()
            log.warning("outbox: %s message dead (%s)", delivery.channel, reason)
            return
        delay = backoff_seconds(delivery.attempts, self.settings, self.rng)
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        await outbox.mark_retry(self.db, delivery, exc.reason, now + timedelta(seconds=delay), exc.parts_sent)
        self.metrics.deliveries.labels(delivery.channel, "retry").inc()
