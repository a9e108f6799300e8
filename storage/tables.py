"""Tables. Every business table carries ``tenant_id NOT NULL``; ids are UUID strings.

Instants are stored in UTC: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite, always
handed back as aware UTC datetimes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, whatever the backend does with zones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give an aware UTC instant")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}  # noqa: RUF012


class Business(Base):
    __tablename__ = "businesses"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    week_start: Mapped[int] = mapped_column(Integer, default=0)
    hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)  # address, phone, faq
    created_at: Mapped[datetime]
    # Bumped in the same transaction as every change to the business's services or staff (the
    # mapper events below), so a process may keep them in memory while this number is unchanged.
    catalog_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Agent(Base):
    """A conversational agent of a business. Its slug is global: it names webhook and chat routes."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    persona: Mapped[str] = mapped_column(Text, default="")


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="person")
    timezone: Mapped[str | None] = mapped_column(String(64))
    hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    breaks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    joined_at: Mapped[datetime]


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(Integer, default=0)
    interval_minutes: Mapped[int | None] = mapped_column(Integer)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=0)
    max_advance_days: Mapped[int] = mapped_column(Integer, default=60)
    advance_mode: Mapped[str] = mapped_column(String(16), default="calendar_days")
    max_per_day: Mapped[int | None] = mapped_column(Integer)
    max_per_week: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    assignment: Mapped[str] = mapped_column(String(16), default="any")
    buffers_within_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_notice_hours: Mapped[float] = mapped_column(Float, default=0)
    reschedule_notice_hours: Mapped[float] = mapped_column(Float, default=0)
    refund_full_hours: Mapped[float] = mapped_column(Float, default=0, server_default=text("0"))
    refund_partial_percent: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    staff_slugs: Mapped[list[Any]] = mapped_column(default=list)  # ordered; resolved against staff
    active: Mapped[bool] = mapped_column(Boolean, default=True)


def _catalog_changed(_mapper: Any, connection: Connection, target: Staff | Service) -> None:
    """A service or staff row was written: its business's catalogue is a new version."""
    connection.execute(
        update(Business).where(Business.id == target.tenant_id).values(catalog_version=Business.catalog_version + 1)
    )


for _catalogued in (Staff, Service):
    for _when in ("after_insert", "after_update", "after_delete"):
        event.listen(_catalogued, _when, _catalog_changed)


class Holiday(Base):
    __tablename__ = "holidays"
    __table_args__ = (UniqueConstraint("tenant_id", "day"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200), default="Holiday")


