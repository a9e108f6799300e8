"""Insights benchmark: does the agent dashboard stay fast as history grows 10×?

Generates a history into a SQLite file — 10k conversations / 100k messages, then 100k
conversations / 1M messages, spread over the same 180 days and 7 channels — with bulk inserts of
the raw rows (conversations, messages, customers, appointments, purchases, funnel events and the
per-row facts), then fills the daily/hourly roll-ups with :func:`storage.insights.rebuild`, the
function production uses for backfills and repairs. It then times
:func:`storage.insights.dashboard` (the body of ``GET /api/analytics/dashboard/{agentId}``) over the
last 90 days, median of several runs, at both sizes and prints the ratio (goal ≤ 1.5).

    PYTHONPATH=. python bench/insights.py [--sizes 10000,100000] [--runs 9] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, insert, select

from bot.app import prepare_database
from bot.settings import Settings
from storage import insights
from storage import tables as t

CHANNELS = ("web", "whatsapp", "messenger", "instagram", "sms", "telegram", "terminal")
DAYS = 180
MESSAGES_PER_CONVERSATION = 10  # 5 in, 5 out
NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Kolkata")
BATCH = 1000  # conversations per bulk insert


def business() -> dict[str, Any]:
    week = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
    return {
        "slug": "bench",
        "name": "Bench Clinic",
        "timezone": ZONE.key,
        "currency": "INR",
        "staff": [{"slug": "dr-a", "name": "Dr A", "hours": week}, {"slug": "dr-b", "name": "Dr B", "hours": week}],
        "services": [
            {
                "slug": "consult",
                "name": "Consultation",
                "duration_minutes": 30,
                "price": 80000,
                "staff": ["dr-a", "dr-b"],
            },
            {"slug": "followup", "name": "Follow-up", "duration_minutes": 15, "price": 40000, "staff": ["dr-a"]},
        ],
        "agents": [{"slug": "bench-bot", "name": "Asha"}, {"slug": "bench-two", "name": "Ravi"}],
    }


def _id() -> str:
    return str(uuid.uuid4())


def generate(path: Path, conversations: int, ids: dict[str, Any], seed: int = 7) -> None:
    """Bulk-insert the raw history (synchronous SQLAlchemy Core executemany: the fast path)."""
    rng = random.Random(seed)
    engine = create_engine(f"sqlite:///{path}")
    start = NOW - timedelta(days=DAYS)
    statuses = ["completed"] * 7 + ["missed", "cancelled", "scheduled"]
    with (
        engine.begin() as conn,
        Progress(
            TextColumn(f"[bold]{conversations:,} conversations"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as progress,
    ):
        task = progress.add_task("generate", total=conversations)
        for first in range(0, conversations, BATCH):
            rows: dict[str, list[dict[str, Any]]] = {
                k: [] for k in ("conv", "msg", "fact", "funnel", "cust", "appt", "iappt", "pur")
            }
            for n in range(first, min(first + BATCH, conversations)):
                conv_id, agent_id = _id(), ids["agents"][n % 2]
                channel = CHANNELS[n % len(CHANNELS)]
                began = start + timedelta(seconds=rng.randrange(DAYS * 86400))
                day = began.astimezone(ZONE).date()
                at = began
                in_count = out_count = responses = response_sum = 0
                for seq in range(1, MESSAGES_PER_CONVERSATION + 1):
                    inbound = seq % 2 == 1
                    response = None if inbound else rng.randint(200, 4000)
                    if response is not None:
                        responses += 1
                        response_sum += response
                    rows["msg"].append(
                        {
                            "id": _id(),
                            "tenant_id": ids["tenant"],
                            "conversation_id": conv_id,
                            "seq": seq,
                            "direction": "in" if inbound else "out",
                            "author": "customer" if inbound else "bot",
                            "text": "hello" if inbound else "hi!",
                            "payload": {},
                            "status": "sent",
                            "response_ms": response,
                            "created_at": at,
                        }
                    )
                    in_count += int(inbound)
                    out_count += int(not inbound)
                    at += timedelta(seconds=rng.randint(5, 90))
                last = at - timedelta(seconds=0)
                books = rng.random() < 0.3
                rating = rng.choice([None, None, 3, 4, 5, 5])
                customer_id = None
                if books:
                    customer_id = _id()
                    rows["cust"].append(
                        {
                            "id": customer_id,
                            "tenant_id": ids["tenant"],
                            "name": f"C{n}",
                            "phone": f"+9198{n:08d}",
                            "created_at": began,
                        }
                    )
                rows["conv"].append(
                    {
                        "id": conv_id,
                        "tenant_id": ids["tenant"],
                        "agent_id": agent_id,
                        "channel": channel,
                        "sender": f"s{n}",
                        "customer_id": customer_id,
                        "status": "active",
                        "state": {},
                        "locale": "en",
                        "opted_out": False,
                        "next_seq": MESSAGES_PER_CONVERSATION + 1,
                        "bucket_tokens": 0.0,
                        "throttle_noticed": False,
                        "satisfaction": rating,
                        "started_at": began,
                        "last_activity_at": last,
                    }
                )
                steps = ["conversation_started"]
                if rng.random() < 0.7:
                    steps.append("service_selected")
                    if rng.random() < 0.7:
                        steps.append("slot_selected")
                if books:
                    steps += ["slot_selected", "details_given", "booked"]
                rows["fact"].append(
                    {
                        "conversation_id": conv_id,
                        "tenant_id": ids["tenant"],
                        "agent_id": agent_id,
                        "channel": channel,
                        "day": day,
                        "started_at": began,
                        "last_at": last,
                        "messages_in": in_count,
                        "messages_out": out_count,
                        "responses": responses,
                        "response_ms_sum": response_sum,
                        "sentiment_hits": 1,
                        "sentiment_milli_sum": rng.randint(-500, 900),
                        "satisfaction": rating,
                        "completed": books,
                        "escalated": rng.random() < 0.05,
                        "conversion_type": "appointment" if books else None,
                        "conversion_value": 80000 if books else None,
                        "intents": [],
                        "tags": [],
                        "follow_ups": [],
                    }
                )
                if books:
                    appt_id = _id()
                    starts = began + timedelta(days=1)
                    status = rng.choice(statuses)
                    rows["appt"].append(
                        {
                            "id": appt_id,
                            "tenant_id": ids["tenant"],
                            "service_id": ids["service"],
                            "customer_id": customer_id,
                            "staff_id": ids["staff"],
                            "starts_at": starts,
                            "ends_at": starts + timedelta(minutes=30),
                            "status": status,
                            "price": 80000,
                            "currency": "INR",
                            "created_at": began,
                            "updated_at": began,
                        }
                    )
                    rows["iappt"].append(
                        {
                            "appointment_id": appt_id,
                            "tenant_id": ids["tenant"],
                            "agent_id": agent_id,
                            "channel": channel,
                            "conversation_id": conv_id,
                            "customer_id": customer_id,
                            "day": starts.astimezone(ZONE).date(),
                            "status": status,
                            "follow_ups": [],
                            "updated_at": began,
                        }
                    )
                    paid = rng.random() < 0.8
                    if paid:
                        steps.append("paid")
                    rows["pur"].append(
                        {
                            "id": _id(),
                            "tenant_id": ids["tenant"],
                            "appointment_id": appt_id,
                            "customer_id": customer_id,
                            "conversation_id": conv_id,
                            "agent_id": agent_id,
                            "channel": channel,
                            "locale": "en",
                            "purchase_type": "consultation",
                            "items": [],
                            "amount": 80000,
                            "currency": "INR",
                            "provider": "local",
                            "attempt": 1,
                            "event_seq": 1,
                            "status": "completed" if paid else "failed",
                            "refund_status": "none",
                            "refund_amount": 0,
                            "created_at": began,
                            "updated_at": began,
                            "completed_at": began if paid else None,
                        }
                    )
                for step in dict.fromkeys(steps):
                    rows["funnel"].append(
                        {
                            "id": _id(),
                            "tenant_id": ids["tenant"],
                            "conversation_id": conv_id,
                            "agent_id": agent_id,
                            "channel": channel,
                            "day": day,
                            "step": step,
                            "at": began,
                        }
                    )
            for key, model in (
                ("cust", t.Customer),
                ("conv", t.Conversation),
                ("msg", t.Message),
                ("fact", t.InsightConversation),
                ("funnel", t.FunnelEvent),
                ("appt", t.Appointment),
                ("iappt", t.InsightAppointment),
                ("pur", t.Purchase),
            ):
                if rows[key]:
                    conn.execute(insert(model), rows[key])
            progress.advance(task, min(BATCH, conversations - first))
    engine.dispose()


async def prepare(path: Path) -> dict[str, Any]:
    settings = Settings(database={"url": f"sqlite+aiosqlite:///{path}"}, businesses=[business()])
    db = await prepare_database(settings, lambda: NOW)
    try:
        async with db.reading() as session:
            tenant = await session.scalar(select(t.Business.id).where(t.Business.slug == "bench"))
            agents = list(
                await session.scalars(select(t.Agent.id).where(t.Agent.tenant_id == tenant).order_by(t.Agent.slug))
            )
            service = await session.scalar(select(t.Service.id).where(t.Service.slug == "consult"))
            staff = await session.scalar(select(t.Staff.id).where(t.Staff.slug == "dr-a"))
        return {"tenant": tenant, "agents": agents, "service": service, "staff": staff}
    finally:
        await db.dispose()


async def rollups_and_timing(path: Path, ids: dict[str, Any], runs: int) -> tuple[float, float, int]:
    settings = Settings(database={"url": f"sqlite+aiosqlite:///{path}"}, businesses=[business()])
    db = await prepare_database(settings, lambda: NOW)
    try:
        began = time.perf_counter()
        async with db.writing() as session:
            rows = await insights.rebuild(session, ids["tenant"])
        rebuild_s = time.perf_counter() - began
        end = NOW.astimezone(ZONE).date()
        first: date = end - timedelta(days=89)
        timings = []
        for _ in range(runs + 1):
            began = time.perf_counter()
            async with db.reading() as session:
                data = await insights.dashboard(session, ids["tenant"], "bench-bot", start=first, end=end, now=NOW)
            timings.append(time.perf_counter() - began)
        assert data["conversationMetrics"]["totalConversations"] > 0
        return statistics.median(timings[1:]), rebuild_s, rows
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="conversations per run (10 messages each)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--dir", default="/tmp")
    args = parser.parse_args()
    console = Console()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        path = Path(args.dir) / f"frontdesk-insights-bench-{size}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        ids = asyncio.run(prepare(path))
        began = time.perf_counter()
        generate(path, size, ids)
        generated = time.perf_counter() - began
        median_s, rebuild_s, daily_rows = asyncio.run(rollups_and_timing(path, ids, args.runs))
        results.append((size, size * MESSAGES_PER_CONVERSATION, generated, rebuild_s, daily_rows, median_s))
    table = Table(title="GET /api/analytics/dashboard/{agentId} (storage.insights.dashboard), last 90 days")
    for column in ("conversations", "messages", "generate s", "rebuild s", "daily rows", "dashboard median ms"):
        table.add_column(column, justify="right")
    for size, messages, generated, rebuild_s, daily_rows, median_s in results:
        table.add_row(
            f"{size:,}",
            f"{messages:,}",
            f"{generated:.1f}",
            f"{rebuild_s:.1f}",
            f"{daily_rows:,}",
            f"{median_s * 1000:.1f}",
        )
    console.print(table)
    if len(results) >= 2:
        ratio = results[-1][-1] / results[0][-1]
        verdict = "meets" if ratio <= 1.5 else "misses"
        console.print(f"10× history costs {ratio:.2f}× the time ({verdict} the ≤ 1.5× goal)")


if __name__ == "__main__":
    main()
