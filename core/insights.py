"""Pure insight formulas: rates, the agent grade, customer segments, churn, upsell, lifetime value,
and the vocabulary of a conversation's tags and intents.

Everything here is a function of plain numbers (sums and counts read from the daily roll-ups) and
of ``now`` when time matters; no I/O, no clock reads. ``docs/insights.md`` states each formula in
words; the tests check hand-computed values against these functions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from core.payments import PurchaseStatus

# ----------------------------------------------------------------------------- the grade

GRADE_LETTERS: tuple[tuple[float, str], ...] = (
    (95.0, "A+"),
    (90.0, "A"),
    (85.0, "B+"),
    (80.0, "B"),
    (75.0, "C+"),
    (70.0, "C"),
)
NOT_GRADED = "N/A"
WEIGHTS: Mapping[str, float] = {"quality": 40.0, "conversion": 35.0, "efficiency": 25.0}
MIN_CONVERSATIONS = 10  # below this many conversations in the window the grade is "N/A"
RESPONSE_TARGET_MS = 5_000  # mean bot response at or under this scores 100 ...
RESPONSE_ZERO_MS = 20_000  # ... and at or over this scores 0 (linear in between)
CONVERSION_TARGET = 40.0  # % of conversations that book: at or over this scores 100
ESCALATION_CAP = 30.0  # % of conversations handed to a person: at or over this scores 0
STRENGTH_AT = 85.0  # a sub-score at or above this is a strength
IMPROVE_BELOW = 70.0  # a sub-score below this is an improvement area


def percent(numerator: float, denominator: float) -> float | None:
    """numerator ÷ denominator × 100 rounded to one decimal; None when there is no denominator."""
    if denominator <= 0:
        return None
    return round(100.0 * numerator / denominator, 1)


def shown(value: float | None) -> float:
    """Rates are rendered as numbers: no data shows as 0.0 (the grade treats it as missing)."""
    return 0.0 if value is None else value


def mean(total: float, count: float, digits: int = 1) -> float | None:
    return None if count <= 0 else round(total / count, digits)


def clamp(value: float, low: float = 0.0, high: float = 100.0) -> float:
    return max(low, min(high, value))


def letter(score: float | None) -> str:
    """The letter for a 0–100 score (A+ ≥ 95, A ≥ 90, B+ ≥ 85, B ≥ 80, C+ ≥ 75, C ≥ 70, else D)."""
    if score is None:
        return NOT_GRADED
    for threshold, name in GRADE_LETTERS:
        if score >= threshold:
            return name
    return "D"


def satisfaction_score(avg_rating: float | None) -> float | None:
    """Mean 1–5 rating mapped linearly: 1 → 0, 5 → 100."""
    return None if avg_rating is None else clamp((avg_rating - 1.0) / 4.0 * 100.0)


def sentiment_score(avg_compound: float | None) -> float | None:
    """Mean VADER compound (−1..1) mapped linearly: −1 → 0, +1 → 100 (only when nobody rated)."""
    return None if avg_compound is None else clamp((avg_compound + 1.0) / 2.0 * 100.0)


def response_score(avg_ms: float | None) -> float | None:
    if avg_ms is None:
        return None
    if avg_ms <= RESPONSE_TARGET_MS:
        return 100.0
    return clamp(100.0 * (RESPONSE_ZERO_MS - avg_ms) / (RESPONSE_ZERO_MS - RESPONSE_TARGET_MS))


def conversion_score(rate: float | None) -> float | None:
    return None if rate is None else clamp(100.0 * rate / CONVERSION_TARGET)


def escalation_score(rate: float | None) -> float | None:
    return None if rate is None else clamp(100.0 * (1.0 - rate / ESCALATION_CAP))


def component(scores: Sequence[float | None]) -> float | None:
    """The mean of a component's sub-scores that have data; None when none has."""
    present = [s for s in scores if s is not None]
    return sum(present) / len(present) if present else None


def combine(components: Mapping[str, float | None], weights: Mapping[str, float] = WEIGHTS) -> float | None:
    """Weighted mean of the components with data; the missing ones' weight is shared out
    (renormalised), so an agent is never punished for a metric that cannot be measured."""
    present = {k: v for k, v in components.items() if v is not None}
    total = sum(weights[k] for k in present)
    if not present or total <= 0:
        return None
    return sum(weights[k] * v for k, v in present.items()) / total


