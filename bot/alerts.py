"""Admin alerts: measure the businesses, step the rules, tell the admins.

One evaluation (a scheduler job, one process at a time through a job lease): samples are read
from the database (``collect``), the pure rules in :mod:`core.alerts` step every instance, the
result is stored, then each (business, severity) group's notification is planned and delivered to
the admins on Telegram (python-telegram-bot), WhatsApp (template) or SMS, every attempt recorded.
A critical alert nobody acknowledged escalates to each admin's next channel, and a critical
message that fails on a channel goes on to the next one at once.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import func, select

from bot.settings import AlertAdmin, AlertRuleSettings, AlertsSettings, Settings
from channels import registry
from channels.base import OutboundMessage, Template
from core import alerts as rules
from core.alerts import Alert, AlertState, GroupState, Notification, QuietHours, RuleSpec, Sample, Severity
from storage import alerts as store
from storage import tables as t
from storage.engine import Database

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


# ----------------------------------------------------------------------------- rule specs


def spec_of(
    name: str, config: AlertRuleSettings, override: Mapping[str, Any] | None = None, *, repeat_default: float = 4 * 3600
) -> RuleSpec:
    values = config.model_dump() | dict(override or {})
    return RuleSpec(
        name=name,
        threshold=float(values["threshold"]),
        severity=Severity(values["severity"]),
        min_volume=int(values["min_volume"]),
        for_seconds=float(values["for_seconds"]),
        keep_firing_for_seconds=float(values["keep_firing_for_seconds"]),
        repeat_interval_seconds=float(values["repeat_interval_seconds"] or repeat_default),
        resolve_ratio=float(values["resolve_ratio"]),
        window_seconds=float(values["window_seconds"]),
        enabled=bool(values["enabled"]),
        inhibits=tuple(values["inhibits"]),
        inhibit_equal=tuple(values["inhibit_equal"]),
    )


def specs_for(
    settings: AlertsSettings, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, RuleSpec]:
    """The rules of one business: config.yaml's, with its dashboard overrides laid over them."""
    return {
        name: spec_of(name, config, (overrides or {}).get(name), repeat_default=settings.repeat_interval_seconds)
        for name, config in settings.rules.items()
    }


# ----------------------------------------------------------------------------- measuring


