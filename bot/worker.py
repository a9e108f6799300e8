"""The inbox worker: takes stored provider events and runs them as dialogue turns.

Per conversation, one worker at a time (a lease in the database, so this holds across processes)
works through the conversation's rows in the provider's order. A turn's replies, its outbox rows
and the closing of its inbox row commit together (in the dialogue manager), so a crash anywhere
leaves either a row to redo or a finished turn, never half of one. A row that keeps crashing its
turn is set aside as ``failed`` after ``inbox.max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.dialogue.manager import DialogueManager, Incoming
from bot.faults import Faults
from bot.metrics import Metrics
from bot.routing import Routing
from bot.settings import InboxSettings
from storage import inbox
from storage import tables as t
from storage.engine import Database, is_contention

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Following:
    """The row claimed in the transaction that closed the one before (None: the lease was let go)."""

    item: inbox.Item | None = None


class InboxWorker:
    def __init__(
        self,
        *,
        db: Database,
        dialogue: DialogueManager,
        routing: Routing,
        settings: InboxSettings,
        clock: Callable[[], datetime],
        metrics: Metrics,
        faults: Faults | None = None,
    ) -> None:
        self.db = db
        self.dialogue = dialogue
        self.routing = routing
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.faults = faults or Faults()
        self.holder = f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._active: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._slugs: dict[str, str] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: start a task per waiting conversation, then sleep until woken or polled."""
        try:
            while True:
                try:
                    await self._start_waiting()
                except Exception as exc:  # the database hiccuped: the next pass tries again
                    log.warning("inbox pass failed: %s", type(exc).__name__)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
        finally:
            await self.drain()

    async def run_once(self) -> int:
        """Process everything waiting now and return when done (tests, benchmarks)."""
        started = await self._start_waiting()
        await self.drain()
        return started

    async def drain(self) -> None:
        tasks = list(self._active.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_waiting(self) -> int:
        keys = await inbox.waiting_conversations(self.db, self.clock(), self.settings.concurrency * 4)
        started = 0
        for key in keys:
            if key.lease_key in self._active:
                continue
            task = asyncio.create_task(self._conversation(key))
            self._active[key.lease_key] = task
            task.add_done_callback(self._forget(key.lease_key))
            started += 1
        return started

    def _forget(self, lease_key: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._active.pop(lease_key, None)

        return done

    async def _conversation(self, key: inbox.ConversationKey) -> None:
        async with self._slots:
            seconds = self.settings.lease_seconds
            heartbeat: asyncio.Task[None] | None = None
            item: inbox.Item | None = None  # claimed, so the conversation's lease is held
            try:
                self.faults.crash_if("before_claim")
                # None: another worker (maybe another process) runs this conversation, or it has
                # nothing left and the claim released the lease.
                item = await inbox.claim_next(self.db, key, self.holder, self.clock(), seconds)
                while item is not None:
                    if heartbeat is None:
                        heartbeat = asyncio.create_task(self._heartbeat(key, seconds))
                    following = await self._process(item, key)
                    if following is None:
                        return  # leave the rest of this conversation for a later pass, in order
                    item = following.item
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heartbeat
                if item is not None:
                    with contextlib.suppress(Exception):
                        await inbox.drop_lease(self.db, key, self.holder)

    async def _heartbeat(self, key: inbox.ConversationKey, seconds: float) -> None:
        """Keep the conversation's lease while a (possibly slow) turn runs; a dead process stops
        renewing, so another one takes over within ``seconds``."""
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                await inbox.take_lease(self.db, key, self.holder, self.clock(), seconds)
            except Exception as exc:
                log.warning("inbox lease renewal failed: %s", type(exc).__name__)

    async def _process(self, item: inbox.Item, key: inbox.ConversationKey) -> _Following | None:
        """Run one row: the conversation's next row, claimed as this one closed, or None when this
        one must be retried later (the conversation then waits)."""
        now = self.clock()
        following = _Following()

        async def close(session: AsyncSession, state: str = "done", error: str = "") -> None:
            """In the transaction that did the row's work: close it and claim the next one."""
            await inbox.finish(session, item.id, self.clock(), state=state, error=error)
            following.item = await inbox.claim(session, key, self.holder, self.clock(), self.settings.lease_seconds)

        if item.attempts > self.settings.max_attempts:
            async with self.db.writing() as session:
                await close(session, state="failed", error="too many attempts")
            self.metrics.turns.labels(item.channel, "failed").inc()
            log.error("inbox row %s failed %d times; set aside", item.id, item.attempts - 1)
            return following
        try:
            if item.kind == "status":
                async with self.db.writing() as session:
                    await inbox.apply_status(session, item.tenant_id, item.event, now)
                    await close(session)
            else:
                await self.dialogue.handle(await self._incoming(item, now, close))
                self.faults.crash_if("after_turn_commit")
        except Exception as exc:
            log.warning("inbox row %s: turn failed (%s); retried later", item.id, type(exc).__name__, exc_info=exc)
            self.metrics.turns.labels(item.channel, "retry").inc()
            async with self.db.writing() as session:
                row = await session.get(t.InboxItem, item.id)
                if row is not None and row.state == "processing":
                    if is_contention(exc):  # a lost race is not the row's fault: not an attempt
                        row.attempts = max(0, row.attempts - 1)
                    row.claimed_by = None
                    row.lease_until = now + timedelta(seconds=min(60.0, 2.0**item.attempts))
                    row.last_error = type(exc).__name__[:255]
            return None
        self.metrics.turns.labels(item.channel, item.kind).inc()
        adapter = self.routing.adapter(item.agent_id, item.channel)
        if adapter is not None and item.kind == "choice":
            try:
                await adapter.acknowledge(item.event)
            except Exception as exc:  # the spinner on the customer's button; nothing is lost
                log.info("acknowledge on %s failed: %s", item.channel, type(exc).__name__)
        return following

    async def _incoming(
        self, item: inbox.Item, now: datetime, close: Callable[[AsyncSession], Awaitable[None]]
    ) -> Incoming:
        event = item.event
        adapter = self.routing.adapter(item.agent_id, item.channel)
        stale_before = now - timedelta(minutes=self.settings.stale_after_minutes)
        keyword = event.extra.get("opt_out") if isinstance(event.extra.get("opt_out"), str) else None
        return Incoming(
            agent=await self._slug(item.agent_id),
            channel=item.channel,
            sender=item.sender,
            text=event.text,
            choice=event.choice if event.kind == "choice" else None,
            provider_message_id=event.provider_message_id,
            sender_name=event.sender_name,
            key=f"inbox:{item.id}",
            on_commit=close,
            numbered=adapter is not None and adapter.capabilities.max_buttons == 0,
            keyword=keyword,
            unsupported=event.kind == "unsupported",
            silent=event.sent_at is not None and event.sent_at < stale_before,
            sent_at=event.sent_at,
        )

    async def _slug(self, agent_id: str) -> str:
        if agent_id not in self._slugs:
            async with self.db.reading() as session:
                agent = await session.get(t.Agent, agent_id)
                if agent is None:
                    raise LookupError("the agent of an inbox row is gone")
                self._slugs[agent_id] = agent.slug
        return self._slugs[agent_id]
