"""The message pipeline under test: the real app, a real SQLite file, a fake Graph API on loopback,
WhatsApp webhooks signed at test time. Background loops are off; tests drive the worker and the
relay one pass at a time (``Harness.work``) so every count is deterministic."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import PIPELINE, Pipeline, create_app
from bot.context import CONTEXT
from bot.settings import Settings
from storage import tables as t
from storage.engine import Database
from tests.conftest import FrozenClock, demo_business, other_business
from tests.fakes.graph_server import FakeGraph

APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "verify-me"
PHONE_NUMBER_ID = "106540352242922"
WA_TOKEN = "wa-access-token"
CUSTOMER = "+14155550123"


def whatsapp_channel(base_url: str) -> dict[str, Any]:
    return {
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": WA_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "api_base_url": base_url,
    }


def pipeline_settings(url: str, graph_url: str, **extra: Any) -> Settings:
    business = demo_business()
    business["agents"] = [{"slug": "acme-bot", "name": "Ada", "channels": {"whatsapp": whatsapp_channel(graph_url)}}]
    extra.setdefault("testing", {"workers": False})
    extra.setdefault("database", {"url": url})
    return Settings(businesses=[business, other_business()], **extra)


def wa_text(wamid: str, text: str, *, sender: str = CUSTOMER, ts: int = 1772438400) -> dict[str, Any]:
    """A WhatsApp Cloud API text message notification, as Meta sends it."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                            "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": sender.lstrip("+")}],
                            "messages": [
                                {
                                    "from": sender.lstrip("+"),
                                    "id": wamid,
                                    "timestamp": str(ts),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def wa_status(wamid: str, status: str, *, ts: int = 1772438460) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                            "statuses": [
                                {
                                    "id": wamid,
                                    "status": status,
                                    "timestamp": str(ts),
                                    "recipient_id": CUSTOMER.lstrip("+"),
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def meta_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Harness:
    client: TestClient
    graph: FakeGraph
    clock: FrozenClock

    @property
    def db(self) -> Database:
        return self.client.server.app[CONTEXT].db

    @property
    def pipeline(self) -> Pipeline:
        return self.client.server.app[PIPELINE]

    async def post(self, payload: dict[str, Any] | bytes, *, signature: str | None = None, **headers: str) -> int:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json", **headers}
        if signature != "":
            sent["X-Hub-Signature-256"] = signature or meta_signature(body)
        resp = await self.client.post("/webhooks/whatsapp", data=body, headers=sent)
        await resp.read()
        return resp.status

    async def work(self) -> None:
        """Run the worker and the relay until nothing is left that is due now."""
        for _ in range(20):
            await self.pipeline.worker.run_once()
            if not await self.pipeline.relay.run_once():
                return

    async def count(self, model: Any, *where: Any) -> int:
        async with self.db.reading() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def outbox(self) -> list[t.OutboxItem]:
        async with self.db.reading() as session:
            return list(await session.scalars(select(t.OutboxItem).order_by(t.OutboxItem.id)))

    def sends(self) -> list[dict[str, Any]]:
        return [body for node, body in self.graph.sent if node == PHONE_NUMBER_ID]


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph(whatsapp={PHONE_NUMBER_ID: WA_TOKEN})
    await fake.start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def harness(aiohttp_client: Any, sqlite_url: str, graph: FakeGraph, clock: FrozenClock) -> Harness:
    client = await aiohttp_client(create_app(pipeline_settings(sqlite_url, graph.base_url), clock=clock))
    return Harness(client, graph, clock)