async def collect(db: Database, settings: AlertsSettings, now: datetime) -> list[Sample]:
    """Every rule's samples for every business, from what the database already records."""
    samples: list[Sample] = []
    r = settings.rules
    async with db.reading() as session:
        agents = dict((await session.execute(select(t.Agent.id, t.Agent.slug))).all())

        # Slow responses: median bot reply time per agent and channel.
        window = now - timedelta(seconds=r["slow_responses"].window_seconds)
        times: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        reply_rows = await session.execute(
            select(t.Message.tenant_id, t.Conversation.agent_id, t.Conversation.channel, t.Message.response_ms)
            .join(t.Conversation, t.Conversation.id == t.Message.conversation_id)
            .where(t.Message.created_at >= window, t.Message.response_ms.is_not(None), t.Message.author == "bot")
        )
        for tenant_id, agent_id, channel, ms in reply_rows:
            times[(tenant_id, agent_id, channel)].append(int(ms or 0))
        for (tenant_id, agent_id, channel), values in times.items():
            samples.append(
                Sample(
                    tenant_id,
                    "slow_responses",
                    rules.scope_of(agent=agents.get(agent_id, agent_id), channel=channel),
                    statistics.median(values) / 1000.0,
                    len(values),
                )
            )

        # Low satisfaction: mean 1-5 rating per agent.
        window = now - timedelta(seconds=r["low_satisfaction"].window_seconds)
        rating_rows = await session.execute(
            select(
                t.Conversation.tenant_id, t.Conversation.agent_id, func.avg(t.Conversation.satisfaction), func.count()
            )
            .where(t.Conversation.satisfaction.is_not(None), t.Conversation.last_activity_at >= window)
            .group_by(t.Conversation.tenant_id, t.Conversation.agent_id)
        )
        for tenant_id, agent_id, mean, count in rating_rows:
            samples.append(
                Sample(
                    tenant_id,
                    "low_satisfaction",
                    rules.scope_of(agent=agents.get(agent_id, agent_id)),
                    float(mean),
                    count,
                )
            )

        # Conversion drop: booking conversion now against the trailing baseline, per agent and channel.
        rule = r["conversion_drop"]
        window = now - timedelta(seconds=rule.window_seconds)
        baseline_start = now - timedelta(seconds=rule.baseline_seconds)
        booked = select(t.Appointment.conversation_id).where(t.Appointment.conversation_id.is_not(None))
        counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        conv_rows = await session.execute(
            select(
                t.Conversation.tenant_id,
                t.Conversation.agent_id,
                t.Conversation.channel,
                t.Conversation.started_at,
                t.Conversation.id.in_(booked.scalar_subquery()),
            ).where(t.Conversation.started_at >= baseline_start)
        )
        for tenant_id, agent_id, channel, started, converted in conv_rows:
            c = counts[(tenant_id, agent_id, channel)]
            recent = started >= window
            c[0 if recent else 2] += 1
            c[1 if recent else 3] += int(bool(converted))
        for (tenant_id, agent_id, channel), (n, conv, base_n, base_conv) in counts.items():
            if not base_n or not base_conv:
                continue  # no baseline: nothing to compare against
            ratio = (conv / n if n else 0.0) / (base_conv / base_n)
            samples.append(
                Sample(
                    tenant_id,
                    "conversion_drop",
                    rules.scope_of(agent=agents.get(agent_id, agent_id), channel=channel),
                    ratio,
                    n,
                )
            )

        # Failed-payment spike: failure rate of payment outcomes now against max(threshold, k × baseline).
        rule = r["failed_payments"]
        window = now - timedelta(seconds=rule.window_seconds)
        baseline_start = now - timedelta(seconds=rule.baseline_seconds)
        outcomes: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        payment_rows = await session.execute(
            select(t.PurchaseEvent.tenant_id, t.Purchase.provider, t.PurchaseEvent.to_status, t.PurchaseEvent.at)
            .join(t.Purchase, t.Purchase.id == t.PurchaseEvent.purchase_id)
            .where(t.PurchaseEvent.at >= baseline_start, t.PurchaseEvent.to_status.in_(["completed", "failed"]))
            .where(t.PurchaseEvent.from_status.is_distinct_from(t.PurchaseEvent.to_status))
        )
        for tenant_id, provider, status, at in payment_rows:
            o = outcomes[(tenant_id, provider)]
            recent = at >= window
            o[0 if recent else 2] += 1
            o[1 if recent else 3] += int(status == "failed")
        for (tenant_id, provider), (n, failed, base_n, base_failed) in outcomes.items():
            if not n:
                continue
            limit = max(rule.threshold, rule.baseline_factor * (base_failed / base_n if base_n else 0.0))
            samples.append(
                Sample(tenant_id, "failed_payments", rules.scope_of(provider=provider), failed / n, failed, limit)
            )

        # Sync failure: consecutive failed runs of each integration.
        window = now - timedelta(seconds=r["sync_failure"].window_seconds)
        streaks: dict[tuple[str, str], int] = {}
        ended: set[tuple[str, str]] = set()
        sync_rows = await session.execute(
            select(t.SyncEvent.tenant_id, t.SyncEvent.integration, t.SyncEvent.ok)
            .where(t.SyncEvent.at >= window)
            .order_by(t.SyncEvent.at.desc(), t.SyncEvent.id)
        )
        for tenant_id, integration, ok in sync_rows:
            key = (tenant_id, integration)
            streaks.setdefault(key, 0)
            if key in ended:
                continue
            if ok:
                ended.add(key)
            else:
                streaks[key] += 1
        for (tenant_id, integration), streak in streaks.items():
            samples.append(Sample(tenant_id, "sync_failure", rules.scope_of(integration=integration), streak, streak))

        # Channel down: share of the outbound sends on a channel (rows the relay attempted, by their
        # latest attempt) that failed. Rows still queued behind a failing one in their conversation
        # were not sent: counting them would halve the share of a channel that is down for everyone.
        # An old message whose retries keep failing still counts: the channel is still down.
        window = now - timedelta(seconds=r["channel_down"].window_seconds)
        sends: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        outcome = (t.OutboxItem.tenant_id, t.OutboxItem.channel, t.OutboxItem.state, t.OutboxItem.last_error)
        outbox_rows = await session.execute(
            select(*outcome, func.count()).where(t.OutboxItem.attempted_at >= window).group_by(*outcome)
        )
        for tenant_id, channel, state, last_error, count in outbox_rows:
            s = sends[(tenant_id, channel)]
            s[0] += count
            s[1] += count if rules.send_failed(state, last_error) else 0
        for (tenant_id, channel), (total, failed) in sends.items():
            samples.append(Sample(tenant_id, "channel_down", rules.scope_of(channel=channel), failed / total, total))
    return samples


