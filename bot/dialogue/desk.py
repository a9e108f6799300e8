"""The desk: everything a dialogue engine may do, acting for one conversation's verified sender.

Both engines (rules and Claude) work only through this object. Its methods take no customer or
tenant ids: who is served is fixed when the desk is built from the conversation row. Prices,
durations and free slots always come from the catalogue and the slot engine; a booking must be
one of the offers this desk made in this conversation; bookings outside the sender's own are
"not found" whatever reference is given.

Which bookings are "the sender's own": on channels where the sender *is* the phone number
(WhatsApp, SMS) every booking of that number; elsewhere (web chat, Telegram, Messenger) a typed
phone number is not proof of identity, so only bookings made in this conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dialogue import catalogue
from channels.base import Link, OutboundMessage
from core.availability import last_bookable_day, nearest
from core.booking import ACTIVE, Appointment, Status
from core.errors import FrontdeskError, InvalidInput, NotFound, PolicyViolation, SlotTaken, TermsChanged
from core.insights import READING, TOOL, IntentNote
from core.models import AdvanceMode, Slot
from core.phones import PHONE_CHANNELS, normalize_phone, region_of
from core.timezones import day_bounds
from storage import bookings
from storage import schedule as schedules
from storage import tables as t
from storage.catalog import BusinessInfo, service_row, service_spec
from storage.engine import Database

log = logging.getLogger(__name__)

MAX_OFFERS = 6
ALTERNATIVES_SEEN = 30  # the nearest free slots looked at, to offer the 3 nearest the customer could book
SEARCH_DAYS = 14
WEEK = (
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
)  # how far ahead "the next free slots" looks when no day is given


class Linked(Protocol):
    @property
    def message(self) -> OutboundMessage: ...


class Previewed(Protocol):
    @property
    def amount(self) -> int: ...

    @property
    def text(self) -> str: ...


class Payments(Protocol):
    """The payment desk as the dialogue uses it (``bot.payments.service.PaymentDesk``)."""

    async def open(
        self, tenant_id: str, appointment_id: str, *, conversation_id: str | None, locale: str
    ) -> Linked: ...

    async def refund_preview(self, tenant_id: str, appointment_id: str, now: datetime, locale: str) -> Previewed: ...

    async def cancel_booking(
        self, tenant_id: str, appointment_id: str, now: datetime, *, actor: str = ..., reason: str = ...
    ) -> bookings.Outcome: ...

    def manage_link(self, appointment_id: str, ends_at: datetime, locale: str) -> Link | None: ...


@dataclass(frozen=True, slots=True)
class Party:
    """Who the desk serves. Built by the dialogue manager from the conversation row only."""

    tenant_id: str
    agent_id: str
    conversation_id: str
    channel: str
    sender: str
    customer_id: str | None
    locale: str
    timezone: str | None  # the customer's zone when known (web chat sends the browser's)

    @property
    def phone_verified(self) -> bool:
        return self.channel in PHONE_CHANNELS


@dataclass(frozen=True, slots=True)
class ServiceView:
    slug: str
    name: str
    description: str
    duration_minutes: int
    price: int
    currency: str
    staff: tuple[str, ...]
    cancel_notice_hours: float = 0
    reschedule_notice_hours: float = 0


@dataclass(frozen=True, slots=True)
class StaffView:
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Offer:
    """A free slot this desk offered; ``id`` ("o3") is what an engine hands back to book it."""

    id: str
    service: str
    start: datetime
    end: datetime
    staff: str | None  # None: anyone free (the booking service picks)

    def to_state(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "staff": self.staff,
        }

    @classmethod
    def from_state(cls, offer_id: str, raw: dict[str, Any]) -> Offer:
        return cls(
            offer_id,
            raw["service"],
            datetime.fromisoformat(raw["start"]),
            datetime.fromisoformat(raw["end"]),
            raw.get("staff"),
        )


@dataclass(frozen=True, slots=True)
class BookingView:
    ref: str  # short reference shown to customers: the first 6 characters of the id
    id: str
    service: str
    service_name: str
    staff: tuple[str, ...]
    staff_names: tuple[str, ...]
    start: datetime
    end: datetime
    status: Status
    price: int
    currency: str


@dataclass(frozen=True, slots=True)
class Horizon:
    """How far ahead a service can be booked: ``days`` ahead (working days when ``working``), so
    until the business-local day ``last``."""

    days: int
    working: bool
    last: date


@dataclass
class Outcomes:
    """What happened during one turn, for the manager (rating question, insights, payments)."""

    completed: list[str] = field(default_factory=list)  # "booked", "cancelled", "rescheduled"
    bookings: list[BookingView] = field(default_factory=list)
    escalated: str | None = None
    messages: list[OutboundMessage] = field(default_factory=list)  # built by code: payment links
    steps: list[str] = field(default_factory=list)  # funnel: service_selected, slot_selected, details_given
    # What the customer wanted: read from their message (the rules engine) and implied by the tools used.
    intents: list[IntentNote] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # slugs asked about, looked up or acted on (tags)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """A business's active services and staff as one version of its catalogue."""

    version: int
    currency: str
    services: list[ServiceView]
    staff: dict[str, StaffView]