@dataclass(frozen=True, slots=True)
class AgentTotals:
    """Sums over a date range of the daily roll-ups, everything the grade needs."""

    conversations: int = 0
    completed: int = 0
    escalated: int = 0
    ratings: int = 0
    rating_sum: int = 0
    sentiment_hits: int = 0
    sentiment_milli_sum: int = 0
    responses: int = 0
    response_ms_sum: int = 0
    duration_s_sum: int = 0
    conversions: int = 0
    purchases_paid: int = 0
    purchases_unpaid: int = 0  # failed or expired checkouts

    @property
    def completion_rate(self) -> float | None:
        return percent(self.completed, self.conversations)

    @property
    def escalation_rate(self) -> float | None:
        return percent(self.escalated, self.conversations)

    @property
    def conversion_rate(self) -> float | None:
        return percent(self.conversions, self.conversations)

    @property
    def avg_rating(self) -> float | None:
        return mean(self.rating_sum, self.ratings, 2)

    @property
    def avg_compound(self) -> float | None:
        return None if self.sentiment_hits <= 0 else self.sentiment_milli_sum / 1000.0 / self.sentiment_hits

    @property
    def avg_response_ms(self) -> float | None:
        return mean(self.response_ms_sum, self.responses, 0)

    @property
    def payment_rate(self) -> float | None:
        return percent(self.purchases_paid, self.purchases_paid + self.purchases_unpaid)


@dataclass(frozen=True, slots=True)
class Grade:
    score: float | None
    letter: str
    components: dict[str, float | None]
    subscores: dict[str, float | None]
    strengths: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)


SUBSCORE_TEXT: Mapping[str, tuple[str, str]] = {
    "satisfaction": ("Customers rate conversations highly", "Raise customer satisfaction"),
    "completion": ("Most conversations end with a task done", "More conversations should end with a task done"),
    "conversion": ("Converts conversations into bookings well", "Convert more conversations into bookings"),
    "payment": ("Checkouts get paid", "Too many checkouts are not paid"),
    "response": ("Answers quickly", "Answer faster"),
    "escalation": ("Rarely needs a person", "Too many conversations are handed to a person"),
}


def grade(totals: AgentTotals, *, min_conversations: int = MIN_CONVERSATIONS) -> Grade:
    """The agent's 0–100 score and letter (see docs/insights.md §Grade)."""
    satisfaction = satisfaction_score(totals.avg_rating)
    if satisfaction is None:
        satisfaction = sentiment_score(totals.avg_compound)
    subs: dict[str, float | None] = {
        "satisfaction": satisfaction,
        "completion": totals.completion_rate,
        "conversion": conversion_score(totals.conversion_rate),
        "payment": totals.payment_rate,
        "response": response_score(totals.avg_response_ms),
        "escalation": escalation_score(totals.escalation_rate),
    }
    components = {
        "quality": component([subs["satisfaction"], subs["completion"]]),
        "conversion": component([subs["conversion"], subs["payment"]]),
        "efficiency": component([subs["response"], subs["escalation"]]),
    }
    rounded = {k: None if v is None else round(v, 1) for k, v in components.items()}
    rounded_subs = {k: None if v is None else round(v, 1) for k, v in subs.items()}
    strengths = [SUBSCORE_TEXT[k][0] for k, v in subs.items() if v is not None and v >= STRENGTH_AT]
    improvements = [SUBSCORE_TEXT[k][1] for k, v in subs.items() if v is not None and v < IMPROVE_BELOW]
    if totals.conversations < min_conversations:
        return Grade(None, NOT_GRADED, rounded, rounded_subs, strengths, improvements)
    score = combine(components)
    score = None if score is None else round(score, 1)
    return Grade(score, letter(score), rounded, rounded_subs, strengths, improvements)


# ----------------------------------------------------------------------------- aggregates


def appointment_metrics(*, completed: int, missed: int, cancelled: int, scheduled: int, pending: int) -> dict[str, Any]:
    """Appointment counts and rates. Rescheduled appointments live on as their replacement, so
    they are not in the total; completion and no-show rates are over the appointments whose
    outcome is known (completed + missed), cancellation over all of them."""
    total = completed + missed + cancelled + scheduled + pending
    settled = completed + missed
    return {
        "totalAppointments": total,
        "completedAppointments": completed,
        "missedAppointments": missed,
        "cancelledAppointments": cancelled,
        "completionRate": shown(percent(completed, settled)),
        "noShowRate": shown(percent(missed, settled)),
        "cancellationRate": shown(percent(cancelled, total)),
    }