# ----------------------------------------------------------------------------- delivering


class AdminSender(Protocol):
    async def send(self, admin: AlertAdmin, text: str, *, headline: str) -> str | None:
        """Deliver one message to one admin; the provider's message id. Raises on failure."""


class TelegramSender:
    """Admin messages through python-telegram-bot, pointed at ``alerts.telegram.api_base_url``."""

    def __init__(self, token: str, api_base_url: str) -> None:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        self._request = HTTPXRequest(connection_pool_size=4)
        self._bot = Bot(token, base_url=f"{api_base_url.rstrip('/')}/bot", request=self._request)

    async def send(self, admin: AlertAdmin, text: str, *, headline: str) -> str | None:
        if not admin.telegram_chat_id:
            raise LookupError("no_telegram_chat_id")
        sent = await self._bot.send_message(chat_id=admin.telegram_chat_id, text=text[:4096])
        return str(sent.message_id)

    async def aclose(self) -> None:
        await self._request.shutdown()


class ChannelSender:
    """WhatsApp (an approved utility template) or SMS to an admin's phone, through the same channel
    adapters customers are answered with (``alerts.whatsapp`` / ``alerts.sms`` configs)."""

    def __init__(self, adapter: Any, template: str | None) -> None:
        self._adapter = adapter
        self._template = template

    async def send(self, admin: AlertAdmin, text: str, *, headline: str) -> str | None:
        if not admin.phone:
            raise LookupError("no_phone")
        template = Template(self._template, "en", (headline, text[:900])) if self._template else None
        result = await self._adapter.send(admin.phone, OutboundMessage(text, template=template))
        return str(result) if result is not None else None


def build_senders(settings: AlertsSettings, http: httpx.AsyncClient, clock: Clock) -> dict[str, AdminSender]:
    senders: dict[str, AdminSender] = {}
    if settings.telegram.bot_token is not None:
        senders["telegram"] = TelegramSender(
            settings.telegram.bot_token.get_secret_value(), settings.telegram.api_base_url
        )
    for name, config in (("whatsapp", settings.whatsapp), ("sms", settings.sms)):
        if not config:
            continue
        adapter = registry.build(name, config, agent="alerts", http=http, clock=clock)
        senders[name] = ChannelSender(adapter, settings.whatsapp_template if name == "whatsapp" else None)
    return senders


# ----------------------------------------------------------------------------- the desk


