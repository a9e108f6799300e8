"""Hand-computed expectations for the pure insight formulas (docs/insights.md)."""

from __future__ import annotations

import pytest

from core import insights as f


def test_seed_appointment_example() -> None:
    # 2 appointments, 1 completed, 1 missed -> 50.0 / 50.0
    m = f.appointment_metrics(completed=1, missed=1, cancelled=0, scheduled=0, pending=0)
    assert m["totalAppointments"] == 2
    assert m["completedAppointments"] == 1 and m["missedAppointments"] == 1
    assert m["completionRate"] == 50.0 and m["noShowRate"] == 50.0 and m["cancellationRate"] == 0.0


def test_seed_purchase_example() -> None:
    # one completed purchase of 1800 -> revenue 1800, AOV 1800, completion 100.0, failure 0.0
    m = f.purchase_metrics(total=1, completed=1, failed=0, revenue=1800)
    assert m == {
        "totalPurchases": 1,
        "completedPurchases": 1,
        "totalRevenue": 1800,
        "averageOrderValue": 1800,
        "completionRate": 100.0,
        "failureRate": 0.0,
    }


def test_rates_without_data_show_zero() -> None:
    m = f.appointment_metrics(completed=0, missed=0, cancelled=0, scheduled=3, pending=0)
    assert m["completionRate"] == 0.0 and m["noShowRate"] == 0.0
    assert f.percent(1, 0) is None and f.percent(1, 3) == 33.3


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (100.0, "A+"),
        (95.0, "A+"),
        (94.99, "A"),
        (90.0, "A"),
        (89.9, "B+"),
        (85.0, "B+"),
        (84.9, "B"),
        (80.0, "B"),
        (79.9, "C+"),
        (75.0, "C+"),
        (74.9, "C"),
        (70.0, "C"),
        (69.9, "D"),
        (0.0, "D"),
        (None, "N/A"),
    ],
)
def test_every_grade_boundary(score: float | None, expected: str) -> None:
    assert f.letter(score) == expected


def test_weights_and_renormalisation() -> None:
    assert f.combine({"quality": 100.0, "conversion": 50.0, "efficiency": 0.0}) == pytest.approx(
        (40 * 100 + 35 * 50 + 25 * 0) / 100
    )
    # no conversion data: its 35 is shared out between quality (40) and efficiency (25)
    assert f.combine({"quality": 100.0, "conversion": None, "efficiency": 0.0}) == pytest.approx(4000 / 65)
    assert f.combine({"quality": None, "conversion": None, "efficiency": None}) is None


def test_sub_score_mappings() -> None:
    assert f.satisfaction_score(5.0) == 100.0 and f.satisfaction_score(1.0) == 0.0
    assert f.satisfaction_score(4.0) == 75.0
    assert f.response_score(5000) == 100.0 and f.response_score(20000) == 0.0
    assert f.response_score(12500) == 50.0
    assert f.conversion_score(20.0) == 50.0 and f.conversion_score(60.0) == 100.0
    assert f.escalation_score(0.0) == 100.0 and f.escalation_score(15.0) == 50.0 and f.escalation_score(45.0) == 0.0
    assert f.sentiment_score(0.5) == 75.0


def test_grade_hand_computed() -> None:
    # 20 conversations: 16 completed (80%), 4 booked (20% -> 50), 2 escalated (10% -> 66.67),
    # mean rating 4.0 (-> 75), mean response 1 s (-> 100), no purchases (payment dropped).
    totals = f.AgentTotals(
        conversations=20,
        completed=16,
        escalated=2,
        ratings=5,
        rating_sum=20,
        responses=40,
        response_ms_sum=40_000,
        conversions=4,
    )
    g = f.grade(totals)
    quality = (75.0 + 80.0) / 2
    conversion = 50.0
    efficiency = (100.0 + 100.0 * (1 - 10 / 30)) / 2
    expected = round((40 * quality + 35 * conversion + 25 * efficiency) / 100, 1)
    assert g.score == expected == 69.3  # (40·77.5 + 35·50 + 25·83.33) / 100
    assert g.letter == "D"
    assert g.components == {"quality": 77.5, "conversion": 50.0, "efficiency": 83.3}
    assert "Answers quickly" in g.strengths
    assert "Convert more conversations into bookings" in g.improvements


def test_grade_is_not_given_below_the_minimum_sample() -> None:
    totals = f.AgentTotals(conversations=f.MIN_CONVERSATIONS - 1, completed=9, conversions=9)
    assert f.grade(totals).letter == "N/A" and f.grade(totals).score is None
    assert f.grade(totals, min_conversations=1).letter != "N/A"


def test_grade_without_ratings_uses_sentiment() -> None:
    totals = f.AgentTotals(conversations=10, completed=10, sentiment_hits=2, sentiment_milli_sum=1000)
    g = f.grade(totals)
    assert g.subscores["satisfaction"] == 75.0  # mean compound 0.5


def test_trend() -> None:
    assert f.trend(150, 100) == 50.0
    assert f.trend(50, 100) == -50.0
    assert f.trend(3, 0) == 100.0 and f.trend(0, 0) == 0.0


