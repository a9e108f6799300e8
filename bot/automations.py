"""Automations: a message per appointment trigger, in the conversation the booking came from.

Triggers come from the appointments' history rows (see :mod:`storage.automations`); each action
is claimed once and logged (done, skipped with a reason, failed). Messages go through
``DialogueManager.push`` (the conversation's lock, opt-outs, the outbox, WhatsApp templates) with
a stable key, so a re-run never sends twice. Calendar files are served at a signed link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web
from icalendar import Calendar, Event
from sqlalchemy import select

from bot.context import context
from bot.dialogue import catalogue
from bot.dialogue.desk import ref_of
from bot.links import ManageLinks, address_of
from bot.settings import AutomationConfig, BusinessConfig, Settings
from channels.base import Link, Option, OutboundMessage, Template
from core.automations import check_ics_token, ics_token, render
from core.booking import ACTIVE
from core.errors import NotFound
from storage import automations as log_store
from storage import bookings, outcomes
from storage import tables as t
from storage.engine import Database

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
ICS_TRIGGERS = frozenset({"appointment.booked", "appointment.rescheduled", "appointment.reminder"})
ACTIVE_VALUES = frozenset(s.value for s in ACTIVE)
REPEAT_NO_SHOWS = 2  # a customer with this many no-shows is flagged in the follow-up's log entry


class Pusher(Protocol):
    """``DialogueManager.push``: under the conversation's lock, None when the customer opted out,
    idempotent by ``key``."""

    async def push(
        self,
        tenant_id: str,
        conversation_id: str,
        message: OutboundMessage,
        *,
        author: str = ...,
        key: str | None = ...,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class Facts:
    """What an automation message needs to know about one appointment."""

    tenant_id: str
    appointment_id: str
    customer_id: str
    conversation_id: str | None
    locale: str
    business: BusinessConfig | None
    business_name: str
    values: dict[str, str]
    start: datetime
    end: datetime
    service_name: str
    address: str


class Automations:
    def __init__(
        self, *, db: Database, settings: Settings, clock: Clock, pusher: Pusher, link_secret: bytes, worker: str
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.pusher = pusher
        self.link_secret = link_secret
        self.links = ManageLinks(link_secret, settings.server.public_url)
        self.worker = worker
        self.lease = timedelta(seconds=settings.scheduler.lease_seconds)

    # ----- the job ---------------------------------------------------------------------------
    async def run(self, *, catch_up: timedelta = timedelta(hours=24)) -> int:
        """Act on every new trigger event; events older than ``catch_up`` (downtime) are left alone."""
        now = self.clock()
        done = 0
        for event in await log_store.events_since(self.db, now - catch_up, now):
            if await self.handle(event.event_id, event.tenant_id, event.appointment_id, event.trigger):
                done += 1
        return done

    async def handle(self, event_id: str, tenant_id: str, appointment_id: str, trigger: str) -> bool:
        now = self.clock()
        key = f"{event_id}:message"
        claimed = await log_store.claim(
            self.db,
            key=key,
            tenant_id=tenant_id,
            appointment_id=appointment_id,
            event_id=event_id,
            trigger=trigger,
            action="message",
            worker=self.worker,
            now=now,
            lease=self.lease,
        )
        if not claimed:
            return False
        try:
            facts = await self.facts(tenant_id, appointment_id)
            status, detail = await self.send(trigger, facts, f"automation:{event_id}")
        except Exception as exc:  # the claim lapses and a later tick tries again
            log.warning("automation %s failed: %s", trigger, type(exc).__name__)
            return False
        await log_store.finish(self.db, key, self.worker, status, self.clock(), **detail)
        if trigger == "appointment.no_show":
            await self.follow_up_no_show(event_id, facts)
        return status == "done"

    async def send(self, trigger: str, facts: Facts, key: str) -> tuple[str, dict[str, Any]]:
        """Push one trigger's message; (log status, log detail)."""
        config = self.config_for(facts, trigger)
        if not config.enabled:
            return "skipped", {"reason": "disabled"}
        if facts.conversation_id is None:
            return "skipped", {"reason": "no_conversation"}
        message = self.message(trigger, facts, config)
        stored = await self.pusher.push(facts.tenant_id, facts.conversation_id, message, author="system", key=key)
        if stored is None:
            return "skipped", {"reason": "opted_out"}
        return "done", {"seq": getattr(stored, "seq", None), "ics": message.link is not None}

    async def follow_up_no_show(self, event_id: str, facts: Facts) -> None:
        """After a no-show: the rebooking offer went with the message; flag repeat no-shows."""
        now = self.clock()
        count = await outcomes.no_shows(self.db, facts.tenant_id, facts.customer_id)
        await log_store.record(
            self.db,
            key=f"{event_id}:follow_up.flag_customer",
            tenant_id=facts.tenant_id,
            appointment_id=facts.appointment_id,
            event_id=event_id,
            trigger="appointment.no_show",
            action="follow_up.flag_customer",
            status="done",
            now=now,
            no_shows=count,
            repeat=count >= REPEAT_NO_SHOWS,
        )
        await log_store.record(
            self.db,
            key=f"{event_id}:follow_up.rebook_offer",
            tenant_id=facts.tenant_id,
            appointment_id=facts.appointment_id,
            event_id=event_id,
            trigger="appointment.no_show",
            action="follow_up.rebook_offer",
            status="done" if facts.conversation_id else "skipped",
            now=now,
        )

    # ----- building messages -----------------------------------------------------------------
    def config_for(self, facts: Facts, trigger: str) -> AutomationConfig:
        if facts.business is not None and trigger in facts.business.automations:
            return facts.business.automations[trigger]
        return AutomationConfig()

    def message(self, trigger: str, facts: Facts, config: AutomationConfig) -> OutboundMessage:
        if config.message is not None:
            text = render(config.message, facts.values)
        else:
            decorated = dict(facts.values)
            place = facts.values["location_details"]
            decorated["location_details"] = (
                catalogue.text("automation.location", facts.locale, place=place) if place else ""
            )
            link = facts.values["video_link"]
            decorated["video_link"] = catalogue.text("automation.video", facts.locale, link=link) if link else ""
            page = facts.values["manage_link"]
            decorated["manage_link"] = catalogue.text("manage.line", facts.locale, url=page) if page else ""
            text = " ".join(catalogue.text(f"automation.{trigger}", facts.locale, **decorated).split())
        link_to = None
        if config.ics and trigger in ICS_TRIGGERS:
            link_to = Link(
                self.ics_url(facts.appointment_id), catalogue.text("automation.calendar_label", facts.locale)
            )
        options: tuple[Option, ...] = ()
        if trigger in ("appointment.no_show", "appointment.cancelled"):
            options = (Option("menu:book", catalogue.text("automation.book_again", facts.locale)),)
        v = facts.values
        template = Template(
            config.template or trigger.replace(".", "_"),
            catalogue.language(facts.locale),
            (v["contact_name"], v["service_name"], v["appointment_date"], v["appointment_time"]),
        )
        return OutboundMessage(text, options, link_to, template, purpose="event_update")

    def ics_url(self, appointment_id: str) -> str:
        base = self.settings.server.public_url.rstrip("/")
        return f"{base}/calendar/{appointment_id}.ics?t={ics_token(self.link_secret, appointment_id)}"

    async def facts(self, tenant_id: str, appointment_id: str) -> Facts:
        async with self.db.reading() as session:
            row = await session.scalar(
                select(t.Appointment).where(t.Appointment.tenant_id == tenant_id, t.Appointment.id == appointment_id)
            )
            if row is None:
                raise NotFound("no such booking")
            business = await session.get(t.Business, tenant_id)
            service = await session.get(t.Service, row.service_id)
            customer = await session.get(t.Customer, row.customer_id)
            conversation = await session.get(t.Conversation, row.conversation_id) if row.conversation_id else None
            staff_names = list(
                await session.scalars(
                    select(t.Staff.name)
                    .join(t.Allocation, t.Allocation.staff_id == t.Staff.id)
                    .join(t.AppointmentAllocation, t.AppointmentAllocation.allocation_id == t.Allocation.id)
                    .where(t.AppointmentAllocation.appointment_id == row.id, t.Staff.kind == "person")
                    .order_by(t.Staff.name)
                )
            )
            if not staff_names:
                first = await session.get(t.Staff, row.staff_id)
                staff_names = [first.name] if first is not None else []
        assert business is not None and service is not None and customer is not None
        config = next((b for b in self.settings.businesses if b.slug == business.slug), None)
        zone = ZoneInfo((conversation.timezone if conversation else None) or business.timezone)
        local = row.starts_at.astimezone(zone)
        locale = conversation.locale if conversation is not None else business.locale
        address = address_of(self.settings.businesses, business.slug, business.info or {})
        minutes = int((row.ends_at - row.starts_at).total_seconds() // 60)
        values = {
            "contact_name": customer.name,
            "appointment_date": f"{local:%A} {local.day} {local:%B %Y}",
            "appointment_time": _time_for(row.starts_at, zone, ZoneInfo(business.timezone)),
            "appointment_duration": catalogue.text("automation.duration", locale, minutes=minutes),
            "service_name": service.name,
            "staff_name": " & ".join(staff_names),
            "video_link": config.video_link if config else "",
            "location_details": address,
            "business_name": business.name,
            "booking_ref": ref_of(row.id),
            # the booking's own page while there is something to change (not after it is over)
            "manage_link": self.links.url(row.id, row.ends_at) if row.status in ACTIVE_VALUES else "",
        }
        return Facts(
            tenant_id,
            row.id,
            row.customer_id,
            row.conversation_id,
            locale,
            config,
            business.name,
            values,
            row.starts_at,
            row.ends_at,
            service.name,
            address,
        )


def _time_for(start: datetime, reader: ZoneInfo, business: ZoneInfo) -> str:
    """ "10:00", or for a customer in another zone "05:30 EST (16:00 IST)": a bare time abroad
    would be read as the wrong one."""
    here = start.astimezone(reader)
    if reader.key == business.key or here.utcoffset() == start.astimezone(business).utcoffset():
        return f"{here:%H:%M}"
    there = start.astimezone(business)
    return f"{here:%H:%M} {here:%Z} ({there:%H:%M} {there:%Z})"


# ----------------------------------------------------------------------------- calendar files


def ics_for(facts: Facts, uid_domain: str) -> bytes:
    """One VEVENT for the appointment, in UTC (calendar apps show it in the reader's zone)."""
    cal = Calendar()
    cal.add("prodid", "-//frontdesk//appointments//EN")
    cal.add("version", "2.0")
    event = Event()
    event.add("uid", f"{facts.appointment_id}@{uid_domain}")
    event.add("summary", f"{facts.service_name} — {facts.business_name}")
    event.add("dtstart", facts.start)
    event.add("dtend", facts.end)
    event.add("dtstamp", facts.start)
    if facts.address:
        event.add("location", facts.address)
    if facts.values.get("video_link"):
        event.add("url", facts.values["video_link"])
    cal.add_component(event)
    return bytes(cal.to_ical())


AUTOMATIONS = web.AppKey("automations", Automations)
routes = web.RouteTableDef()


@routes.get("/calendar/{appointment_id}.ics")
async def calendar_file(request: web.Request) -> web.Response:
    """The signed calendar link sent with bookings and reminders (no login: the signature is the key)."""
    ctx = context(request)
    appointment_id = request.match_info["appointment_id"]
    if not check_ics_token(ctx.link_secret, appointment_id, request.query.get("t", "")):
        raise NotFound("no such calendar file")
    tenant_id = await bookings.tenant_of(ctx.db, appointment_id)
    facts = await request.app[AUTOMATIONS].facts(tenant_id, appointment_id)
    host = ctx.settings.server.public_url.split("://", 1)[-1].split("/", 1)[0] or "frontdesk"
    return web.Response(
        body=ics_for(facts, host),
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{appointment_id}.ics"',
        },
    )
