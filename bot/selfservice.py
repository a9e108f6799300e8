"""The customer's booking page behind a manage link (``bot.links``).

``GET /manage/bookings/{id}?t=TOKEN`` shows one booking: the service, who with, the date with its
weekday, the time in the business's zone (named), the address, the reference and the status, with
a Cancel button (and what cancelling now means for money, when it was paid) and the free times it
can move to (the slot engine's, over the next days; ``&from=YYYY-MM-DD`` pages on). Both actions
are plain HTML forms posted to ``POST /manage/bookings/{id}``, whose credential is the link's token
in the form: no cookie rides along, so there is nothing to forge; an ``Origin`` header, when a
browser sends one, must still be this server's. No script. A done action redirects (303) to the
page of the booking as it now is: a moved booking's page has a link of its own.

What the customer cannot do online (inside the notice window, started, cancelled, taken place) is
said in words, with the business's phone number to call; a link to a moved booking says so and
points to where it went. A token that is not ours is a 403 page that names nothing of the booking.
The JSON routes of ``bot.api`` (``/manage/bookings/{id}/cancel`` and ``/reschedule``) use
:func:`newest` and :func:`refusal_text` from here, so both say the same things.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_date
from sqlalchemy import select

from bot.context import context
from bot.dialogue import catalogue
from bot.dialogue.desk import ref_of
from bot.dialogue.show import time_text, zone_label
from bot.links import ManageLinks, Verdict, address_of
from bot.money import babel_locale, format_money
from bot.payments.routes import PAYMENTS
from core.booking import Appointment, Status, ensure_notice, ensure_transition
from core.errors import Conflict, FrontdeskError, InvalidInput, InvalidTransition, NotFound, PolicyViolation, SlotTaken
from core.models import Slot
from core.timezones import day_bounds, iso_in, parse_instant
from storage import bookings, catalog
from storage import schedule as schedules
from storage import tables as t
from storage.catalog import BusinessInfo
from storage.engine import Database

routes = web.RouteTableDef()

DAYS_SHOWN = 7  # days of free times on one page
MAX_AHEAD_DAYS = 62  # how far "later days" pages (the service's own booking window still applies)
MAX_HOPS = 20  # moves followed from an old link to the newest booking
# refusals a phone call can still solve: whom to call is said ("To change it, call ..."), not
# only where to ask ("Questions? Call ...")
CALL_US = frozenset(
    {"manage.refused.cancel_window", "manage.refused.move_window", "manage.refused.started", "manage.refused.other"}
)
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The token is in the URL: it may reach this server only (its stylesheet), never another
    # site. ``same-origin`` (not ``no-referrer``) so that the forms' POSTs carry a real Origin.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def links(request: web.Request) -> ManageLinks:
    ctx = context(request)
    return ManageLinks(ctx.link_secret, ctx.settings.server.public_url)


# ----- what the page knows about a booking ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    appointment: Appointment
    tenant_id: str
    business: BusinessInfo
    service_name: str
    staff_names: tuple[str, ...]
    address: str
    cancel_notice_hours: float
    reschedule_notice_hours: float
    locale: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.business.timezone)

    @property
    def phone(self) -> str:
        return str(self.business.info.get("phone") or "")


async def load(request: web.Request, appointment_id: str) -> Facts:
    """Only for an id whose token was checked: the booking with its business's words for it."""
    ctx = context(request)
    tenant_id = await bookings.tenant_of(ctx.db, appointment_id)
    appointment = await bookings.get(ctx.db, tenant_id, appointment_id)
    async with ctx.db.reading() as session:
        row = await session.get(t.Appointment, appointment_id)
        assert row is not None
        service = await session.get(t.Service, row.service_id)
        assert service is not None
        business = await catalog.business_by_id(session, tenant_id)
        names = dict(
            (
                await session.execute(
                    select(t.Staff.slug, t.Staff.name).where(
                        t.Staff.tenant_id == tenant_id, t.Staff.slug.in_(appointment.staff), t.Staff.kind == "person"
                    )
                )
            ).all()
        )
        locale = None
        if row.conversation_id is not None:
            locale = await session.scalar(select(t.Conversation.locale).where(t.Conversation.id == row.conversation_id))
    return Facts(
        appointment=appointment,
        tenant_id=tenant_id,
        business=business,
        service_name=service.name,
        staff_names=tuple(names[s] for s in appointment.staff if s in names),
        address=address_of(ctx.settings.businesses, business.slug, business.info),
        cancel_notice_hours=service.cancel_notice_hours,
        reschedule_notice_hours=service.reschedule_notice_hours,
        locale=locale or business.locale,
    )


