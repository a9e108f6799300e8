"""The pure alert rules: state machine, grouping timers, silences, inhibition, quiet hours, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.alerts import (
    Alert,
    AlertState,
    GroupState,
    QuietHours,
    RuleSpec,
    Sample,
    Severity,
    Silence,
    Timers,
    due_escalations,
    evaluate,
    fingerprint,
    inhibited,
    plan,
    scope_of,
    send_failed,
    silenced,
    step,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOW = RuleSpec(
    "slow_responses",
    60,
    Severity.WARNING,
    min_volume=10,
    for_seconds=600,
    keep_firing_for_seconds=600,
    resolve_ratio=0.8,
)
DOWN = RuleSpec("channel_down", 0.5, Severity.CRITICAL, min_volume=4, inhibits=("slow_responses", "conversion_drop"))
SCOPE = scope_of(agent="acme-bot", channel="whatsapp")


def slow(value: float, volume: int = 20) -> Sample:
    return Sample("t1", "slow_responses", SCOPE, value, volume)


def run(spec: RuleSpec, values: list[float | None], every: timedelta = timedelta(minutes=1)) -> list[Alert | None]:
    states: list[Alert | None] = []
    current = None
    now = T0
    for value in values:
        sample = None if value is None else Sample("t1", spec.name, SCOPE, value, 20)
        current = step(current, sample, spec, now)
        states.append(current)
        if current is not None and current.state is AlertState.RESOLVED:
            current = None
        now += every
    return states


def test_condition_must_hold_for_the_pending_period_before_firing() -> None:
    states = run(SLOW, [90.0] * 12)
    assert [s.state if s else None for s in states[:10]] == [AlertState.PENDING] * 10
    assert states[10] is not None and states[10].state is AlertState.FIRING
    assert states[10].firing_since == T0 + timedelta(minutes=10)


def test_pending_that_clears_vanishes_and_starts_over() -> None:
    states = run(SLOW, [90.0] * 5 + [10.0] + [90.0] * 3)
    assert states[5] is None
    assert states[6] is not None and states[6].active_since == T0 + timedelta(minutes=6)


def test_keep_firing_for_and_hysteresis_stop_flapping() -> None:
    # Fires at minute 10; 55 s is below the threshold but above 80% of it: still "bad" (hysteresis).
    # The condition last held at minute 13; keep_firing_for is 10 minutes.
    states = run(SLOW, [90.0] * 11 + [55.0] * 3 + [10.0] * 11)
    assert all(s is not None and s.state is AlertState.FIRING for s in states[10:23])
    last = states[23]
    assert last is not None and last.state is AlertState.RESOLVED
    assert last.resolved_at == T0 + timedelta(minutes=23)


def test_minimum_volume_never_fires() -> None:
    spec = RuleSpec("low_satisfaction", 3.0, Severity.WARNING, min_volume=5)
    few = Sample("t1", "low_satisfaction", scope_of(agent="a"), 1.0, 4)
    assert step(None, few, spec, T0) is None
    enough = Sample("t1", "low_satisfaction", scope_of(agent="a"), 2.5, 5)
    fired = step(None, enough, spec, T0)
    assert fired is not None and fired.state is AlertState.FIRING  # for_seconds 0: fires at once


@given(st.lists(st.tuples(st.floats(0, 500), st.integers(0, 9)), min_size=1, max_size=30))
def test_property_below_min_volume_nothing_ever_opens(samples: list[tuple[float, int]]) -> None:
    current = None
    now = T0
    for value, volume in samples:
        current = step(current, slow(value, volume), SLOW, now)
        assert current is None
        now += timedelta(minutes=1)


def test_one_open_instance_per_fingerprint() -> None:
    changes = evaluate({}, [slow(90.0), slow(95.0)], {"slow_responses": SLOW}, T0)
    assert len(changes) == 1
    other = Sample("t2", "slow_responses", SCOPE, 90.0, 20)
    assert fingerprint("t1", "slow_responses", SCOPE) != other.fingerprint


def firing(rule: str, severity: Severity, scope: tuple[tuple[str, str], ...], since: datetime = T0) -> Alert:
    return Alert(
        fingerprint("t1", rule, scope),
        "t1",
        rule,
        severity,
        scope,
        AlertState.FIRING,
        1.0,
        0.5,
        10,
        since,
        since,
        since,
    )


def test_group_wait_then_one_message_then_repeat_interval() -> None:
    a = firing("slow_responses", Severity.WARNING, SCOPE)
    group = GroupState("t1", Severity.WARNING)
    timers = Timers(timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=4))
    assert plan(group, [a], set(), T0 + timedelta(seconds=10), timers) is None
    note = plan(group, [a], set(), T0 + timedelta(seconds=30), timers)
    assert note is not None and note.kind == "firing"
    told = GroupState("t1", Severity.WARNING, note.notified_after, T0 + timedelta(seconds=30))
    assert plan(told, [a], set(), T0 + timedelta(hours=1), timers) is None
    again = plan(told, [a], set(), T0 + timedelta(hours=4, seconds=30), timers)
    assert again is not None and again.kind == "repeat"


def test_resolved_message_only_for_announced_alerts() -> None:
    a = firing("slow_responses", Severity.WARNING, SCOPE)
    from dataclasses import replace

    done = replace(a, state=AlertState.RESOLVED, resolved_at=T0 + timedelta(minutes=20))
    timers = Timers()
    unannounced = GroupState("t1", Severity.WARNING)
    assert plan(unannounced, [done], set(), T0 + timedelta(hours=1), timers) is None
    told = GroupState("t1", Severity.WARNING, frozenset({a.fingerprint}), T0)
    note = plan(told, [done], set(), T0 + timedelta(hours=1), timers)
    assert note is not None and note.kind == "resolved" and note.resolved == (done,)


def test_silences_match_labels_within_their_window() -> None:
    a = firing("slow_responses", Severity.WARNING, SCOPE)
    s = Silence("s1", {"rule": "slow_responses", "channel": "whatsapp"}, T0, T0 + timedelta(hours=2))
    assert silenced(a, [s], T0 + timedelta(hours=1))
    assert not silenced(a, [s], T0 + timedelta(hours=2))
    other = Silence("s2", {"channel": "sms"}, T0, T0 + timedelta(hours=2))
    assert not silenced(a, [other], T0 + timedelta(hours=1))


def test_channel_down_inhibits_the_alerts_it_causes_on_that_channel_only() -> None:
    specs = {"channel_down": DOWN, "slow_responses": SLOW}
    down = firing("channel_down", Severity.CRITICAL, scope_of(channel="whatsapp"))
    slow_wa = firing("slow_responses", Severity.WARNING, SCOPE)
    slow_web = firing("slow_responses", Severity.WARNING, scope_of(agent="acme-bot", channel="web"))
    assert inhibited(slow_wa, [down, slow_wa, slow_web], specs)
    assert not inhibited(slow_web, [down, slow_wa, slow_web], specs)
    assert not inhibited(down, [down, slow_wa], specs)


def test_only_channel_failures_count_against_a_channel() -> None:
    assert not send_failed("sent", None)
    assert send_failed("pending", "unavailable")  # waiting for a retry after a 5xx
    assert send_failed("dead", "gave_up:timeout")
    assert send_failed("dead", "auth")  # an expired token: the whole channel is down
    for refusal in ("opted_out", "blocked", "window_closed", "gave_up:invalid_number"):
        assert not send_failed("dead", refusal), refusal  # about one recipient: the provider answered


def test_quiet_hours_over_midnight_and_critical_bypass() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), "Asia/Kolkata")
    night = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # 23:30 in Kolkata
    day = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 11:30
    assert quiet.active(night, "warning")
    assert not quiet.active(night, "critical")
    assert not quiet.active(day, "warning")
    a = firing("slow_responses", Severity.WARNING, SCOPE, since=night - timedelta(minutes=5))
    assert plan(GroupState("t1", Severity.WARNING), [a], set(), night, Timers(), quiet=True) is None


def test_unacknowledged_critical_escalates_one_channel_at_a_time() -> None:
    from dataclasses import replace

    a = replace(firing("channel_down", Severity.CRITICAL, scope_of(channel="sms")), notified_at=T0)
    timeout = timedelta(minutes=15)
    assert due_escalations([a], T0 + timedelta(minutes=14), timeout, 3) == []
    (up,) = due_escalations([a], T0 + timedelta(minutes=15), timeout, 3)
    assert up.escalation_level == 1
    assert due_escalations([up], T0 + timedelta(minutes=20), timeout, 3) == []
    (top,) = due_escalations([up], T0 + timedelta(minutes=30), timeout, 3)
    assert top.escalation_level == 2
    assert due_escalations([top], T0 + timedelta(hours=2), timeout, 3) == []  # no channel left
    acked = replace(a, acknowledged_at=T0 + timedelta(minutes=1))
    assert due_escalations([acked], T0 + timedelta(hours=1), timeout, 3) == []
    warning = replace(a, severity=Severity.WARNING)
    assert due_escalations([warning], T0 + timedelta(hours=1), timeout, 3) == []
