"""A whole booking with the Claude engine: find slots, propose, the customer's yes, booked."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core.booking import Status
from tests.bot.claude.conftest import API_KEY, Harness, offer_at
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_use


async def test_scripted_booking_through_the_manager(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()

    fake.push(
        tool_use("find_slots", {"service": "checkup", "date": "2026-03-03", "after": "12:00"}),
        reply("Tomorrow afternoon I have 12:00, 12:30, 13:00… Which time suits you?"),
    )
    await chat.say("Hi! Can I book a check-up tomorrow afternoon?")
    assert chat.text.startswith("Tomorrow afternoon I have")
    found = fake.requests[1].tool_results()
    assert found[0].get("is_error") is None
    assert found[0]["data"]["price"] == "€50.00"
    assert all(o["start"] >= "2026-03-03T12:00" for o in found[0]["data"]["offers"])
    offer = offer_at(fake.requests[1], "2026-03-03T14:00")
    assert any(o.id == f"offer:{offer}" for o in chat.last[0].options)  # the offers as quick replies

    fake.push(
        tool_use("save_contact", {"name": "Jane Roe", "phone": "+1 415 555 0101"}, ("book_slot", {"offer_id": offer})),
        reply("Shall I book the check-up tomorrow at 2:00 PM for €50.00?"),
    )
    await chat.say("2pm please. I'm Jane Roe, +1 415 555 0101")
    proposal = fake.requests[3].tool_results()
    assert [r.get("is_error") for r in proposal] == [None, None]
    assert proposal[1]["data"]["confirmation_required"] is True
    assert proposal[1]["data"]["proposal"]["price"] == "€50.00"
    assert await harness.appointments() == []  # a proposal books nothing
    assert [o.id for o in chat.last[0].options] == ["yes", "no"]

    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("You're booked! See you tomorrow at 2:00 PM."))
    await chat.say("yes")
    booked = fake.requests[5].tool_results()[0]
    assert booked.get("is_error") is None and "booked" in booked["data"]

    rows = await harness.appointments()
    assert len(rows) == 1
    row = rows[0]
    assert row.status == Status.SCHEDULED.value
    assert row.starts_at == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    assert (row.price, row.currency) == (5000, "EUR")  # the catalogue's price
    assert booked["data"]["booked"]["ref"] == row.id.replace("-", "")[:6].upper()
    assert chat.last[0].text == "You're booked! See you tomorrow at 2:00 PM."
    assert len(chat.last) == 2 and "rate" in chat.last[1].options[0].id  # the manager's rating question

    # two model calls per customer turn, one tool call each turn except the second (two in parallel)
    assert [s.model_calls for s in harness.stats] == [2, 2, 2]
    assert [s.tools for s in harness.stats] == [("find_slots",), ("save_contact", "book_slot"), ("book_slot",)]
    usage = await harness.usage()
    assert len(usage) == 1 and usage[0].calls == 6 and usage[0].input_tokens > 0 and usage[0].output_tokens > 0

    state = await chat.state()
    assert len(state["claude"]["exchanges"]) == 3
    assert "pending" not in state["claude"]
    assert fake.unplayed == []


async def test_requests_carry_auth_version_tools_and_cache_markers(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    fake.push(reply("Hello! How can I help?"), reply("Sure."))
    await chat.say("hello")
    await chat.say("thanks")
    first, second = fake.requests
    for request in (first, second):
        assert request.path == "/v1/messages"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["anthropic-version"]
        assert "x-api-key" not in request.headers
        body = request.body
        assert body["model"] == "claude-test-model"
        assert body["max_tokens"] == harness.settings.anthropic.max_tokens
        assert not {"temperature", "top_p", "top_k", "tool_choice"} & body.keys()
        tools = body["tools"]
        assert [("cache_control" in t) for t in tools] == [False] * (len(tools) - 1) + [True]
        assert all(t["input_schema"]["additionalProperties"] is False for t in tools)
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert "cache_control" not in body["system"][1]
        assert "Today is Monday 2026-03-02" in body["system"][1]["text"]
        assert "Acme Clinic" in body["system"][0]["text"] and "€50.00" in body["system"][0]["text"]
        assert "visitor-1" not in json.dumps(body)  # the sender's identity never goes to the model
    # the cached prefix is byte-identical from turn to turn, so the second call reads it from the cache
    assert first.body["tools"] == second.body["tools"]
    assert first.body["system"][0] == second.body["system"][0]
    assert fake.responses[1].body["usage"]["cache_read_input_tokens"] > 0
    # history replayed: hello, answer, then the new customer message
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    assert "thanks" in second.last_user_text()


async def test_answers_in_the_customers_language(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    spanish = "¡Hola! Ofrecemos chequeos de 30 minutos por 50,00 €. ¿Quiere reservar uno?"
    fake.push(tool_use("list_services", {}), reply(spanish))
    await chat.say("Hola, ¿qué servicios tienen?")
    assert chat.text == spanish
    assert (await chat.outbound()) == [spanish]
    assert "language of the customer's latest message" in fake.requests[0].body["system"][0]["text"]
    assert "Hola, ¿qué servicios tienen?" in fake.requests[0].last_user_text()


async def test_spanish_si_confirms_a_booking(harness: Harness, fake: FakeAnthropic) -> None:
    chat = harness.chat()
    fake.push(
        tool_use("save_contact", {"name": "Ana Ruiz", "phone": "+34 612 345 678"}),
        tool_use("find_slots", {"service": "Check-up", "date": "2026-03-04", "after": "10:00", "before": "11:00"}),
        reply("¿Le va bien a las 10:00?"),
    )
    await chat.say("Quiero un chequeo el miércoles a las 10, soy Ana Ruiz, +34 612 345 678")
    offer = offer_at(fake.requests[2], "2026-03-04T10:00")
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("¿Confirmo la reserva del miércoles a las 10:00?"))
    await chat.say("la de las 10")
    fake.push(tool_use("book_slot", {"offer_id": offer}), reply("¡Listo! Reserva confirmada."))
    await chat.say("Sí, por favor")
    assert chat.last[0].text == "¡Listo! Reserva confirmada."
    rows = await harness.appointments()
    assert [r.starts_at for r in rows] == [datetime(2026, 3, 4, 10, 0, tzinfo=UTC)]
