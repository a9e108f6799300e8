"""Model calls per customer turn of the Claude engine in a scripted booking conversation.

Run from the repository root::

    .venv/bin/python bench/claude_turns.py

It loads the committed ``config.yaml`` (Sunrise Clinic, Asia/Kolkata, INR) into a temporary SQLite
file, points the real ``anthropic`` SDK at the fake Messages API of ``tests/fakes`` on loopback and
plays one web-chat conversation through the real dialogue manager: a greeting, "book a consultation
tomorrow afternoon", picking a time with name and phone, "yes", thanks. The fake model answers like
a well-behaved agent would (the tool calls it makes are scripted; its texts are built from the tool
results it receives). Per customer turn it prints the model calls, the tool calls, and the tokens
the fake counted (about four characters a token, prompt caching simulated from the cache
breakpoints the engine sets). No network, no API key.

Goal (from the issue): at most 2 model calls per customer turn on average. Reported, not asserted:
missing it still exits 0; a conversation that does not end in exactly one booking at the
catalogue's price exits 1.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bot.app import prepare_database  # noqa: E402
from bot.dialogue.claude import ClaudeEngine, TurnStats  # noqa: E402
from bot.dialogue.manager import DialogueManager, Incoming  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from storage import tables as t  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic, Recorded, Step, reply, tool_use  # noqa: E402

GOAL = 2.0
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday, 13:30 in Kolkata
AGENT = "sunrise"
Responder = Callable[[Recorded], Step]


def _offers(request: Recorded) -> list[dict[str, Any]]:
    for result in request.tool_results():
        data = result.get("data")
        if isinstance(data, dict) and data.get("offers"):
            return list(data["offers"])
    return []


class Script:
    """The fake model's side of the conversation; remembers the offer the customer picked."""

    def __init__(self) -> None:
        self.picked: dict[str, Any] = {}

    def list_offers(self, request: Recorded) -> Step:
        offers = _offers(request)
        times = ", ".join(o["when"].split(", ", 1)[-1] for o in offers)
        return reply(f"Tomorrow afternoon I can offer {times}. Which time suits you?")

    def pick(self, request: Recorded) -> Step:
        offer = self.picked
        return tool_use(
            "save_contact",
            {"name": "Priya Sharma", "phone": "98450 12345"},
            ("book_slot", {"offer_id": offer["offer_id"]}),
        )

    def propose(self, request: Recorded) -> Step:
        proposal = request.tool_results()[-1]["data"]["proposal"]
        return reply(
            f"Shall I book a {proposal['service']} on {proposal['when']} with {proposal['with']}? "
            f"The price is {proposal['price']}."
        )

    def confirm(self, request: Recorded) -> Step:
        return tool_use("book_slot", {"offer_id": self.picked["offer_id"]})

    def booked(self, request: Recorded) -> Step:
        booking = request.tool_results()[-1]["data"]["booked"]
        return reply(f"You're booked for {booking['when']} with {booking['with']}. Your reference is {booking['ref']}.")


async def run(console: Console) -> int:
    script = Script()
    stats: list[TurnStats] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeAnthropic() as fake:
            settings = load_settings(ROOT / "config.yaml", environ={})
            settings.database.url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            settings.anthropic.base_url = fake.url
            settings.anthropic.api_key = SecretStr("bench-key")
            db = await prepare_database(settings, lambda: NOW)
            engine = ClaudeEngine(settings, observer=stats.append)
            manager = DialogueManager(db=db, settings=settings, clock=lambda: NOW, engine=engine)
            turns: list[tuple[str, list[Step | Responder]]] = [
                ("Hi!", [reply("Hello! I'm Asha from Sunrise Clinic. How can I help you today?")]),
                (
                    "I'd like to book a consultation tomorrow afternoon",
                    [
                        tool_use("find_slots", {"service": "consultation", "date": "2026-03-03", "after": "12:00"}),
                        script.list_offers,
                    ],
                ),
                ("", [script.pick, script.propose]),  # text filled in once the offers are known
                ("yes", [script.confirm, script.booked]),
                ("Thanks a lot!", [reply("You're welcome, Priya! See you tomorrow.")]),
            ]
            rows = []
            for index, (said, steps) in enumerate(turns):
                if index == 2:
                    offers = _offers(fake.requests[-1])
                    script.picked = offers[min(3, len(offers) - 1)]
                    said = f"{script.picked['when'].split(', ', 1)[-1]} please. I'm Priya Sharma, 98450 12345"
                fake.push(*steps)
                before = len(stats)
                result = await manager.handle(
                    Incoming(AGENT, "web", "bench-visitor", text=said, timezone="Asia/Kolkata")
                )
                turn = stats[before] if len(stats) > before else None
                rows.append((said, result.replies[0].text if result.replies else "", turn))
            async with db.reading() as session:
                booked = list(await session.scalars(select(t.Appointment)))
                services = {s.id: s for s in await session.scalars(select(t.Service))}
            await engine.aclose()
            await db.dispose()
            unplayed = list(fake.unplayed)

    table = Table(title="Claude engine: scripted booking conversation (fake Messages API)")
    for column in ("customer", "reply", "model calls", "tool calls", "in tokens", "cache reads", "out tokens"):
        table.add_column(
            column, justify="right" if "calls" in column or "tok" in column or "cache" in column else "left"
        )
    for said, answer, turn in rows:
        if turn is None:
            table.add_row(said, answer, "-", "-", "-", "-", "-")
            continue
        table.add_row(
            said,
            answer,
            str(turn.model_calls),
            f"{turn.tool_calls} {','.join(turn.tools)}".strip(),
            str(turn.input_tokens),
            str(turn.cache_read_tokens),
            str(turn.output_tokens),
        )
    console.print(table)
    played = [turn for _, _, turn in rows if turn is not None]
    calls = sum(t.model_calls for t in played)
    average = calls / len(rows)
    tasks = [turn for said, _, turn in rows[1:4] if turn is not None]
    task_average = sum(t.model_calls for t in tasks) / 3
    console.print(
        f"customer turns: {len(rows)}   model calls: {calls}   average per turn: {average:.2f} "
        f"(booking turns only: {task_average:.2f})   goal ≤ {GOAL:.0f}: {'met' if average <= GOAL else 'MISSED'}"
    )
    console.print(
        f"tool calls: {sum(t.tool_calls for t in played)}   tokens in: {sum(t.input_tokens for t in played)} "
        f"(cache reads {sum(t.cache_read_tokens for t in played)})   out: {sum(t.output_tokens for t in played)}"
    )
    ok = len(booked) == 1 and booked[0].price == services[booked[0].service_id].price and not unplayed
    if ok:
        appointment = booked[0]
        console.print(
            f"booked: {appointment.starts_at.isoformat()} at {appointment.price} {appointment.currency} "
            "(the catalogue's price)"
        )
    else:
        console.print(f"[red]expected one booking at the catalogue price; got {len(booked)}; unplayed {unplayed}")
    return 0 if ok else 1


def main() -> int:
    console = Console() if sys.stdout.isatty() else Console(width=140)
    return asyncio.run(run(console))


if __name__ == "__main__":
    sys.exit(main())