@dataclass
class AlertDesk:
    db: Database
    settings: Settings
    clock: Clock
    senders: Mapping[str, AdminSender]
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # tenant id → (slug, name)
    extra_samples: list[Callable[[datetime], Awaitable[list[Sample]]]] = field(default_factory=list)

    @property
    def config(self) -> AlertsSettings:
        return self.settings.alerts

    async def evaluate(self) -> list[Notification]:
        """One evaluation round: step the rules, store them, send what is due. Returns what was sent."""
        now = self.clock()
        await self._load_names()
        samples = await collect(self.db, self.config, now)
        for source in self.extra_samples:
            samples += await source(now)
        overrides = await store.rule_overrides(self.db)
        open_alerts = await store.open_alerts(self.db)
        by_tenant: dict[str, list[Sample]] = defaultdict(list)
        for sample in samples:
            by_tenant[sample.tenant_id].append(sample)
        changes = []
        for tenant_id in set(by_tenant) | {a.tenant_id for a in open_alerts.values()}:
            specs = specs_for(self.config, overrides.get(tenant_id))
            mine = {fp: a for fp, a in open_alerts.items() if a.tenant_id == tenant_id}
            changes += rules.evaluate(mine, by_tenant.get(tenant_id, []), specs, now)
        await store.apply(self.db, changes, now)
        sent = await self.notify(now, overrides)
        await self.escalate(now)
        return sent

    async def notify(
        self, now: datetime, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[Notification]:
        overrides = overrides if overrides is not None else await store.rule_overrides(self.db)
        alerts = await store.unannounced(self.db)
        states = await store.groups(self.db)
        silences = await store.silences(self.db, None, now)
        grouped: dict[tuple[str, str], list[Alert]] = defaultdict(list)
        for alert in alerts:
            grouped[(alert.tenant_id, alert.severity.value)].append(alert)
        for key in states:
            grouped.setdefault(key, [])
        sent = []
        for (tenant_id, severity), members in sorted(grouped.items()):
            specs = specs_for(self.config, overrides.get(tenant_id))
            firing_here = [a for a in alerts if a.tenant_id == tenant_id and a.state is AlertState.FIRING]
            muted = {
                a.fingerprint
                for a in members
                if rules.silenced(a, silences, now) or rules.inhibited(a, firing_here, specs)
            }
            state = states.get((tenant_id, severity), GroupState(tenant_id, Severity(severity)))
            repeat = min(
                (specs[a.rule].repeat_interval_seconds for a in members if a.rule in specs),
                default=self.config.repeat_interval_seconds,
            )
            timers = rules.Timers(
                timedelta(seconds=self.config.group_wait_seconds),
                timedelta(seconds=self.config.group_interval_seconds),
                timedelta(seconds=repeat),
            )
            quiet = self._quiet_for_all(tenant_id, now, severity)
            note = rules.plan(state, members, muted, now, timers, quiet=quiet)
            if note is None:
                continue
            if await self._deliver(note, now):
                await store.notified(
                    self.db,
                    tenant_id,
                    severity,
                    note.notified_after,
                    [a.id for a in note.firing if a.id],
                    [a.id for a in note.resolved if a.id],
                    now,
                )
                sent.append(note)
        return sent

    async def escalate(self, now: datetime) -> list[Alert]:
        levels = max((len(a.channels) for a in self.config.admins), default=0)
        firing = [a for a in await store.unannounced(self.db) if a.state is AlertState.FIRING]
        silences = await store.silences(self.db, None, now)
        due = [
            a
            for a in rules.due_escalations(firing, now, timedelta(seconds=self.config.ack_timeout_seconds), levels)
            if not rules.silenced(a, silences, now) and not self._quiet_for_all(a.tenant_id, now, a.severity.value)
        ]
        for alert in due:
            slug, name = self.names.get(alert.tenant_id, ("", alert.tenant_id))
            text = rules.escalation_message(alert, name, now, self._link())
            since = alert.firing_since or alert.active_since
            await self._send_all(
                alert.tenant_id,
                slug,
                alert.severity.value,
                "escalation",
                [alert.id or ""],
                text,
                alert.escalation_level,
                now,
                reached=await store.reached(self.db, alert.tenant_id, alert.id or "", since),
            )
            await store.escalated(self.db, alert.id or "", alert.escalation_level, now)
        return due

    # ----- helpers ---------------------------------------------------------------------------
    def _quiet(self, admin: AlertAdmin | None, now: datetime, severity: str) -> bool:
        """Is it quiet for this admin (their own ``quiet_hours``, else the global ones)?"""
        q = admin.quiet_hours if admin is not None and admin.quiet_hours is not None else self.config.quiet_hours
        if q is None:
            return False
        hours = QuietHours(_hm(q.start), _hm(q.end), q.timezone, frozenset(q.bypass))
        return hours.active(now, severity)

    def _quiet_for_all(self, tenant_id: str, now: datetime, severity: str) -> bool:
        """A message is held only while it is quiet for every admin of the business; otherwise it
        goes to those who are awake and skips the others."""
        admins = self._admins_of(self.names.get(tenant_id, ("", ""))[0])
        if not admins:
            return self._quiet(None, now, severity)
        return all(self._quiet(admin, now, severity) for admin in admins)

    def _admins_of(self, slug: str) -> list[AlertAdmin]:
        return [a for a in self.config.admins if not a.businesses or slug in a.businesses]

    def _link(self) -> str:
        return f"{self.settings.server.public_url.rstrip('/')}/dashboard/alerts"

    async def _deliver(self, note: Notification, now: datetime) -> bool:
        slug, name = self.names.get(note.tenant_id, ("", note.tenant_id))
        text = rules.message(note, name, now, self._link())
        ids = [a.id or "" for a in (*note.firing, *note.resolved)]
        return await self._send_all(note.tenant_id, slug, note.severity.value, note.kind, ids, text, 0, now)

    async def _send_all(
        self,
        tenant_id: str,
        slug: str,
        severity: str,
        kind: str,
        ids: Sequence[str],
        text: str,
        level: int,
        now: datetime,
        *,
        reached: Mapping[str, set[str]] | None = None,
    ) -> bool:
        """Send to every admin of the business on their channel at ``level``; True if anyone got it.
        An escalation (``reached``: where each admin already got this alert) starts past the furthest
        channel that reached the admin: one whose critical message fell through to SMS at once is
        not sent the same SMS again as the escalation.

        A critical message that fails on a channel (or whose channel is not configured) goes on to
        the admin's next channel at once: nobody should wait for the acknowledgement timeout to
        learn that Telegram is unreachable. A warning stays on its channel and is tried again on
        the next evaluation. An admin in their quiet hours is skipped (the message was only
        planned because someone else is awake)."""
        delivered = False
        headline = text.splitlines()[0] if text else ""

        async def record(admin: AlertAdmin, channel: str, attempt: Attempt) -> None:
            await store.record_delivery(
                self.db,
                tenant_id=tenant_id,
                severity=severity,
                kind=kind,
                instance_ids=ids,
                admin=admin.name,
                channel=channel,
                status=attempt.status,
                now=now,
                text=text,
                error=attempt.error,
                provider_message_id=attempt.provider_id,
            )

        for admin in self._admins_of(slug):
            got = (reached or {}).get(admin.name, set())
            start = max([level, *(i + 1 for i, channel in enumerate(admin.channels) if channel in got)])
            if start >= len(admin.channels):
                continue
            if self._quiet(admin, now, severity):  # others are awake: this admin is not woken
                await record(admin, admin.channels[start], Attempt("skipped", "quiet_hours"))
                continue
            last = len(admin.channels) if severity == Severity.CRITICAL.value else start + 1
            for channel in admin.channels[start:last]:
                attempt = await self._attempt(admin, channel, text, headline)
                await record(admin, channel, attempt)
                if attempt.status == "sent":
                    delivered = True
                    break
        return delivered

    async def _attempt(self, admin: AlertAdmin, channel: str, text: str, headline: str) -> Attempt:
        sender = self.senders.get(channel)
        if sender is None:
            return Attempt("skipped", "channel_not_configured")
        try:
            return Attempt("sent", provider_id=await sender.send(admin, text, headline=headline))
        except Exception as exc:  # recorded: "alerts not delivered" is itself visible
            error = _reason(exc)
            log.warning("alert delivery via %s failed: %s", channel, error)
            return Attempt("failed", error)

    async def _load_names(self) -> None:
        async with self.db.reading() as session:
            rows = (await session.execute(select(t.Business.id, t.Business.slug, t.Business.name))).all()
        self.names = {i: (slug, name) for i, slug, name in rows}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try to reach one admin on one channel, as ``alert_deliveries`` records it."""

    status: str  # sent | failed | skipped
    error: str | None = None
    provider_id: str | None = None


def _hm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours) % 24, int(minutes))


def _reason(exc: Exception) -> str:
    """A short, safe description: the exception's class and, for our own errors, their reason word."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return f"{type(exc).__name__}: {reason}"[:255]
    if isinstance(exc, LookupError):
        return f"missing address: {exc.args[0] if exc.args else ''}"
    return type(exc).__name__


async def open_for_system(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    """Open alerts for ``/api/analytics/system/performance``."""
    return [a.to_json() for a in await store.list_alerts(db, tenant_id, states=["pending", "firing"])]
