"""JSON for the dashboard's pages: conversations, the hand-off inbox, bookings and failed deliveries.

The same storage calls as the REST API (``storage.conversations``, ``storage.bookings``, the
dialogue manager's ``push``/``release``, the outbox's ``dead``/``replay`` through
:mod:`bot.conversations`), narrowed by :mod:`bot.dashboard.scope`.
"""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.api import booking_json, slot_json
from bot.context import context
from bot.conversations import conversation_json, replay_undelivered, undelivered_list
from bot.dashboard.scope import Scope, resolve
from bot.http import json_response, read_model
from bot.payments.routes import PAYMENTS
from channels.base import OutboundMessage
from core.booking import Appointment, Status
from core.errors import Conflict, InvalidInput, NotFound
from core.timezones import day_bounds, open_day_bounds, parse_day, parse_instant, zone
from storage import bookings, conversations

routes = web.RouteTableDef()
STATUSES = ("active", "escalated")
CHANNELS = ("web", "whatsapp", "instagram", "messenger", "sms", "telegram", "console")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplyIn(_Body):
    text: str = Field(min_length=1, max_length=4000)


class CancelIn(_Body):
    reason: str = Field(default="", max_length=500)
    override_policy: bool = False


class RescheduleIn(_Body):
    start: str
    staff: str | None = None
    override_policy: bool = False


