"""Store before ack, dedupe by constraint, one turn per message: R01, R02, R12, R14, R16–R18."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.app import create_app
from bot.context import CONTEXT
from storage import tables as t
from tests.conftest import FrozenClock
from tests.pipeline.conftest import (
    CUSTOMER,
    Harness,
    meta_signature,
    pipeline_settings,
    wa_status,
    wa_text,
)


async def test_r01_five_concurrent_copies_make_one_row_one_turn_one_reply(harness: Harness) -> None:
    payload = wa_text("wamid.R01", "hi")
    statuses = await asyncio.gather(*(harness.post(payload) for _ in range(5)))
    assert statuses == [200] * 5
    assert await harness.count(t.InboxItem) == 1
    await harness.work()
    assert await harness.count(t.Message, t.Message.direction == "in") == 1
    replies = await harness.count(t.Message, t.Message.direction == "out")
    assert replies >= 1
    sends = harness.sends()
    assert len(sends) == replies  # every reply delivered once, nothing more
    assert all(body["to"] == CUSTOMER.lstrip("+") for body in sends)
    rows = await harness.outbox()
    assert [r.state for r in rows] == ["sent"] * replies
    assert len({r.idempotency_key for r in rows}) == replies


async def test_r02_redelivery_after_the_reply_and_after_a_restart_changes_nothing(
    harness: Harness, aiohttp_client: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    payload = wa_text("wamid.R02", "what are your opening hours?")
    assert await harness.post(payload) == 200
    await harness.work()
    sends = len(harness.sends())
    assert sends >= 1
    assert await harness.post(payload) == 200
    await harness.work()
    await harness.client.close()  # the process goes away; its memory with it

    again = await aiohttp_client(create_app(pipeline_settings(sqlite_url, harness.graph.base_url), clock=clock))
    restarted = Harness(again, harness.graph, clock)
    assert await restarted.post(payload) == 200
    await restarted.work()
    assert await restarted.count(t.InboxItem) == 1
    assert await restarted.count(t.Message, t.Message.direction == "in") == 1
    assert len(harness.sends()) == sends


async def test_a_conversation_runs_its_messages_in_order(harness: Harness) -> None:
    for i, text in enumerate(["book a check-up", "tomorrow", "hours?"]):
        assert await harness.post(wa_text(f"wamid.order{i}", text, ts=1772438400 + i)) == 200
    assert await harness.post(wa_status("wamid.unknown", "read")) == 200  # a status row between them
    # One pass runs the whole conversation: each row's transaction claims the next one.
    assert await harness.pipeline.worker.run_once() == 1
    async with harness.db.reading() as session:
        inbound = list(
            await session.scalars(select(t.Message.text).where(t.Message.direction == "in").order_by(t.Message.seq))
        )
        states = list(await session.scalars(select(t.InboxItem.state)))
        leases = list(await session.scalars(select(t.ConversationLease.holder)))
    assert inbound == ["book a check-up", "tomorrow", "hours?"]
    assert states == ["done"] * 4
    assert leases == [None], "the last row's transaction let the conversation go"


async def test_r12_r13_wrong_or_missing_signature_stores_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = wa_text("wamid.R12", "secret body text")
    assert await harness.post(payload, signature="sha256=" + "0" * 64) == 403
    assert await harness.post(payload, signature=meta_signature(b"other body")) == 403
    assert await harness.post(payload, signature="") == 401
    assert await harness.post(payload, signature="sha1=abc") == 403
    assert await harness.count(t.InboxItem) == 0
    assert "secret body text" not in caplog.text
    assert CUSTOMER.lstrip("+") not in caplog.text
    metrics = await (await harness.client.get("/metrics")).text()
    assert 'frontdesk_webhook_rejected_total{channel="whatsapp",reason="signature"} 4.0' in metrics


async def test_r14_the_signature_is_checked_on_the_raw_bytes(harness: Harness) -> None:
    raw = json.dumps(wa_text("wamid.R14", "Grüße äöå 👋")).encode()  # \u escapes, as Meta sends
    signature = meta_signature(raw)
    assert await harness.post(raw, signature=signature) == 200
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode()
    assert reserialised != raw
    assert await harness.post(reserialised, signature=signature) == 403
    assert await harness.count(t.InboxItem) == 1


async def test_r16_an_oversized_body_is_refused_before_any_work(harness: Harness) -> None:
    body = b'{"object":"whatsapp_business_account","entry":[' + b" " * (2 * 1024 * 1024) + b"]}"
    assert await harness.post(body, signature=meta_signature(body)) == 413
    assert await harness.count(t.InboxItem) == 0


async def test_r17_malformed_json_and_wrong_content_type(harness: Harness) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": [}'
    assert await harness.post(body) == 400
    good = json.dumps(wa_text("wamid.R17", "hi")).encode()
    assert await harness.post(good, **{"Content-Type": "text/plain"}) == 415
    assert await harness.count(t.InboxItem) == 0


async def test_r18_statuses_move_our_message_forward_and_never_reach_the_dialogue(harness: Harness) -> None:
    assert await harness.post(wa_text("wamid.R18", "hi")) == 200
    await harness.work()
    async with harness.db.reading() as session:
        sent = await session.scalar(select(t.OutboxItem).where(t.OutboxItem.state == "sent").limit(1))
    assert sent is not None and sent.provider_message_id
    replies_before = await harness.count(t.Message, t.Message.direction == "out")
    for status in ("read", "delivered", "sent"):  # out of order: read wins
        assert await harness.post(wa_status(sent.provider_message_id, status)) == 200
    assert await harness.post(wa_status(sent.provider_message_id, "read")) == 200  # a duplicate
    await harness.work()
    async with harness.db.reading() as session:
        message = await session.get(t.Message, sent.message_id)
    assert message is not None and message.status == "read"
    assert await harness.count(t.InboxItem, t.InboxItem.kind == "status") == 3
    assert await harness.count(t.Message, t.Message.direction == "out") == replies_before
    assert await harness.count(t.Message, t.Message.direction == "in") == 1


async def test_unknown_targets_are_acknowledged_and_dropped(harness: Harness) -> None:
    payload = wa_text("wamid.unknown", "hi")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert await harness.post(payload) == 200
    assert await harness.count(t.InboxItem) == 0


async def test_the_verify_handshake(harness: Harness) -> None:
    from tests.pipeline.conftest import VERIFY_TOKEN

    ok = await harness.client.get(
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert (ok.status, await ok.text()) == (200, "1158201444")
    wrong = await harness.client.get(
        "/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status == 403


async def test_a_database_outage_answers_503_so_the_provider_retries(
    aiohttp_client: Any, sqlite_url: str, graph: Any, clock: FrozenClock
) -> None:
    settings = pipeline_settings(sqlite_url, graph.base_url, database={"url": sqlite_url, "busy_timeout_ms": 200})
    harness = Harness(await aiohttp_client(create_app(settings, clock=clock)), graph, clock)
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database: our insert cannot commit
    try:
        assert await harness.post(wa_text("wamid.down", "hi")) == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await harness.count(t.InboxItem) == 0
    assert await harness.post(wa_text("wamid.down", "hi")) == 200  # the provider's retry lands
    assert await harness.count(t.InboxItem) == 1


@pytest.mark.postgres
async def test_r01_on_postgresql(aiohttp_client: Any, postgres_url: str, graph: Any, clock: FrozenClock) -> None:
    """The same path on PostgreSQL: real ON CONFLICT, 64-bit provider ordering, row locks."""
    from storage import migrate
    from storage.engine import create_database

    database = create_database(postgres_url)
    await migrate.upgrade(database.engine)
    await database.dispose()
    settings = pipeline_settings(postgres_url, graph.base_url)
    harness = Harness(await aiohttp_client(create_app(settings, clock=clock)), graph, clock)
    payload = wa_text("wamid.pg", "what are your opening hours?", ts=1795276585)  # ms order > 2**31
    assert await asyncio.gather(*(harness.post(payload) for _ in range(5))) == [200] * 5
    assert await harness.count(t.InboxItem) == 1
    await harness.work()
    replies = await harness.count(t.Message, t.Message.direction == "out")
    assert replies >= 1 and len(harness.sends()) == replies


class _PgDeadlock(Exception):
    sqlstate = "40P01"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (OperationalError("UPDATE …", {}, sqlite3.OperationalError("database is locked")), "done"),
        (DBAPIError("UPDATE …", {}, _PgDeadlock("deadlock detected")), "done"),
        (RuntimeError("the turn itself is broken"), "failed"),
    ],
    ids=["sqlite-locked", "pg-deadlock", "a-real-fault"],
)
async def test_lost_races_are_retried_without_using_up_attempts(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, error: Exception, outcome: str
) -> None:
    """A deadlock or a busy database is not the message's fault: it is retried for as long as it
    takes, while a turn that keeps failing on its own is set aside after ``inbox.max_attempts``."""
    dialogue = harness.client.server.app[CONTEXT].dialogue
    real = dialogue.handle
    failures = 8  # more than inbox.max_attempts (5)
    calls = 0

    async def flaky(incoming: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise error
        return await real(incoming)

    monkeypatch.setattr(dialogue, "handle", flaky)
    assert await harness.post(wa_text("wamid.race", "hi")) == 200
    for _ in range(failures + 2):
        await harness.pipeline.worker.run_once()
        harness.clock.advance(seconds=61)  # past any retry backoff
    async with harness.db.reading() as session:
        row = await session.scalar(select(t.InboxItem))
    assert row is not None and row.state == outcome
    assert await harness.count(t.Message, t.Message.direction == "in") == (1 if outcome == "done" else 0)


async def test_the_reply_window_runs_from_when_the_customer_wrote_not_from_when_we_got_to_it(
    harness: Harness,
) -> None:
    """After an outage a message is processed hours late; WhatsApp's 24-hour window still started
    when the customer wrote it, so that is what the conversation remembers."""
    wrote = harness.clock.now - timedelta(hours=3)
    assert await harness.post(wa_text("wamid.late", "hi", ts=int(wrote.timestamp()))) == 200
    await harness.pipeline.worker.run_once()
    async with harness.db.reading() as session:
        conv = await session.scalar(select(t.Conversation))
    assert conv is not None and conv.last_inbound_at == wrote