def purchase_metrics(*, total: int, completed: int, failed: int, revenue: int) -> dict[str, Any]:
    """Purchase counts, revenue (minor units) and rates over all purchases made."""
    return {
        "totalPurchases": total,
        "completedPurchases": completed,
        "totalRevenue": revenue,
        "averageOrderValue": round(revenue / completed) if completed else 0,
        "completionRate": shown(percent(completed, total)),
        "failureRate": shown(percent(failed, total)),
    }


def trend(current: float, previous: float) -> float:
    """% change against the previous period of the same length; from 0 it is 100 (or 0 if still 0)."""
    if previous == 0:
        return 100.0 if current > 0 else 0.0
    return round((current - previous) / abs(previous) * 100.0, 1)


def sentiment_label(compound: float | None) -> str:
    """VADER's own thresholds: ≥ 0.05 positive, ≤ −0.05 negative, else neutral."""
    if compound is None:
        return "neutral"
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


# ----------------------------------------------------------------------------- customers

NEW_CUSTOMER_DAYS = 30
DEFAULT_GAP_DAYS = 60.0  # expected days between visits when a customer has fewer than 2 visits
AT_RISK_CHURN = 0.6
HIGH_VALUE_VISITS = 5
HIGH_VALUE_AOV_MULTIPLE = 5
REGULAR_VISITS = 3


def expected_gap(visit_days: Sequence[float]) -> float:
    """The median gap between a customer's visits (days since epoch, any order)."""
    ordered = sorted(visit_days)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    return float(median(gaps)) if gaps else DEFAULT_GAP_DAYS


def churn_risk(days_since_last: float, gap: float) -> float:
    """0 while the customer is within their usual gap, rising linearly to 1 at three gaps."""
    gap = max(gap, 1.0)
    return round(clamp((days_since_last - gap) / (2.0 * gap), 0.0, 1.0), 2)


def segment(*, days_since_first: float, visits: int, lifetime_value: int, tenant_aov: float, churn: float) -> str:
    """new → at-risk → high-value → regular → occasional, the first rule that matches."""
    if days_since_first <= NEW_CUSTOMER_DAYS and visits <= 1:
        return "new"
    if churn >= AT_RISK_CHURN:
        return "at-risk"
    if visits >= HIGH_VALUE_VISITS or (tenant_aov > 0 and lifetime_value >= HIGH_VALUE_AOV_MULTIPLE * tenant_aov):
        return "high-value"
    if visits >= REGULAR_VISITS:
        return "regular"
    return "occasional"


def upsell_potential(
    *, visits: int, services_used: int, services_offered: int, avg_rating: float | None, churn: float
) -> float:
    """0–1: engaged (0.4), room to try other services (0.3), happy (0.3), discounted by churn risk."""
    engagement = min(visits, HIGH_VALUE_VISITS) / HIGH_VALUE_VISITS
    breadth = 1.0 - services_used / services_offered if services_offered > 0 else 0.0
    happiness = (avg_rating - 1.0) / 4.0 if avg_rating is not None else 0.5
    raw = 0.4 * engagement + 0.3 * max(0.0, breadth) + 0.3 * happiness
    return round(clamp(raw * (1.0 - churn), 0.0, 1.0), 2)


def lifetime_value(paid_purchases: Sequence[int], unpaid_completed_visits: Sequence[int]) -> int:
    """Historical value in minor units: paid purchases plus completed visits paid on the day."""
    return int(sum(paid_purchases) + sum(unpaid_completed_visits))


JOURNEY_STAGES = ("awareness", "consideration", "decision", "retention", "advocacy")


def journey_stage(*, steps: set[str], completed_visits: int, best_rating: int | None) -> str:
    """Where a customer (or one conversation) is: advocacy needs two visits and a 5 rating."""
    if completed_visits >= 2 and best_rating == 5:
        return "advocacy"
    if completed_visits >= 1:
        return "retention"
    if steps & {"details_given", "booked", "paid"}:
        return "decision"
    if steps & {"service_selected", "slot_selected"}:
        return "consideration"
    return "awareness"


FUNNEL_STEPS = ("conversation_started", "service_selected", "slot_selected", "details_given", "booked", "paid")