# ----- conversations and the hand-off inbox --------------------------------------------------
@routes.get("/dashboard/data/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    scope = await resolve(request)
    status = request.query.get("status") or None
    channel = request.query.get("channel") or None
    if status not in (None, *STATUSES):
        raise InvalidInput("status: active or escalated")
    if channel not in (None, *CHANNELS):
        raise InvalidInput(f"channel: one of {', '.join(CHANNELS)}")
    text = (request.query.get("q") or "").strip()[:200] or None
    first, last = _day(request, "date_from"), _day(request, "date_to")
    if first is not None and last is not None and last < first:
        raise InvalidInput("date_to: on or after date_from")
    tz = zone(scope.business.timezone)
    started_from, started_before = open_day_bounds(first, last, tz)
    async with context(request).db.reading() as session:
        found = await conversations.search(
            session,
            scope.tenant_id,
            status=status,
            channel=channel,
            agent=request.query.get("agent") or None,
            staff_id=scope.staff_id,
            text=text,
            started_from=started_from,
            started_before=started_before,
        )
    return json_response(
        {
            "timezone": tz.key,
            "conversations": [conversation_json(f.conversation, f.agent, f.customer) for f in found],
        }
    )


def _day(request: web.Request, name: str) -> date | None:
    """An optional ``YYYY-MM-DD`` query parameter (a day in the business's time zone)."""
    raw = request.query.get(name)
    return parse_day(raw, field=name) if raw else None


async def _visible(request: web.Request, scope: Scope) -> conversations.Listed:
    async with context(request).db.reading() as session:
        return await conversations.get(session, scope.tenant_id, request.match_info["id"], staff_id=scope.staff_id)


@routes.get("/dashboard/data/conversations/{id}")
async def transcript(request: web.Request) -> web.Response:
    scope = await resolve(request)
    found = await _visible(request, scope)
    raw = request.query.get("after", "0")
    if not raw.isdigit():
        raise InvalidInput("after: a message number")
    messages = await context(request).dialogue.messages(found.conversation.id, int(raw), limit=500)
    return json_response(
        {
            "conversation": conversation_json(found.conversation, found.agent, found.customer),
            "messages": [m.to_json() for m in messages],
        }
    )


@routes.post("/dashboard/data/conversations/{id}/reply")
async def reply(request: web.Request) -> web.Response:
    """A person's answer, written into the conversation and sent through its own channel."""
    scope = await resolve(request)
    found = await _visible(request, scope)
    body = await read_model(request, ReplyIn)
    stored = await context(request).dialogue.push(
        scope.tenant_id, found.conversation.id, OutboundMessage(body.text), author="human"
    )
    if stored is None:
        raise Conflict("the customer has opted out of messages", code="opted_out")
    return json_response(stored.to_json(), status=201)


@routes.post("/dashboard/data/conversations/{id}/release")
async def release(request: web.Request) -> web.Response:
    """Hand the conversation back to the bot."""
    scope = await resolve(request)
    found = await _visible(request, scope)
    await context(request).dialogue.release(scope.tenant_id, found.conversation.id)
    return json_response({"id": found.conversation.id, "status": "active"})


# ----- bookings -------------------------------------------------------------------------------
def _mine(scope: Scope, appointment: Appointment) -> bool:
    return scope.staff_slug is None or scope.staff_slug in appointment.staff


async def _booking(request: web.Request, scope: Scope) -> Appointment:
    appointment = await bookings.get(context(request).db, scope.tenant_id, request.match_info["id"])
    if not _mine(scope, appointment):
        raise NotFound("no such booking")
    return appointment


@routes.get("/dashboard/data/bookings")
async def list_bookings(request: web.Request) -> web.Response:
    """Bookings whose start falls in [date_from, date_to] (business days; default: the next 7)."""
    scope = await resolve(request)
    ctx = context(request)
    tz = zone(scope.business.timezone)
    first = _day(request, "date_from") or ctx.clock().astimezone(tz).date()
    last = _day(request, "date_to") or first + timedelta(days=6)
    if last < first or (last - first) > timedelta(days=92):
        raise InvalidInput("date range must be 0-92 days long")
    status_text = request.query.get("status") or None
    try:
        status = Status(status_text) if status_text else None
    except ValueError:
        raise InvalidInput(f"status: one of {', '.join(s.value for s in Status)}") from None
    start, end = day_bounds(first, last, tz)
    found = [a for a in await bookings.list_between(ctx.db, scope.tenant_id, start, end, status) if _mine(scope, a)]
    return json_response(
        {
            "timezone": tz.key,
            "dateFrom": first.isoformat(),
            "dateTo": last.isoformat(),
            "bookings": [booking_json(a, tz) for a in found],
        }
    )


@routes.post("/dashboard/data/bookings/{id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    scope = await resolve(request)
    ctx = context(request)
    appointment = await _booking(request, scope)
    body = await read_model(request, CancelIn)
    outcome = await request.app[PAYMENTS].cancel_booking(
        scope.tenant_id,
        appointment.id,
        ctx.clock(),
        actor=scope.actor,
        reason=body.reason,
        enforce_policy=not (body.override_policy and scope.staff_id is None),
    )
    return json_response(booking_json(outcome.appointment, zone(scope.business.timezone)))


@routes.get("/dashboard/data/bookings/{id}/alternatives")
async def alternatives(request: web.Request) -> web.Response:
    """Free times near the booking to move it to (the same slots the customer would be offered)."""
    scope = await resolve(request)
    ctx = context(request)
    appointment = await _booking(request, scope)
    slots = await bookings.alternatives_near(
        ctx.db,
        scope.tenant_id,
        appointment.service,
        appointment.start,
        ctx.clock(),
        count=9,
        exclude_appointment=appointment.id,
    )
    slots = [s for s in slots if s.start != appointment.start][:8]  # its own time is no move
    tz = zone(scope.business.timezone)
    return json_response({"booking": appointment.id, "slots": [slot_json(s, tz) for s in slots]})


@routes.post("/dashboard/data/bookings/{id}/reschedule")
async def reschedule(request: web.Request) -> web.Response:
    scope = await resolve(request)
    ctx = context(request)
    appointment = await _booking(request, scope)
    body = await read_model(request, RescheduleIn)
    moved = await bookings.reschedule(
        ctx.db,
        scope.tenant_id,
        appointment.id,
        parse_instant(body.start),
        ctx.clock(),
        staff=scope.staff_slug or body.staff,  # staff keep their own appointments
        actor=scope.actor,
        enforce_policy=not (body.override_policy and scope.staff_id is None),
    )
    return json_response(booking_json(moved, zone(scope.business.timezone)))


# ----- failed deliveries (owners and admins) ---------------------------------------------------
@routes.get("/dashboard/data/outbox")
async def undelivered(request: web.Request) -> web.Response:
    """Dead outbox rows of the business: channel, masked recipient, error, attempts, time."""
    scope = await resolve(request)
    scope.managers_only()
    return json_response({"messages": await undelivered_list(context(request), scope.tenant_id)})


@routes.post("/dashboard/data/outbox/{id}/replay")
async def replay(request: web.Request) -> web.Response:
    """Send a dead message again (the relay retries it from its first attempt)."""
    scope = await resolve(request)
    scope.managers_only()
    return json_response(await replay_undelivered(context(request), scope.tenant_id, request.match_info["id"]))
