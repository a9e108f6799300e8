"""Webhook throughput: a bare aiohttp JSON handler against the whole frontdesk pipeline.

Run from the repository root::

    .venv/bin/python bench/pipeline.py [--messages 2000] [--senders 500] [--concurrency 32]

One load generator drives both servers on loopback with the same signed WhatsApp text webhooks:

(a) a bare aiohttp handler that reads the body and parses the JSON, nothing else;
(b) ``frontdesk`` itself (real app factory, a SQLite file, the rules engine): verify → store in the
    inbox → 200, while the inbox worker runs each turn and the outbox relay delivers the replies to
    a fake Graph API on loopback.

Throughput of (b) counts a message once its reply has been delivered (the clock stops when the
inbox and the outbox are both empty), so it is end-to-end, not ack-only. It prints both rates, the
ratio (goal ≥ 0.30), ack latency p50/p99 of both, and checks every message is durable (one inbox
row and one stored message each, every reply delivered). Numbers are measured, never asserted.

Two references between (a) and (b) explain the gap: the *ceiling*, a handler that parses the JSON
and POSTs one reply to the fake Graph API with aiohttp's client and does nothing else (no server
that answers every message can beat it, since the load generator and the fake provider share this
machine's cores with it), and the *floor*, the same through the real WhatsApp adapter with its
signature check. Last, the database round trips per message of (b) and the CPU cost of the
cheapest round trip, against the time per message that the 0.30 goal leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import event, func, literal, select  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.context import CONTEXT  # noqa: E402
from bot.settings import Settings  # noqa: E402
from channels import delivery  # noqa: E402
from channels.base import OutboundMessage  # noqa: E402
from channels.registry import build  # noqa: E402
from storage import tables as t  # noqa: E402
from storage.engine import Database, create_database  # noqa: E402
from tests.conftest import demo_business  # noqa: E402
from tests.fakes.graph_server import FakeGraph  # noqa: E402
from tests.pipeline.conftest import (  # noqa: E402
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    meta_signature,
    wa_text,
    whatsapp_channel,
)

QUESTIONS = ("what are your opening hours?", "hi", "how much is a check-up?", "where are you?", "thanks")


def payloads(messages: int, senders: int) -> list[bytes]:
    now = int(time.time())
    bodies = []
    for i in range(messages):
        sender = f"+1415555{i % senders:04d}"
        text = QUESTIONS[i % len(QUESTIONS)]
        bodies.append(json.dumps(wa_text(f"wamid.bench.{i}", text, sender=sender, ts=now)).encode())
    return bodies


async def load(url: str | list[str], bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """POST every body with ``concurrency`` workers; returns (seconds, ack latencies). Several
    URLs (one per server process): the workers are spread over them in turn."""
    urls = [url] if isinstance(url, str) else url
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []

    async def worker(http: aiohttp.ClientSession, url: str) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
            started = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"webhook answered {resp.status}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(worker(http, urls[i % len(urls)]) for i in range(concurrency)))
    return time.perf_counter() - started, latencies


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.Response(text="EVENT_RECEIVED")

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", handler)
    return app


async def floor_app(graph_url: str, http: httpx.AsyncClient) -> web.Application:
    """The work no pipeline can skip, with nothing else: verify the signature, parse with the real
    adapter, send one reply through it to the fake Graph API. No database, no dialogue, no retries
    and no durability: an upper bound on what (b) could reach on this machine."""
    now = datetime.now(UTC)
    adapter = build("whatsapp", whatsapp_channel(graph_url), agent="acme-bot", http=http, clock=lambda: now)

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        adapter.verify(body, request.headers, str(request.url))
        for parsed in adapter.parse(body, request.headers):
            await adapter.send(parsed.sender, OutboundMessage("We open at 9:00."), last_inbound_at=now)
        return web.Response(text="EVENT_RECEIVED")

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", handler)
    return app


async def ceiling_app(graph_url: str, http: aiohttp.ClientSession) -> web.Application:
    """Less than any replying server can do: parse the JSON and POST one reply to the fake Graph
    API with aiohttp's own client, no signature check, no adapter, nothing stored. Whatever (b)
    does on top of this, it cannot be faster: this is the ratio's ceiling on this machine."""
    url = f"{graph_url.rstrip('/')}/{PHONE_NUMBER_ID}/messages"
    headers = {"Authorization": f"Bearer {WA_TOKEN}"}

    async def handler(request: web.Request) -> web.Response:
        for entry in json.loads(await request.read())["entry"]:
            for change in entry["changes"]:
                for message in change["value"].get("messages", []):
                    reply = {"messaging_product": "whatsapp", "to": message["from"], "text": {"body": "9:00."}}
                    async with http.post(url, json={**reply, "type": "text"}, headers=headers) as answer:
                        await answer.read()
                        if answer.status != 200:
                            raise RuntimeError(f"the fake Graph API answered {answer.status}")
        return web.Response(text="EVENT_RECEIVED")

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", handler)
    return app


