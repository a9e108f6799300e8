"""Admin alert rules, evaluated the Alertmanager way as pure functions of samples and ``now``.

A rule's condition must hold on every evaluation for ``for_seconds`` before its instance fires
(pending → firing); once firing it keeps firing for ``keep_firing_for_seconds`` after the condition
clears (no flapping), then resolves. One open instance per fingerprint (business, rule, scope).
Notifications are grouped per (business, severity) with group_wait / group_interval /
repeat_interval timers; silences, inhibition (a down channel mutes the alerts it causes) and quiet
hours mute notifications, never state. An unacknowledged critical alert escalates to each admin's
next channel. Nothing here reads a clock or a database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

Scope = tuple[tuple[str, str], ...]  # sorted (label, value) pairs


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class RuleKind:
    """What a rule measures: which way is bad, its scope labels, how to show its value."""

    title: str
    direction: Literal["above", "below"]
    labels: tuple[str, ...]
    unit: Literal["seconds", "rating", "percent", "count"]


RULES: dict[str, RuleKind] = {
    "slow_responses": RuleKind("Slow responses", "above", ("agent", "channel"), "seconds"),
    "low_satisfaction": RuleKind("Low satisfaction", "below", ("agent",), "rating"),
    "conversion_drop": RuleKind("Conversion drop", "below", ("agent", "channel"), "percent"),
    "failed_payments": RuleKind("Failed-payment spike", "above", ("provider",), "percent"),
    "sync_failure": RuleKind("Sync failure", "above", ("integration",), "count"),
    "channel_down": RuleKind("Channel down", "above", ("channel",), "percent"),
}


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule's tuning (config.yaml ``alerts.rules.<name>`` with a business's overrides on top)."""

    name: str
    threshold: float
    severity: Severity
    min_volume: int = 0
    for_seconds: float = 0
    keep_firing_for_seconds: float = 0
    repeat_interval_seconds: float = 4 * 3600
    resolve_ratio: float = 1.0  # hysteresis: while firing, the condition holds until past threshold × ratio
    window_seconds: float = 3600
    enabled: bool = True
    inhibits: tuple[str, ...] = ()  # rules this one mutes while it fires
    inhibit_equal: tuple[str, ...] = ("channel",)  # labels source and target must share

    @property
    def kind(self) -> RuleKind:
        return RULES[self.name]

    def holds(self, value: float, *, firing: bool, threshold: float | None = None) -> bool:
        """Is the condition true for ``value``? A firing alert needs to get past the hysteresis band."""
        limit = self.threshold if threshold is None else threshold
        ratio = self.resolve_ratio if firing and self.resolve_ratio > 0 else 1.0
        if self.kind.direction == "above":
            return value > limit * ratio
        return value < limit / ratio


# Outbox errors about one recipient, not the channel: the provider answered, so the channel works
# (customers who blocked the bot or replied STOP do not make a channel "down").
RECIPIENT_REFUSALS = frozenset(
    {
        "opted_out",
        "blocked",
        "unsubscribed",
        "invalid_recipient",
        "invalid_number",
        "unreachable",
        "chat_not_found",
        "chat_migrated",
        "window_closed",
        "undeliverable",
        "recipient_unavailable",
        "not_allowed",
    }
)


def send_failed(state: str, last_error: str | None) -> bool:
    """Does one attempted outbox send count against its channel? Dead, or waiting for a retry
    after an error, unless the error is about the recipient (the relay's ``gave_up:<reason>``
    after its last attempt counts like the reason)."""
    if last_error is None:
        return state == "dead"
    return last_error.removeprefix("gave_up:") not in RECIPIENT_REFUSALS


def scope_of(**labels: str | None) -> Scope:
    return tuple(sorted((k, str(v)) for k, v in labels.items() if v is not None))


