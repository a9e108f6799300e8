"""Outbound delivery through the outbox: backoff with jitter, Retry-After, permanent failures (R09–R11)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from bot.relay import backoff_seconds
from bot.settings import OutboxSettings
from channels.base import OutboundMessage
from core.alerts import send_failed
from storage import migrate, outbox
from storage import tables as t
from storage.engine import create_database
from tests.conftest import FrozenClock
from tests.fakes.graph_server import FakeGraph, graph_error_body
from tests.pipeline.conftest import Harness, pipeline_settings, wa_text


async def _one_turn_queued(harness: Harness, wamid: str = "wamid.out") -> list[t.OutboxItem]:
    assert await harness.post(wa_text(wamid, "what are your opening hours?")) == 200
    await harness.pipeline.worker.run_once()
    rows = await harness.outbox()
    assert rows and all(r.state == "pending" for r in rows)
    return rows


async def test_r09_two_503s_then_delivered_with_jittered_backoff(harness: Harness) -> None:
    rows = await _one_turn_queued(harness)
    harness.graph.fail("/", 503, times=2)
    settings = harness.pipeline.relay.settings
    delays = []
    for attempt in (1, 2):
        assert await harness.pipeline.relay.run_once() >= 1
        async with harness.db.reading() as session:
            row = await session.get(t.OutboxItem, rows[0].id)
        assert row is not None and row.state == "pending" and row.attempts == attempt
        delay = (row.next_attempt_at - harness.clock.now).total_seconds()
        assert 0 <= delay <= settings.backoff_base_seconds * 2 ** (attempt - 1)
        delays.append(delay)
        assert await harness.pipeline.relay.run_once() == 0 or delay == 0  # not due before its time
        harness.clock.advance(seconds=delay + 0.001)
    await harness.work()
    async with harness.db.reading() as session:
        row = await session.get(t.OutboxItem, rows[0].id)
    assert row is not None and (row.state, row.attempts) == ("sent", 3)
    assert len([c for c in harness.graph.requests if c.method == "POST"]) == 2 + len(rows)


def test_backoff_is_full_jitter_capped() -> None:
    settings = OutboxSettings(backoff_base_seconds=1, backoff_cap_seconds=30)
    rng = random.Random(7)
    for attempt in range(1, 12):
        samples = [backoff_seconds(attempt, settings, rng) for _ in range(200)]
        ceiling = min(30, 2 ** (attempt - 1))
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # it spreads over the whole window


async def test_r10_a_blocked_recipient_goes_dead_at_once_and_can_be_replayed(harness: Harness) -> None:
    rows = await _one_turn_queued(harness)
    harness.graph.graph_error(131026, status=400)  # message undeliverable
    await harness.pipeline.relay.run_once()
    async with harness.db.reading() as session:
        first = await session.get(t.OutboxItem, rows[0].id)
        message = await session.get(t.Message, rows[0].message_id)
    assert first is not None and (first.state, first.attempts) == ("dead", 1)
    assert first.last_error == "undeliverable"
    assert message is not None and message.status == "failed"
    dead = await outbox.dead(harness.db, rows[0].tenant_id)
    assert [d.id for d in dead] == [rows[0].id]
    # a person replays it from the dashboard/API once the problem is fixed
    resp = await harness.client.post(
        f"/api/outbox/{rows[0].id}/replay", headers={"Authorization": f"Bearer {await _token(harness)}"}
    )
    assert resp.status == 200
    await harness.work()
    async with harness.db.reading() as session:
        states = list(await session.scalars(select(t.OutboxItem.state).order_by(t.OutboxItem.id)))
    assert states == ["sent"] * len(rows)


async def test_r10_a_blocked_bot_marks_the_conversation_unreachable(harness: Harness) -> None:
    rows = await _one_turn_queued(harness)
    harness.graph.graph_error(131047, status=400)  # re-engagement: outside the window
    await harness.pipeline.relay.run_once()
    async with harness.db.reading() as session:
        row = await session.get(t.OutboxItem, rows[0].id)
    assert row is not None and row.state == "dead" and row.last_error == "window_closed"


async def test_our_number_blocked_by_meta_is_a_channel_problem_not_the_customers(harness: Harness) -> None:
    """Graph error 368 (our page or number temporarily blocked for policy violations): the message
    goes dead and counts toward channel_down, but the customer is not marked unreachable."""
    rows = await _one_turn_queued(harness)
    harness.graph.graph_error(368, status=400)
    await harness.pipeline.relay.run_once()
    async with harness.db.reading() as session:
        row = await session.get(t.OutboxItem, rows[0].id)
        conv = await session.get(t.Conversation, rows[0].conversation_id)
    assert row is not None and (row.state, row.last_error) == ("dead", "sender_blocked")
    assert conv is not None and conv.unreachable_at is None
    assert send_failed(row.state, row.last_error)


async def test_r11_retry_after_is_honoured(harness: Harness) -> None:
    rows = await _one_turn_queued(harness)
    harness.graph.graph_error(130429, status=429, retry_after=7)
    await harness.pipeline.relay.run_once()
    async with harness.db.reading() as session:
        row = await session.get(t.OutboxItem, rows[0].id)
    assert row is not None and row.state == "pending"
    assert (row.next_attempt_at - harness.clock.now).total_seconds() >= 7
    harness.clock.advance(seconds=6)
    assert await harness.pipeline.relay.run_once() == 0
    harness.clock.advance(seconds=1.5)
    await harness.work()
    async with harness.db.reading() as session:
        row = await session.get(t.OutboxItem, rows[0].id)
    assert row is not None and row.state == "sent"


async def test_messages_of_one_conversation_leave_in_order(harness: Harness) -> None:
    rows = await _one_turn_queued(harness)
    if len(rows) < 2:
        assert await harness.post(wa_text("wamid.second", "book a check-up")) == 200
        await harness.pipeline.worker.run_once()
        rows = await harness.outbox()
    harness.graph.fail("/", 503, times=1)
    await harness.pipeline.relay.run_once()  # the first fails; the later ones must wait for it
    async with harness.db.reading() as session:
        states = list(await session.scalars(select(t.OutboxItem.state).order_by(t.OutboxItem.id)))
    assert states[0] == "pending" and "sent" not in states
    harness.clock.advance(seconds=5)
    await harness.work()
    texts = [json.dumps(b, ensure_ascii=False) for b in harness.sends()]
    order = [
        next(i for i, r in enumerate(rows) if json.dumps(r.text[:15], ensure_ascii=False)[1:-1] in x) for x in texts
    ]
    assert order == sorted(order) and set(order) == set(range(len(rows)))


async def _token(harness: Harness) -> str:
    from tests.conftest import new_token

    return await new_token(harness.db, "acme", harness.clock)


async def test_a_split_message_resumes_after_the_parts_already_out(harness: Harness) -> None:
    """A long reply goes out as several WhatsApp messages; when a later part fails, the retry sends
    only what is missing (the customer never reads the first half twice), and a replay after a
    permanent failure resumes there too."""
    await _one_turn_queued(harness)
    await harness.work()
    async with harness.db.reading() as session:
        conv = await session.scalar(select(t.Conversation))
    assert conv is not None
    before = len(harness.graph.sent)
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 60 for n in range(1, 5)]
    long_text = "\n\n".join(paragraphs)  # about 6,600 characters: two parts under WhatsApp's 4,096
    dialogue = harness.client.server.app[CONTEXT].dialogue

    harness.graph.hang("/", 0)  # the first part is accepted…
    harness.graph.answer_next("/", 503, graph_error_body(2, "Service temporarily unavailable"))  # …the second is not
    await dialogue.push(conv.tenant_id, conv.id, OutboundMessage(long_text), key="long")
    await harness.pipeline.relay.run_once()
    async with harness.db.reading() as session:
        row = await session.scalar(select(t.OutboxItem).order_by(t.OutboxItem.id.desc()).limit(1))
    assert row is not None and (row.state, row.parts_sent) == ("pending", 1)

    harness.graph.graph_error(131026, status=400)  # the retry of the second part fails for good
    harness.clock.advance(seconds=120)
    await harness.pipeline.relay.run_once()
    async with harness.db.reading() as session:
        row = await session.get(t.OutboxItem, row.id)
    assert row is not None and (row.state, row.parts_sent) == ("dead", 1)

    assert await outbox.replay(harness.db, conv.tenant_id, row.id, harness.clock.now)
    await harness.work()
    texts = [body["text"]["body"] for _, body in harness.graph.sent[before:]]
    assert len(texts) == 2  # each part accepted exactly once
    assert texts[0].startswith("Paragraph 1") and "Paragraph 4" in texts[1]
    assert "".join(texts).replace("\n", "").replace(" ", "") == long_text.replace("\n", "").replace(" ", "")


async def _two_relays_claim_each_row_once(harness: Harness) -> None:
    """Two relay processes (engines of their own) claiming at the same instant: every due row is
    taken by exactly one of them, and the batch's one compare-and-set returns only what it took."""
    senders = [f"+1415555{n:04d}" for n in range(12)]
    for n, sender in enumerate(senders):
        assert await harness.post(wa_text(f"wamid.two.{n}", "what are your opening hours?", sender=sender)) == 200
    await harness.pipeline.worker.run_once()
    due = {r.id for r in await harness.outbox() if r.state == "pending"}
    assert len(due) >= len(senders)
    other = create_database(harness.db.engine.url.render_as_string(hide_password=False))
    try:
        now = harness.clock()
        rounds = await asyncio.gather(
            *(
                outbox.claim_due(db, holder, now, limit=50, lease_seconds=60)
                for db, holder in ((harness.db, "a"), (other, "b"), (harness.db, "c"), (other, "d"))
            )
        )
    finally:
        await other.dispose()
    taken = [d.id for claimed in rounds for d in claimed]
    assert sorted(taken) == sorted(due)  # all of them, none twice
    rows = {r.id: r for r in await harness.outbox()}
    assert all(rows[i].state == "sending" and rows[i].attempts == 1 for i in due)
    assert {d.attempts for claimed in rounds for d in claimed} == {1}


async def test_two_relays_never_claim_the_same_row(harness: Harness) -> None:
    await _two_relays_claim_each_row_once(harness)


@pytest.mark.postgres
async def test_two_relays_never_claim_the_same_row_on_postgresql(
    aiohttp_client: Any, postgres_url: str, graph: FakeGraph, clock: FrozenClock
) -> None:
    database = create_database(postgres_url)
    await migrate.upgrade(database.engine)
    await database.dispose()
    app = create_app(pipeline_settings(postgres_url, graph.base_url), clock=clock)
    await _two_relays_claim_each_row_once(Harness(await aiohttp_client(app), graph, clock))
