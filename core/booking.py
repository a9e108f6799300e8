"""Pure booking rules: the appointment state machine, notice policies and staff assignment."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.errors import InvalidTransition, PolicyViolation


class Status(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    MISSED = "missed"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"


# Statuses whose appointment still occupies its slot.
ACTIVE = frozenset({Status.PENDING_PAYMENT, Status.SCHEDULED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING_PAYMENT: frozenset({Status.SCHEDULED, Status.CANCELLED}),
    Status.SCHEDULED: frozenset({Status.COMPLETED, Status.MISSED, Status.CANCELLED, Status.RESCHEDULED}),
    Status.COMPLETED: frozenset(),
    Status.MISSED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.RESCHEDULED: frozenset(),
}


def ensure_transition(current: Status, target: Status) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"a {current.value} appointment cannot become {target.value}", status=current.value)


def ensure_started(start: datetime, now: datetime, action: str) -> None:
    """Completion and no-show marking only make sense once the appointment has begun."""
    if now < start:
        raise InvalidTransition(f"cannot mark {action} before the appointment starts")


def ensure_notice(start: datetime, now: datetime, notice_hours: float, action: str) -> None:
    """Cancel/reschedule notice, measured in absolute hours (DST cannot stretch it).

    The boundary is inclusive: with 24 h notice, acting exactly 24:00:00 before is allowed.
    """
    if now > start:
        raise PolicyViolation(f"the appointment has already started; it cannot be {action}")
    if notice_hours and start - now < timedelta(hours=notice_hours):
        raise PolicyViolation(
            f"appointments can only be {action} at least {notice_hours:g} hours before they start",
            notice_hours=notice_hours,
        )


def ensure_min_notice(start: datetime, now: datetime, min_notice_minutes: int) -> None:
    if start < now + timedelta(minutes=min_notice_minutes):
        raise PolicyViolation(f"this service needs {min_notice_minutes} minutes' notice", code="min_notice")


@dataclass(frozen=True, slots=True)
class RotationStats:
    """What round-robin knows of one free staff member over the fairness window."""

    slug: str
    weight: int
    bookings: int  # bookings of this service in the window (since the member joined)
    active_days: float  # days of the window the member was in the rotation (> 0)
    last_booked_at: datetime | None


def pick_round_robin(candidates: Sequence[RotationStats]) -> str:
    """Weighted round-robin among the staff free for the slot.

    Lowest bookings per weight per active day wins, so a 2:1 weighting converges to 2:1 and a
    newly added member catches up with the rate of the others, not with their history (no
    flooding). Ties go to the least recently booked (never booked first), then to the slug.
    """
    if not candidates:
        raise ValueError("no candidates")

    def rank(c: RotationStats) -> tuple[float, float, str]:
        rate = c.bookings / (max(c.weight, 1) * max(c.active_days, 1e-9))
        last = float("-inf") if c.last_booked_at is None else c.last_booked_at.timestamp()
        return (round(rate, 12), last, c.slug)

    return min(candidates, key=rank).slug


@dataclass(frozen=True, slots=True)
class CustomerRef:
    id: str
    name: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class Appointment:
    """An appointment as repositories hand it out."""

    id: str
    status: Status
    service: str
    staff: tuple[str, ...]
    start: datetime
    end: datetime
    customer: CustomerRef
    price: int
    currency: str
    created_at: datetime
    rescheduled_from: str | None = None
    rescheduled_to: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


MANAGE_PURPOSES = frozenset({"cancel", "reschedule"})


def manage_token(secret: bytes, appointment_id: str, purpose: str) -> str:
    """A self-service link token for one booking and one purpose (256-bit HMAC, nothing stored)."""
    if purpose not in MANAGE_PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    digest = hmac.new(secret, f"{purpose}:{appointment_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_manage_token(secret: bytes, appointment_id: str, purpose: str, token: str) -> bool:
    if purpose not in MANAGE_PURPOSES or not token or len(token) > 100:
        return False
    return hmac.compare_digest(manage_token(secret, appointment_id, purpose).encode(), token.encode())
