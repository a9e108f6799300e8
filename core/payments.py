"""Pure payment rules: the purchase state machine and the refund policy, in integer minor units.

Provider webhooks arrive at least once and in any order, so a purchase only ever moves forward
along :data:`TRANSITIONS`. :func:`step` tells the caller what an observed provider status means
for the purchase as it stands: move to it, nothing new, old news, or "we missed something, ask
the provider" (reference/payments.md §2.3). No I/O and no clock reads here: time is an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PurchaseStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


# Forward only. ``failed`` is not final: the customer may retry on the same link until the hold
# lapses. ``expired`` may still become ``completed``: money that arrives late is real money (the
# booking then decides between confirming and refunding). A dispute can follow a refund.
TRANSITIONS: dict[PurchaseStatus, frozenset[PurchaseStatus]] = {
    PurchaseStatus.PENDING: frozenset({PurchaseStatus.COMPLETED, PurchaseStatus.FAILED, PurchaseStatus.EXPIRED}),
    PurchaseStatus.FAILED: frozenset({PurchaseStatus.COMPLETED, PurchaseStatus.EXPIRED}),
    PurchaseStatus.EXPIRED: frozenset({PurchaseStatus.COMPLETED}),
    PurchaseStatus.COMPLETED: frozenset({PurchaseStatus.REFUNDED, PurchaseStatus.DISPUTED}),
    PurchaseStatus.REFUNDED: frozenset({PurchaseStatus.DISPUTED}),
    PurchaseStatus.DISPUTED: frozenset(),
}

# Purchases whose money we may still have to give back or that may still be paid.
OPEN = frozenset({PurchaseStatus.PENDING, PurchaseStatus.FAILED})


class Fit(StrEnum):
    MOVE = "move"  # apply ``path`` in order
    SAME = "same"  # already there: a duplicate or a replay
    STALE = "stale"  # older news than what we know (e.g. expired after completed): ignore
    REFETCH = "refetch"  # the event skips a state we never saw: ask the provider for the truth


@dataclass(frozen=True, slots=True)
class Step:
    fit: Fit
    path: tuple[PurchaseStatus, ...] = ()


def path_between(current: PurchaseStatus, target: PurchaseStatus) -> tuple[PurchaseStatus, ...] | None:
    """The shortest forward path from ``current`` to ``target`` (excluding ``current``), else None."""
    if current is target:
        return ()
    seen = {current}
    queue: deque[tuple[PurchaseStatus, tuple[PurchaseStatus, ...]]] = deque([(current, ())])
    while queue:
        here, so_far = queue.popleft()
        for nxt in sorted(TRANSITIONS[here]):
            if nxt in seen:
                continue
            route = (*so_far, nxt)
            if nxt is target:
                return route
            seen.add(nxt)
            queue.append((nxt, route))
    return None


def step(current: PurchaseStatus, observed: PurchaseStatus) -> Step:
    """What one webhook saying ``observed`` means for a purchase that is ``current``."""
    route = path_between(current, observed)
    if route is None:
        return Step(Fit.STALE)
    if not route:
        return Step(Fit.SAME)
    if len(route) == 1:
        return Step(Fit.MOVE, route)
    return Step(Fit.REFETCH)


def reconcile(current: PurchaseStatus, remote: PurchaseStatus) -> Step:
    """What the provider's own current status (fetched, authoritative) means: any forward path."""
    route = path_between(current, remote)
    if route is None:
        return Step(Fit.STALE)
    return Step(Fit.MOVE, route) if route else Step(Fit.SAME)


def ensure_move(current: PurchaseStatus, target: PurchaseStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise ValueError(f"a {current.value} purchase cannot become {target.value}")


def insight_status(status: PurchaseStatus) -> str:
    """The PurchaseInsight ``paymentStatus`` vocabulary has no ``expired``: an unpaid lapse failed."""
    return "failed" if status is PurchaseStatus.EXPIRED else status.value


# --------------------------------------------------------------------------- refund policy


class RefundKind(StrEnum):
    FULL = "full"
    PARTIAL = "partial"
    NONE = "none"
    UNPAID = "unpaid"


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    """Full refund when cancelled at least ``full_hours`` before the start (inclusive, absolute
    hours, so DST cannot stretch it); ``partial_percent`` of the amount after that; nothing once
    the appointment has started. ``full_hours = 0`` means a full refund any time before the start."""

    full_hours: float = 0
    partial_percent: int = 0

    def __post_init__(self) -> None:
        if self.full_hours < 0 or not 0 <= self.partial_percent <= 100:
            raise ValueError("refund policy: full_hours >= 0 and 0 <= partial_percent <= 100")


@dataclass(frozen=True, slots=True)
class RefundQuote:
    kind: RefundKind
    amount: int  # minor units of the purchase currency


CUSTOMER_ACTORS = frozenset({"customer"})


def cancelled_by_customer(actor: str) -> bool:
    """The customer cancelled (self-service link or the chat, ``chat:<channel>``); anyone else is the
    business or the system, and a business that cancels refunds in full."""
    return actor in CUSTOMER_ACTORS or actor.startswith("chat:")


def refund_for(
    paid: int, start: datetime, now: datetime, policy: RefundPolicy, *, by_customer: bool = True
) -> RefundQuote:
    """What cancelling at ``now`` gives back of ``paid`` (minor units). Partial amounts round down
    to a whole minor unit: integer arithmetic, never a float."""
    if paid <= 0:
        return RefundQuote(RefundKind.UNPAID, 0)
    if not by_customer:
        return RefundQuote(RefundKind.FULL, paid)
    if now >= start:
        return RefundQuote(RefundKind.NONE, 0)
    if start - now >= timedelta(hours=policy.full_hours):
        return RefundQuote(RefundKind.FULL, paid)
    amount = paid * policy.partial_percent // 100
    if amount <= 0:
        return RefundQuote(RefundKind.NONE, 0)
    return RefundQuote(RefundKind.FULL if amount >= paid else RefundKind.PARTIAL, amount)