def test_churn_segments_upsell_ltv() -> None:
    assert f.expected_gap([0, 30, 90]) == 45.0
    assert f.expected_gap([10]) == f.DEFAULT_GAP_DAYS
    assert f.churn_risk(30, 30) == 0.0
    assert f.churn_risk(60, 30) == 0.5
    assert f.churn_risk(200, 30) == 1.0
    assert f.segment(days_since_first=5, visits=1, lifetime_value=0, tenant_aov=0, churn=0) == "new"
    assert f.segment(days_since_first=400, visits=3, lifetime_value=0, tenant_aov=0, churn=0.8) == "at-risk"
    assert f.segment(days_since_first=400, visits=5, lifetime_value=0, tenant_aov=0, churn=0) == "high-value"
    assert f.segment(days_since_first=400, visits=1, lifetime_value=5000, tenant_aov=1000, churn=0) == "high-value"
    assert f.segment(days_since_first=400, visits=3, lifetime_value=0, tenant_aov=1000, churn=0.2) == "regular"
    assert f.segment(days_since_first=400, visits=1, lifetime_value=0, tenant_aov=1000, churn=0.2) == "occasional"
    # 5 visits (0.4), 1 of 4 services (0.3 * 0.75), rating 5 (0.3) -> 0.925, no churn
    assert f.upsell_potential(visits=5, services_used=1, services_offered=4, avg_rating=5.0, churn=0) == 0.93
    assert f.upsell_potential(visits=5, services_used=1, services_offered=4, avg_rating=5.0, churn=1) == 0.0
    assert f.lifetime_value([1800, 200], [500]) == 2500


def test_funnel_drop_off() -> None:
    steps = f.funnel(
        {
            "conversation_started": 10,
            "service_selected": 5,
            "slot_selected": 4,
            "details_given": 4,
            "booked": 2,
            "paid": 1,
        }
    )
    assert [s["count"] for s in steps] == [10, 5, 4, 4, 2, 1]
    assert steps[0]["dropOffRate"] == 0.0
    assert steps[1]["dropOffRate"] == 50.0 and steps[2]["dropOffRate"] == 20.0
    assert steps[4]["dropOffRate"] == 50.0 and steps[5]["dropOffRate"] == 50.0


def test_journey_and_follow_ups() -> None:
    assert f.journey_stage(steps=set(), completed_visits=0, best_rating=None) == "awareness"
    assert f.journey_stage(steps={"service_selected"}, completed_visits=0, best_rating=None) == "consideration"
    assert f.journey_stage(steps={"booked"}, completed_visits=0, best_rating=None) == "decision"
    assert f.journey_stage(steps=set(), completed_visits=1, best_rating=5) == "retention"
    assert f.journey_stage(steps=set(), completed_visits=2, best_rating=5) == "advocacy"
    assert f.missed_follow_ups(0) == ["send_reschedule_link", "call_customer"]
    assert "review_no_show_policy" in f.missed_follow_ups(1)
    assert f.sentiment_label(0.3) == "positive" and f.sentiment_label(-0.3) == "negative"
    assert f.sentiment_label(0.0) == "neutral"


def test_tags_are_added_once_in_the_order_earned_and_capped() -> None:
    earned = f.turn_tags(services=["checkup", "solo"], completed=["booked", "paid_in_chat"], escalated=True)
    assert earned == ["service:checkup", "service:solo", "booked", "escalated"]  # only known task outcomes
    tags = f.with_tags(["channel:web", "service:checkup"], earned)
    assert tags == ["channel:web", "service:checkup", "service:solo", "booked", "escalated"]
    assert f.with_tags(tags, ["booked"]) == tags
    assert f.with_tags(["a", "b"], ["c", "d"], limit=3) == ["a", "b", "c"]
    assert f.customer_tag(returning=True) == "returning_customer" and f.customer_tag(returning=False) == "new_customer"


def test_purchase_tags_follow_the_purchase_insight_vocabulary() -> None:
    from core.payments import PurchaseStatus as P

    assert {s.value: f.purchase_tag(s) for s in P} == {
        "pending": None,
        "completed": "paid",
        "failed": "payment_failed",
        "expired": "payment_failed",
        "refunded": "refunded",
        "disputed": "disputed",
    }


def test_intents_are_appended_once_per_turn_and_the_latest_kept() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 2, 8, tzinfo=UTC)
    greet = f.IntentNote("greet", f.READING)
    tool = f.IntentNote("book_appointment", f.TOOL, 1.0)
    entries = f.with_intents([], [greet, tool, greet], at)
    assert entries == [
        {"intent": "greet", "confidence": None, "timestamp": "2026-03-02T08:00:00+00:00", "source": "reading"},
        {"intent": "book_appointment", "confidence": 1.0, "timestamp": "2026-03-02T08:00:00+00:00", "source": "tool"},
    ]
    assert len(f.with_intents(entries, [greet], at)) == 3  # another turn: a timeline, not a set
    assert [e["intent"] for e in f.with_intents(entries, [greet], at, limit=2)] == ["book_appointment", "greet"]
