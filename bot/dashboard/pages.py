"""The dashboard's pages: each one a server-rendered shell that ``dashboard.js`` fills in from the
``/dashboard/data/...`` endpoints. Ids are checked here too, so another business's conversation
or agent is a 404 page before any script runs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from bot.context import context
from bot.dashboard import views
from bot.dashboard.scope import Scope, resolve, shell
from core.errors import NotFound
from storage import catalog, conversations
from storage import tables as t

routes = web.RouteTableDef()
STATIC = Path(__file__).parent.parent / "static"
ASSETS = {
    "dashboard.js": (STATIC / "dashboard" / "dashboard.js", "application/javascript"),
    "dashboard.css": (STATIC / "dashboard" / "dashboard.css", "text/css"),
    "vendor/chart.umd.min.js": (STATIC / "vendor" / "chart.umd.min.js", "application/javascript"),
}


@routes.get("/dashboard/static/{name:.+}")
async def asset(request: web.Request) -> web.StreamResponse:
    """Our own script and style and the vendored chart library: served locally, never from a CDN."""
    found = ASSETS.get(request.match_info["name"])
    if found is None:
        raise NotFound("no such file")
    path, content_type = found
    response = web.FileResponse(path, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
    response.content_type = content_type
    response.charset = "utf-8"
    return response


def _in(scope: Scope, path: str) -> str:
    return f"{path}?{urlencode({'business': scope.business.slug})}"


async def _page(request: web.Request, scope: Scope, name: str, title: str, **data: str) -> web.Response:
    """Every page knows the business's zone: its times are shown on the business's clock."""
    charts = name in ("grade", "comparison", "charts")
    data.setdefault("timezone", scope.business.timezone)
    return views.page(await shell(request, scope), name, title, charts=charts, **data)


@routes.get("/dashboard")
async def home(request: web.Request) -> web.StreamResponse:
    """Owners and admins land on their first agent's grade card; staff on their conversations."""
    scope = await resolve(request)
    if scope.user.role == "staff":
        return views.redirect(_in(scope, "/dashboard/conversations"))
    async with context(request).db.reading() as session:
        agent = await session.scalar(
            select(t.Agent.slug).where(t.Agent.tenant_id == scope.tenant_id).order_by(t.Agent.slug).limit(1)
        )
    if agent is None:
        return await _page(request, scope, "conversations", "Conversations")
    return views.redirect(_in(scope, f"/dashboard/agents/{agent}"))


@routes.get("/dashboard/agents/{agent}")
async def grade_card(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    async with context(request).db.reading() as session:
        agent = await catalog.agent_by_slug(session, request.match_info["agent"], scope.tenant_id)
    return await _page(request, scope, "grade", f"Grade card · {agent.name}", agent=agent.slug)


@routes.get("/dashboard/comparison")
async def comparison(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    return await _page(request, scope, "comparison", "Agents compared")


@routes.get("/dashboard/charts")
async def charts(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    return await _page(request, scope, "charts", "Charts")


@routes.get("/dashboard/conversations")
async def conversation_list(request: web.Request) -> web.Response:
    scope = await resolve(request)
    return await _page(request, scope, "conversations", "Conversations")


async def _conversation(request: web.Request, scope: Scope) -> str:
    async with context(request).db.reading() as session:
        found = await conversations.get(session, scope.tenant_id, request.match_info["id"], staff_id=scope.staff_id)
    return found.conversation.id


@routes.get("/dashboard/conversations/{id}")
async def conversation(request: web.Request) -> web.Response:
    scope = await resolve(request)
    conversation_id = await _conversation(request, scope)
    return await _page(request, scope, "conversation", "Conversation", id=conversation_id)


@routes.get("/dashboard/handoff")
async def handoff(request: web.Request) -> web.Response:
    return await _page(request, await resolve(request), "handoff", "Hand-off inbox")


@routes.get("/dashboard/handoff/{id}")
async def handoff_one(request: web.Request) -> web.Response:
    scope = await resolve(request)
    conversation_id = await _conversation(request, scope)
    return await _page(request, scope, "handoff", "Hand-off inbox", id=conversation_id)


@routes.get("/dashboard/bookings")
async def booking_list(request: web.Request) -> web.Response:
    scope = await resolve(request)
    return await _page(request, scope, "bookings", "Bookings", currency=scope.business.currency)


@routes.get("/dashboard/outbox")
async def failed_deliveries(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    return await _page(request, scope, "outbox", "Failed deliveries")


@routes.get("/dashboard/alerts")
async def alert_list(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    return await _page(request, scope, "alerts", "Alerts")


@routes.get("/dashboard/alerts/rules")
async def alert_rules(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    return await _page(request, scope, "rules", "Alert rules")