class DateOverride(Base):
    __tablename__ = "date_overrides"
    __table_args__ = (UniqueConstraint("staff_id", "day"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    ranges: Mapped[list[Any]] = mapped_column(default=list)  # [] = closed


class TimeOff(Base):
    __tablename__ = "time_off"
    __table_args__ = (UniqueConstraint("staff_id", "starts_at", "ends_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")


class ExternalBusy(Base):
    """Busy time read from outside calendars; calendar sync fills it."""

    __tablename__ = "external_busy"
    __table_args__ = (Index("ix_external_busy_staff_range", "staff_id", "starts_at", "ends_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(64), default="manual")
    external_id: Mapped[str | None] = mapped_column(String(255))


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("tenant_id", "phone"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    email: Mapped[str | None] = mapped_column(String(320))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_appointments_tenant_start", "tenant_id", "starts_at"),
        Index("ix_appointments_status_hold", "status", "hold_expires_at"),  # the hold sweep
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))  # the first of the allocated staff
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))
    price: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    rescheduled_from_id: Mapped[str | None] = mapped_column(String(36))
    rescheduled_to_id: Mapped[str | None] = mapped_column(String(36))
    hold_expires_at: Mapped[datetime | None]
    # The chat it was booked in: reminders and automations speak there. None for API bookings.
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Allocation(Base):
    """One staff member (or resource) held for a buffer-padded time range.

    The no-overlap invariant lives here: a PostgreSQL exclusion constraint over
    ``(staff_id, tstzrange(blocked_start, blocked_end))`` for active rows, and SQLite triggers
    (both created by the migration). A seated session is one allocation shared by its seats.
    """

    __tablename__ = "allocations"
    __table_args__ = (Index("ix_allocations_staff_range", "staff_id", "active", "blocked_start"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    blocked_start: Mapped[datetime]
    blocked_end: Mapped[datetime]
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    seats_taken: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class AppointmentAllocation(Base):
    __tablename__ = "appointment_allocations"
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), primary_key=True)
    allocation_id: Mapped[str] = mapped_column(ForeignKey("allocations.id"), primary_key=True, index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))


class AppointmentEvent(Base):
    """History of an appointment: every status change, who did it and why."""

    __tablename__ = "appointment_events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AppSecret(Base):
    """Deployment-wide secrets generated on first start (e.g. the self-service link key)."""

    __tablename__ = "app_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Conversation(Base):
    """One customer talking to one agent on one channel; ``sender`` is the channel's identity for them
    (E.164 for WhatsApp and SMS, the page-scoped id on Messenger, the chat id on Telegram, the visitor
    id on the web chat). ``state`` belongs to the dialogue engine; ``next_seq`` numbers messages so a
    client can replay from a watermark."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("agent_id", "channel", "sender"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | escalated
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    bucket_tokens: Mapped[float] = mapped_column(Float, default=0)  # per-sender rate limit (token bucket)
    bucket_at: Mapped[datetime | None]
    throttle_noticed: Mapped[bool] = mapped_column(Boolean, default=False)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    escalated_at: Mapped[datetime | None]
    unreachable_at: Mapped[datetime | None]  # a send failed for good (blocked, invalid recipient)
    started_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime]


class Message(Base):
    """Every message in and out, numbered per conversation (``seq``) in the order they happened."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        UniqueConstraint("conversation_id", "key"),
        Index("ix_messages_tenant_created", "tenant_id", "created_at"),
        Index("ix_messages_provider_message_id", "provider_message_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    author: Mapped[str] = mapped_column(String(16))  # customer | bot | human | system
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # options, link, choice, intent
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="received")
    response_ms: Mapped[int | None] = mapped_column(Integer)  # outbound: since the customer's message
    key: Mapped[str | None] = mapped_column(String(255))  # idempotency: inbox:<id> in, <origin>:<id> pushed
    created_at: Mapped[datetime]


class LlmUsage(Base):
    """Tokens spent per business per UTC day: the per-business LLM budget is checked against this."""

    __tablename__ = "llm_usage"
    __table_args__ = (UniqueConstraint("tenant_id", "day"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)


class Purchase(Base):
    """One payment for one appointment (the insights store's PurchaseInsight is rendered from it).

    ``amount`` always comes from the appointment's price, which the booking service copied from the
    service row: never from a model or a customer. ``status`` follows ``core.payments.TRANSITIONS``;
    ``refund_status`` tracks our one refund of it: none | due | requested | succeeded | failed |
    blocked (a dispute stopped it).
    """

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("appointment_id"),
        Index("ix_purchases_provider_ref", "provider", "provider_ref"),
        Index("ix_purchases_payment_ref", "provider", "payment_ref"),
        Index("ix_purchases_status", "status", "refund_status"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    agent_id: Mapped[str | None] = mapped_column(String(36))
    channel: Mapped[str | None] = mapped_column(String(32))  # the platform the customer paid from
    locale: Mapped[str] = mapped_column(String(16), default="en")
    purchase_type: Mapped[str] = mapped_column(String(16), default="consultation")
    items: Mapped[list[Any]] = mapped_column(default=list)  # [{id, slug, name, quantity, unit_price, total_price}]
    amount: Mapped[int] = mapped_column(Integer)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(255))  # Checkout Session / Payment Link id
    payment_ref: Mapped[str | None] = mapped_column(String(255))  # PaymentIntent / payment id
    payment_method: Mapped[str | None] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # part of the link's idempotency key
    event_seq: Mapped[int] = mapped_column(Integer, default=0)  # numbers its history rows
    status: Mapped[str] = mapped_column(String(16))
    hold_expires_at: Mapped[datetime | None]
    link_expires_at: Mapped[datetime | None]
    refund_status: Mapped[str] = mapped_column(String(16), default="none")
    refund_amount: Mapped[int] = mapped_column(Integer, default=0)
    refund_reason: Mapped[str | None] = mapped_column(String(32))
    refund_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class PurchaseEvent(Base):
    """History of a purchase: every status change and every notable step (link sent, refund asked)."""

    __tablename__ = "purchase_events"
    __table_args__ = (UniqueConstraint("purchase_id", "seq"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchases.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # order within the purchase (several can share an instant)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))  # system | customer | webhook:<provider> | ...
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebhookEvent(Base):
    """Payment provider events as received (verified), deduplicated by the provider's event id.

    Stored before the HTTP answer; ``processed_at`` is set in the same transaction as the state
    change it caused. ``tenant_id`` is only known once the event matched a purchase.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"), Index("ix_webhook_events_pending", "processed_at"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    purchase_id: Mapped[str | None] = mapped_column(ForeignKey("purchases.id", ondelete="SET NULL"), index=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(64))


class InboxItem(Base):
    """A provider event, stored (deduplicated by the constraint) before the webhook is answered.

    ``state``: received → processing (claimed by a worker until ``lease_until``) → done | ignored |
    failed. A lapsed lease means the worker died: the row is claimed again.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "provider_message_id"),
        Index("ix_inbox_pending", "state", "id"),
        Index("ix_inbox_conversation", "agent_id", "channel", "sender", "state"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    event: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the neutral InboundEvent's fields
    order: Mapped[int] = mapped_column(BigInteger, default=0)  # Meta timestamps in ms overflow int32
    state: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class ConversationLease(Base):
    """Who may run turns for one (agent, channel, sender) right now: one worker at a time, across
    processes. Taken with a compare-and-set UPDATE; a lapsed lease can be taken over."""

    __tablename__ = "conversation_leases"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class OutboxItem(Base):
    """A message to deliver through a provider channel, written in the transaction that decided it.

    ``state``: pending → sending (leased) → sent | dead; a transient failure puts it back to pending
    with ``next_attempt_at`` (exponential backoff, full jitter); a permanent one makes it dead (shown
    on the dashboard, replayable). ``idempotency_key`` is stable across retries.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_conversation", "conversation_id", "id"),
        Index("ix_outbox_attempted", "attempted_at"),  # the channel_down alert's window
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    agent_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Of a message the channel splits into several provider messages, how many are out already:
    # a retry resumes after them.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime]
    attempted_at: Mapped[datetime | None]  # the latest send attempt (None: never tried)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


# --------------------------------------------------------------------------- insights store
# Written in the same transaction as the change they record (storage/insights.py); the daily
# roll-ups are upserted increments, so dashboards never scan raw history. "" in a roll-up's
# agent/channel key means "none" (an API booking has no agent), as NULLs never conflict.


class InsightConversation(Base):
    """Per-conversation facts the ConversationInsight shape needs, kept up to date message by message."""

    __tablename__ = "insight_conversations"
    __table_args__ = (Index("ix_insight_conversations_tenant_day", "tenant_id", "day"),)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)  # local start day in the business zone
    started_at: Mapped[datetime]
    last_at: Mapped[datetime]
    messages_in: Mapped[int] = mapped_column(Integer, default=0)
    messages_out: Mapped[int] = mapped_column(Integer, default=0)
    responses: Mapped[int] = mapped_column(Integer, default=0)
    response_ms_sum: Mapped[int] = mapped_column(Integer, default=0)
    sentiment_hits: Mapped[int] = mapped_column(Integer, default=0)
    sentiment_milli_sum: Mapped[int] = mapped_column(Integer, default=0)  # Σ round(VADER compound × 1000)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_reason: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None]
    conversion_type: Mapped[str | None] = mapped_column(String(16))
    conversion_value: Mapped[int | None] = mapped_column(Integer)
    intents: Mapped[list[Any]] = mapped_column(default=list)  # [{intent, confidence, timestamp, source}]
    tags: Mapped[list[Any]] = mapped_column(default=list)  # what the conversation earned (docs/insights.md)
    follow_ups: Mapped[list[Any]] = mapped_column(default=list)


class InsightAppointment(Base):
    """Who an appointment is attributed to (agent, channel, conversation) and its current status."""

    __tablename__ = "insight_appointments"
    __table_args__ = (Index("ix_insight_appointments_tenant_day", "tenant_id", "day"),)
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36), default="")
    channel: Mapped[str] = mapped_column(String(32), default="")
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    day: Mapped[date] = mapped_column(Date)  # local day of the scheduled start
    status: Mapped[str] = mapped_column(String(20))
    follow_ups: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime]


class FunnelEvent(Base):
    """A conversation reaching a booking-funnel step; the constraint makes each step count once."""

    __tablename__ = "funnel_events"
    __table_args__ = (UniqueConstraint("conversation_id", "step"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)  # the conversation's local start day: a cohort funnel
    step: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]


class InsightDaily(Base):
    """The daily roll-up per (tenant, agent, channel, local day): sums and counts only."""

    __tablename__ = "insight_daily"
    __table_args__ = (UniqueConstraint("tenant_id", "agent_id", "channel", "day"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    conversations: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    completed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    escalated: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    messages_in: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    messages_out: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    responses: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    response_ms_sum: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    duration_s_sum: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    ratings: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    rating_sum: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    positive_ratings: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    sentiment_hits: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    sentiment_milli_sum: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_booked: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_pending_payment: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_scheduled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_completed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_missed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    appt_rescheduled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    purchases: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pur_pending: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pur_completed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pur_failed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pur_expired: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pur_refunded: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pur_disputed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    revenue: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # minor units
    step_service_selected: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    step_slot_selected: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    step_details_given: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    step_booked: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    step_paid: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class InsightHourly(Base):
    """Volume per (tenant, agent, local day, local hour), all channels together (``channel`` is ""):
    the weekday × hour heatmap, whose size is bounded by days × 24 whatever the traffic."""

    __tablename__ = "insight_hourly"
    __table_args__ = (UniqueConstraint("tenant_id", "agent_id", "channel", "day", "hour"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(Integer)
    conversations: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    messages_in: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class InsightEvent(Base):
    """Notable events in order (bookings, payments, escalations, ratings): the realtime stream polls
    ``id > last seen``, which works across worker processes."""

    __tablename__ = "insight_events"
    __table_args__ = (Index("ix_insight_events_tenant_id", "tenant_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36), default="")
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --------------------------------------------------------------------------- operations


class Reminder(Base):
    """One reminder of one appointment at one offset before it starts.

    ``state``: pending → sent | dropped (stale, superseded, appointment not scheduled any more).
    Sending claims the row with a compare-and-set UPDATE on ``lease_until``, so two scheduler
    processes never both send it; the push is keyed ``reminder:<id>`` as a second guard.
    """

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("appointment_id", "offset_minutes"),
        Index("ix_reminders_due", "state", "due_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(64))  # why it was dropped
    created_at: Mapped[datetime]


class AutomationRun(Base):
    """The log of automations: one row per action taken (or skipped) for one trigger.

    ``key`` (``<event id>:<action>``) is unique: claiming an action is inserting its row, so an
    action is taken once however many schedulers look at the same appointment event.
    """

    __tablename__ = "automation_runs"
    __table_args__ = (UniqueConstraint("key"), Index("ix_automation_runs_appointment", "appointment_id", "at"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    appointment_id: Mapped[str | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    event_id: Mapped[str | None] = mapped_column(String(36))
    key: Mapped[str] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(40))  # appointment.booked, appointment.no_show, ...
    action: Mapped[str] = mapped_column(String(40))  # message, ics, follow_up.rebook, ...
    status: Mapped[str] = mapped_column(String(16))  # claimed | done | skipped | failed
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]


class SyncEvent(Base):
    """One run of a background integration (payments reconcile, calendar sync, ...): the sync-failure
    alert reads consecutive failures and the age of the last success from here."""

    __tablename__ = "sync_events"
    __table_args__ = (Index("ix_sync_events_integration", "tenant_id", "integration", "at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    integration: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime]


class JobLease(Base):
    """A singleton job (alert evaluation, roll-ups) runs in one scheduler process at a time."""

    __tablename__ = "job_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]


class AlertInstance(Base):
    """One alert's lifecycle for one fingerprint (business, rule, scope): pending → firing → resolved.

    ``open_key`` is the fingerprint while the instance is open (pending or firing) and NULL once
    resolved: its unique constraint keeps one open instance per fingerprint on every backend.
    """

    __tablename__ = "alert_instances"
    __table_args__ = (UniqueConstraint("open_key"), Index("ix_alert_instances_tenant_state", "tenant_id", "state"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    open_key: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    scope: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16))  # pending | firing | resolved
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    volume: Mapped[int] = mapped_column(Integer, default=0)
    active_since: Mapped[datetime]
    firing_since: Mapped[datetime | None]
    last_true_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime]
    notified_at: Mapped[datetime | None]  # first firing notification
    resolved_notified_at: Mapped[datetime | None]
    notify_count: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)  # index into each admin's channels
    escalated_at: Mapped[datetime | None]


class AlertGroup(Base):
    """What the admins were last told about one (business, severity) group, for Alertmanager's timers."""

    __tablename__ = "alert_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "severity"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(String(16))
    notified: Mapped[list[Any]] = mapped_column(default=list)  # fingerprints in the last firing message
    last_notified_at: Mapped[datetime | None]


class AlertSilence(Base):
    """A time-boxed manual mute: every label in ``matchers`` must equal the alert's."""

    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_tenant_ends", "tenant_id", "ends_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    matchers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class AlertDelivery(Base):
    """Every attempt to tell an admin: "alerts not delivered" is itself observable."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_tenant_at", "tenant_id", "at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # firing | resolved | repeat | escalation
    instance_ids: Mapped[list[Any]] = mapped_column(default=list)
    admin: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))  # telegram | whatsapp | sms
    status: Mapped[str] = mapped_column(String(16))  # sent | failed | skipped
    error: Mapped[str | None] = mapped_column(String(255))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class AlertRuleOverride(Base):
    """A business's own tuning of one rule (from the dashboard), laid over ``alerts.rules``."""

    __tablename__ = "alert_rule_overrides"
    __table_args__ = (UniqueConstraint("tenant_id", "rule"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class User(Base):
    """A dashboard login. ``role``: admin (every business, ``tenant_id`` NULL), owner (one business) or
    staff (one business, and only what touches ``staff_id``). Only an argon2id hash is stored."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class DashboardSession(Base):
    """A server-side login session. The cookie carries a random id; only its SHA-256 is stored, so a
    leaked table cannot be replayed. Ends at ``expires_at`` or after idling past the idle limit."""

    __tablename__ = "dashboard_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LoginAttempt(Base):
    """Failed logins, counted per account and per client address for the login rate limit."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