def fingerprint(tenant_id: str, rule: str, scope: Scope) -> str:
    """The alert's identity: one open instance per (business, rule, sorted scope labels)."""
    raw = "\x1f".join([tenant_id, rule, *(f"{k}={v}" for k, v in sorted(scope))])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Sample:
    """One rule's measurement for one scope. ``value`` None means no data (nothing to judge)."""

    tenant_id: str
    rule: str
    scope: Scope
    value: float | None
    volume: int = 0
    threshold: float | None = None  # a baseline-derived limit for this round (None: the rule's)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.tenant_id, self.rule, self.scope)


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert instance as the state machine sees it (storage mirrors it in ``alert_instances``)."""

    fingerprint: str
    tenant_id: str
    rule: str
    severity: Severity
    scope: Scope
    state: AlertState
    value: float | None
    threshold: float
    volume: int
    active_since: datetime
    last_true_at: datetime
    firing_since: datetime | None = None
    resolved_at: datetime | None = None
    id: str | None = None
    notified_at: datetime | None = None
    acknowledged_at: datetime | None = None
    escalation_level: int = 0
    escalated_at: datetime | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "rule": self.rule, "severity": self.severity.value, **dict(self.scope)}

    @property
    def open(self) -> bool:
        return self.state in (AlertState.PENDING, AlertState.FIRING)


def step(previous: Alert | None, sample: Sample | None, spec: RuleSpec, now: datetime) -> Alert | None:
    """One evaluation of one fingerprint. None: nothing open (a pending alert whose condition
    cleared disappears without a trace, as in Prometheus).

    Too little volume (or no data) never fires: it counts as "condition not holding".
    """
    firing = previous is not None and previous.state is AlertState.FIRING
    judged = (
        sample is not None
        and sample.value is not None
        and sample.volume >= spec.min_volume
        and spec.enabled
        and spec.holds(sample.value, firing=firing, threshold=sample.threshold)
    )
    limit = sample.threshold if sample is not None and sample.threshold is not None else spec.threshold
    value = sample.value if sample is not None and sample.value is not None else None
    if judged:
        assert sample is not None
        if previous is None or not previous.open:
            fresh = Alert(
                fingerprint=sample.fingerprint,
                tenant_id=sample.tenant_id,
                rule=sample.rule,
                severity=spec.severity,
                scope=sample.scope,
                state=AlertState.PENDING,
                value=value,
                threshold=limit,
                volume=sample.volume,
                active_since=now,
                last_true_at=now,
            )
            return _promote(fresh, spec, now)
        held = replace(previous, value=value, volume=sample.volume, last_true_at=now, threshold=limit)
        return _promote(held, spec, now) if held.state is AlertState.PENDING else held
    if previous is None or not previous.open:
        return None
    if previous.state is AlertState.PENDING:
        return None
    if now - previous.last_true_at >= timedelta(seconds=spec.keep_firing_for_seconds):
        return replace(
            previous,
            state=AlertState.RESOLVED,
            resolved_at=now,
            value=value if value is not None else previous.value,
        )
    return replace(previous, value=value if value is not None else previous.value)


def _promote(alert: Alert, spec: RuleSpec, now: datetime) -> Alert:
    if now - alert.active_since >= timedelta(seconds=spec.for_seconds):
        return replace(alert, state=AlertState.FIRING, firing_since=now)
    return alert


@dataclass(frozen=True, slots=True)
class Change:
    """What one evaluation did to one fingerprint: ``after`` None means the pending alert vanished."""

    before: Alert | None
    after: Alert | None


def evaluate(
    open_alerts: Mapping[str, Alert], samples: Iterable[Sample], specs: Mapping[str, RuleSpec], now: datetime
) -> list[Change]:
    """Step every open alert and every sample; alerts without a sample this round see "no data"."""
    by_fp: dict[str, Sample] = {}
    for given in samples:
        if given.rule in specs:
            by_fp[given.fingerprint] = given
    changes = []
    for fp in sorted(set(open_alerts) | set(by_fp)):
        before = open_alerts.get(fp)
        sample = by_fp.get(fp)
        rule = sample.rule if sample is not None else before.rule if before is not None else ""
        spec = specs.get(rule)
        if spec is None:
            continue
        after = step(before, sample, spec, now)
        if before is not None or after is not None:
            changes.append(Change(before, after))
    return changes


# ----------------------------------------------------------------------------- muting


@dataclass(frozen=True, slots=True)
class Silence:
    """A time-boxed mute: every matcher label must equal the alert's (``rule``, ``agent``, ...)."""

    id: str
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        labels = alert.labels
        return all(labels.get(k) == str(v) for k, v in self.matchers.items())


def silenced(alert: Alert, silences: Iterable[Silence], now: datetime) -> bool:
    return any(s.active(now) and s.matches(alert) for s in silences)


def inhibited(alert: Alert, firing: Iterable[Alert], specs: Mapping[str, RuleSpec]) -> bool:
    """Muted by a firing source alert of the same business that lists this rule and shares the
    ``inhibit_equal`` labels (a channel that is down explains its slow responses)."""
    mine = dict(alert.scope)
    for source in firing:
        spec = specs.get(source.rule)
        if spec is None or source.state is not AlertState.FIRING or source.fingerprint == alert.fingerprint:
            continue
        if alert.rule not in spec.inhibits or source.tenant_id != alert.tenant_id:
            continue
        theirs = dict(source.scope)
        if all(label in mine and mine[label] == theirs.get(label) for label in spec.inhibit_equal):
            return True
    return False


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily mute interval in a zone; severities in ``bypass`` still get through."""

    start: time
    end: time
    zone: str = "UTC"
    bypass: frozenset[str] = frozenset({Severity.CRITICAL.value})

    def active(self, now: datetime, severity: str) -> bool:
        if severity in self.bypass or self.start == self.end:
            return False
        local = now.astimezone(ZoneInfo(self.zone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # over midnight


# ----------------------------------------------------------------------------- notifications


@dataclass(frozen=True, slots=True)
class Timers:
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the admins were last told about one (business, severity) group."""

    tenant_id: str
    severity: Severity
    notified: frozenset[str] = frozenset()  # fingerprints in the last firing message
    last_notified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    tenant_id: str
    severity: Severity
    kind: Literal["firing", "resolved", "repeat"]
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    notified_after: frozenset[str] = field(default=frozenset())  # the group's ``notified`` once sent


