"""Alert instances, groups, silences, deliveries and per-business rule overrides.

The evaluation job (bot/alerts.py) reads and writes instances through here; the dashboard lists
alerts, acknowledges them, creates and expires silences, and tunes rules with the same functions.
Every function takes ``tenant_id`` and never returns another business's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.alerts import RULES, Alert, AlertState, Change, GroupState, Severity, Silence
from core.errors import InvalidInput, NotFound
from storage import tables as t
from storage.engine import Database

# Rule keys the dashboard may override per business (the rest is deployment-wide).
TUNABLE = frozenset(
    {
        "enabled",
        "threshold",
        "min_volume",
        "window_seconds",
        "for_seconds",
        "keep_firing_for_seconds",
        "repeat_interval_seconds",
        "severity",
    }
)


def to_alert(row: t.AlertInstance) -> Alert:
    return Alert(
        fingerprint=row.fingerprint,
        tenant_id=row.tenant_id,
        rule=row.rule,
        severity=Severity(row.severity),
        scope=tuple(sorted((str(k), str(v)) for k, v in (row.scope or {}).items())),
        state=AlertState(row.state),
        value=row.value,
        threshold=row.threshold,
        volume=row.volume,
        active_since=row.active_since,
        last_true_at=row.last_true_at,
        firing_since=row.firing_since,
        resolved_at=row.resolved_at,
        id=row.id,
        notified_at=row.notified_at,
        acknowledged_at=row.acknowledged_at,
        escalation_level=row.escalation_level,
        escalated_at=row.escalated_at,
    )


async def open_alerts(db: Database) -> dict[str, Alert]:
    """Every pending or firing instance, by fingerprint (all businesses: the evaluator's view)."""
    async with db.reading() as session:
        rows = await session.scalars(select(t.AlertInstance).where(t.AlertInstance.open_key.is_not(None)))
        return {r.fingerprint: to_alert(r) for r in rows}


async def apply(db: Database, changes: Sequence[Change], now: datetime) -> list[Alert]:
    """Persist one evaluation: new instances inserted, open ones updated, vanished pending ones
    deleted, resolved ones closed (``open_key`` cleared). Returns the instances as stored."""
    stored: list[Alert] = []
    async with db.writing() as session:
        for change in changes:
            before, after = change.before, change.after
            if after is None:
                if before is not None and before.id is not None:
                    await session.execute(delete(t.AlertInstance).where(t.AlertInstance.id == before.id))
                continue
            row = await session.get(t.AlertInstance, before.id) if before is not None and before.id else None
            if row is None:
                row = t.AlertInstance(
                    tenant_id=after.tenant_id,
                    fingerprint=after.fingerprint,
                    rule=after.rule,
                    scope=dict(after.scope),
                    notify_count=0,
                    escalation_level=0,
                )
                session.add(row)
            row.open_key = after.fingerprint if after.open else None
            row.severity = after.severity.value
            row.state = after.state.value
            row.value = after.value
            row.threshold = after.threshold
            row.volume = after.volume
            row.active_since = after.active_since
            row.firing_since = after.firing_since
            row.last_true_at = after.last_true_at
            row.resolved_at = after.resolved_at
            row.evaluated_at = now
            await session.flush()
            stored.append(to_alert(row))
    return stored


async def unannounced(db: Database) -> list[Alert]:
    """What group planning looks at: firing instances, and resolved ones whose firing was announced
    but whose resolution was not yet."""
    async with db.reading() as session:
        rows = await session.scalars(
            select(t.AlertInstance).where(
                (t.AlertInstance.state == AlertState.FIRING.value)
                | (
                    (t.AlertInstance.state == AlertState.RESOLVED.value)
                    & t.AlertInstance.notified_at.is_not(None)
                    & t.AlertInstance.resolved_notified_at.is_(None)
                )
            )
        )
        return [to_alert(r) for r in rows]


async def groups(db: Database) -> dict[tuple[str, str], GroupState]:
    async with db.reading() as session:
        rows = await session.scalars(select(t.AlertGroup))
        return {
            (r.tenant_id, r.severity): GroupState(
                r.tenant_id, Severity(r.severity), frozenset(r.notified or []), r.last_notified_at
            )
            for r in rows
        }


async def notified(
    db: Database,
    tenant_id: str,
    severity: str,
    fingerprints: Iterable[str],
    firing_ids: Iterable[str],
    resolved_ids: Iterable[str],
    now: datetime,
) -> None:
    """A group message went out: remember what it said, so the next one says only what changed."""
    async with db.writing() as session:
        group = await session.scalar(
            select(t.AlertGroup).where(t.AlertGroup.tenant_id == tenant_id, t.AlertGroup.severity == severity)
        )
        if group is None:
            group = t.AlertGroup(tenant_id=tenant_id, severity=severity)
            session.add(group)
        group.notified = sorted(fingerprints)
        group.last_notified_at = now
        firing = list(firing_ids)
        if firing:
            await session.execute(
                update(t.AlertInstance)
                .where(t.AlertInstance.id.in_(firing), t.AlertInstance.notified_at.is_(None))
                .values(notified_at=now)
            )
            await session.execute(
                update(t.AlertInstance)
                .where(t.AlertInstance.id.in_(firing))
                .values(notify_count=t.AlertInstance.notify_count + 1)
            )
        resolved = list(resolved_ids)
        if resolved:
            await session.execute(
                update(t.AlertInstance).where(t.AlertInstance.id.in_(resolved)).values(resolved_notified_at=now)
            )


async def escalated(db: Database, alert_id: str, level: int, now: datetime) -> None:
    async with db.writing() as session:
        await session.execute(
            update(t.AlertInstance)
            .where(t.AlertInstance.id == alert_id, t.AlertInstance.acknowledged_at.is_(None))
            .values(escalation_level=level, escalated_at=now)
        )


# ----------------------------------------------------------------------------- deliveries


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    severity: str
    kind: str
    instance_ids: list[str]
    admin: str
    channel: str
    status: str
    error: str | None
    at: datetime
    text: str
    provider_message_id: str | None = None


async def record_delivery(
    db: Database,
    *,
    tenant_id: str,
    severity: str,
    kind: str,
    instance_ids: Sequence[str],
    admin: str,
    channel: str,
    status: str,
    now: datetime,
    text: str,
    error: str | None = None,
    provider_message_id: str | None = None,
) -> None:
    async with db.writing() as session:
        session.add(
            t.AlertDelivery(
                tenant_id=tenant_id,
                severity=severity,
                kind=kind,
                instance_ids=list(instance_ids),
                admin=admin,
                channel=channel,
                status=status,
                error=error[:255] if error else None,
                provider_message_id=provider_message_id,
                text=text,
                at=now,
            )
        )


async def deliveries(db: Database, tenant_id: str, limit: int = 200) -> list[Delivery]:
    async with db.reading() as session:
        rows = await session.scalars(
            select(t.AlertDelivery)
            .where(t.AlertDelivery.tenant_id == tenant_id)
            .order_by(t.AlertDelivery.at.desc(), t.AlertDelivery.id)
            .limit(limit)
        )
        return [
            Delivery(
                r.id,
                r.severity,
                r.kind,
                list(r.instance_ids),
                r.admin,
                r.channel,
                r.status,
                r.error,
                r.at,
                r.text,
                r.provider_message_id,
            )
            for r in rows
        ]


async def reached(db: Database, tenant_id: str, alert_id: str, since: datetime) -> dict[str, set[str]]:
    """admin → the channels a message about ``alert_id`` reached them on (status ``sent``) since
    ``since``: an escalation starts past those, so nobody gets the same alert twice on one channel."""
    async with db.reading() as session:
        rows = await session.execute(
            select(t.AlertDelivery.admin, t.AlertDelivery.channel, t.AlertDelivery.instance_ids).where(
                t.AlertDelivery.tenant_id == tenant_id,
                t.AlertDelivery.status == "sent",
                t.AlertDelivery.at >= since,
            )
        )
        out: dict[str, set[str]] = {}
        for admin, channel, ids in rows:
            if alert_id in (ids or []):
                out.setdefault(admin, set()).add(channel)
        return out


# ----------------------------------------------------------------------------- for the dashboard


@dataclass(frozen=True, slots=True)
class AlertView:
    id: str
    rule: str
    severity: str
    scope: dict[str, str]
    state: str
    value: float | None
    threshold: float
    active_since: datetime
    firing_since: datetime | None
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    notify_count: int

    def to_json(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.isoformat() if v else None

        return {
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "scope": self.scope,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "activeSince": iso(self.active_since),
            "firingSince": iso(self.firing_since),
            "resolvedAt": iso(self.resolved_at),
            "acknowledgedAt": iso(self.acknowledged_at),
            "acknowledgedBy": self.acknowledged_by,
            "notifyCount": self.notify_count,
        }


def _view(r: t.AlertInstance) -> AlertView:
    return AlertView(
        r.id,
        r.rule,
        r.severity,
        dict(r.scope or {}),
        r.state,
        r.value,
        r.threshold,
        r.active_since,
        r.firing_since,
        r.resolved_at,
        r.acknowledged_at,
        r.acknowledged_by,
        r.notify_count,
    )


async def list_alerts(
    db: Database, tenant_id: str, *, states: Sequence[str] | None = None, limit: int = 200
) -> list[AlertView]:
    """A business's alerts, open ones first, newest first."""
    async with db.reading() as session:
        query = select(t.AlertInstance).where(t.AlertInstance.tenant_id == tenant_id)
        if states:
            query = query.where(t.AlertInstance.state.in_(list(states)))
        rows = await session.scalars(
            query.order_by(t.AlertInstance.open_key.is_(None), t.AlertInstance.active_since.desc()).limit(limit)
        )
        return [_view(r) for r in rows]


async def acknowledge(db: Database, tenant_id: str, alert_id: str, who: str, now: datetime) -> AlertView:
    """Someone has it: escalation stops (idempotent; the first acknowledgement is kept)."""
    async with db.writing() as session:
        row = await session.scalar(
            select(t.AlertInstance).where(t.AlertInstance.tenant_id == tenant_id, t.AlertInstance.id == alert_id)
        )
        if row is None:
            raise NotFound("no such alert")
        if row.acknowledged_at is None:
            row.acknowledged_at, row.acknowledged_by = now, who[:200]
        return _view(row)


async def create_silence(
    db: Database,
    tenant_id: str,
    matchers: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime,
    *,
    created_by: str = "",
    comment: str = "",
    now: datetime,
) -> Silence:
    """Mute matching alerts' notifications between two instants (``rule``, ``agent``, ``channel``...)."""
    if ends_at <= starts_at:
        raise InvalidInput("a silence must end after it starts")
    clean = {str(k): str(v) for k, v in matchers.items() if k != "tenant_id"}
    rule = clean.get("rule")
    if rule is not None and rule not in RULES:
        raise InvalidInput(f"unknown rule {rule!r}")
    async with db.writing() as session:
        row = t.AlertSilence(
            tenant_id=tenant_id,
            matchers=clean,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by[:200],
            comment=comment,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        return Silence(row.id, {**clean, "tenant_id": tenant_id}, starts_at, ends_at)


async def expire_silence(db: Database, tenant_id: str, silence_id: str, now: datetime) -> None:
    async with db.writing() as session:
        done = await session.execute(
            update(t.AlertSilence)
            .where(t.AlertSilence.tenant_id == tenant_id, t.AlertSilence.id == silence_id, t.AlertSilence.ends_at > now)
            .values(ends_at=now)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            exists = await session.scalar(
                select(t.AlertSilence.id).where(t.AlertSilence.tenant_id == tenant_id, t.AlertSilence.id == silence_id)
            )
            if exists is None:
                raise NotFound("no such silence")


async def silences(
    db: Database, tenant_id: str | None, now: datetime, *, include_expired: bool = False
) -> list[Silence]:
    """Active (or all) silences; ``tenant_id`` None: every business's (the evaluator)."""
    async with db.reading() as session:
        query = select(t.AlertSilence)
        if tenant_id is not None:
            query = query.where(t.AlertSilence.tenant_id == tenant_id)
        if not include_expired:
            query = query.where(t.AlertSilence.ends_at > now)
        rows = await session.scalars(query.order_by(t.AlertSilence.starts_at))
        return [Silence(r.id, {**r.matchers, "tenant_id": r.tenant_id}, r.starts_at, r.ends_at) for r in rows]


async def rule_overrides(db: Database, tenant_id: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """tenant id → rule → overridden keys."""
    async with db.reading() as session:
        query = select(t.AlertRuleOverride)
        if tenant_id is not None:
            query = query.where(t.AlertRuleOverride.tenant_id == tenant_id)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for r in await session.scalars(query):
            out.setdefault(r.tenant_id, {})[r.rule] = dict(r.settings or {})
        return out


async def set_rule_override(
    db: Database, tenant_id: str, rule: str, values: Mapping[str, Any], now: datetime, *, who: str = ""
) -> dict[str, Any]:
    """Tune one rule for one business; an empty mapping removes the override (back to config.yaml)."""
    if rule not in RULES:
        raise InvalidInput(f"unknown rule {rule!r}")
    bad = sorted(set(values) - TUNABLE)
    if bad:
        raise InvalidInput(f"not tunable per business: {', '.join(bad)}")
    if "severity" in values and values["severity"] not in (Severity.WARNING.value, Severity.CRITICAL.value):
        raise InvalidInput("severity: warning or critical")
    for key, value in values.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise InvalidInput("enabled: true or false")
        elif key != "severity" and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise InvalidInput(f"{key}: a number ≥ 0")
    async with db.writing() as session:
        row = await _override(session, tenant_id, rule)
        if not values:
            if row is not None:
                await session.delete(row)
            return {}
        if row is None:
            row = t.AlertRuleOverride(tenant_id=tenant_id, rule=rule)
            session.add(row)
        row.settings, row.updated_at, row.updated_by = dict(values), now, who[:200]
        return dict(values)


async def _override(session: AsyncSession, tenant_id: str, rule: str) -> t.AlertRuleOverride | None:
    return await session.scalar(
        select(t.AlertRuleOverride).where(t.AlertRuleOverride.tenant_id == tenant_id, t.AlertRuleOverride.rule == rule)
    )


# ----------------------------------------------------------------------------- sync events


async def record_sync(
    db: Database, tenant_id: str, integration: str, ok: bool, now: datetime, error: str | None = None
) -> None:
    """One run of a background integration; the sync-failure rule reads these."""
    async with db.writing() as session:
        session.add(
            t.SyncEvent(
                tenant_id=tenant_id, integration=integration, ok=ok, error=error[:255] if error else None, at=now
            )
        )
