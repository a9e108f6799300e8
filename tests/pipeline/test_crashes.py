"""kill -9 at each step of the pipeline, then a restart: nothing lost, nothing answered twice (R05–R08).

The server runs as a real ``frontdesk serve`` subprocess on a real SQLite file; ``testing.fault_at``
makes it SIGKILL itself at the named point. The fake Graph API runs in the test and counts sends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fakes.graph_server import FakeGraph
from tests.pipeline.conftest import APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, WA_TOKEN, meta_signature, wa_text

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp_path: Path, graph: FakeGraph) -> None:
        self.port = _free_port()
        self.db_path = tmp_path / "frontdesk.db"
        self.config = tmp_path / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "server": {"host": "127.0.0.1", "port": self.port, "public_url": f"http://127.0.0.1:{self.port}"},
                    "database": {"url": f"sqlite+aiosqlite:///{self.db_path}"},
                    "dialogue": {"engine": "rules"},
                    "businesses": [
                        {
                            "slug": "acme",
                            "name": "Acme Clinic",
                            "timezone": "UTC",
                            "currency": "EUR",
                            "staff": [{"slug": "ann", "name": "Ann", "hours": {"daily": ["09:00-17:00"]}}],
                            "services": [
                                {"slug": "checkup", "name": "Check-up", "duration_minutes": 30, "staff": ["ann"]}
                            ],
                            "agents": [
                                {
                                    "slug": "acme-bot",
                                    "name": "Ada",
                                    "channels": {
                                        "whatsapp": {
                                            "phone_number_id": PHONE_NUMBER_ID,
                                            "access_token": "${WA_ACCESS_TOKEN}",
                                            "app_secret": "${META_APP_SECRET}",
                                            "verify_token": "${META_VERIFY_TOKEN}",
                                            "api_base_url": graph.base_url,
                                        }
                                    },
                                }
                            ],
                        }
                    ],
                }
            )
        )
        self.tmp_path = tmp_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, fault: str | None = None, **env: str) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_") and k != "ANTHROPIC_API_KEY"}
        environ.update(WA_ACCESS_TOKEN=WA_TOKEN, META_APP_SECRET=APP_SECRET, META_VERIFY_TOKEN=VERIFY_TOKEN, **env)
        if fault:
            environ["FRONTDESK_TESTING__FAULT_AT"] = fault
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--config",
            str(self.config),
            cwd=self.tmp_path,
            env=environ,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the server did not come up")

    async def post(self, payload: dict[str, Any]) -> int | None:
        """The webhook's status, or None when the connection died with the server."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"http://127.0.0.1:{self.port}/webhooks/whatsapp", data=body, headers=headers) as resp,
            ):
                return resp.status
        except aiohttp.ClientError:
            return None

    async def killed(self) -> bool:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), 20)
        return code == -signal.SIGKILL

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 20)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return list(conn.execute(sql))

    async def settled(self) -> None:
        """Wait until every inbox row is finished and every outbox row has left."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            inbox = self.rows("select count(*) from inbox where state not in ('done', 'ignored', 'failed')")[0][0]
            outbox = self.rows("select count(*) from outbox where state in ('pending', 'sending')")[0][0]
            if inbox == 0 and outbox == 0:
                await asyncio.sleep(0.5)  # and nothing more trickles out
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the pipeline did not settle")


@pytest.fixture
async def graph() -> Any:
    fake = FakeGraph(whatsapp={PHONE_NUMBER_ID: WA_TOKEN})
    await fake.start()
    yield fake
    await fake.close()


def _message(wamid: str) -> dict[str, Any]:
    return wa_text(wamid, "what are your opening hours?", ts=int(time.time()))


async def _replies(server: Server) -> int:
    return int(server.rows("select count(*) from messages where direction = 'out'")[0][0])


async def test_r05_killed_after_the_inbox_commit_before_the_answer(tmp_path: Path, graph: FakeGraph) -> None:
    server = Server(tmp_path, graph)
    await server.start(fault="after_inbox_commit")
    assert await server.post(_message("wamid.R05")) is None  # the provider saw the connection drop
    assert await server.killed()
    await server.start()
    try:
        assert await server.post(_message("wamid.R05")) == 200  # its retry: a duplicate, acknowledged
        await server.settled()
        assert server.rows("select count(*) from inbox")[0][0] == 1
        replies = await _replies(server)
        assert replies >= 1 and len(graph.sent) == replies
    finally:
        await server.stop()


async def test_r06_killed_after_the_answer_before_the_turn(tmp_path: Path, graph: FakeGraph) -> None:
    server = Server(tmp_path, graph)
    await server.start(fault="before_claim", FRONTDESK_INBOX__LEASE_SECONDS="2")
    assert await server.post(_message("wamid.R06")) == 200
    assert await server.killed()
    assert server.rows("select count(*) from messages")[0][0] == 0
    await server.start(FRONTDESK_INBOX__LEASE_SECONDS="2")  # takes over once the dead worker's lease lapses
    try:
        await server.settled()
        replies = await _replies(server)
        assert replies >= 1 and len(graph.sent) == replies
        assert server.rows("select count(*) from messages where direction = 'in'")[0][0] == 1
    finally:
        await server.stop()


async def test_r07_killed_after_the_turn_before_the_send(tmp_path: Path, graph: FakeGraph) -> None:
    server = Server(tmp_path, graph)
    await server.start(fault="after_turn_commit")
    assert await server.post(_message("wamid.R07")) == 200
    assert await server.killed()
    assert graph.sent == []
    queued = server.rows("select count(*) from outbox where state = 'pending'")[0][0]
    assert queued >= 1
    await server.start()
    try:
        await server.settled()
        assert len(graph.sent) == queued == await _replies(server)
        assert server.rows("select count(*) from messages where direction = 'in'")[0][0] == 1
    finally:
        await server.stop()


async def test_r08_killed_after_the_provider_accepted_before_marking_sent(tmp_path: Path, graph: FakeGraph) -> None:
    server = Server(tmp_path, graph)
    await server.start(fault="after_provider_accept", FRONTDESK_OUTBOX__LEASE_SECONDS="1")
    assert await server.post(_message("wamid.R08")) == 200
    assert await server.killed()
    assert len(graph.sent) == 1
    await asyncio.sleep(1.2)  # the dead relay's lease lapses
    await server.start(FRONTDESK_OUTBOX__LEASE_SECONDS="1")
    try:
        await server.settled()
        replies = await _replies(server)
        assert len(graph.sent) == replies + 1  # at most one duplicate, of the message in flight
        duplicates = server.rows("select idempotency_key from outbox where possible_duplicate")
        assert len(duplicates) == 1
        assert graph.sent[0][1] == graph.sent[1][1]  # the same message, resent
    finally:
        await server.stop()