def plan(
    group: GroupState,
    alerts: Sequence[Alert],
    muted: frozenset[str] | set[str],
    now: datetime,
    timers: Timers,
    *,
    quiet: bool = False,
) -> Notification | None:
    """The group's next message, if one is due now.

    ``alerts``: the group's firing instances and its resolved ones not yet announced. A new firing
    alert in a group nobody was told about waits ``group_wait`` (to batch its siblings); any
    change to an already-notified group waits ``group_interval`` after the last message; an
    unchanged firing group is repeated every ``repeat_interval``. A resolved message goes only for
    alerts the admins were told were firing. Quiet hours hold everything back until they end.
    """
    firing = tuple(a for a in alerts if a.state is AlertState.FIRING and a.fingerprint not in muted)
    firing_fps = {a.fingerprint for a in firing}
    resolved = tuple(a for a in alerts if a.state is AlertState.RESOLVED and a.fingerprint in group.notified)
    # Muted firing alerts the admins already know about stay "known" (no resolved message for a mute).
    still_known = {a.fingerprint for a in alerts if a.state is AlertState.FIRING and a.fingerprint in group.notified}
    new = firing_fps - group.notified
    if quiet:
        return None
    after = frozenset(firing_fps | still_known)
    if new or resolved:
        if not group.notified or group.last_notified_at is None:
            earliest = min((a.firing_since or a.active_since) for a in firing if a.fingerprint in new) if new else now
            if now - earliest < timers.group_wait:
                return None
        elif now - group.last_notified_at < timers.group_interval:
            return None
        kind: Literal["firing", "resolved", "repeat"] = "firing" if firing else "resolved"
        return Notification(group.tenant_id, group.severity, kind, firing, resolved, after)
    if firing and group.last_notified_at is not None and now - group.last_notified_at >= timers.repeat_interval:
        return Notification(group.tenant_id, group.severity, "repeat", firing, (), after)
    return None


def due_escalations(alerts: Iterable[Alert], now: datetime, ack_timeout: timedelta, levels: int) -> list[Alert]:
    """Critical firing alerts nobody acknowledged within ``ack_timeout`` of their last message, that
    still have a next channel (``levels`` = the longest admin channel list). Each comes back one
    level up; resolving or acknowledging stops the ladder."""
    out = []
    for alert in alerts:
        if alert.severity is not Severity.CRITICAL or alert.state is not AlertState.FIRING:
            continue
        if alert.acknowledged_at is not None or alert.notified_at is None:
            continue
        if alert.escalation_level + 1 >= levels:
            continue
        since = alert.escalated_at or alert.notified_at
        if now - since >= ack_timeout:
            out.append(replace(alert, escalation_level=alert.escalation_level + 1, escalated_at=now))
    return out


# ----------------------------------------------------------------------------- wording


def show_value(rule: str, value: float | None) -> str:
    if value is None:
        return "no data"
    unit = RULES[rule].unit
    if unit == "seconds":
        return f"{value:.0f} s"
    if unit == "rating":
        return f"{value:.2f}/5"
    if unit == "percent":
        return f"{value * 100:.0f}%"
    return f"{value:g}"


def describe(alert: Alert, now: datetime) -> str:
    kind = RULES[alert.rule]
    scope = ", ".join(f"{k}={v}" for k, v in alert.scope) or "whole business"
    comparison = ">" if kind.direction == "above" else "<"
    line = (
        f"{kind.title} ({scope}): {show_value(alert.rule, alert.value)} {comparison} "
        f"{show_value(alert.rule, alert.threshold)}"
    )
    if alert.state is AlertState.RESOLVED and alert.firing_since and alert.resolved_at:
        minutes = int((alert.resolved_at - alert.firing_since).total_seconds() // 60)
        return f"{kind.title} ({scope}): resolved after {minutes} min, last value {show_value(alert.rule, alert.value)}"
    since = alert.firing_since or alert.active_since
    return f"{line}, since {since:%Y-%m-%d %H:%M} UTC"


def message(note: Notification, business: str, now: datetime, link: str | None = None) -> str:
    """The admin message of one group notification: rule, scope, value against threshold, since."""
    head = {
        "firing": f"[{note.severity.value.upper()}] {len(note.firing)} alert(s) firing for {business}",
        "repeat": f"[{note.severity.value.upper()}] still firing for {business}: {len(note.firing)} alert(s)",
        "resolved": f"[RESOLVED] {business}: {len(note.resolved)} alert(s) resolved",
    }[note.kind]
    lines = [head]
    lines += [f"• {describe(a, now)}" for a in note.firing]
    if note.resolved:
        if note.firing:
            lines.append("Resolved:")
        lines += [f"• {describe(a, now)}" for a in note.resolved]
    if link:
        lines.append(link)
    return "\n".join(lines)


def escalation_message(alert: Alert, business: str, now: datetime, link: str | None = None) -> str:
    lines = [f"[CRITICAL, not acknowledged] {business}", f"• {describe(alert, now)}"]
    if link:
        lines.append(link)
    return "\n".join(lines)