async def newest(db: Database, tenant_id: str, appointment: Appointment) -> Appointment | None:
    """Where a moved booking went, following later moves too (None: the trail is lost)."""
    current = appointment
    for _ in range(MAX_HOPS):
        if current.status is not Status.RESCHEDULED:
            return current
        if current.rescheduled_to is None:
            return None
        try:
            current = await bookings.get(db, tenant_id, current.rescheduled_to)
        except NotFound:
            return None
    return None


def refusal(facts: Facts, action: str, now: datetime) -> str | None:
    """Why ``action`` ("cancel" or "move") cannot be done online now, as a catalogue key; None
    when it can. The booking rules decide (``core.booking``); this only names their answer."""
    a = facts.appointment
    if a.status is Status.CANCELLED:
        return "manage.refused.cancelled"
    if a.status in (Status.COMPLETED, Status.MISSED):
        return "manage.refused.done"
    if action == "move" and a.status is Status.PENDING_PAYMENT:
        return "manage.refused.unpaid"
    cancel = action == "cancel"
    try:
        ensure_transition(a.status, Status.CANCELLED if cancel else Status.RESCHEDULED)
        hours = facts.cancel_notice_hours if cancel else facts.reschedule_notice_hours
        ensure_notice(a.start, now, hours, "cancelled" if cancel else "rescheduled")
    except PolicyViolation as exc:
        if exc.details.get("notice_hours"):
            return "manage.refused.cancel_window" if cancel else "manage.refused.move_window"
        return "manage.refused.started"
    except InvalidTransition:
        return "manage.refused.other"
    return None


def say(facts: Facts, key: str) -> str:
    """A refusal's words, with the notice hours filled in."""
    hours = facts.cancel_notice_hours if "cancel" in key else facts.reschedule_notice_hours
    return catalogue.text(key, facts.locale, hours=f"{hours:g}")


def contact(facts: Facts, kind: str = "contact") -> str:
    """What to do next: call the business (``manage.contact.phone``), else get in touch."""
    business, phone = facts.business.name, facts.phone
    if phone:
        return catalogue.text(f"manage.{kind}.phone", facts.locale, business=business, phone=phone)
    return catalogue.text(f"manage.{kind}.none", facts.locale, business=business)


def next_step(key: str) -> str:
    """After a refusal: ``contact`` (whom to call to change it) or ``help`` (where to ask)."""
    return "contact" if key in CALL_US else "help"


def refusal_text(facts: Facts, action: str, now: datetime) -> str | None:
    """:func:`refusal` in the customer's words, with what to do next (the JSON routes' ``error``)."""
    key = refusal(facts, action, now)
    return None if key is None else f"{say(facts, key)} {contact(facts, next_step(key))}"


# ----- routes -----------------------------------------------------------------------------------


@routes.get("/manage/bookings/{id}")
async def show(request: web.Request) -> web.Response:
    appointment_id = request.match_info["id"]
    try:
        found = await _authorised(request, appointment_id, request.query.get("t", ""))
        if isinstance(found, web.Response):
            return found
        if found.appointment.status is Status.RESCHEDULED:
            return await _moved(request, found)
        notice = None
        done = request.query.get("done")
        if done == "cancelled" and found.appointment.status is Status.CANCELLED:
            notice = catalogue.text("manage.done.cancelled", found.locale)
        elif done == "moved" and found.appointment.rescheduled_from:
            notice = catalogue.text("manage.done.moved", found.locale)
        return await _page(request, found, notice=notice, first=_day(request.query.get("from")))
    except FrontdeskError as exc:
        return _failed(exc)


@routes.post("/manage/bookings/{id}")
async def act(request: web.Request) -> web.Response:
    appointment_id = request.match_info["id"]
    try:
        if not _same_origin(request):
            return _message(403, "manage.invalid.title", catalogue.text("manage.origin", "en"))
        form = await request.post()
        found = await _authorised(request, appointment_id, str(form.get("t", "")))
        if isinstance(found, web.Response):
            return found
        if found.appointment.status is Status.RESCHEDULED:
            return await _moved(request, found, status=409)
        action = form.get("action")
        if action == "cancel":
            return await _cancel(request, found)
        if action == "move":
            return await _move(request, found, str(form.get("start", "")))
        return await _page(request, found, problem="manage.refused.other", status=400)
    except FrontdeskError as exc:
        return _failed(exc)


