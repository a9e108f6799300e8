"""Which agent a provider event is for, and which adapter speaks for an agent on a channel.

Built once at startup from the configuration: every enabled provider channel of every agent gets
its adapter (with the shared httpx client); the routing key is what the provider addresses
(WhatsApp phone_number_id, page id, Instagram account id, the Twilio number, the Telegram path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import select

from bot.settings import Settings
from channels import registry
from channels.base import Channel
from storage import tables as t
from storage.engine import Database


@dataclass(frozen=True, slots=True)
class Route:
    adapter: Channel
    tenant_id: str
    agent_id: str
    agent: str  # slug


@dataclass
class Routing:
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)  # (channel, target) → route
    by_agent: dict[tuple[str, str], Channel] = field(default_factory=dict)  # (agent id, channel) → adapter

    def add(self, route: Route) -> None:
        self.routes[(route.adapter.name, route.adapter.target)] = route
        self.by_agent[(route.agent_id, route.adapter.name)] = route.adapter

    def target(self, channel: str, target: str) -> Route | None:
        return self.routes.get((channel, target))

    def channel(self, channel: str) -> list[Route]:
        return [r for (name, _), r in self.routes.items() if name == channel]

    def adapter(self, agent_id: str, channel: str) -> Channel | None:
        return self.by_agent.get((agent_id, channel))


async def build_routing(
    settings: Settings, db: Database, http: httpx.AsyncClient, clock: Callable[[], datetime]
) -> Routing:
    routing = Routing()
    async with db.reading() as session:
        agents = {
            slug: (agent_id, tenant_id)
            for slug, agent_id, tenant_id in (
                await session.execute(select(t.Agent.slug, t.Agent.id, t.Agent.tenant_id))
            ).all()
        }
    for business in settings.businesses:
        for agent in business.agents:
            agent_id, tenant_id = agents[agent.slug]
            for name, config in agent.channels.items():
                if name not in registry.ADAPTERS or not config.get("enabled", True):
                    continue
                adapter = registry.build(name, config, agent=agent.slug, http=http, clock=clock)
                routing.add(Route(adapter, tenant_id, agent_id, agent.slug))
    return routing
