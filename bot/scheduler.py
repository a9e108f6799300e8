"""Scheduled work: APScheduler (3.x) only ticks; the work itself is rows claimed in the database.

Every job is safe with one process or many: reminders, outcome marking and automations claim
their rows with compare-and-set UPDATEs (or unique inserts), and singleton jobs (alert
evaluation, roll-ups) take a lease in ``job_leases``. The job functions are plain coroutines
that tests drive directly with a frozen clock; :class:`Scheduler` only runs them on intervals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from bot.alerts import AlertDesk
from bot.automations import Automations, Pusher
from bot.settings import Settings
from core.booking import Status
from storage import alerts as alert_store
from storage import automations as log_store
from storage import leases, outcomes, reminders
from storage import tables as t
from storage.engine import Database

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
RollUp = Callable[[datetime], Awaitable[None]]
RETRY_AFTER = timedelta(minutes=1)


def worker_name() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ReminderReport:
    planned: int
    sent: int
    dropped: list[tuple[str, str]]
    skipped: int


@dataclass
class Jobs:
    db: Database
    settings: Settings
    clock: Clock
    pusher: Pusher
    automations: Automations
    alerts: AlertDesk | None = None
    payments: Any = None  # PaymentDesk: expire_holds() and reconcile()
    worker: str = field(default_factory=worker_name)
    rollups: list[RollUp] = field(default_factory=list)  # insights roll-ups register here
    _payments_ok: bool | None = None

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.scheduler.lease_seconds)

    # ----- reminders -------------------------------------------------------------------------
    async def reminders(self) -> ReminderReport:
        """Plan missing rows, drop the ones that must not go out, then send each due one once."""
        config = self.settings.reminders
        now = self.clock()
        if not config.enabled:
            return ReminderReport(0, 0, [], 0)
        planned = await reminders.plan(self.db, config.offsets_minutes, now, timedelta(hours=config.plan_ahead_hours))
        dropped = await reminders.drop_stale(self.db, now, timedelta(minutes=config.stale_after_minutes))
        for reminder_id, reason in dropped:
            log.info("reminder %s dropped: %s", reminder_id, reason)
        sent = skipped = 0
        batch = self.settings.scheduler.batch_size
        for claimed in await reminders.claim_due(self.db, self.worker, now, self.lease, batch):
            try:
                facts = await self.automations.facts(claimed.tenant_id, claimed.appointment_id)
                config_for = self.automations.config_for(facts, "appointment.reminder")
                if not config_for.enabled:
                    await reminders.finish(
                        self.db, claimed.id, self.worker, self.clock(), sent=False, reason="disabled"
                    )
                    skipped += 1
                    continue
                message = self.automations.message("appointment.reminder", facts, config_for)
                stored = await self.pusher.push(
                    claimed.tenant_id, claimed.conversation_id, message, author="system", key=claimed.key
                )
            except Exception as exc:  # pushed again on a later tick, after the lease or RETRY_AFTER
                log.warning("reminder %s not sent: %s", claimed.id, type(exc).__name__)
                await reminders.release(self.db, claimed.id, self.worker, self.clock() + RETRY_AFTER)
                continue
            if stored is None:
                await reminders.finish(self.db, claimed.id, self.worker, self.clock(), sent=False, reason="opted_out")
                skipped += 1
            else:
                await reminders.finish(self.db, claimed.id, self.worker, self.clock(), sent=True)
                sent += 1
            await log_store.record(
                self.db,
                key=f"{claimed.key}:message",
                tenant_id=claimed.tenant_id,
                appointment_id=claimed.appointment_id,
                trigger="appointment.reminder",
                action="message",
                status="done" if stored is not None else "skipped",
                now=self.clock(),
                offset_minutes=claimed.offset_minutes,
                **({"reason": "opted_out"} if stored is None else {"seq": getattr(stored, "seq", None)}),
            )
        return ReminderReport(planned, sent, dropped, skipped)

    # ----- completed / missed ----------------------------------------------------------------
    async def outcomes(self) -> list[tuple[str, str]]:
        config = self.settings.outcomes
        if not config.enabled:
            return []
        now = self.clock()
        return await outcomes.mark_overdue(
            self.db,
            now,
            ended_before=now - timedelta(minutes=config.mark_after_minutes),
            ended_after=now - timedelta(hours=config.lookback_hours),
            target=Status(config.default),
            limit=self.settings.scheduler.batch_size,
        )

    async def automations_run(self) -> int:
        return await self.automations.run()

    # ----- payments --------------------------------------------------------------------------
    async def payment_sweep(self) -> None:
        """Lapsed holds released (customers told), stuck webhooks and refunds retried; a failing
        reconcile is recorded as a sync event so the sync-failure alert can see it."""
        if self.payments is None:
            return
        await self.payments.expire_holds()
        try:
            await self.payments.reconcile()
            ok, error = True, None
        except Exception as exc:
            ok, error = False, type(exc).__name__
            log.warning("payment reconcile failed: %s", error)
        if not ok or self._payments_ok is False:
            now = self.clock()
            async with self.db.reading() as session:
                tenants = list(await session.scalars(select(t.Business.id)))
            for tenant_id in tenants:
                await alert_store.record_sync(self.db, tenant_id, "payments", ok, now, error)
        self._payments_ok = ok

    # ----- singletons ------------------------------------------------------------------------
    async def evaluate_alerts(self) -> bool:
        """One alert evaluation, in one process at a time. False when another process holds it."""
        if self.alerts is None or not self.settings.alerts.enabled:
            return False
        now = self.clock()
        if not await leases.take_job(self.db, "alerts", self.worker, now, self.lease):
            return False
        try:
            await self.alerts.evaluate()
        finally:
            await leases.release_job(self.db, "alerts", self.worker)
        return True

    async def rollup(self) -> bool:
        """The insights roll-ups (hooks in ``rollups``), in one process at a time."""
        if not self.rollups:
            return False
        now = self.clock()
        if not await leases.take_job(self.db, "rollups", self.worker, now, self.lease):
            return False
        try:
            for hook in self.rollups:
                await hook(now)
        finally:
            await leases.release_job(self.db, "rollups", self.worker)
        return True


class Scheduler:
    """APScheduler's AsyncIOScheduler running :class:`Jobs` on intervals (started and stopped in
    the app's cleanup context). ``coalesce`` + ``max_instances=1``: after a stall a job runs once,
    never piles up; what is late is decided by the rows, not by APScheduler."""

    def __init__(self, jobs: Jobs, settings: Settings) -> None:
        self.jobs = jobs
        self.settings = settings
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._running: set[asyncio.Task[Any]] = set()  # job runs in flight, awaited on stop

    def start(self) -> None:
        tick = self.settings.scheduler.tick_seconds
        plan: list[tuple[str, Callable[[], Awaitable[Any]], float]] = [
            ("reminders", self.jobs.reminders, tick),
            ("outcomes", self.jobs.outcomes, tick),
            ("automations", self.jobs.automations_run, tick),
            ("payments", self.jobs.payment_sweep, tick),
            ("alerts", self.jobs.evaluate_alerts, float(self.settings.alerts.evaluation_seconds)),
            ("rollups", self.jobs.rollup, 300.0),
        ]
        for name, job, seconds in plan:
            self._scheduler.add_job(
                self._tracked(_guarded(name, job)),
                "interval",
                seconds=seconds,
                id=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(seconds)),
            )
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    def _tracked(self, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def tracked() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await run()
            finally:
                if task is not None:
                    self._running.discard(task)

        tracked.__name__ = getattr(run, "__name__", "job")
        return tracked

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def drain(self) -> None:
        """Let job runs in flight finish before the database they use is closed (no new ones start)."""
        if self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)


def _guarded(name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job()
        except Exception as exc:  # the database hiccuped: the next tick tries again
            log.warning("scheduled job %s failed: %s", name, type(exc).__name__)

    run.__name__ = f"job_{name}"
    return run