async def _authorised(request: web.Request, appointment_id: str, token: str) -> Facts | web.Response:
    """The booking, once the token proves the link is ours, for it, and still valid; else a 403 page
    (a wrong token learns nothing of the booking; an expired one gets the business's number)."""
    verdict = links(request).check(appointment_id, token, context(request).clock())
    if verdict is Verdict.BAD:
        return _message(403, "manage.invalid.title", catalogue.text("manage.invalid", "en"))
    facts = await load(request, appointment_id)
    if verdict is Verdict.EXPIRED:
        text = f"{catalogue.text('manage.expired', facts.locale)} {contact(facts, 'help')}"
        return _message(403, "manage.expired.title", text, facts.locale)
    return facts


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-site form: the token alone is the credential
    public = urlsplit(context(request).settings.server.public_url)
    return origin in (f"{public.scheme}://{public.netloc}", f"{request.scheme}://{request.host}")


async def _cancel(request: web.Request, facts: Facts) -> web.Response:
    ctx = context(request)
    why = refusal(facts, "cancel", ctx.clock())
    if why is not None:
        return await _page(request, facts, problem=why, status=409)
    appointment_id = facts.appointment.id
    try:
        await request.app[PAYMENTS].cancel_booking(
            facts.tenant_id, appointment_id, ctx.clock(), actor="customer", reason="customer cancelled with the link"
        )
    except (PolicyViolation, InvalidTransition) as exc:  # the booking changed since the page was shown
        return await _refused_after(request, facts, "cancel", exc)
    except FrontdeskError as exc:
        return await _page(request, facts, problem="manage.refused.other", status=exc.status)
    return _see(links(request).path(appointment_id, facts.appointment.end) + "&done=cancelled")


async def _move(request: web.Request, facts: Facts, start_text: str) -> web.Response:
    ctx = context(request)
    why = refusal(facts, "move", ctx.clock())
    if why is not None:
        return await _page(request, facts, problem=why, status=409)
    try:
        start = parse_instant(start_text)
        moved = await bookings.reschedule(
            ctx.db, facts.tenant_id, facts.appointment.id, start, ctx.clock(), actor="customer"
        )
    except InvalidInput:
        return await _page(request, facts, problem="manage.refused.slot_taken", status=422)
    except SlotTaken:
        return await _page(request, facts, problem="manage.refused.slot_taken", status=409)
    except (PolicyViolation, InvalidTransition) as exc:
        return await _refused_after(request, facts, "move", exc)
    except Conflict as exc:  # another booking of theirs at that time, or a seat already theirs
        return await _page(request, facts, problem="manage.refused.overlap", status=exc.status)
    except FrontdeskError as exc:  # e.g. the service is no longer offered
        return await _page(request, facts, problem="manage.refused.other", status=exc.status)
    return _see(links(request).path(moved.id, moved.end) + "&done=moved")


async def _refused_after(request: web.Request, facts: Facts, action: str, exc: FrontdeskError) -> web.Response:
    """A refusal from storage: said from the booking as it is now (it may have moved meanwhile)."""
    fresh = await load(request, facts.appointment.id)
    if fresh.appointment.status is Status.RESCHEDULED:
        return await _moved(request, fresh, status=409)
    key = refusal(fresh, action, context(request).clock()) or "manage.refused.other"
    return await _page(request, fresh, problem=key, status=exc.status)


def _see(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **HEADERS})


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


# ----- the HTML ---------------------------------------------------------------------------------


