"""``frontdesk chat``: talk to an agent from the terminal, interactively or piped."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from bot.dialogue.manager import DialogueManager, Incoming
from bot.settings import Settings
from channels import console
from channels.base import Option
from core.errors import ConfigError
from storage.catalog import agent_by_slug


async def chat(
    settings: Settings, agent: str | None, *, sender: str | None, timezone: str | None, stdin: TextIO, stdout: TextIO
) -> int:
    import httpx

    from bot.app import build_dialogue, prepare_database
    from bot.context import system_clock

    slug = agent or _first_agent(settings)
    db = await prepare_database(settings, system_clock)
    http = httpx.AsyncClient(timeout=settings.payments.request_timeout_seconds)
    manager: DialogueManager | None = None
    try:
        async with db.reading() as session:
            info = await agent_by_slug(session, slug)
        manager, payments = await build_dialogue(settings, db, system_clock, http)
        engine = manager.engine
        who = sender or f"terminal:{getpass.getuser()}"
        conversation = await manager.conversation_for(slug, "terminal", who)
        seen = 0
        if conversation is not None:  # back in an old chat: show what people or payments said since
            history = await manager.messages(conversation, limit=10_000)
            last_in = max((m.seq for m in history if m.direction == "in"), default=0)
            for stored in history:
                if stored.seq > last_in and stored.author != "bot":
                    print(console.render(stored.message, info.name), file=stdout, flush=True)
            seen = max((m.seq for m in history), default=0)
        interactive = stdin.isatty()
        if interactive:
            print(f"Talking to {info.name} ({slug}) with the {engine.name} engine. Ctrl-D to leave.", file=stdout)
        options: tuple[Option, ...] = ()
        loop = asyncio.get_running_loop()
        while True:
            if interactive:
                print("you> ", end="", file=stdout, flush=True)
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            text = line.rstrip("\n")
            if not text.strip():
                continue
            if not interactive:
                print(f"you> {text}", file=stdout)
            picked = console.pick(text, options)
            incoming = Incoming(
                agent=slug,
                channel="terminal",
                sender=who,
                text=picked.label if picked else text,
                choice=picked.id if picked else None,
                timezone=timezone,
            )
            result = await manager.handle(incoming)
            await payments.drain()  # a payment link's own work finishes before the next line is read
            # everything after what was last shown: this turn's replies, and anything pushed meanwhile
            # (a person's reply, a payment confirmation from the server's webhook)
            for stored in await manager.messages(result.conversation_id, seen):
                seen = stored.seq
                if stored.direction != "out":
                    continue
                message = stored.message
                print(console.render(message, info.name), file=stdout, flush=True)
                if message.options:
                    options = message.options
        return 0
    finally:
        if manager is not None:
            await manager.engine.aclose()
        await http.aclose()
        await db.dispose()


def _first_agent(settings: Settings) -> str:
    for business in settings.businesses:
        for agent in business.agents:
            return agent.slug
    raise ConfigError("no agent is configured: add one under businesses[].agents")


def run(settings: Settings, agent: str | None, sender: str | None, timezone: str | None) -> int:
    return asyncio.run(chat(settings, agent, sender=sender, timezone=timezone, stdin=sys.stdin, stdout=sys.stdout))
