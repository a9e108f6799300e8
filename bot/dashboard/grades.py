"""JSON for the owners' insight pages: the agent's grade card (with its trend), the comparison
across agents and the charts. Everything is read through ``storage.insights`` (the same roll-ups
the analytics API answers from); staff are refused (403), other businesses' agents are 404."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aiohttp import web

from bot.context import context
from bot.dashboard.scope import resolve
from bot.http import json_response
from core.errors import InvalidInput
from storage import catalog, insights

routes = web.RouteTableDef()
WINDOW_DAYS = 30
TREND_POINTS = 6  # rolling 30-day grades, one per week: enough to see a direction


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name}: a date (YYYY-MM-DD)") from None


@routes.get("/dashboard/data/agents/{agent}/grade")
async def grade(request: web.Request) -> web.Response:
    """The grade over the last 30 days, and the same grade a week, two weeks... earlier."""
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    now = ctx.clock()
    async with ctx.db.reading() as session:
        agent = await catalog.agent_by_slug(session, request.match_info["agent"], scope.tenant_id)
        board = await insights.dashboard(session, scope.tenant_id, agent.id, start=None, end=None, now=now)
        last = date.fromisoformat(board["period"]["to"])
        trend = []
        for weeks_back in range(TREND_POINTS - 1, -1, -1):
            end = last - timedelta(weeks=weeks_back)
            start = end - timedelta(days=WINDOW_DAYS - 1)
            point = await insights.agent_performance(session, scope.tenant_id, agent.id, start=start, end=end, now=now)
            trend.append(
                {
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "grade": point["performanceGrade"],
                    "score": point["performanceScore"],
                }
            )
    performance = {k: board[k] for k in ("performanceGrade", "conversationMetrics", "businessMetrics")}
    performance.update(
        score=board["performanceScore"], strengths=board["strengths"], improvementAreas=board["improvementAreas"]
    )
    return json_response(
        {
            "agent": {"slug": agent.slug, "name": agent.name},
            "currency": scope.business.currency,
            "days": WINDOW_DAYS,
            "period": board["period"],
            "performance": performance,
            "changes": board["trends"],  # % change against the previous window
            "trend": trend,
        }
    )


@routes.get("/dashboard/data/comparison")
async def comparison(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    async with ctx.db.reading() as session:
        data = await insights.comparison(
            session, scope.tenant_id, start=_day(request, "date_from"), end=_day(request, "date_to"), now=ctx.clock()
        )
    return json_response({**data, "currency": scope.business.currency})


@routes.get("/dashboard/data/charts")
async def charts(request: web.Request) -> web.Response:
    """Revenue by day, the booking funnel, the channel mix and the weekday × hour volume heatmap,
    for the whole business or one agent (``?agent=<slug>``)."""
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    now = ctx.clock()
    async with ctx.db.reading() as session:
        agent_id = None
        if request.query.get("agent"):
            agent_id = (await catalog.agent_by_slug(session, request.query["agent"], scope.tenant_id)).id
        tz = await insights.zone_of(session, scope.tenant_id)
        first, last = insights.window(_day(request, "date_from"), _day(request, "date_to"), now, tz)
        days = await insights.sums(session, scope.tenant_id, first, last, agent_id=agent_id, by=["day"])
        daily = {r["day"]: r for r in days}
        by_channel = await insights.sums(session, scope.tenant_id, first, last, agent_id=agent_id, by=["channel"])
        funnel = await insights.funnel(session, scope.tenant_id, start=first, end=last, agent_id=agent_id, now=now)
        heat = await insights.heatmap(session, scope.tenant_id, first, last, agent_id=agent_id)
    revenue: list[dict[str, Any]] = []
    day = first
    while day <= last:
        row = daily.get(day)
        revenue.append({"date": day.isoformat(), "amount": row["revenue"] if row else 0})
        day += timedelta(days=1)
    return json_response(
        {
            "period": {"from": first.isoformat(), "to": last.isoformat(), "timezone": tz.key},
            "currency": scope.business.currency,
            "revenue": revenue,
            "funnel": funnel["steps"],
            "channels": [
                {"channel": r["channel"], "count": r["conversations"]}
                for r in by_channel
                if r["channel"] and r["conversations"]
            ],
            "heatmap": heat,
        }
    )
