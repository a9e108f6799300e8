"""The fake providers speak the real wire format: checked with the official clients where they exist."""

from __future__ import annotations

import pytest
import telegram

from tests.fakes.telegram_server import TOKEN, FakeTelegram


async def test_python_telegram_bot_talks_to_the_fake(telegram_api: FakeTelegram) -> None:
    """Alert delivery uses python-telegram-bot's ``Bot`` with ``base_url`` pointed at the fake."""
    bot = telegram.Bot(TOKEN, base_url=f"{telegram_api.base_url}/bot")
    async with bot:
        me = await bot.get_me()
        assert me.username == "frontdesk_test_bot"
        keyboard = telegram.InlineKeyboardMarkup([[telegram.InlineKeyboardButton("Ack", callback_data="ack_1")]])
        sent = await bot.send_message(chat_id=4242, text="Alert: low satisfaction", reply_markup=keyboard)
        assert sent.chat.id == 4242 and sent.text == "Alert: low satisfaction"
    [params] = telegram_api.sent_to(4242)
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ack_1"


async def test_python_telegram_bot_sees_the_fake_errors(telegram_api: FakeTelegram) -> None:
    telegram_api.blocked.add("7")
    telegram_api.api_error(429, "Too Many Requests: retry after 7", retry_after=7, method="sendMessage")
    bot = telegram.Bot(TOKEN, base_url=f"{telegram_api.base_url}/bot")
    async with bot:
        with pytest.raises(telegram.error.RetryAfter) as err:
            await bot.send_message(chat_id=8, text="x")
        assert "7" in str(err.value)
        with pytest.raises(telegram.error.Forbidden):
            await bot.send_message(chat_id=7, text="x")
    wrong = telegram.Bot("1:wrong", base_url=f"{telegram_api.base_url}/bot")
    with pytest.raises(telegram.error.InvalidToken):
        await wrong.get_me()
