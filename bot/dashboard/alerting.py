"""Alerts on the dashboard: a business's alerts with acknowledge and silence, and its alert rule
settings (config.yaml's rules with this business's overrides on top). Storage is
``storage.alerts``; owners and admins only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.alerts import specs_for
from bot.context import context
from bot.dashboard.scope import resolve
from bot.http import json_response, read_json, read_model
from core.alerts import RULES
from core.errors import NotFound
from storage import alerts

routes = web.RouteTableDef()


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: float = Field(default=4, gt=0, le=24 * 30)
    comment: str = Field(default="", max_length=500)


@routes.get("/dashboard/data/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    found = await alerts.list_alerts(ctx.db, scope.tenant_id)
    muted = await alerts.silences(ctx.db, scope.tenant_id, ctx.clock())
    return json_response(
        {
            "alerts": [{**a.to_json(), "title": RULES[a.rule].title if a.rule in RULES else a.rule} for a in found],
            "silences": [
                {
                    "id": s.id,
                    "matchers": {k: v for k, v in s.matchers.items() if k != "tenant_id"},
                    "startsAt": s.starts_at.isoformat(),
                    "endsAt": s.ends_at.isoformat(),
                }
                for s in muted
            ],
        }
    )


@routes.post("/dashboard/data/alerts/{id}/acknowledge")
async def acknowledge(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    view = await alerts.acknowledge(ctx.db, scope.tenant_id, request.match_info["id"], scope.actor, ctx.clock())
    return json_response(view.to_json())


@routes.post("/dashboard/data/alerts/{id}/silence")
async def silence(request: web.Request) -> web.Response:
    """Mute this alert's rule and scope (e.g. slow responses on one agent's WhatsApp) for some hours."""
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    body = await read_model(request, SilenceIn)
    found = next(
        (a for a in await alerts.list_alerts(ctx.db, scope.tenant_id) if a.id == request.match_info["id"]), None
    )
    if found is None:
        raise NotFound("no such alert")
    now = ctx.clock()
    made = await alerts.create_silence(
        ctx.db,
        scope.tenant_id,
        {"rule": found.rule, **found.scope},
        now,
        now + timedelta(hours=body.hours),
        created_by=scope.actor,
        comment=body.comment,
        now=now,
    )
    return json_response({"id": made.id, "endsAt": made.ends_at.isoformat()}, status=201)


@routes.post("/dashboard/data/silences/{id}/expire")
async def end_silence(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    await alerts.expire_silence(ctx.db, scope.tenant_id, request.match_info["id"], ctx.clock())
    return json_response({"id": request.match_info["id"], "expired": True})


async def _rules(request: web.Request, tenant_id: str) -> list[dict[str, Any]]:
    ctx = context(request)
    overrides = (await alerts.rule_overrides(ctx.db, tenant_id)).get(tenant_id, {})
    specs = specs_for(ctx.settings.alerts, overrides)
    out = []
    for name, spec in specs.items():
        kind = RULES[name]
        out.append(
            {
                "rule": name,
                "title": kind.title,
                "direction": kind.direction,
                "unit": kind.unit,
                "enabled": spec.enabled,
                "threshold": spec.threshold,
                "severity": spec.severity.value,
                "minVolume": spec.min_volume,
                "windowSeconds": spec.window_seconds,
                "forSeconds": spec.for_seconds,
                "overridden": sorted(overrides.get(name, {})),
            }
        )
    return out


@routes.get("/dashboard/data/alert-rules")
async def rules(request: web.Request) -> web.Response:
    scope = await resolve(request)
    scope.managers_only()
    return json_response({"rules": await _rules(request, scope.tenant_id), "tunable": sorted(alerts.TUNABLE)})


@routes.post("/dashboard/data/alert-rules/{rule}")
async def tune(request: web.Request) -> web.Response:
    """This business's values for one rule (``{}`` goes back to config.yaml's)."""
    scope = await resolve(request)
    scope.managers_only()
    ctx = context(request)
    values = await read_json(request)
    await alerts.set_rule_override(
        ctx.db, scope.tenant_id, request.match_info["rule"], values, ctx.clock(), who=scope.actor
    )
    return json_response({"rules": await _rules(request, scope.tenant_id)})
