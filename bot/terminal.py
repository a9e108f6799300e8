"""``frontdesk chat``: talk to an agent from the terminal, interactively or piped."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from bot.dialogue.engines import build_engines
from bot.dialogue.manager import DialogueManager, Incoming
from bot.settings import Settings
from channels import console
from channels.base import Option
from core.errors import ConfigError
from storage.catalog import agent_by_slug


async def chat(
    settings: Settings, agent: str | None, *, sender: str | None, timezone: str | None, stdin: TextIO, stdout: TextIO
) -> int:
    from bot.app import prepare_database
    from bot.context import system_clock

    slug = agent or _first_agent(settings)
    db = await prepare_database(settings, system_clock)
    try:
        async with db.reading() as session:
            info = await agent_by_slug(session, slug)
        engine, fallback = build_engines(settings)
        manager = DialogueManager(db=db, settings=settings, clock=system_clock, engine=engine, fallback=fallback)
        who = sender or f"terminal:{getpass.getuser()}"
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
            for reply in result.replies:
                message = reply.message
                print(console.render(message, info.name), file=stdout, flush=True)
                if message.options:
                    options = message.options
        return 0
    finally:
        await db.dispose()


def _first_agent(settings: Settings) -> str:
    for business in settings.businesses:
        for agent in business.agents:
            return agent.slug
    raise ConfigError("no agent is configured: add one under businesses[].agents")


def run(settings: Settings, agent: str | None, sender: str | None, timezone: str | None) -> int:
    return asyncio.run(chat(settings, agent, sender=sender, timezone=timezone, stdin=sys.stdin, stdout=sys.stdout))
