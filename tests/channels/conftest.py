"""Channel-test fixtures: recorded payloads, a frozen clock, an httpx client and the fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from channels import delivery
from tests.conftest import T0, FrozenClock
from tests.fakes.graph_server import FakeGraph
from tests.fakes.telegram_server import FakeTelegram

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"


def payload(channel: str, name: str) -> bytes:
    """A recorded payload's exact bytes (signed at test time, never stored signed)."""
    return (PAYLOADS / channel / name).read_bytes()


def payload_names(channel: str, suffix: str = ".json") -> list[str]:
    return sorted(p.name for p in (PAYLOADS / channel).glob(f"*{suffix}"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with delivery.client(2.0) as client:
        yield client


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph()
    await fake.start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def telegram_api() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.close()