# Per process, the latest catalogue read of each business (tenant id → catalogue). A turn reuses it
# while the business row it read in its own transaction still carries the same version.
Catalogues = dict[str, Catalogue]


def ref_of(appointment_id: str) -> str:
    return appointment_id.replace("-", "")[:6].upper()


class Desk:
    def __init__(
        self,
        db: Database,
        party: Party,
        business: BusinessInfo,
        state: dict[str, Any],
        clock: Callable[[], datetime],
        *,
        payments: Payments | None = None,
        hold_minutes: int = 15,
        catalogues: Catalogues | None = None,
    ) -> None:
        self.db = db
        self.catalogues = {} if catalogues is None else catalogues
        self.payments = payments  # None: prices are paid on the day
        self.hold_minutes = hold_minutes
        self.party = party
        self.business = business
        self.state = state  # the conversation's persisted state; offers and "mine" live here
        self.clock = clock
        self.outcomes = Outcomes()

    # ----- reading the catalogue -------------------------------------------------------------
    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.business.timezone)

    @property
    def region(self) -> str | None:
        return region_of(str(self.business.info.get("phone") or ""))

    @property
    def customer_zone(self) -> str | None:
        return self.party.timezone

    async def _catalogue(self) -> Catalogue:
        """The business's active services and staff: this process's copy while the version the
        turn read with the business row is current, else read afresh (and kept)."""
        business = self.business
        known = self.catalogues.get(business.id)
        if known is not None and (known.version, known.currency) == (business.catalog_version, business.currency):
            return known
        async with self.db.reading() as session:
            services = await session.scalars(
                select(t.Service)
                .where(t.Service.tenant_id == self.party.tenant_id, t.Service.active)
                .order_by(t.Service.name)
            )
            staff = await session.scalars(
                select(t.Staff).where(t.Staff.tenant_id == self.party.tenant_id, t.Staff.active)
            )
            # Read after the turn's business row: at least as new as its version, never older.
            read = Catalogue(
                business.catalog_version,
                business.currency,
                [
                    ServiceView(
                        r.slug,
                        r.name,
                        r.description,
                        r.duration_minutes,
                        r.price,
                        business.currency,
                        tuple(r.staff_slugs),
                        r.cancel_notice_hours,
                        r.reschedule_notice_hours,
                    )
                    for r in services
                ],
                {r.slug: StaffView(r.slug, r.name) for r in staff if r.kind == "person"},
            )
        if known is None or known.version <= read.version:
            self.catalogues[business.id] = read
        return read

    async def services(self) -> list[ServiceView]:
        return (await self._catalogue()).services

    async def service(self, slug: str) -> ServiceView:
        for svc in await self.services():
            if svc.slug == slug:
                return svc
        raise NotFound(f"no service {slug!r}")

    async def staff(self) -> dict[str, StaffView]:
        return (await self._catalogue()).staff

    async def staff_for(self, service: str) -> list[StaffView]:
        everyone = await self.staff()
        return [everyone[s] for s in (await self.service(service)).staff if s in everyone]

    def info(self) -> dict[str, Any]:
        """Address, phone and FAQ as configured for the business, asked for by the customer."""
        self._note(intent="information")
        return self.about()

    def about(self) -> dict[str, Any]:
        """The same facts for an engine's own setup (its reader, its prompt): nobody asked, no intent."""
        return {"name": self.business.name, **self.business.info}

    async def opening_hours(self) -> dict[str, list[str]]:
        """``{"mon": ["09:00-13:00", ...], ...}``: the business's own hours, else when anyone works."""
        if self.business.hours:
            return {day: list(self.business.hours.get(day, self.business.hours.get("daily", []))) for day in WEEK}
        async with self.db.reading() as session:
            weeks = list(
                await session.scalars(
                    select(t.Staff.hours).where(
                        t.Staff.tenant_id == self.party.tenant_id, t.Staff.active, t.Staff.kind == "person"
                    )
                )
            )
        return {day: _union(r for week in weeks for r in week.get(day, week.get("daily", []))) for day in WEEK}

    # ----- offering slots --------------------------------------------------------------------
    async def find_slots(
        self,
        service: str,
        *,
        day: date | None = None,
        until: date | None = None,
        after: time | None = None,
        before: time | None = None,
        staff: str | None = None,
        near: datetime | None = None,
        limit: int = MAX_OFFERS,
        ends_by: time | None = None,
        since: datetime | None = None,
    ) -> list[Offer]:
        """Free slots for ``service``: on ``day`` (to ``until``), else from today for two weeks,
        starting from ``after`` and before ``before``, ending by ``ends_by`` (local times); ``near``
        orders them by distance from a wished time; ``since``: only those starting after it (the
        next page, from its own day on). Each call replaces the desk's offers."""
        svc = await self.service(service)
        self._note("service_selected", "book_appointment", service)
        if staff is not None and staff not in svc.staff:
            raise InvalidInput(f"{staff} does not do {svc.name}")
        first, last = self._days(day, until, since)
        slots = [
            s
            for s in await self._free(service, first, last, staff)
            if _within(s, self.zone, after, before, ends_by) and (since is None or s.start > since)
        ]
        return self._offer(service, _closest(slots, near, limit), staff)

    def _days(self, day: date | None, until: date | None, since: datetime | None) -> tuple[date, date]:
        """The local days to search: ``day`` to ``until``, else two weeks from today, or from the
        day of ``since`` (a page of later times); never before today, at most 62 days."""
        today = self.clock().astimezone(self.zone).date()
        first = max(day or today, today, since.astimezone(self.zone).date() if since else today)
        last = until or (first if day else first + timedelta(days=SEARCH_DAYS))
        if last < first:
            raise InvalidInput("that range ends before it starts")
        return first, min(last, first + timedelta(days=62))

    async def horizon(self, service: str) -> Horizon:
        """The service's booking window (``max_advance_days``) as of now: the slot engine offers
        nothing after ``last``, so a customer asking for later is told where it ends."""
        async with self.db.reading() as session:
            rules = service_spec(await service_row(session, self.party.tenant_id, service)).to_rules()
        last = last_bookable_day(rules, self.clock(), self.zone)
        return Horizon(rules.max_advance_days, rules.advance_mode is AdvanceMode.BUSINESS_DAYS, last)

    async def free_days(
        self,
        service: str,
        count: int,
        *,
        moving: str | None = None,
        staff: str | None = None,
        after: time | None = None,
        before: time | None = None,
        ends_by: time | None = None,
    ) -> list[date]:
        """The next ``count`` days (local) with a free time for ``service`` (with ``staff``, from
        ``after``, before ``before``, ending by ``ends_by``), for a day picker that never offers a
        closed day; ``moving``: the ref of a booking being moved (its time is free)."""
        exclude = (await self.find_mine(moving)).id if moving else None
        today = self.clock().astimezone(self.zone).date()
        days: list[date] = []
        for slot in await self._free(service, today, today + timedelta(days=SEARCH_DAYS), staff, exclude=exclude):
            if not _within(slot, self.zone, after, before, ends_by):
                continue
            day = slot.start.astimezone(self.zone).date()
            if day not in days:
                days.append(day)
                if len(days) == count:
                    break
        return days

    async def _free(
        self, service: str, first: date, last: date, staff: str | None, *, exclude: str | None = None
    ) -> list[Slot]:
        """Free slots from the local day ``first`` through ``last``, from now on, that the customer
        could book (``_taken_by_me``)."""
        now = self.clock()
        start, end = day_bounds(first, last, self.zone)
        async with self.db.reading() as session:
            sched = await schedules.load(
                session, self.party.tenant_id, service, start, end, exclude_appointment=exclude, now=now
            )
            mine = await self._taken_by_me(session, start, end, exclude=exclude)
        return [s for s in sched.slots(start, end, now, staff) if not _overlaps(s, mine)]

    async def _taken_by_me(
        self, session: AsyncSession, start: datetime, end: datetime, *, exclude: str | None = None
    ) -> list[tuple[datetime, datetime]]:
        """When the customer, once known, already has an active booking with the business (any
        service) between ``start`` and ``end``: a time over one of them would be refused when booked
        (409 overlapping_booking), so it is never offered. The booking service checks again when
        booking and has the last word. ``exclude``: the booking being moved (its own time is free);
        an unpaid hold whose time is up does not count (booking sweeps it first)."""
        customer_id = self.state.get("customer_id") or self.party.customer_id
        if not customer_id:
            return []
        now = self.clock()
        query = select(
            t.Appointment.starts_at, t.Appointment.ends_at, t.Appointment.status, t.Appointment.hold_expires_at
        ).where(
            t.Appointment.tenant_id == self.party.tenant_id,
            t.Appointment.customer_id == customer_id,
            t.Appointment.status.in_([s.value for s in ACTIVE]),
            t.Appointment.starts_at < end,
            t.Appointment.ends_at > start,
        )
        if exclude is not None:
            query = query.where(t.Appointment.id != exclude)
        return [
            (starts, ends)
            for starts, ends, status, hold in (await session.execute(query)).all()
            if not (status == Status.PENDING_PAYMENT.value and hold is not None and hold <= now)
        ]

    async def overlaps_mine(self, start: datetime, end: datetime) -> bool:
        """Whether ``start``-``end`` overlaps another active booking of the customer's (once known)."""
        async with self.db.reading() as session:
            return bool(await self._taken_by_me(session, start, end))

    async def alternatives(self, service: str, wished: datetime, staff: str | None = None) -> list[Offer]:
        self._note("service_selected", "book_appointment", service)
        now = self.clock()
        slots = await bookings.alternatives_near(
            self.db, self.party.tenant_id, service, wished, now, staff=staff, count=ALTERNATIVES_SEEN
        )
        if slots:  # the three nearest the customer could book
            async with self.db.reading() as session:
                mine = await self._taken_by_me(session, slots[0].start, max(s.end for s in slots))
            slots = nearest([s for s in slots if not _overlaps(s, mine)], wished, 3)
        return self._offer(service, slots, staff)

    def _offer(self, service: str, slots: Sequence[Slot], staff: str | None) -> list[Offer]:
        counter = int(self.state.get("offer_counter", 0))
        offers = []
        for slot in slots:
            counter += 1
            offers.append(Offer(f"o{counter}", service, slot.start, slot.end, staff))
        self.state["offer_counter"] = counter
        self.state["offers"] = {o.id: o.to_state() for o in offers}
        return offers

    def offer(self, offer_id: str) -> Offer:
        raw = self.state.get("offers", {}).get(offer_id)
        if raw is None:
            raise NotFound("that time was not offered in this conversation; look up free slots first")
        self._note("slot_selected")
        return Offer.from_state(offer_id, raw)

    def offers(self) -> list[Offer]:
        return [Offer.from_state(k, v) for k, v in self.state.get("offers", {}).items()]

    # ----- who the customer is ---------------------------------------------------------------
    def details(self) -> dict[str, str]:
        """Name and phone known so far (from this conversation or the channel)."""
        known = dict(self.state.get("customer", {}))
        if self.party.phone_verified and "phone" not in known:
            known["phone"] = self.party.sender
        return known

    def remember(self, *, name: str | None = None, phone: str | None = None) -> None:
        known = dict(self.state.get("customer", {}))
        if name is not None:
            cleaned = " ".join(name.split())
            if not cleaned or len(cleaned) > 120:
                raise InvalidInput("a name of 1 to 120 characters, please")
            known["name"] = cleaned
        if phone is not None:
            if self.party.phone_verified:
                raise InvalidInput("on this channel your number is the one you are writing from")
            known["phone"] = normalize_phone(phone, default_region=self.region)
        self.state["customer"] = known
        if not self.missing_details():
            self._note("details_given")

    def missing_details(self) -> list[str]:
        known = self.details()
        return [k for k in ("name", "phone") if not known.get(k)]

    # ----- changing bookings -----------------------------------------------------------------
    async def book(self, offer_id: str, *, key: str) -> BookingView:
        """Book one of this conversation's offers. ``key`` makes a retried turn idempotent."""
        offer = self.offer(offer_id)
        missing = self.missing_details()
        if missing:
            raise InvalidInput(f"still need the customer's {' and '.join(missing)}")
        known = self.details()
        priced = (await self.service(offer.service)).price > 0
        req = bookings.NewBooking(
            service=offer.service,
            start=offer.start,
            customer_name=known["name"],
            customer_phone=known["phone"],
            staff=offer.staff,
            idempotency_key=f"conv:{self.party.conversation_id}:{key}",
            actor=f"chat:{self.party.channel}",
            hold_minutes=self.hold_minutes if priced and self.payments is not None else None,
            conversation_id=self.party.conversation_id,
        )
        self._note("details_given", service=offer.service)
        outcome = await bookings.create(self.db, self.party.tenant_id, req, self.clock())
        view = await self._view(outcome.appointment)
        self._claim(outcome.appointment)
        self.state.pop("offers", None)
        self.outcomes.completed.append("booked")
        self.outcomes.bookings.append(view)
        if view.status is Status.PENDING_PAYMENT:
            await self.send_payment_link(view)
        return view

    async def payment_link(self, ref: str) -> BookingView:
        """(Re)send the payment link of one of the sender's bookings that still awaits payment."""
        target = await self.find_mine(ref)
        self._note(intent="payment")
        if target.status is not Status.PENDING_PAYMENT:
            raise InvalidInput("that booking has nothing to pay in chat")
        await self.send_payment_link(target)
        return target

    async def send_payment_link(self, view: BookingView) -> None:
        """The link message is built by the payment desk from the booking's own amount, never by an engine."""
        if self.payments is None:
            return
        try:
            checkout = await self.payments.open(
                self.party.tenant_id, view.id, conversation_id=self.party.conversation_id, locale=self.party.locale
            )
        except FrontdeskError:
            raise
        except Exception as exc:  # the provider is down: the hold stands, the customer can ask again
            log.warning("payment link failed: %s", type(exc).__name__)
            self.outcomes.messages.append(OutboundMessage(catalogue.text("pay.link_failed", self.party.locale)))
            return
        self.outcomes.messages.append(checkout.message)

    def confirmation(self, text: str, view: BookingView) -> OutboundMessage:
        """A booking's confirmation as the customer gets it: ``text``, where to go, and once it is
        confirmed the link to the booking's own page (cancel, move) from the payment desk."""
        place = str(self.business.info.get("address") or "")
        if place:
            text = f"{text} {catalogue.text('automation.location', self.party.locale, place=place)}"
        return OutboundMessage(text, link=self.manage_link(view))

    def manage_link(self, view: BookingView) -> Link | None:
        """The link to a confirmed booking's own page (cancel, move), made by the payment desk."""
        if self.payments is None or view.status is not Status.SCHEDULED:
            return None
        return self.payments.manage_link(view.id, view.end, self.party.locale)

    async def cancellation_terms(self, view: BookingView) -> str | None:
        """What cancelling now means for money, in one line, when the booking involves a payment."""
        if self.payments is None or not view.price:
            return None
        preview = await self.payments.refund_preview(self.party.tenant_id, view.id, self.clock(), self.party.locale)
        self.state["refund_quote"] = {"id": view.id, "amount": preview.amount}
        return preview.text

    async def _keep_to_quote(self, view: BookingView) -> None:
        """The refund quoted before the customer said yes is what they agreed to: if it shrank since
        (a refund window passed in between), they are asked again with the new terms."""
        quote = self.state.get("refund_quote") or {}
        if self.payments is None or quote.get("id") != view.id:
            return
        preview = await self.payments.refund_preview(self.party.tenant_id, view.id, self.clock(), self.party.locale)
        if preview.amount < int(quote.get("amount", 0)):
            self.state["refund_quote"] = {"id": view.id, "amount": preview.amount}
            raise TermsChanged(catalogue.text("payment.refund_changed", self.party.locale, terms=preview.text))

    async def my_bookings(self, *, upcoming: bool = True) -> list[BookingView]:
        self._note(intent="check_bookings")
        customer_id = self.state.get("customer_id") or self.party.customer_id
        if not customer_id:
            return []
        mine = set(self.state.get("mine", []))
        now = self.clock()
        async with self.db.reading() as session:
            query = select(t.Appointment.id, t.Appointment.conversation_id).where(
                t.Appointment.tenant_id == self.party.tenant_id, t.Appointment.customer_id == customer_id
            )
            if upcoming:
                query = query.where(t.Appointment.ends_at > now, t.Appointment.status.in_([s.value for s in ACTIVE]))
            found = (await session.execute(query.order_by(t.Appointment.starts_at).limit(50))).all()
        # Without a verified phone, only bookings made in this chat: the ones it made, and where they
        # were moved to since, by whoever (a move keeps the booking's conversation).
        ids = [i for i, chat in found if self.party.phone_verified or i in mine or chat == self.party.conversation_id]
        return [await self._view(await bookings.get(self.db, self.party.tenant_id, i)) for i in ids]

    async def find_mine(self, ref: str) -> BookingView:
        """One of the sender's own upcoming bookings by its short reference; anything else is not found."""
        wanted = ref.strip().upper().replace("-", "")
        for view in await self.my_bookings():
            if wanted and view.ref == wanted[:6]:
                return view
        raise NotFound("no booking with that reference among yours")

    async def cancel(self, ref: str) -> BookingView:
        self._note(intent="cancel_appointment")
        target = await self.find_mine(ref)
        self._note(service=target.service)
        await self._keep_to_quote(target)
        self.state.pop("refund_quote", None)
        actor, reason = f"chat:{self.party.channel}", "customer asked in chat"
        if self.payments is not None:  # a paid booking is refunded as its policy says
            outcome = await self.payments.cancel_booking(
                self.party.tenant_id, target.id, self.clock(), actor=actor, reason=reason
            )
        else:
            outcome = await bookings.cancel(
                self.db, self.party.tenant_id, target.id, self.clock(), actor=actor, reason=reason
            )
        view = await self._view(outcome.appointment)
        if outcome.changed:
            self.outcomes.completed.append("cancelled")
            self.outcomes.bookings.append(view)
        return view

    async def reschedule(self, ref: str, offer_id: str) -> BookingView:
        self._note(intent="reschedule_appointment")
        target = await self.find_mine(ref)
        self._note(service=target.service)
        offer = self.offer(offer_id)
        if offer.service != target.service:
            raise InvalidInput("that time was offered for a different service")
        moved = await bookings.reschedule(
            self.db,
            self.party.tenant_id,
            target.id,
            offer.start,
            self.clock(),
            staff=offer.staff,
            actor=f"chat:{self.party.channel}",
            conversation_id=self.party.conversation_id,
        )
        view = await self._view(moved)
        self._claim(moved)
        self.state.pop("offers", None)
        self.outcomes.completed.append("rescheduled")
        self.outcomes.bookings.append(view)
        return view

    async def reschedule_slots(
        self,
        ref: str,
        *,
        day: date | None = None,
        after: time | None = None,
        before: time | None = None,
        near: datetime | None = None,
        limit: int = MAX_OFFERS,
        ends_by: time | None = None,
        until: date | None = None,
        since: datetime | None = None,
    ) -> list[Offer]:
        """Free slots to move one of the sender's bookings to (its own slot excluded from the busy
        time): on ``day`` (to ``until``), else from today for two weeks; as ``find_slots``."""
        self._note(intent="reschedule_appointment")
        target = await self.find_mine(ref)
        self._note(service=target.service)
        first, last = self._days(day, until, since)
        free = await self._free(target.service, first, last, None, exclude=target.id)
        slots = [
            s
            for s in free
            if s.start != target.start
            and _within(s, self.zone, after, before, ends_by)
            and (since is None or s.start > since)
        ]
        return self._offer(target.service, _closest(slots, near, limit), None)

    def handoff(self, reason: str) -> None:
        self._note(intent="human_agent")
        self.outcomes.escalated = reason[:500] or "customer asked for a person"

    def heard(self, intent: str | None, *, confidence: float | None = None, service: str | None = None) -> None:
        """What an engine read the customer's message as (the rules engine's reading), for the
        insights store: ``intent`` None when the message only answered a question; ``service``
        when it named one."""
        if intent:
            self._remember_intent(IntentNote(intent, READING, confidence))
        self._note(service=service)

    # ----- helpers ---------------------------------------------------------------------------
    def _note(self, step: str | None = None, intent: str | None = None, service: str | None = None) -> None:
        """A funnel step, a tool's intent or a service concerned, for the insights store (stored
        with the turn's state)."""
        if step and step not in self.outcomes.steps:
            self.outcomes.steps.append(step)
        if intent:
            self._remember_intent(IntentNote(intent, TOOL, 1.0))
        if service and service not in self.outcomes.services:
            self.outcomes.services.append(service)

    def _remember_intent(self, note: IntentNote) -> None:
        if note not in self.outcomes.intents:
            self.outcomes.intents.append(note)

    def _claim(self, appointment: Appointment) -> None:
        mine = list(self.state.get("mine", []))
        if appointment.id not in mine:
            mine.append(appointment.id)
        self.state["mine"] = mine[-50:]
        self.state["customer_id"] = appointment.customer.id

    async def _view(self, appt: Appointment) -> BookingView:
        svc = await self.service(appt.service)
        everyone = await self.staff()
        names = tuple(everyone[s].name for s in appt.staff if s in everyone)
        return BookingView(
            ref_of(appt.id),
            appt.id,
            appt.service,
            svc.name,
            appt.staff,
            names,
            appt.start,
            appt.end,
            appt.status,
            appt.price,
            appt.currency,
        )


