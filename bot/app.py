"""The application factory: one cleanup context builds the AppContext and tears it down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot import analytics, api, automations, conversations, dashboard, selfservice, webchat, webhooks
from bot.alerts import AlertDesk, build_senders
from bot.automations import AUTOMATIONS, Automations
from bot.context import CONTEXT, AppContext, Clock, context, system_clock
from bot.dialogue.engines import build_engines
from bot.dialogue.manager import DialogueManager
from bot.faults import Faults
from bot.http import api_auth, errors, json_response, measure, unexpected
from bot.links import ManageLinks
from bot.metrics import Metrics
from bot.payments import routes as payment_routes
from bot.payments.service import PaymentDesk, unwired_notify
from bot.relay import OutboxRelay
from bot.routing import build_routing
from bot.scheduler import Jobs, Scheduler, worker_name
from bot.settings import Settings
from bot.worker import InboxWorker
from channels import delivery
from channels.base import OutboundMessage
from core.errors import ConfigError
from storage import catalog, inbox, migrate, secrets
from storage.engine import Database, create_database, one_at_a_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pipeline:
    """The background halves of the message pipeline (tests drive them with ``run_once``)."""

    worker: InboxWorker
    relay: OutboxRelay


PIPELINE = web.AppKey("pipeline", Pipeline)


CONFIG_LOCK = 7_215_002  # advisory lock id (storage.migrate holds 7_215_001)


async def prepare_database(settings: Settings, clock: Clock) -> Database:
    """Open the database, bring SQLite up to date, refuse an out-of-date PostgreSQL, load config."""
    db = create_database(
        settings.database.url,
        echo=settings.database.echo,
        busy_timeout_ms=settings.database.busy_timeout_ms,
        pool_size=settings.database.pool_size,
    )
    try:
        if db.is_sqlite:
            await migrate.upgrade(db.engine)
        elif await migrate.pending(db.engine):
            raise ConfigError("the database schema is not up to date: run `frontdesk migrate` first")
        await load_config(db, settings, clock)
    except BaseException:
        await db.dispose()
        raise
    return db


async def load_config(db: Database, settings: Settings, clock: Clock) -> None:
    """Declare the config's businesses, staff, services and agents (idempotent)."""
    now = clock()
    async with db.writing() as session:
        # Several workers starting at once on a new database would each insert the businesses.
        await one_at_a_time(session, CONFIG_LOCK)
        for business in settings.businesses:
            tenant_id = await catalog.sync_business(session, business, now)
            for agent in business.agents:
                await catalog.upsert_agent(session, tenant_id, agent.slug, agent.name, agent.persona)


async def link_secret(settings: Settings, db: Database) -> bytes:
    """The key of customers' manage links: from the environment, else kept in the database."""
    configured = settings.security.link_secret
    return configured.get_secret_value().encode() if configured else await secrets.get_or_create(db, "manage_links")


async def build_dialogue(
    settings: Settings, db: Database, clock: Clock, http: httpx.AsyncClient
) -> tuple[DialogueManager, PaymentDesk]:
    """The dialogue manager and the payment desk, wired both ways: the manager opens checkouts,
    and payment outcomes arrive in the customer's conversation through the manager. The payment
    desk also makes the bookings' manage links that confirmations carry (the chat's through it)."""
    local = settings.payments.local.webhook_secret
    payments = PaymentDesk(
        db=db,
        settings=settings,
        clock=clock,
        http=http,
        notify=unwired_notify,
        local_secret=local.get_secret_value().encode() if local else await secrets.get_or_create(db, "payments_local"),
        links=ManageLinks(await link_secret(settings, db), settings.server.public_url),
    )
    engine, fallback = build_engines(settings)
    dialogue = DialogueManager(
        db=db, settings=settings, clock=clock, engine=engine, fallback=fallback, payments=payments
    )

    async def notify(tenant_id: str, conversation_id: str, message: OutboundMessage) -> None:
        await dialogue.push(tenant_id, conversation_id, replace(message, purpose="purchase_update"))

    payments.set_notify(notify)
    return dialogue, payments


