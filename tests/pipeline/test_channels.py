"""The pipeline on Messenger, SMS and Telegram: batching (R03), concurrent updates of one chat
(R04), Twilio behind a proxy with a TwiML answer, numbered options, opt-out, one customer per phone."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from sqlalchemy import select

from bot.app import create_app
from bot.context import CONTEXT
from bot.settings import Settings
from channels.base import OutboundMessage
from storage import tables as t
from tests.conftest import FrozenClock, demo_business, new_token, other_business
from tests.fakes.graph_server import FakeGraph
from tests.fakes.telegram_server import TOKEN as TG_TOKEN
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.pipeline.conftest import APP_SECRET, Harness, meta_signature, wa_text, whatsapp_channel

PAYLOADS = Path(__file__).parents[1] / "fixtures" / "payloads"
PAGE_ID = "104826392218765"
PAGE_TOKEN = "page-token"
TWILIO_NUMBER = "+15550100200"
TG_SECRET = "tg-secret-token_for-tests"
PUBLIC = "https://desk.example.com"


def fixture(channel: str, name: str) -> Any:
    return json.loads((PAYLOADS / channel / f"{name}.json").read_text(encoding="utf-8"))


class Fakes:
    def __init__(self) -> None:
        self.graph = FakeGraph(messenger={PAGE_ID: PAGE_TOKEN})
        self.twilio = FakeTwilio()
        self.telegram = FakeTelegram()


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[Fakes]:
    fakes = Fakes()
    for fake in (fakes.graph, fakes.twilio, fakes.telegram):
        await fake.start()
    yield fakes
    for fake in (fakes.graph, fakes.twilio, fakes.telegram):
        await fake.close()


@pytest_asyncio.fixture
async def harness(aiohttp_client: Any, sqlite_url: str, fakes: Fakes, clock: FrozenClock) -> Harness:
    business = demo_business()
    channels = {
        "messenger": {
            "page_id": PAGE_ID,
            "page_access_token": PAGE_TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": "v",
            "api_base_url": fakes.graph.base_url,
        },
        "sms": {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": TWILIO_NUMBER,
            "api_base_url": fakes.twilio.base_url,
        },
        "telegram": {"bot_token": TG_TOKEN, "secret_token": TG_SECRET, "api_base_url": fakes.telegram.base_url},
        "whatsapp": whatsapp_channel(fakes.graph.base_url),
    }
    fakes.graph.whatsapp["106540352242922"] = "wa-access-token"
    business["agents"] = [{"slug": "acme-bot", "name": "Ada", "channels": channels}]
    settings = Settings(
        database={"url": sqlite_url},
        server={"public_url": PUBLIC},
        businesses=[business, other_business()],
        testing={"workers": False},
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    return Harness(client, fakes.graph, clock)


async def _inbound_texts(harness: Harness, channel: str) -> list[tuple[str, str]]:
    async with harness.db.reading() as session:
        rows = await session.execute(
            select(t.Conversation.sender, t.Message.text)
            .join(t.Conversation, t.Conversation.id == t.Message.conversation_id)
            .where(t.Conversation.channel == channel, t.Message.direction == "in")
            .order_by(t.Message.created_at, t.Message.seq)
        )
        return [(s, x) for s, x in rows.all()]


async def test_r03_a_messenger_batch_with_a_repeat_makes_two_rows(harness: Harness, fakes: Fakes) -> None:
    body = json.dumps(fixture("messenger", "batch_with_repeat")).encode()
    resp = await harness.client.post(
        "/webhooks/messenger",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
    )
    assert resp.status == 200
    assert await harness.count(t.InboxItem) == 2
    await harness.work()
    assert sorted(x for _, x in await _inbound_texts(harness, "messenger")) == ["another customer", "first"]
    recipients = {b["recipient"]["id"] for node, b in fakes.graph.sent if node == PAGE_ID}
    assert recipients == {"7163926358127365", "5922740917364452"}


async def test_after_messengers_window_a_person_still_answers_and_the_bot_does_not(
    harness: Harness, fakes: Fakes
) -> None:
    """Three days after the customer wrote, a staff reply goes out with the HUMAN_AGENT tag, a
    booking update with CONFIRMED_EVENT_UPDATE, and a plain bot message is refused (dead, visible)."""
    body = json.dumps(fixture("messenger", "batch_with_repeat")).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
    assert (await harness.client.post("/webhooks/messenger", data=body, headers=headers)).status == 200
    await harness.work()
    async with harness.db.reading() as session:
        conv = await session.scalar(select(t.Conversation).where(t.Conversation.sender == "7163926358127365"))
    assert conv is not None
    harness.clock.advance(days=3)
    dialogue = harness.client.server.app[CONTEXT].dialogue
    before = len(fakes.graph.sent)
    await dialogue.push(
        conv.tenant_id, conv.id, OutboundMessage("Sorry for the wait: we can do Friday."), author="human"
    )
    await dialogue.push(conv.tenant_id, conv.id, OutboundMessage("Reminder: Friday 10:00", purpose="event_update"))
    await dialogue.push(conv.tenant_id, conv.id, OutboundMessage("Anything else?"))
    await harness.work()
    sent = [(b["message"]["text"], b["messaging_type"], b.get("tag")) for _, b in fakes.graph.sent[before:]]
    assert sent == [
        ("Sorry for the wait: we can do Friday.", "MESSAGE_TAG", "HUMAN_AGENT"),
        ("Reminder: Friday 10:00", "MESSAGE_TAG", "CONFIRMED_EVENT_UPDATE"),
    ]
    dead = [r for r in await harness.outbox() if r.state == "dead"]
    assert [(r.text, r.last_error) for r in dead] == [("Anything else?", "window_closed")]


def _telegram_update(update_id: int, text: str) -> dict[str, Any]:
    update = copy.deepcopy(fixture("telegram", "message"))
    update["update_id"] = update_id
    update["message"]["message_id"] = update_id
    update["message"]["text"] = text
    return update


async def _telegram(harness: Harness, update: dict[str, Any], secret: str | None = TG_SECRET) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    resp = await harness.client.post("/webhooks/telegram/acme-bot", data=json.dumps(update), headers=headers)
    return resp.status


async def test_r04_concurrent_telegram_updates_of_one_chat_run_in_update_order(harness: Harness, fakes: Fakes) -> None:
    later, earlier = _telegram_update(900, "what are your opening hours?"), _telegram_update(899, "hi")
    assert await asyncio.gather(_telegram(harness, later), _telegram(harness, earlier)) == [200, 200]
    await harness.work()
    assert [x for _, x in await _inbound_texts(harness, "telegram")] == ["hi", "what are your opening hours?"]
    sent = fakes.telegram.sent_to(718250041)
    assert sent and len(sent) == await harness.count(t.Message, t.Message.direction == "out")
    assert await _telegram(harness, earlier, secret="wrong") == 403
    assert await _telegram(harness, earlier, secret=None) == 401
    assert (await harness.client.post("/webhooks/telegram/nobody", data=b"{}")).status == 404


async def test_a_tapped_telegram_button_is_a_choice_and_its_query_is_answered(harness: Harness, fakes: Fakes) -> None:
    assert await _telegram(harness, _telegram_update(10, "hi")) == 200
    await harness.work()
    keyboard = fakes.telegram.sent_to(718250041)[-1]["reply_markup"]
    button = (
        json.loads(keyboard)["inline_keyboard"][0][0]
        if isinstance(keyboard, str)
        else keyboard["inline_keyboard"][0][0]
    )
    query = copy.deepcopy(fixture("telegram", "callback_query"))
    query["update_id"] = 11
    query["callback_query"]["data"] = button["callback_data"]
    query["callback_query"]["from"]["id"] = 718250041
    query["callback_query"]["message"]["chat"]["id"] = 718250041
    assert await _telegram(harness, query) == 200
    await harness.work()
    assert fakes.telegram.answered and fakes.telegram.answered[-1]["callback_query_id"] == query["callback_query"]["id"]
    async with harness.db.reading() as session:
        last_in = await session.scalar(
            select(t.Message).where(t.Message.direction == "in").order_by(t.Message.seq.desc()).limit(1)
        )
    assert last_in is not None and last_in.payload.get("choice") == button["callback_data"]


async def _sms(harness: Harness, fakes: Fakes, body: str, *, url: str = f"{PUBLIC}/webhooks/sms", **extra: str) -> Any:
    params = [("MessageSid", f"SM{hashlib.md5(body.encode()).hexdigest()}"), ("From", "+14155550123")]
    params += [("To", TWILIO_NUMBER), ("Body", body), *extra.items()]
    raw, headers = fakes.twilio.inbound(url, params)
    return await harness.client.post("/webhooks/sms", data=raw, headers={**headers, "X-Forwarded-Proto": "https"})


async def test_sms_behind_a_proxy_is_verified_on_the_public_url_and_answered_with_empty_twiml(
    harness: Harness, fakes: Fakes
) -> None:
    resp = await _sms(harness, fakes, "hi")
    assert resp.status == 200 and resp.content_type == "text/xml"
    assert "<Response></Response>" in await resp.text()
    internal = str(harness.client.make_url("/webhooks/sms"))  # what the app saw: not what Twilio signed
    assert (await _sms(harness, fakes, "hello", url=internal)).status == 403
    await harness.work()
    assert len(fakes.twilio.messages) == await harness.count(t.Message, t.Message.direction == "out")
    assert all(m["To"] == "+14155550123" and m["From"] == TWILIO_NUMBER for m in fakes.twilio.messages)


async def test_sms_numbered_options_pick_and_stop_silences_for_good(harness: Harness, fakes: Fakes) -> None:
    await _sms(harness, fakes, "hi")
    await harness.work()
    menu = fakes.twilio.messages[-1]["Body"]
    assert "1." in menu
    await _sms(harness, fakes, "1")
    await harness.work()
    async with harness.db.reading() as session:
        picked = await session.scalar(
            select(t.Message).where(t.Message.direction == "in").order_by(t.Message.seq.desc()).limit(1)
        )
    assert picked is not None and picked.payload.get("choice")  # "1" became the first option
    sent = len(fakes.twilio.messages)
    await _sms(harness, fakes, "CANCEL", OptOutType="STOP")  # Twilio's own opt-out keyword
    await harness.work()
    async with harness.db.reading() as session:
        conv = await session.scalar(select(t.Conversation).where(t.Conversation.channel == "sms"))
        assert conv is not None and conv.opted_out
        await harness.client.server.app["dialogue_probe"] if False else None
    from bot.context import CONTEXT
    from channels.base import OutboundMessage

    pushed = await harness.client.server.app[CONTEXT].dialogue.push(conv.tenant_id, conv.id, OutboundMessage("promo"))
    assert pushed is None
    await harness.work()
    assert len(fakes.twilio.messages) == sent  # nothing more ever reaches the number


async def test_the_same_phone_on_whatsapp_and_sms_is_one_customer(harness: Harness, fakes: Fakes) -> None:
    token = await new_token(harness.db, "acme", harness.clock)
    booking = {
        "agent": "acme-bot",
        "service": "checkup",
        "start": "2026-03-03T10:00:00+00:00",
        "customer": {"name": "Kerry", "phone": "+14155550123"},
    }
    resp = await harness.client.post("/api/bookings", json=booking, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201
    await _sms(harness, fakes, "my bookings")
    body = json.dumps(wa_text("wamid.same", "my bookings")).encode()
    await harness.client.post(
        "/webhooks/whatsapp",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
    )
    await harness.work()
    async with harness.db.reading() as session:
        customers = set(await session.scalars(select(t.Conversation.customer_id)))
        customer = await session.scalar(select(t.Customer.id).where(t.Customer.phone == "+14155550123"))
    assert customers == {customer}


def test_meta_signature_helper_matches_hmac() -> None:
    body = b"{}"
    assert meta_signature(body) == "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
