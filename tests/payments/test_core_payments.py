"""The pure payment rules: the purchase state machine and the refund arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.payments import (
    TRANSITIONS,
    Fit,
    PurchaseStatus,
    RefundKind,
    RefundPolicy,
    RefundQuote,
    cancelled_by_customer,
    ensure_move,
    insight_status,
    path_between,
    reconcile,
    refund_for,
    step,
)

P, C, F, E, R, D = (
    PurchaseStatus.PENDING,
    PurchaseStatus.COMPLETED,
    PurchaseStatus.FAILED,
    PurchaseStatus.EXPIRED,
    PurchaseStatus.REFUNDED,
    PurchaseStatus.DISPUTED,
)


@pytest.mark.parametrize(
    ("current", "observed", "fit", "path"),
    [
        (P, C, Fit.MOVE, (C,)),
        (P, F, Fit.MOVE, (F,)),
        (P, E, Fit.MOVE, (E,)),
        (F, C, Fit.MOVE, (C,)),  # a retry on the same link succeeded
        (E, C, Fit.MOVE, (C,)),  # a late payment is still money received
        (C, R, Fit.MOVE, (R,)),
        (C, D, Fit.MOVE, (D,)),
        (R, D, Fit.MOVE, (D,)),
        (C, C, Fit.SAME, ()),  # a redelivered "paid"
        (C, E, Fit.STALE, ()),  # checkout.session.expired after completed: ignore
        (C, F, Fit.STALE, ()),  # async_payment_failed after paid: ignore
        (E, F, Fit.STALE, ()),
        (R, C, Fit.STALE, ()),  # never back from refunded
        (D, R, Fit.STALE, ()),
        (P, R, Fit.REFETCH, ()),  # refunded before we saw it paid: ask the provider
        (P, D, Fit.REFETCH, ()),
        (E, R, Fit.REFETCH, ()),
    ],
)
def test_step_table(
    current: PurchaseStatus, observed: PurchaseStatus, fit: Fit, path: tuple[PurchaseStatus, ...]
) -> None:
    decision = step(current, observed)
    assert (decision.fit, decision.path) == (fit, path)


def test_reconcile_walks_the_whole_forward_path() -> None:
    assert reconcile(P, R).path == (C, R)
    assert reconcile(P, D).path == (C, D)
    assert reconcile(E, R).path == (C, R)
    assert reconcile(C, P).fit is Fit.STALE
    assert reconcile(C, C).fit is Fit.SAME


@given(st.sampled_from(list(PurchaseStatus)), st.sampled_from(list(PurchaseStatus)))
def test_moves_only_forward(a: PurchaseStatus, b: PurchaseStatus) -> None:
    """No pair of states is reachable from each other (no cycles), and every path uses real edges."""
    there, back = path_between(a, b), path_between(b, a)
    if a is not b:
        assert there is None or back is None
    if there:
        here = a
        for nxt in there:
            assert nxt in TRANSITIONS[here]
            here = nxt


def test_ensure_move_and_terminal_dispute() -> None:
    ensure_move(P, C)
    with pytest.raises(ValueError, match="a disputed purchase cannot become refunded"):
        ensure_move(D, R)
    assert TRANSITIONS[D] == frozenset()


def test_insight_status_vocabulary() -> None:
    assert [insight_status(s) for s in PurchaseStatus] == [
        "pending",
        "completed",
        "failed",
        "failed",
        "refunded",
        "disputed",
    ]


START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
POLICY = RefundPolicy(full_hours=24, partial_percent=50)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (timedelta(hours=48), RefundQuote(RefundKind.FULL, 80000)),
        (timedelta(hours=24), RefundQuote(RefundKind.FULL, 80000)),  # inclusive boundary
        (timedelta(hours=23, minutes=59, seconds=59), RefundQuote(RefundKind.PARTIAL, 40000)),
        (timedelta(minutes=1), RefundQuote(RefundKind.PARTIAL, 40000)),
        (timedelta(0), RefundQuote(RefundKind.NONE, 0)),  # it has started
        (-timedelta(hours=1), RefundQuote(RefundKind.NONE, 0)),
    ],
)
def test_refund_policy_windows(before: timedelta, expected: RefundQuote) -> None:
    assert refund_for(80000, START, START - before, POLICY) == expected


def test_partial_rounds_down_to_a_whole_minor_unit() -> None:
    assert refund_for(999, START, START - timedelta(hours=1), RefundPolicy(24, 33)) == RefundQuote(
        RefundKind.PARTIAL, 329
    )
    assert refund_for(1, START, START - timedelta(hours=1), RefundPolicy(24, 50)) == RefundQuote(RefundKind.NONE, 0)
    assert refund_for(500, START, START - timedelta(hours=1), RefundPolicy(24, 100)) == RefundQuote(
        RefundKind.FULL, 500
    )


def test_defaults_refund_in_full_until_the_start_and_unpaid_is_unpaid() -> None:
    assert refund_for(5000, START, START - timedelta(seconds=1), RefundPolicy()) == RefundQuote(RefundKind.FULL, 5000)
    assert refund_for(0, START, START - timedelta(days=3), POLICY) == RefundQuote(RefundKind.UNPAID, 0)


def test_business_cancellation_refunds_in_full_even_late() -> None:
    late = START - timedelta(minutes=5)
    assert refund_for(80000, START, late, POLICY, by_customer=False) == RefundQuote(RefundKind.FULL, 80000)
    assert cancelled_by_customer("customer") and cancelled_by_customer("chat:whatsapp")
    assert not cancelled_by_customer("api") and not cancelled_by_customer("system")


def test_window_is_absolute_hours_across_dst() -> None:
    """New York springs forward on 2026-03-08: 24 wall-clock hours back is only 23 real hours."""
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 8, 12, 0, tzinfo=ny)
    same_wall_clock_day_before = datetime(2026, 3, 7, 12, 0, tzinfo=ny)
    assert (start - same_wall_clock_day_before) == timedelta(hours=24)  # naive-looking, but aware maths:
    assert start.astimezone(UTC) - same_wall_clock_day_before.astimezone(UTC) == timedelta(hours=23)
    quote = refund_for(1000, start.astimezone(UTC), same_wall_clock_day_before.astimezone(UTC), RefundPolicy(24, 50))
    assert quote == RefundQuote(RefundKind.PARTIAL, 500)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RefundPolicy(full_hours=-1)
    with pytest.raises(ValueError):
        RefundPolicy(partial_percent=101)