JOBS = web.AppKey("jobs", Jobs)


def create_app(settings: Settings, *, clock: Clock = system_clock) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[unexpected, measure, errors, api_auth],
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db = await prepare_database(settings, clock)
        links_key = await link_secret(settings, db)
        payments_http = httpx.AsyncClient(timeout=settings.payments.request_timeout_seconds)
        channels_http = delivery.client(settings.outbox.request_timeout_seconds)
        dialogue, payments = await build_dialogue(settings, db, clock, payments_http)
        metrics = Metrics()
        faults = Faults(settings.testing.fault_at)
        routing = await build_routing(settings, db, channels_http, clock)
        relay = OutboxRelay(
            db=db, channels=routing.by_agent, settings=settings.outbox, clock=clock, metrics=metrics, faults=faults
        )
        worker = InboxWorker(
            db=db,
            dialogue=dialogue,
            routing=routing,
            settings=settings.inbox,
            clock=clock,
            metrics=metrics,
            faults=faults,
        )
        dialogue.on_outbox = relay.wake
        app[CONTEXT] = AppContext(
            settings=settings,
            db=db,
            clock=clock,
            metrics=metrics,
            link_secret=links_key,
            dialogue=dialogue,
            visitor_secret=await secrets.get_or_create(db, "web_visitors"),
        )
        app[payment_routes.PAYMENTS] = payments
        app[webhooks.ROUTING] = routing
        app[webhooks.WAKE] = worker.wake
        app[webhooks.INBOX] = inbox.GroupCommit(db, clock)
        app[webhooks.FAULTS] = faults
        app[PIPELINE] = Pipeline(worker, relay)
        scheduler_id = worker_name()
        automation = Automations(
            db=db, settings=settings, clock=clock, pusher=dialogue, link_secret=links_key, worker=scheduler_id
        )
        app[AUTOMATIONS] = automation
        alerts_http = httpx.AsyncClient(timeout=10.0)
        senders = build_senders(settings.alerts, alerts_http, clock)
        jobs = Jobs(
            db=db,
            settings=settings,
            clock=clock,
            pusher=dialogue,
            automations=automation,
            alerts=AlertDesk(db=db, settings=settings, clock=clock, senders=senders),
            payments=payments,
            worker=scheduler_id,
        )
        app[JOBS] = jobs
        scheduler = Scheduler(jobs, settings)
        if settings.scheduler.enabled:
            scheduler.start()
        background = []
        if settings.testing.workers:
            background += [asyncio.create_task(worker.run()), asyncio.create_task(relay.run())]
        yield
        scheduler.stop()
        await scheduler.drain()
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await worker.drain()
        for sender in senders.values():
            closing = getattr(sender, "aclose", None)
            if closing is not None:
                await closing()
        await alerts_http.aclose()
        await payments.drain()
        await channels_http.aclose()
        await payments_http.aclose()
        await dialogue.engine.aclose()
        await db.dispose()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(api.routes)
    app.router.add_routes(api.manage_routes)
    app.router.add_routes(selfservice.routes)  # the customer's booking page behind a manage link
    app.router.add_routes(conversations.routes)
    app.router.add_routes(payment_routes.routes)
    app.router.add_routes(webhooks.routes)
    app.router.add_routes(automations.routes)
    webchat.install(app)  # web chat routes, and its sockets closed on shutdown
    analytics.install(app)  # /api/analytics/*: insights, CSV export, realtime stream
    dashboard.install(app)  # /dashboard: login sessions, pages and their data
    return app


async def healthz(request: web.Request) -> web.Response:
    try:
        async with context(request).db.reading() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return json_response({"status": "degraded", "database": "unreachable"}, 503)
    return json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(context(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
