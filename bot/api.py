"""REST API: availability, the booking lifecycle and catalogue management (``/api/*``).

Every handler works inside the tenant fixed by the bearer token; ids of another business answer
404. Times come back as ISO 8601 with the offset of ``tz`` (default: the business zone).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot import selfservice
from bot.context import context
from bot.http import json_response, query, read_json, read_model, tenant, validate
from bot.payments.routes import PAYMENTS
from core.availability import check_window
from core.booking import MANAGE_PURPOSES, Appointment, Status, check_manage_token, manage_token
from core.catalog import HolidaySpec, ServiceSpec, StaffSpec, TimeOffSpec
from core.errors import Conflict, Forbidden, FrontdeskError, InvalidInput, InvalidTransition, PolicyViolation, SlotTaken
from core.models import Slot
from core.phones import normalize_phone
from core.timezones import canonical_zone_name, day_bounds, iso_in, parse_day, parse_instant, zone
from storage import bookings, catalog, customers
from storage import schedule as schedules

routes = web.RouteTableDef()


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerIn(_Body):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)


class BookingIn(_Body):
    agent: str | None = None
    service: str
    start: str
    staff: str | None = None
    customer: CustomerIn
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class CancelIn(_Body):
    reason: str = Field(default="", max_length=500)
    override_policy: bool = False


class RescheduleIn(_Body):
    start: str
    staff: str | None = None
    override_policy: bool = False


class OverrideIn(_Body):
    hours: list[str]  # [] closes the day


def slot_json(slot: Slot, tz: ZoneInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": iso_in(slot.start, tz),
        "end": iso_in(slot.end, tz),
        "staff": list(slot.staff),
    }
    if slot.seats_left is not None:
        out["seats_left"] = slot.seats_left
    return out


def booking_json(a: Appointment, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": a.id,
        "status": a.status.value,
        "service": a.service,
        "staff": a.staff[0] if a.staff else None,
        "assigned_staff": list(a.staff),
        "start": iso_in(a.start, tz),
        "end": iso_in(a.end, tz),
        "customer": {"id": a.customer.id, "name": a.customer.name, "phone": a.customer.phone},
        "price": a.price,
        "currency": a.currency,
        "rescheduled_from": a.rescheduled_from,
        "rescheduled_to": a.rescheduled_to,
        "created_at": iso_in(a.created_at, tz),
    }


async def _business_zone(request: web.Request, tenant_id: str | None = None) -> ZoneInfo:
    """``tz`` from the query when given (422 if unknown), else the business's zone."""
    if request.query.get("tz"):
        return zone(request.query["tz"])
    async with context(request).db.reading() as session:
        return zone((await catalog.business_by_id(session, tenant_id or tenant(request))).timezone)


async def _check_agent(request: web.Request, agent: str | None) -> None:
    if agent:
        async with context(request).db.reading() as session:
            await catalog.agent_by_slug(session, agent, tenant(request))


async def _credited_agent(request: web.Request, agent: str | None) -> str | None:
    """The agent an API booking counts for in insights: the one the body names (another business's
    is 404), else the business's only agent. API tokens belong to a business, not an agent, so a
    business with several agents and a body naming none leaves the booking unattributed."""
    async with context(request).db.reading() as session:
        if agent:
            return (await catalog.agent_by_slug(session, agent, tenant(request))).id
        sole = await catalog.sole_agent(session, tenant(request))
        return sole.id if sole is not None else None


@routes.get("/api/availability")
async def availability(request: web.Request) -> web.Response:
    ctx = context(request)
    await _check_agent(request, query(request, "agent", required=False))
    service = query(request, "service")
    assert service is not None
    tz = await _business_zone(request)
    tz_name = tz.key
    first = parse_day(query(request, "date_from") or "", field="date_from")
    last = parse_day(query(request, "date_to") or "", field="date_to")
    if last < first:
        raise InvalidInput("date_to is before date_from")
    start, end = day_bounds(first, last, tz)
    check_window(start, end)
    now = ctx.clock()
    async with ctx.db.reading() as session:
        sched = await schedules.load(session, tenant(request), service, start, end, now=now)
    slots = sched.slots(start, end, now, query(request, "staff", required=False))
    return json_response({"timezone": tz_name, "slots": [slot_json(s, tz) for s in slots]})