async def drained(db: Database, expected: int, limit_seconds: float) -> float:
    """Seconds until every inbox row is finished and the outbox has nothing left to send (asked on
    a connection of its own, so these polls are not counted as the pipeline's statements)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_seconds:
        async with db.reading() as session:
            open_inbox = await session.scalar(
                select(func.count()).select_from(t.InboxItem).where(t.InboxItem.state.in_(("received", "processing")))
            )
            total = await session.scalar(select(func.count()).select_from(t.InboxItem))
            open_outbox = await session.scalar(
                select(func.count()).select_from(t.OutboxItem).where(t.OutboxItem.state.in_(("pending", "sending")))
            )
        if total == expected and not open_inbox and not open_outbox:
            return time.perf_counter() - started
        await asyncio.sleep(0.25)  # each poll counts whole tables: often enough, and cheap
    raise RuntimeError("the pipeline did not drain in time")


class StatementCount:
    """Statements the app's engine sends to the database (every round trip, BEGIN and COMMIT too)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._seen)
        event.listen(db.engine.sync_engine, "commit", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1


async def statement_cpu_ms(db: Database, repeat: int = 2000) -> float:
    """CPU milliseconds of the cheapest statement there is (``SELECT 1``) through the app's own
    SQLAlchemy async engine and driver: what each of a turn's round trips costs at least."""
    async with db.reading() as session:
        await session.execute(select(literal(1)))
        started = time.process_time()
        for _ in range(repeat):
            await session.execute(select(literal(1)))
        return (time.process_time() - started) * 1000 / repeat


@dataclass(frozen=True, slots=True)
class Run:
    """One timed run of (b)."""

    ack_seconds: float
    latencies: list[float]
    full_seconds: float
    tally: tuple[int, int, int]  # messages in, replies stored, replies sent
    statements: float | None = None  # per message, when (b) ran in this process
    statement_ms: float | None = None


async def tally(db: Database) -> tuple[int, int, int]:
    async with db.reading() as session:
        inbound = await session.scalar(select(func.count()).select_from(t.Message).where(t.Message.direction == "in"))
        outbound = await session.scalar(select(func.count()).select_from(t.Message).where(t.Message.direction == "out"))
        sent = await session.scalar(select(func.count()).select_from(t.OutboxItem).where(t.OutboxItem.state == "sent"))
    return int(inbound or 0), int(outbound or 0), int(sent or 0)


def bench_business(channel: dict[str, Any]) -> dict[str, Any]:
    business = demo_business()
    business["agents"] = [{"slug": "acme-bot", "name": "Ada", "channels": {"whatsapp": channel}}]
    return business


BENCH_DIALOGUE = {"engine": "rules", "rate_limit": {"burst": 1000, "per_minute": 1000}}


async def in_process(database_url: str, graph_url: str, bodies: list[bytes], concurrency: int) -> Run:
    """(b) in this process, through the real app factory (statements counted)."""
    settings = Settings(
        database={"url": database_url},
        dialogue=BENCH_DIALOGUE,
        businesses=[bench_business(whatsapp_channel(graph_url))],
        logging={"level": "WARNING"},
    )
    app = create_app(settings)
    runner, url = await serve(app)
    db = app[CONTEXT].db
    poll = create_database(settings.database.url, pool_size=1)
    statements = StatementCount(db)
    started = time.perf_counter()
    ack_seconds, latencies = await load(f"{url}/webhooks/whatsapp", bodies, concurrency)
    await drained(poll, len(bodies), limit_seconds=600)
    full_seconds = time.perf_counter() - started
    per_message = statements.count / len(bodies)
    statement_ms = await statement_cpu_ms(db)
    await poll.engine.dispose()
    counts = await tally(db)
    await runner.cleanup()
    return Run(ack_seconds, latencies, full_seconds, counts, per_message, statement_ms)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def in_processes(
    count: int, database_url: str, graph_url: str, bodies: list[bytes], concurrency: int, tmp: Path
) -> Run:
    """(b) as ``count`` real ``frontdesk serve`` processes on one database, each with its own inbox
    worker and outbox relay (how it runs at scale), the load spread over them."""
    channel = {
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "${WA_ACCESS_TOKEN}",
        "app_secret": "${META_APP_SECRET}",
        "verify_token": "${META_VERIFY_TOKEN}",
        "api_base_url": graph_url,
    }
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": database_url},
                "dialogue": BENCH_DIALOGUE,
                "logging": {"level": "WARNING"},
                "businesses": [bench_business(channel)],
            }
        )
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_") and k != "ANTHROPIC_API_KEY"}
    environ.update(WA_ACCESS_TOKEN=WA_TOKEN, META_APP_SECRET=APP_SECRET, META_VERIFY_TOKEN=VERIFY_TOKEN)
    command = [sys.executable, "-m", "bot.cli"]
    migrated = await asyncio.create_subprocess_exec(
        *command, "migrate", "--config", str(config), cwd=ROOT, env=environ, stdout=asyncio.subprocess.DEVNULL
    )
    if await migrated.wait() != 0:
        raise RuntimeError("frontdesk migrate failed")
    ports = [_free_port() for _ in range(count)]
    servers = [
        await asyncio.create_subprocess_exec(
            *command,
            "serve",
            "--config",
            str(config),
            cwd=ROOT,
            env={**environ, "FRONTDESK_SERVER__HOST": "127.0.0.1", "FRONTDESK_SERVER__PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL,
        )
        for port in ports
    ]
    poll = create_database(database_url, pool_size=1)
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        await _healthy(urls)
        started = time.perf_counter()
        ack_seconds, latencies = await load([f"{url}/webhooks/whatsapp" for url in urls], bodies, concurrency)
        await drained(poll, len(bodies), limit_seconds=600)
        full_seconds = time.perf_counter() - started
        counts = await tally(poll)
    finally:
        await poll.engine.dispose()
        for server in servers:
            with contextlib.suppress(ProcessLookupError):  # one that died on its own
                server.terminate()
        for server in servers:
            await server.wait()
    return Run(ack_seconds, latencies, full_seconds, counts)


async def _healthy(urls: list[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        for url in urls:
            while True:
                try:
                    async with http.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not come up")
                await asyncio.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> int:
    console = Console()
    bodies = payloads(args.messages, args.senders)
    graph = FakeGraph(whatsapp={PHONE_NUMBER_ID: WA_TOKEN})
    await graph.start()

    # The references are short runs: each is timed three times and its median taken, round-robin so
    # a noisy moment of the machine does not land on one of them only.
    runs: dict[str, list[tuple[float, list[float]]]] = {"bare": [], "floor": [], "ceiling": []}
    async with delivery.client(10.0) as http, aiohttp.ClientSession() as raw:
        apps = {
            "bare": await bare_app(),
            "floor": await floor_app(graph.base_url, http),
            "ceiling": await ceiling_app(graph.base_url, raw),
        }
        for _ in range(3):
            for name, reference in apps.items():
                runner, url = await serve(reference)
                await load(f"{url}/webhooks/whatsapp", bodies[:200], args.concurrency)  # warm-up
                runs[name].append(await load(f"{url}/webhooks/whatsapp", bodies, args.concurrency))
                await runner.cleanup()
    bare_seconds, bare_latency = statistics.median_low(runs["bare"])
    floor_seconds, _ = statistics.median_low(runs["floor"])
    ceiling_seconds, _ = statistics.median_low(runs["ceiling"])
    graph.sent.clear()

    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        if args.processes:
            run = await in_processes(args.processes, database_url, graph.base_url, bodies, args.concurrency, Path(tmp))
        else:
            run = await in_process(database_url, graph.base_url, bodies, args.concurrency)
    await graph.close()
    inbound, outbound, sent = run.tally

    bare_rate = len(bodies) / bare_seconds
    full_rate = len(bodies) / run.full_seconds
    durable = inbound == len(bodies) and sent == outbound == len(graph.sent)
    where = f"{args.processes} `frontdesk serve` processes" if args.processes else "frontdesk in this process"
    table = Table(
        title=f"{len(bodies)} signed WhatsApp webhooks, {args.senders} senders, {args.concurrency} in flight ({where})"
    )
    for column in ("server", "messages/s", "ack p50 ms", "ack p99 ms"):
        table.add_column(column, justify="right" if column != "server" else "left")
    table.add_row(
        "bare aiohttp (read + json)",
        f"{bare_rate:,.0f}",
        f"{pct(bare_latency, 0.5):.1f}",
        f"{pct(bare_latency, 0.99):.1f}",
    )
    table.add_row(
        "frontdesk (store → turn → reply delivered)",
        f"{full_rate:,.0f}",
        f"{pct(run.latencies, 0.5):.1f}",
        f"{pct(run.latencies, 0.99):.1f}",
    )
    console.print(table)
    ack_rate = len(bodies) / run.ack_seconds
    console.print(
        f"acks alone (turns running alongside): {ack_rate:,.0f}/s, {ack_rate / bare_rate:.2f} of bare;"
        f" replies delivered: {sent} of {outbound}"
    )
    console.print(f"end to end: {1000 / full_rate:.1f} ms per message (store → turn → reply delivered)")
    floor_rate = len(bodies) / floor_seconds
    ceiling_rate = len(bodies) / ceiling_seconds
    console.print(
        f"floor (verify + parse + one send through the WhatsApp adapter, no database, no dialogue):"
        f" {floor_rate:,.0f}/s, {floor_rate / bare_rate:.2f} of bare"
    )
    console.print(
        f"ceiling (json.loads + one POST with aiohttp's client, nothing else): {ceiling_rate:,.0f}/s,"
        f" {ceiling_rate / bare_rate:.2f} of bare: no one-process server that answers each message beats it here"
    )
    budget_ms = 1000 / (0.30 * bare_rate)
    if run.statements is not None and run.statement_ms is not None:  # counted in this process only
        console.print(
            f"database round trips: {run.statements:.1f} per message; the cheapest one (SELECT 1 through"
            f" SQLAlchemy async and the driver) costs {run.statement_ms:.2f} ms of CPU, and the goal leaves"
            f" {budget_ms:.2f} ms per message for everything (≈ {budget_ms / run.statement_ms:.1f} round trips)"
        )
    console.print(f"ratio full / bare: {full_rate / bare_rate:.2f} (goal ≥ 0.30)")
    console.print(f"every message durable: {'yes' if durable else 'NO'} (inbound stored {inbound} of {len(bodies)})")
    return 0 if durable else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--database-url", help="an empty database, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="run (b) as this many `frontdesk serve` processes on the one database (0: in this process)",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