def _overlaps(slot: Slot, busy: Sequence[tuple[datetime, datetime]]) -> bool:
    return any(slot.start < end and start < slot.end for start, end in busy)


def _closest(slots: list[Slot], near: datetime | None, limit: int) -> list[Slot]:
    """The first ``limit`` slots, or with ``near`` the ``limit`` closest to it, in time order."""
    if near is None:
        return slots[:limit]
    ranked = sorted(slots, key=lambda s: (abs((s.start - near).total_seconds()), s.start))
    return sorted(ranked[:limit], key=lambda s: s.start)


def _union(ranges: Iterable[str]) -> list[str]:
    """Overlapping or touching "HH:MM-HH:MM" ranges merged (zero-padded times sort as text)."""
    merged: list[list[str]] = []
    for start, end in sorted(tuple(r.split("-", 1)) for r in ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [f"{a}-{b}" for a, b in merged]


def _within(slot: Slot, tz: ZoneInfo, after: time | None, before: time | None, ends_by: time | None = None) -> bool:
    """Starts from ``after`` and before ``before``, and ends by ``ends_by`` on its own day (local)."""
    start = slot.start.astimezone(tz)
    local = start.time()
    if ends_by is not None and slot.end.astimezone(tz) > datetime.combine(start.date(), ends_by, tz):
        return False
    return (after is None or local >= after) and (before is None or local < before)


__all__ = [
    "BookingView",
    "Desk",
    "Horizon",
    "Offer",
    "Outcomes",
    "Party",
    "PolicyViolation",
    "ServiceView",
    "SlotTaken",
    "StaffView",
    "ref_of",
]