async def _page(
    request: web.Request,
    facts: Facts,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status: int = 200,
    first: date | None = None,
) -> web.Response:
    now = context(request).clock()
    a, locale = facts.appointment, facts.locale
    token = links(request).token(a.id, a.end)
    parts = [f"<h1>{_t(locale, 'manage.page.title')}</h1>", f'<p class="muted">{escape(facts.business.name)}</p>']
    if notice:
        parts.append(f'<p class="done" role="status">{escape(notice)}</p>')
    if problem:
        said = escape(say(facts, problem))
        parts.append(f'<p class="problem" role="alert">{said} {_phone_html(facts, next_step(problem))}</p>')
    parts.append(_facts_list(facts))
    action = f"/manage/bookings/{escape(a.id, quote=True)}"
    hidden = f'<input type="hidden" name="t" value="{escape(token, quote=True)}">'
    move_why, cancel_why = refusal(facts, "move", now), refusal(facts, "cancel", now)
    if move_why is None:
        parts.append(await _move_form(request, facts, action, hidden, token, first))
    if cancel_why is None:
        terms = await _cancel_terms(request, facts, now)
        parts.append(
            f'<section aria-labelledby="cancel-title"><h2 id="cancel-title">{_t(locale, "manage.cancel.title")}</h2>'
            f"<p>{escape(terms)}</p>"
            f'<form method="post" action="{action}">{hidden}<input type="hidden" name="action" value="cancel">'
            f'<button type="submit" class="danger">{_t(locale, "manage.cancel.button")}</button></form></section>'
        )
    reasons = [k for k in dict.fromkeys((move_why, cancel_why)) if k is not None]
    for key in reasons:  # each reason once, and not again under the problem line or the done line
        if key != problem and not (key == "manage.refused.cancelled" and notice):
            parts.append(f"<p>{escape(say(facts, key))}</p>")
    if problem is None:  # (a problem line says what to do next itself)
        if any(k in CALL_US for k in reasons):
            parts.append(f"<p><strong>{_phone_html(facts, 'contact')}</strong></p>")
        else:
            parts.append(f'<p class="muted">{_phone_html(facts, "help")}</p>')
    return _html(catalogue.text("manage.page.title", locale), "".join(parts), status, locale)


def _facts_list(facts: Facts) -> str:
    a, tz, locale = facts.appointment, facts.zone, facts.locale
    loc = babel_locale(locale)
    start = a.start.astimezone(tz)
    label = zone_label(tz, a.start, locale)
    zone_text = label if label == tz.key else f"{label} ({tz.key})"
    rows: list[tuple[str, str]] = [
        ("manage.page.service", facts.service_name),
        ("manage.page.staff", ", ".join(facts.staff_names)),
        ("manage.page.date", format_date(start.date(), "EEEE d MMMM y", locale=loc)),
        ("manage.page.time", f"{time_text(a.start, tz, locale)} – {time_text(a.end, tz, locale)} {zone_text}"),
        ("manage.page.address", facts.address),
        ("manage.page.ref", ref_of(a.id)),
        ("manage.page.status", catalogue.text(f"manage.status.{a.status.value}", locale)),
    ]
    if a.price:
        rows.append(("manage.page.price", format_money(a.price, a.currency, locale)))
    items = "".join(
        f"<dt>{escape(catalogue.text(key, locale))}</dt><dd>{escape(value)}</dd>" for key, value in rows if value
    )
    return f'<dl class="facts">{items}</dl>'


async def _move_form(
    request: web.Request, facts: Facts, action: str, hidden: str, token: str, first: date | None
) -> str:
    a, tz, locale = facts.appointment, facts.zone, facts.locale
    today = context(request).clock().astimezone(tz).date()
    first = min(max(first or today, today), today + timedelta(days=MAX_AHEAD_DAYS))
    last = first + timedelta(days=DAYS_SHOWN - 1)
    try:
        slots = await free_times(request, facts, first, last)
    except FrontdeskError:  # the service is no longer offered: nothing to move to
        slots = []
    loc = babel_locale(locale)

    def day_label(day: date) -> str:
        return format_date(day, "EEE d MMM", locale=loc)

    parts = [f'<section aria-labelledby="move-title"><h2 id="move-title">{_t(locale, "manage.move.title")}</h2>']
    if slots:
        groups: dict[date, list[str]] = {}
        for slot in slots:
            local = slot.start.astimezone(tz)
            groups.setdefault(local.date(), []).append(
                f'<option value="{escape(iso_in(slot.start, tz), quote=True)}">'
                f"{escape(day_label(local.date()))}, {escape(time_text(slot.start, tz, locale))}</option>"
            )
        options = "".join(
            f'<optgroup label="{escape(format_date(day, "EEEE d MMMM", locale=loc), quote=True)}">{"".join(items)}'
            "</optgroup>"
            for day, items in groups.items()
        )
        zone = escape(zone_label(tz, a.start, locale))
        parts.append(
            f'<form method="post" action="{action}">{hidden}<input type="hidden" name="action" value="move">'
            f'<label for="start">{_t(locale, "manage.move.label")} ({zone})</label>'
            f'<select id="start" name="start" required>{options}</select>'
            f'<button type="submit">{_t(locale, "manage.move.button")}</button></form>'
        )
    else:
        parts.append(f"<p>{_t(locale, 'manage.move.none', first=day_label(first), last=day_label(last))}</p>")
    pages = []

    def page_link(day: date, key: str) -> str:
        href = f"/manage/bookings/{a.id}?t={token}&from={day.isoformat()}"
        return f'<a href="{escape(href, quote=True)}">{_t(locale, key)}</a>'

    if first > today:
        pages.append(page_link(max(today, first - timedelta(days=DAYS_SHOWN)), "manage.move.earlier"))
    if last < today + timedelta(days=MAX_AHEAD_DAYS):
        pages.append(page_link(last + timedelta(days=1), "manage.move.later"))
    if pages:
        parts.append(f'<p class="actions">{" ".join(pages)}</p>')
    parts.append("</section>")
    return "".join(parts)