@routes.post("/api/bookings")
async def create_booking(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_model(request, BookingIn)
    agent_id = await _credited_agent(request, body.agent)
    req = bookings.NewBooking(
        service=body.service,
        start=parse_instant(body.start),
        customer_name=body.customer.name,
        customer_phone=body.customer.phone,
        staff=body.staff,
        idempotency_key=body.idempotency_key,
        actor=f"api:{body.agent}" if body.agent else "api",
        agent_id=agent_id,
    )
    try:
        outcome = await bookings.create(ctx.db, tenant(request), req, ctx.clock())
    except SlotTaken as exc:
        ctx.metrics.bookings.labels("create", exc.code).inc()
        tz = await _business_zone(request)
        exc.details["alternatives"] = [slot_json(s, tz) for s in exc.details.get("alternatives", [])]
        raise
    except Exception as exc:
        ctx.metrics.bookings.labels("create", getattr(exc, "code", "error")).inc()
        raise
    ctx.metrics.bookings.labels("create", "created" if outcome.changed else "repeat").inc()
    tz = await _business_zone(request)
    data = booking_json(outcome.appointment, tz)
    data.update(_manage(request, outcome.appointment))
    return json_response(data, 201 if outcome.changed else 200)


@routes.get("/api/bookings")
async def list_bookings(request: web.Request) -> web.Response:
    ctx = context(request)
    tz = await _business_zone(request)
    first = parse_day(query(request, "date_from") or "", field="date_from")
    last = parse_day(query(request, "date_to") or "", field="date_to")
    if last < first or (last - first) > timedelta(days=366):
        raise InvalidInput("date range must be 0-366 days long")
    start, end = day_bounds(first, last, tz)
    status_text = query(request, "status", required=False)
    try:
        status = Status(status_text) if status_text else None
    except ValueError:
        raise InvalidInput(f"status: one of {', '.join(s.value for s in Status)}") from None
    found = await bookings.list_between(ctx.db, tenant(request), start, end, status)
    return json_response({"bookings": [booking_json(a, tz) for a in found]})


@routes.get("/api/bookings/{id}")
async def get_booking(request: web.Request) -> web.Response:
    ctx = context(request)
    appointment = await bookings.get(ctx.db, tenant(request), request.match_info["id"])
    events = await bookings.history(ctx.db, tenant(request), appointment.id)
    tz = await _business_zone(request)
    data = booking_json(appointment, tz)
    data["history"] = [
        {
            "at": iso_in(e.at, tz),
            "from": e.from_status,
            "to": e.to_status,
            "actor": e.actor,
            "reason": e.reason,
        }
        for e in events
    ]
    return json_response(data)


@routes.post("/api/bookings/{id}/cancel")
async def cancel_booking(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_model(request, CancelIn)
    outcome = await request.app[PAYMENTS].cancel_booking(
        tenant(request),
        request.match_info["id"],
        ctx.clock(),
        reason=body.reason,
        enforce_policy=not body.override_policy,
    )
    ctx.metrics.bookings.labels("cancel", "cancelled" if outcome.changed else "repeat").inc()
    data = booking_json(outcome.appointment, await _business_zone(request))
    data["already_cancelled"] = not outcome.changed
    return json_response(data)


@routes.post("/api/bookings/{id}/reschedule")
async def reschedule_booking(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_model(request, RescheduleIn)
    moved = await bookings.reschedule(
        ctx.db,
        tenant(request),
        request.match_info["id"],
        parse_instant(body.start),
        ctx.clock(),
        staff=body.staff,
        enforce_policy=not body.override_policy,
    )
    ctx.metrics.bookings.labels("reschedule", "rescheduled").inc()
    return json_response(booking_json(moved, await _business_zone(request)))


@routes.get("/api/bookings/{id}/reschedule/alternatives")
async def alternatives(request: web.Request) -> web.Response:
    ctx = context(request)
    appointment = await bookings.get(ctx.db, tenant(request), request.match_info["id"])
    count = int(request.query.get("count", "5")) if request.query.get("count", "5").isdigit() else 5
    around = parse_instant(request.query["around"], field="around") if "around" in request.query else appointment.start
    slots = await bookings.alternatives_near(
        ctx.db,
        tenant(request),
        appointment.service,
        around,
        ctx.clock(),
        count=min(max(count, 1), 20),
        exclude_appointment=appointment.id,
    )
    tz = await _business_zone(request)
    return json_response({"booking": appointment.id, "slots": [slot_json(s, tz) for s in slots]})


async def _mark(request: web.Request, status: Status) -> web.Response:
    ctx = context(request)
    appointment = await bookings.mark(ctx.db, tenant(request), request.match_info["id"], status, ctx.clock())
    ctx.metrics.bookings.labels(status.value, "ok").inc()
    return json_response(booking_json(appointment, await _business_zone(request)))


@routes.post("/api/bookings/{id}/complete")
async def complete_booking(request: web.Request) -> web.Response:
    return await _mark(request, Status.COMPLETED)


@routes.post("/api/bookings/{id}/no-show")
async def no_show(request: web.Request) -> web.Response:
    return await _mark(request, Status.MISSED)


# --- customers ------------------------------------------------------------------------------


class CustomerCreate(_Body):
    phone: str = Field(min_length=3, max_length=40)
    name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320)
    timezone: str | None = None


class CustomerPatch(_Body):
    phone: str | None = Field(default=None, min_length=3, max_length=40)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    timezone: str | None = None


def _customer_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "phone": row.phone,
        "email": row.email,
        "timezone": row.timezone,
        "created_at": row.created_at.isoformat(),
    }


@routes.get("/api/customers")
async def list_customers(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        if request.query.get("phone"):
            found = await customers.by_phone(session, tenant(request), normalize_phone(request.query["phone"]))
            rows = [found] if found else []
        else:
            rows = await customers.search(session, tenant(request), request.query.get("name"))
    return json_response({"customers": [_customer_json(r) for r in rows]})


@routes.post("/api/customers")
async def create_customer(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_model(request, CustomerCreate)
    tz = canonical_zone_name(body.timezone) if body.timezone else None
    async with ctx.db.writing() as session:
        row = await customers.upsert(
            session,
            tenant(request),
            normalize_phone(body.phone),
            ctx.clock(),
            name=body.name,
            email=body.email,
            timezone=tz,
        )
        return json_response(_customer_json(row), 201)


@routes.get("/api/customers/{id}")
async def get_customer(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        return json_response(_customer_json(await customers.get(session, tenant(request), request.match_info["id"])))


@routes.patch("/api/customers/{id}")
async def patch_customer(request: web.Request) -> web.Response:
    body = await read_model(request, CustomerPatch)
    async with context(request).db.writing() as session:
        row = await customers.update(
            session,
            tenant(request),
            request.match_info["id"],
            name=body.name,
            phone=normalize_phone(body.phone) if body.phone else None,
            email=body.email,
            timezone=canonical_zone_name(body.timezone) if body.timezone else None,
        )
        return json_response(_customer_json(row))


# --- catalogue management -------------------------------------------------------------------


@routes.get("/api/business")
async def get_business(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        b = await catalog.business_by_id(session, tenant(request))
    return json_response(
        {
            "slug": b.slug,
            "name": b.name,
            "timezone": b.timezone,
            "currency": b.currency,
            "locale": b.locale,
            "hours": b.hours,
            **b.info,
        }
    )


def _staff_json(row: Any) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "name": row.name,
        "kind": row.kind,
        "timezone": row.timezone,
        "hours": row.hours,
        "breaks": row.breaks,
        "weight": row.weight,
    }


@routes.get("/api/staff")
async def list_staff(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        rows = await catalog.list_staff(session, tenant(request))
    return json_response({"staff": [_staff_json(r) for r in rows]})


@routes.put("/api/staff/{slug}")
async def put_staff(request: web.Request) -> web.Response:
    ctx = context(request)
    spec = validate(StaffSpec, {**(await read_json(request)), "slug": request.match_info["slug"]})
    async with ctx.db.writing() as session:
        await catalog.upsert_staff(session, tenant(request), spec, ctx.clock())
        row = await catalog.staff_row(session, tenant(request), spec.slug)
        return json_response(_staff_json(row))


@routes.delete("/api/staff/{slug}")
async def delete_staff(request: web.Request) -> web.Response:
    async with context(request).db.writing() as session:
        await catalog.deactivate_staff(session, tenant(request), request.match_info["slug"])
    return web.Response(status=204)


@routes.get("/api/services")
async def list_services(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        rows = await catalog.list_services(session, tenant(request))
    return json_response({"services": [catalog.service_spec(r).model_dump(mode="json") for r in rows]})


@routes.put("/api/services/{slug}")
async def put_service(request: web.Request) -> web.Response:
    spec = validate(ServiceSpec, {**(await read_json(request)), "slug": request.match_info["slug"]})
    async with context(request).db.writing() as session:
        await catalog.upsert_service(session, tenant(request), spec)
    return json_response(spec.model_dump(mode="json"))


@routes.delete("/api/services/{slug}")
async def delete_service(request: web.Request) -> web.Response:
    async with context(request).db.writing() as session:
        await catalog.deactivate_service(session, tenant(request), request.match_info["slug"])
    return web.Response(status=204)


@routes.get("/api/holidays")
async def list_holidays(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        rows = await catalog.list_holidays(session, tenant(request))
    return json_response({"holidays": [{"date": r.day.isoformat(), "name": r.name} for r in rows]})


@routes.put("/api/holidays/{date}")
async def put_holiday(request: web.Request) -> web.Response:
    spec = validate(HolidaySpec, {**(await read_json(request)), "date": request.match_info["date"]})
    async with context(request).db.writing() as session:
        await catalog.put_holiday(session, tenant(request), spec)
    return json_response(spec.model_dump(mode="json"))


@routes.delete("/api/holidays/{date}")
async def delete_holiday(request: web.Request) -> web.Response:
    day = parse_day(request.match_info["date"], field="date")
    async with context(request).db.writing() as session:
        await catalog.delete_holiday(session, tenant(request), day)
    return web.Response(status=204)


@routes.get("/api/staff/{slug}/overrides")
async def list_overrides(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        rows = await catalog.list_overrides(session, tenant(request), request.match_info["slug"])
    return json_response({"overrides": [{"date": r.day.isoformat(), "hours": r.ranges} for r in rows]})


@routes.put("/api/staff/{slug}/overrides/{date}")
async def put_override(request: web.Request) -> web.Response:
    day = parse_day(request.match_info["date"], field="date")
    body = await read_model(request, OverrideIn)
    async with context(request).db.writing() as session:
        await catalog.put_override(session, tenant(request), request.match_info["slug"], day, body.hours)
    return json_response({"date": day.isoformat(), "hours": body.hours})


@routes.delete("/api/staff/{slug}/overrides/{date}")
async def delete_override(request: web.Request) -> web.Response:
    day = parse_day(request.match_info["date"], field="date")
    async with context(request).db.writing() as session:
        await catalog.delete_override(session, tenant(request), request.match_info["slug"], day)
    return web.Response(status=204)


def _time_off_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "start": row.starts_at.isoformat(),
        "end": row.ends_at.isoformat(),
        "reason": row.reason,
    }


@routes.get("/api/staff/{slug}/time-off")
async def list_time_off(request: web.Request) -> web.Response:
    async with context(request).db.reading() as session:
        rows = await catalog.list_time_off(session, tenant(request), request.match_info["slug"])
    return json_response({"time_off": [_time_off_json(r) for r in rows]})


@routes.post("/api/staff/{slug}/time-off")
async def add_time_off(request: web.Request) -> web.Response:
    spec = await read_model(request, TimeOffSpec)
    async with context(request).db.writing() as session:
        row = await catalog.add_time_off(session, tenant(request), request.match_info["slug"], spec)
        return json_response(_time_off_json(row), 201)


@routes.delete("/api/staff/{slug}/time-off/{id}")
async def delete_time_off(request: web.Request) -> web.Response:
    async with context(request).db.writing() as session:
        await catalog.delete_time_off(session, tenant(request), request.match_info["slug"], request.match_info["id"])
    return web.Response(status=204)


# --- customers' self-service (no API token: a per-booking, per-purpose token instead) ---------

manage_routes = web.RouteTableDef()


class ManageIn(_Body):
    token: str = Field(max_length=100)
    start: str | None = None


def _manage(request: web.Request, appointment: Appointment) -> dict[str, Any]:
    """A booking's self-service credentials: the JSON routes' per-purpose tokens and the page's link."""
    ctx = context(request)
    return {
        "manage_tokens": {p: manage_token(ctx.link_secret, appointment.id, p) for p in MANAGE_PURPOSES},
        "manage_url": selfservice.links(request).url(appointment.id, appointment.end),
    }


async def _authorised(request: web.Request, purpose: str) -> tuple[str, ManageIn]:
    """The tenant of the booking, once the token proves the caller may do ``purpose`` to it."""
    body = await read_model(request, ManageIn)
    appointment_id = request.match_info["id"]
    if not check_manage_token(context(request).link_secret, appointment_id, purpose, body.token):
        raise Forbidden("this link does not allow that")
    return await bookings.tenant_of(context(request).db, appointment_id), body


async def _refused(request: web.Request, tenant_id: str, action: str, exc: FrontdeskError) -> FrontdeskError:
    """A refusal in the customer's words, with whom to call; a moved booking says where it went
    (the newest booking's own link: whoever could change the old one may change where it went)."""
    ctx = context(request)
    facts = await selfservice.load(request, request.match_info["id"])
    if facts.appointment.status is Status.RESCHEDULED:
        went = await selfservice.newest(ctx.db, tenant_id, facts.appointment)
        found = {} if went is None else {"rescheduled_to": went.id, "manage_url": _manage(request, went)["manage_url"]}
        return Conflict(
            "this booking was moved to another time: use the link for the new booking", code="moved", **found
        )
    text = selfservice.refusal_text(facts, action, ctx.clock())
    if text is None:
        return exc
    refused = type(exc)(text, code=exc.code, **exc.details)
    refused.details["contact_phone"] = facts.phone or None
    return refused


@manage_routes.post("/manage/bookings/{id}/cancel")
async def self_cancel(request: web.Request) -> web.Response:
    ctx = context(request)
    tenant_id, _ = await _authorised(request, "cancel")
    try:
        outcome = await request.app[PAYMENTS].cancel_booking(
            tenant_id, request.match_info["id"], ctx.clock(), actor="customer"
        )
    except (PolicyViolation, InvalidTransition) as exc:
        raise await _refused(request, tenant_id, "cancel", exc) from None
    tz = await _business_zone(request, tenant_id)
    return json_response({**booking_json(outcome.appointment, tz), "already_cancelled": not outcome.changed})


@manage_routes.post("/manage/bookings/{id}/reschedule")
async def self_reschedule(request: web.Request) -> web.Response:
    """The move; the answer carries the new booking's own tokens and link (the old ones now only
    say where it went)."""
    ctx = context(request)
    tenant_id, body = await _authorised(request, "reschedule")
    if not body.start:
        raise InvalidInput("start: required")
    try:
        moved = await bookings.reschedule(
            ctx.db, tenant_id, request.match_info["id"], parse_instant(body.start), ctx.clock(), actor="customer"
        )
    except (PolicyViolation, InvalidTransition) as exc:
        raise await _refused(request, tenant_id, "move", exc) from None
    return json_response({**booking_json(moved, await _business_zone(request, tenant_id)), **_manage(request, moved)})
