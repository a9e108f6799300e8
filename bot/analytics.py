"""Insights API (``/api/analytics/*``): thin routes over :mod:`storage.insights`.

Every route works inside the tenant fixed by the bearer token: another business's agent or
customer is 404. ``date_from``/``date_to`` are local dates (YYYY-MM-DD, inclusive) in the
business's time zone; without them the window is the last 30 days. The realtime stream polls the
``insight_events`` table, so it sees events written by any worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from datetime import date

from aiohttp import web

from bot.alerts import open_for_system
from bot.context import context
from bot.http import json_response, query, tenant
from core.errors import InvalidInput
from core.timezones import parse_day
from storage import insights

routes = web.RouteTableDef()
HEARTBEAT_SECONDS = 15.0


def _day(request: web.Request, name: str) -> date | None:
    value = query(request, name, required=False)
    return parse_day(value, field=name) if value else None


def _range(request: web.Request) -> tuple[date | None, date | None]:
    return _day(request, "date_from"), _day(request, "date_to")


@routes.get("/api/analytics/agent/{id}/performance")
async def agent_performance(request: web.Request) -> web.Response:
    ctx = context(request)
    start, end = _range(request)
    async with ctx.db.reading() as session:
        data = await insights.agent_performance(
            session, tenant(request), request.match_info["id"], start=start, end=end, now=ctx.clock()
        )
    return json_response(data)


@routes.get("/api/analytics/customer/{id}/insight")
async def customer_insight(request: web.Request) -> web.Response:
    ctx = context(request)
    async with ctx.db.reading() as session:
        data = await insights.customer_insight(session, tenant(request), request.match_info["id"], now=ctx.clock())
    return json_response(data)


@routes.get("/api/analytics/system/performance")
async def system_performance(request: web.Request) -> web.Response:
    ctx = context(request)
    start, end = _range(request)
    async with ctx.db.reading() as session:
        data = await insights.system_performance(session, tenant(request), start=start, end=end, now=ctx.clock())
    data["adminAlerts"] = await open_for_system(ctx.db, tenant(request))  # pending and firing, with their timers
    return json_response(data)


@routes.get("/api/analytics/comparison")
async def comparison(request: web.Request) -> web.Response:
    ctx = context(request)
    start, end = _range(request)
    async with ctx.db.reading() as session:
        data = await insights.comparison(session, tenant(request), start=start, end=end, now=ctx.clock())
    return json_response(data)


@routes.get("/api/analytics/dashboard/{agentId}")
async def dashboard(request: web.Request) -> web.Response:
    ctx = context(request)
    start, end = _range(request)
    async with ctx.db.reading() as session:
        data = await insights.dashboard(
            session, tenant(request), request.match_info["agentId"], start=start, end=end, now=ctx.clock()
        )
    return json_response(data)


@routes.get("/api/analytics/funnel")
async def funnel(request: web.Request) -> web.Response:
    ctx = context(request)
    start, end = _range(request)
    agent = query(request, "agent", required=False)
    async with ctx.db.reading() as session:
        agent_id = (await insights.agent_row(session, tenant(request), agent)).id if agent else None
        data = await insights.funnel(
            session,
            tenant(request),
            start=start,
            end=end,
            channel=query(request, "channel", required=False),
            agent_id=agent_id,
            now=ctx.clock(),
        )
    return json_response(data)


@routes.get("/api/analytics/export")
async def export(request: web.Request) -> web.StreamResponse:
    """CSV, streamed in batches: the header row, then one row per record in the date range."""
    ctx = context(request)
    kind = query(request, "kind") or ""
    if kind not in insights.EXPORT_KINDS:
        raise InvalidInput(f"kind: one of {', '.join(insights.EXPORT_KINDS)}")
    start, end = _range(request)
    async with ctx.db.reading() as session:
        tz = await insights.zone_of(session, tenant(request))
        first, last = insights.window(start, end, ctx.clock(), tz)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{kind}-{first}-{last}.csv"',
            }
        )
        await response.prepare(request)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        pending = 0
        async for row in insights.export_rows(session, tenant(request), kind, first, last):
            writer.writerow(row)
            pending += 1
            if pending >= 500:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
                pending = 0
        await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


@routes.get("/api/analytics/realtime/{agentId}")
async def realtime(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: each insight event of this agent (and agent-less ones, such as API
    bookings) as it is committed. Resumes after ``Last-Event-ID``; ``poll`` sets the database poll
    interval (0.2–10 s, default 1 s); ``max_events`` ends the stream after that many events."""
    ctx = context(request)
    tenant_id = tenant(request)
    try:
        poll = min(10.0, max(0.2, float(request.query.get("poll", "1"))))
        limit = int(request.query["max_events"]) if "max_events" in request.query else None
        resume = request.headers.get("Last-Event-ID") or request.query.get("after")
        cursor = int(resume) if resume else None
    except ValueError:
        raise InvalidInput("poll, max_events and Last-Event-ID are numbers") from None
    async with ctx.db.reading() as session:
        agent = await insights.agent_row(session, tenant_id, request.match_info["agentId"])
        if cursor is None:
            cursor = await insights.last_event_id(session, tenant_id)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b": connected\n\n")
    sent = 0
    idle = 0.0
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while limit is None or sent < limit:
            async with ctx.db.reading() as session:
                events = await insights.events_after(session, tenant_id, cursor, agent_id=agent.id)
            for event in events:
                cursor = event.id
                body = {"id": event.id, "type": event.kind, "at": event.at.isoformat(), **event.data}
                await response.write(f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(body)}\n\n".encode())
                sent += 1
                if limit is not None and sent >= limit:
                    break
            if limit is not None and sent >= limit:
                break
            await asyncio.sleep(poll)
            idle = 0.0 if events else idle + poll
            if idle >= HEARTBEAT_SECONDS:
                await response.write(b": keep-alive\n\n")
                idle = 0.0
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def install(app: web.Application) -> None:
    app.router.add_routes(routes)