async def free_times(request: web.Request, facts: Facts, first: date, last: date) -> list[Slot]:
    """The times the booking can move to from the business-local day ``first`` through ``last``:
    the slot engine's free slots for its service with its own time not counted as busy (what
    the chat offers when moving), without the time it already has."""
    ctx = context(request)
    now = ctx.clock()
    a = facts.appointment
    start, end = day_bounds(first, last, facts.zone)
    async with ctx.db.reading() as session:
        sched = await schedules.load(session, facts.tenant_id, a.service, start, end, exclude_appointment=a.id, now=now)
    return [s for s in sched.slots(start, end, now) if s.start != a.start]


async def _cancel_terms(request: web.Request, facts: Facts, now: datetime) -> str:
    """What cancelling now means for money (the payment desk's refund policy), when it is priced."""
    if facts.appointment.price:
        preview = await request.app[PAYMENTS].refund_preview(facts.tenant_id, facts.appointment.id, now, facts.locale)
        return preview.text
    return catalogue.text("manage.cancel.free", facts.locale)


async def _moved(request: web.Request, facts: Facts, *, status: int = 200) -> web.Response:
    """An old link of a moved booking: where it went, and a link to that booking's own page."""
    locale = facts.locale
    went = await newest(context(request).db, facts.tenant_id, facts.appointment)
    parts = [f"<h1>{_t(locale, 'manage.page.title')}</h1>", f'<p class="muted">{escape(facts.business.name)}</p>']
    if went is None:
        parts.append(f"<p>{_t(locale, 'manage.moved.unknown')}</p>")
    else:
        tz = facts.zone
        start = went.start.astimezone(tz)
        when = (
            f"{format_date(start.date(), 'EEEE d MMMM y', locale=babel_locale(locale))}, "
            f"{time_text(went.start, tz, locale)} {zone_label(tz, went.start, locale)}"
        )
        href = escape(links(request).path(went.id, went.end), quote=True)
        parts.append(f'<p role="status">{_t(locale, "manage.moved", when=when)}</p>')
        parts.append(f'<p><a href="{href}">{_t(locale, "manage.moved.open")}</a></p>')
    parts.append(f'<p class="muted">{_phone_html(facts, "help")}</p>')
    return _html(catalogue.text("manage.page.title", locale), "".join(parts), status, locale)


def _failed(exc: FrontdeskError) -> web.Response:
    """Anything else that went wrong, as a page in plain words (never a stack trace, never a 500)."""
    if isinstance(exc, NotFound):
        return _message(404, "manage.page.title", catalogue.text("manage.missing", "en"))
    return _message(exc.status, "manage.page.title", catalogue.text("manage.refused.other", "en"))


def _message(status: int, title_key: str, text: str, locale: str = "en") -> web.Response:
    title = catalogue.text(title_key, locale)
    body = f'<h1>{escape(title)}</h1><p role="alert">{escape(text)}</p>'
    return _html(title, body, status, locale)


def _phone_html(facts: Facts, kind: str) -> str:
    """The contact line, the number a tap-to-call link."""
    text = escape(contact(facts, kind))
    if facts.phone:
        number = escape(facts.phone)
        tel = escape("".join(c for c in facts.phone if c.isdigit() or c == "+"), quote=True)
        text = text.replace(number, f'<a href="tel:{tel}">{number}</a>', 1)
    return text


def _t(locale: str, key: str, **params: Any) -> str:
    return escape(catalogue.text(key, locale, **params))


def _html(title: str, body: str, status: int, locale: str) -> web.Response:
    lang = escape(catalogue.language(locale), quote=True)
    html = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex"><link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>'
        f'<body class="login manage"><main>{body}</main></body></html>'
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)