def funnel(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Each step's count, its conversion from the previous step and the drop-off (%)."""
    out: list[dict[str, Any]] = []
    previous: int | None = None
    for step in FUNNEL_STEPS:
        count = int(counts.get(step, 0))
        if previous is None:
            from_previous: float | None = 100.0 if count else 0.0
        else:
            from_previous = percent(count, previous)
        kept = shown(from_previous)
        out.append(
            {
                "step": step,
                "count": count,
                "conversionFromPrevious": kept,
                "dropOffRate": round(100.0 - kept, 1) if previous else 0.0,
            }
        )
        previous = count
    return out


MISSED_FOLLOW_UPS = ("send_reschedule_link", "call_customer", "review_no_show_policy")


def missed_follow_ups(previous_misses: int) -> list[str]:
    """What to do after a no-show: always offer a new time; repeat no-shows also call for a policy."""
    actions = ["send_reschedule_link", "call_customer"]
    if previous_misses >= 1:
        actions.append("review_no_show_policy")
    return actions


# ----------------------------------------------------------------------------- conversation tags

TAG_LIMIT = 50  # a conversation keeps its first 50 tags (the vocabulary is small; services bound it)
TURN_OUTCOMES = ("booked", "cancelled", "rescheduled")  # a turn's completed tasks that are tags as they are
ESCALATED = "escalated"
OPTED_OUT = "opted_out"
NEW_CUSTOMER = "new_customer"
RETURNING_CUSTOMER = "returning_customer"
PURCHASE_TAGS: Mapping[PurchaseStatus, str] = {
    PurchaseStatus.COMPLETED: "paid",
    PurchaseStatus.FAILED: "payment_failed",
    PurchaseStatus.EXPIRED: "payment_failed",  # an unpaid checkout that lapsed, as in PurchaseInsight
    PurchaseStatus.REFUNDED: "refunded",
    PurchaseStatus.DISPUTED: "disputed",
}


def channel_tag(channel: str) -> str:
    return f"channel:{channel}"


def service_tag(slug: str) -> str:
    return f"service:{slug}"


def customer_tag(*, returning: bool) -> str:
    return RETURNING_CUSTOMER if returning else NEW_CUSTOMER


def purchase_tag(status: PurchaseStatus) -> str | None:
    """The tag a checkout opened in a conversation earns when it moves to ``status`` (pending: none)."""
    return PURCHASE_TAGS.get(status)


def turn_tags(*, services: Iterable[str], completed: Iterable[str], escalated: bool) -> list[str]:
    """What one turn earns: the services asked about or acted on, its completed tasks, a hand-off."""
    tags = [service_tag(slug) for slug in services]
    tags += [task for task in completed if task in TURN_OUTCOMES]
    if escalated:
        tags.append(ESCALATED)
    return tags


def with_tags(existing: Sequence[str], new: Iterable[str], limit: int = TAG_LIMIT) -> list[str]:
    """``existing`` followed by the new tags it lacks, in the order earned; tags are never removed
    (they say what happened, not the current state) and past ``limit`` later ones are dropped."""
    out = list(existing)
    for tag in new:
        if len(out) >= limit:
            break
        if tag not in out:
            out.append(tag)
    return out


# ----------------------------------------------------------------------------- conversation intents

INTENT_LIMIT = 50  # a conversation keeps its 50 latest intent entries
READING = "reading"  # read from the customer's message by the rules engine's reader
TOOL = "tool"  # implied by a desk tool the engine used (either engine)


@dataclass(frozen=True, slots=True)
class IntentNote:
    """One intent a turn showed. ``confidence`` is None when its source gives none (the rules
    engine's reader matches phrases; it has no score); a tool used is taken as certain."""

    intent: str
    source: str  # READING | TOOL
    confidence: float | None = None


def with_intents(
    existing: Sequence[dict[str, Any]], notes: Iterable[IntentNote], at: datetime, limit: int = INTENT_LIMIT
) -> list[dict[str, Any]]:
    """The conversation's intent entries (``{intent, confidence, timestamp, source}``) with one
    turn's notes appended once each, oldest first, the latest ``limit`` kept."""
    added = [
        {"intent": n.intent, "confidence": n.confidence, "timestamp": at.isoformat(), "source": n.source}
        for n in dict.fromkeys(notes)
    ]
    return [*existing, *added][-limit:]
