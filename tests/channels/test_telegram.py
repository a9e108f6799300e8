"""Telegram: recorded updates in, sendMessage / answerCallbackQuery out against the fake Bot API."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from channels.base import DeliveryError, Link, Option, OutboundMessage
from channels.telegram import TelegramChannel, TelegramConfig
from core.errors import Forbidden, MalformedRequest, Unauthorized
from tests.channels.conftest import payload
from tests.conftest import FrozenClock
from tests.fakes.telegram_server import TOKEN, FakeTelegram

SECRET = "s3cr3t-Token_for-webhooks"
CHAT = "718250041"


def make(http: httpx.AsyncClient, clock: FrozenClock, base_url: str = "https://api.telegram.org") -> TelegramChannel:
    config = TelegramConfig(bot_token=SecretStr(TOKEN), secret_token=SecretStr(SECRET), api_base_url=base_url)
    return TelegramChannel(config, agent="sunrise", http=http, clock=clock)


@pytest.fixture
def channel(http: httpx.AsyncClient, clock: FrozenClock) -> TelegramChannel:
    return make(http, clock)


@pytest.fixture
def live(http: httpx.AsyncClient, clock: FrozenClock, telegram_api: FakeTelegram) -> TelegramChannel:
    return make(http, clock, telegram_api.base_url)


def test_secret_token(channel: TelegramChannel) -> None:
    body = payload("telegram", "message.json")
    channel.verify(body, {"x-telegram-bot-api-secret-token": SECRET}, "")
    with pytest.raises(Unauthorized):
        channel.verify(body, {}, "")
    with pytest.raises(Forbidden):
        channel.verify(body, {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}, "")
    with pytest.raises(Forbidden):
        channel.verify(body, {"X-Telegram-Bot-Api-Secret-Token": "ä"}, "")


def test_message(channel: TelegramChannel) -> None:
    [event] = channel.parse(payload("telegram", "message.json"), {})
    assert (event.channel, event.target, event.sender, event.provider_message_id) == (
        "telegram",
        "sunrise",
        CHAT,
        "815532101",
    )
    assert event.kind == "text" and event.text.endswith("äöå 🙏") and event.sender_name == "Meera"
    assert event.order == 815532101 and event.sent_at is not None


def test_callback_query_is_a_choice_with_the_button_title(channel: TelegramChannel) -> None:
    [event] = channel.parse(payload("telegram", "callback_query.json"), {})
    assert (event.kind, event.choice, event.text, event.sender) == ("choice", "slot_1000", "10:00", CHAT)
    assert event.extra["callback_query_id"] == "3084643523870954112"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("photo.json", "unsupported"), ("edited_message.json", "ignored"), ("my_chat_member.json", "ignored")],
)
def test_other_updates(channel: TelegramChannel, name: str, kind: str) -> None:
    [event] = channel.parse(payload("telegram", name), {})
    assert event.kind == kind and event.provider_message_id == str(json.loads(payload("telegram", name))["update_id"])


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b"{}", b'{"update_id":"1"}', b'{"update_id":true}', b'{"update_id":1,"message":5}']
)
def test_malformed(channel: TelegramChannel, body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        channel.parse(body, {})


# ----------------------------------------------------------------------------- rendering
def test_options_are_an_inline_keyboard_and_the_link_a_url_button(channel: TelegramChannel) -> None:
    message = OutboundMessage("Pick", (Option("slot_0930", "9:30"),), Link("https://pay.example/1", "Pay now"))
    [body] = channel.render(CHAT, message)
    assert body == {
        "chat_id": 718250041,
        "text": "Pick",
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "9:30", "callback_data": "slot_0930"}],
                [{"text": "Pay now", "url": "https://pay.example/1"}],
            ]
        },
    }
    assert "parse_mode" not in body


def test_a_callback_id_over_64_bytes_falls_back_to_numbered_lines(channel: TelegramChannel) -> None:
    message = OutboundMessage("Pick", (Option("a", "A"), Option("é" * 33, "Long")))
    [body] = channel.render(CHAT, message)
    assert body["text"] == "Pick\n\n1. A\n2. Long" and "reply_markup" not in body


def test_long_text_is_split_with_the_keyboard_on_the_last_part(channel: TelegramChannel) -> None:
    text = "😀 " * 3000  # 9 000 UTF-16 units
    bodies = channel.render(CHAT, OutboundMessage(text, (Option("ok", "OK"),)))
    assert len(bodies) == 3 and all(len(b["text"].encode("utf-16-le")) // 2 <= 4096 for b in bodies)
    assert "reply_markup" in bodies[-1] and all("reply_markup" not in b for b in bodies[:-1])


# ----------------------------------------------------------------------------- sending
async def test_send_and_acknowledge(live: TelegramChannel, telegram_api: FakeTelegram) -> None:
    first = await live.send(CHAT, OutboundMessage("Hello"))
    second = await live.send(CHAT, OutboundMessage("x " * 3000))
    assert first == "1" and second == "3" and len(telegram_api.sent_to(CHAT)) == 3
    [event] = live.parse(payload("telegram", "callback_query.json"), {})
    await live.acknowledge(event)
    assert telegram_api.answered == [{"callback_query_id": "3084643523870954112"}]
    [plain] = live.parse(payload("telegram", "message.json"), {})
    await live.acknowledge(plain)
    assert len(telegram_api.answered) == 1


async def test_a_failed_part_says_how_many_went_out_and_a_retry_sends_only_the_rest(
    live: TelegramChannel, telegram_api: FakeTelegram
) -> None:
    message = OutboundMessage("x " * 5000)  # three parts
    telegram_api.hang("/", 0)  # the first part is accepted, the second answers 502
    telegram_api.answer_next("/", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    with pytest.raises(DeliveryError) as err:
        await live.send(CHAT, message)
    assert (err.value.permanent, err.value.parts_sent) == (False, 1)
    last = await live.send(CHAT, message, skip_parts=err.value.parts_sent)
    texts = [m["text"] for m in telegram_api.sent_to(CHAT)]
    assert len(texts) == 3 and last == "3"  # parts 1, 2, 3, each once
    assert " ".join(texts).split() == message.text.split()


async def test_acknowledge_never_raises(live: TelegramChannel, telegram_api: FakeTelegram) -> None:
    telegram_api.api_error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
    [event] = live.parse(payload("telegram", "callback_query.json"), {})
    await live.acknowledge(event)
    assert telegram_api.answered == []


async def test_rate_limit_carries_retry_after(live: TelegramChannel, telegram_api: FakeTelegram) -> None:
    telegram_api.api_error(429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(DeliveryError) as err:
        await live.send(CHAT, OutboundMessage("Hi"))
    assert (err.value.reason, err.value.permanent, err.value.retry_after) == ("rate_limited", False, 7)


async def test_blocked_and_unknown_chats_are_permanent(live: TelegramChannel, telegram_api: FakeTelegram) -> None:
    telegram_api.blocked.add("1")
    telegram_api.unknown.add("2")
    for chat, reason in (("1", "blocked"), ("2", "chat_not_found")):
        with pytest.raises(DeliveryError) as err:
            await live.send(chat, OutboundMessage("Hi"))
        assert (err.value.reason, err.value.permanent) == (reason, True)


async def test_wrong_token_and_server_errors(
    http: httpx.AsyncClient, clock: FrozenClock, telegram_api: FakeTelegram
) -> None:
    telegram_api.tokens = {"another:token"}
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, telegram_api.base_url).send(CHAT, OutboundMessage("Hi"))
    assert (err.value.reason, err.value.permanent) == ("auth", True)
    assert TOKEN not in str(err.value)
    telegram_api.tokens = {TOKEN}
    telegram_api.fail("/bot", 502, times=1)
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, telegram_api.base_url).send(CHAT, OutboundMessage("Hi"))
    assert not err.value.permanent
