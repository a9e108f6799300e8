"""Provider webhooks: verify on the raw bytes, parse every batched event, store, then answer.

The order is the contract (DESIGN §1, reliability §1.3): body size limit → signature over the raw
body (fail closed, constant time) → parse → insert into the inbox (the unique key drops
duplicates) → commit → 200. Nothing is processed before the answer; if the database is down the
answer is 503 (the error middleware) and the provider retries. Events addressed to a target no
agent owns are acknowledged and dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from bot.context import context
from bot.faults import Faults
from bot.metrics import Metrics
from bot.routing import Route, Routing
from channels.base import Channel, InboundEvent
from core.errors import (
    Forbidden,
    FrontdeskError,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from storage import inbox

log = logging.getLogger(__name__)

ROUTING = web.AppKey("routing", Routing)
INBOX = web.AppKey("inbox_group_commit", inbox.GroupCommit)
WAKE: web.AppKey[Callable[[], None]] = web.AppKey("inbox_wake")
FAULTS = web.AppKey("faults", Faults)
META = ("whatsapp", "instagram", "messenger")
CONTENT_TYPES = {"sms": "application/x-www-form-urlencoded"}  # the rest send JSON
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

routes = web.RouteTableDef()


@routes.get(r"/webhooks/{channel:whatsapp|instagram|messenger}")
async def handshake(request: web.Request) -> web.Response:
    """Meta's subscription check: echo ``hub.challenge`` when ``hub.verify_token`` is ours."""
    channel = request.match_info["channel"]
    candidates = request.app[ROUTING].channel(channel)
    if not candidates:
        raise NotFound(f"{channel} is not configured")
    refused: FrontdeskError | None = None
    for route in candidates:
        try:
            challenge = route.adapter.handshake(request.query)  # type: ignore[attr-defined]
        except FrontdeskError as exc:
            refused = exc
            continue
        return web.Response(text=challenge, content_type="text/plain")
    assert refused is not None
    raise refused


@routes.post(r"/webhooks/{channel:whatsapp|instagram|messenger}")
async def meta(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    await receive(request, channel, request.app[ROUTING].channel(channel))
    return web.Response(text="EVENT_RECEIVED", content_type="text/plain")


@routes.post("/webhooks/sms")
async def sms(request: web.Request) -> web.Response:
    await receive(request, "sms", request.app[ROUTING].channel("sms"))
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


@routes.post("/webhooks/telegram/{agent}")
async def telegram(request: web.Request) -> web.Response:
    route = request.app[ROUTING].target("telegram", request.match_info["agent"])
    await receive(request, "telegram", [route] if route else [])
    return web.Response(status=200)


async def receive(request: web.Request, channel: str, candidates: list[Route]) -> int:
    """Verify, parse and store one webhook request; returns how many events were new."""
    started = time.perf_counter()
    ctx = context(request)
    metrics = ctx.metrics
    if not candidates:
        raise NotFound(f"{channel} is not configured here")
    limit = ctx.settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics.webhook_rejected.labels(channel, "too_large").inc()
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    expected = CONTENT_TYPES.get(channel, "application/json")
    if request.content_type != expected:
        metrics.webhook_rejected.labels(channel, "content_type").inc()
        raise UnsupportedMediaType(f"expected {expected}")
    body = await request.read()  # aiohttp stops at client_max_size (413) for chunked bodies
    headers: Mapping[str, str] = request.headers
    url = ctx.settings.server.public_url.rstrip("/") + request.path_qs
    verifier = _verified(candidates, body, headers, url, channel, metrics)
    try:
        events = verifier.adapter.parse(body, headers)
    except MalformedRequest:
        metrics.webhook_rejected.labels(channel, "malformed").inc()
        log.info("%s webhook: malformed body (%d bytes)", channel, len(body))
        raise
    routed: list[tuple[inbox.Addressee, InboundEvent]] = []
    routing = request.app[ROUTING]
    for event in events:
        route = routing.target(channel, event.target)
        if route is None or not _same_signer(route, verifier, body, headers, url):
            metrics.webhooks.labels(channel, "unknown_target").inc()
            continue
        routed.append((inbox.Addressee(route.tenant_id, route.agent_id), event))
    new = 0
    if routed:
        new = await request.app[INBOX].store(routed)  # committed, with whatever arrived alongside
        request.app[FAULTS].crash_if("after_inbox_commit")
        request.app[WAKE]()
    metrics.webhooks.labels(channel, "new").inc(new)
    metrics.webhooks.labels(channel, "duplicate").inc(len(routed) - new)
    metrics.ack_latency.labels(channel).observe(time.perf_counter() - started)
    return new


def _verified(
    candidates: list[Route], body: bytes, headers: Mapping[str, str], url: str, channel: str, metrics: Metrics
) -> Route:
    """The first configured adapter whose secret signed this body; 401 when the signature is
    missing, 403 when no secret matches. Fail closed: no adapter, no pass."""
    missing = True
    for route in candidates:  # usually one; several when agents sit on different Meta apps
        try:
            route.adapter.verify(body, headers, url)
            return route
        except Unauthorized:
            continue
        except FrontdeskError:
            missing = False
    metrics.webhook_rejected.labels(channel, "signature").inc()
    log.info("%s webhook: signature %s", channel, "missing" if missing else "invalid")
    if missing:
        raise Unauthorized("missing signature")
    raise Forbidden("invalid signature")


def _same_signer(route: Route, verifier: Route, body: bytes, headers: Mapping[str, str], url: str) -> bool:
    """An event may only reach an agent whose own secret signed the request."""
    if route is verifier:
        return True
    adapter: Channel = route.adapter
    try:
        adapter.verify(body, headers, url)
    except FrontdeskError:
        return False
    return True
