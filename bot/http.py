"""HTTP plumbing: error mapping, metrics, bearer-token auth and request body helpers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.context import context
from core.errors import FrontdeskError, InvalidInput, MalformedRequest, Unauthorized
from storage import tokens

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
TENANT = web.RequestKey("tenant_id", str)


def error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": message, "code": code, **extra}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map the error tree to JSON; never show a stack trace to a client."""
    metrics = context(request).metrics
    try:
        return await handler(request)
    except FrontdeskError as exc:
        metrics.errors.labels(exc.code).inc()
        return json_response(error_body(exc.message, exc.code, **_public(exc.details)), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "http_error")
        metrics.errors.labels(code).inc()
        return json_response(error_body(exc.reason, code), exc.status)
    except (OperationalError, ConnectionError, DBAPIError) as exc:
        if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) and not exc.connection_invalidated:
            raise  # a real bug (constraint, SQL), not an outage
        log.warning("database unavailable: %s", type(exc).__name__)
        metrics.errors.labels("unavailable").inc()
        return json_response(error_body("temporarily unavailable, retry later", "unavailable"), 503)


def _public(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if not k.startswith("_")}


@web.middleware
async def unexpected(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: anything that escapes is a bug, logged, and a bare 500 for the client."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, _route(request))
        context(request).metrics.errors.labels("internal").inc()
        return json_response(error_body("internal error", "internal"), 500)


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = context(request).metrics
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


def _route(request: web.Request) -> str:
    """The route template (bounded label cardinality), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def api_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/api/*`` needs ``Authorization: Bearer <token>``; the token fixes the tenant."""
    if request.path.startswith("/api/"):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer API token")
        ctx = context(request)
        async with ctx.db.writing() as session:
            request[TENANT] = await tokens.tenant_for(session, token.strip(), ctx.clock())
    return await handler(request)


def tenant(request: web.Request) -> str:
    return request[TENANT]


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object body, 400 when it is not one (413 is raised by aiohttp's size limit)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest("the body must be a JSON object")
    return data


async def read_model(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput("; ".join(problems), problems=problems) from None


def query(request: web.Request, name: str, *, required: bool = True) -> str | None:
    value = request.query.get(name)
    if required and not value:
        raise InvalidInput(f"{name}: required query parameter")
    return value or None
