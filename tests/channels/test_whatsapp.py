"""WhatsApp Cloud API: recorded webhooks in, rendered bodies and Graph errors out (fake Graph server)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from channels import delivery, meta
from channels.base import DeliveryError, Link, Option, OutboundMessage, Template
from channels.whatsapp import WhatsAppChannel, WhatsAppConfig
from core.errors import Forbidden, MalformedRequest, Unauthorized
from tests.channels.conftest import payload
from tests.conftest import FrozenClock
from tests.fakes.graph_server import FakeGraph

PNID = "106540352242922"
SECRET = "wa-app-secret"
TOKEN = "EAAG-wa-token"
CUSTOMER = "+16505551234"


GRAPH = "https://graph.facebook.com/v21.0"


def make(http: httpx.AsyncClient, clock: FrozenClock, base_url: str = GRAPH) -> WhatsAppChannel:
    config = WhatsAppConfig(
        phone_number_id=PNID,
        access_token=SecretStr(TOKEN),
        app_secret=SecretStr(SECRET),
        verify_token=SecretStr("verify-me"),
        api_base_url=base_url,
    )
    return WhatsAppChannel(config, agent="sunrise", http=http, clock=clock)


@pytest.fixture
def channel(http: httpx.AsyncClient, clock: FrozenClock) -> WhatsAppChannel:
    return make(http, clock)


@pytest.fixture
def live(http: httpx.AsyncClient, clock: FrozenClock, graph: FakeGraph) -> WhatsAppChannel:
    graph.whatsapp[PNID] = TOKEN
    return make(http, clock, graph.base_url)


def signed(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": meta.signature(SECRET, body)}


# ----------------------------------------------------------------------------- inbound
def test_text(channel: WhatsAppChannel) -> None:
    body = payload("whatsapp", "text.json")
    channel.verify(body, signed(body), "https://bot.example/webhooks/whatsapp")
    [event] = channel.parse(body, {})
    assert event.channel == "whatsapp" and event.target == PNID == channel.target
    assert event.sender == CUSTOMER and event.sender_name == "Jane Doe"
    assert event.kind == "text" and event.text.endswith("äöå 😀")
    assert event.provider_message_id.startswith("wamid.")
    assert event.order == 1772438400_000 and event.sent_at is not None and event.sent_at.year == 2026


def test_reply_button_and_list_row_are_choices(channel: WhatsAppChannel) -> None:
    [button] = channel.parse(payload("whatsapp", "button_reply.json"), {})
    assert (button.kind, button.choice, button.text) == ("choice", "slot_0930", "9:30")
    [row] = channel.parse(payload("whatsapp", "list_reply.json"), {})
    assert (row.kind, row.choice, row.text) == ("choice", "svc_consultation", "General consultation")


def test_template_quick_reply_is_a_choice(channel: WhatsAppChannel) -> None:
    data = json.loads(payload("whatsapp", "text.json"))
    message = data["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(type="button", button={"payload": "confirm_42", "text": "Confirm"})
    del message["text"]
    [event] = channel.parse(json.dumps(data).encode(), {})
    assert (event.kind, event.choice, event.text) == ("choice", "confirm_42", "Confirm")


def test_media_is_unsupported_and_reaction_ignored(channel: WhatsAppChannel) -> None:
    [image] = channel.parse(payload("whatsapp", "image.json"), {})
    assert image.kind == "unsupported" and image.provider_message_id.startswith("wamid.")
    [reaction] = channel.parse(payload("whatsapp", "reaction.json"), {})
    assert reaction.kind == "ignored" and reaction.provider_message_id.startswith("wamid.")


@pytest.mark.parametrize(("name", "status"), [("status_delivered.json", "delivered"), ("status_read.json", "read")])
def test_statuses_refer_to_our_message(channel: WhatsAppChannel, name: str, status: str) -> None:
    [event] = channel.parse(payload("whatsapp", name), {})
    assert event.kind == "status" and event.status == status
    assert event.provider_message_id == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    assert event.sender == CUSTOMER and event.order > 0


def test_failed_status_carries_the_error(channel: WhatsAppChannel) -> None:
    [event] = channel.parse(payload("whatsapp", "status_failed.json"), {})
    assert event.status == "failed" and event.extra["error"] == "131047: Re-engagement message"


def test_every_entry_and_change_is_read(channel: WhatsAppChannel) -> None:
    events = channel.parse(payload("whatsapp", "batch_two_entries.json"), {})
    assert [(e.kind, e.provider_message_id) for e in events] == [
        ("text", "wamid.BATCH-A1"),
        ("text", "wamid.BATCH-A2"),
        ("text", "wamid.BATCH-B1"),
        ("status", "wamid.BATCH-OUT1"),
    ]
    assert events[2].sender == "+919876543210" and events[2].sender_name == "Ravi K"


def test_template_status_update_is_ignored_with_a_stable_id(channel: WhatsAppChannel) -> None:
    body = payload("whatsapp", "template_status_update.json")
    [event] = channel.parse(body, {})
    assert event.kind == "ignored" and event.provider_message_id
    assert channel.parse(body, {})[0].provider_message_id == event.provider_message_id


def test_echo_of_our_own_number_is_ignored(channel: WhatsAppChannel) -> None:
    data = json.loads(payload("whatsapp", "text.json"))
    data["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "15550783881"
    [event] = channel.parse(json.dumps(data).encode(), {})
    assert event.kind == "ignored"


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"object":"page","entry":[]}', b'{"object":"whatsapp_business_account"}']
)
def test_malformed(channel: WhatsAppChannel, body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        channel.parse(body, {})


def test_signature_missing_and_wrong(channel: WhatsAppChannel) -> None:
    body = payload("whatsapp", "text.json")
    with pytest.raises(Unauthorized):
        channel.verify(body, {}, "")
    with pytest.raises(Forbidden):
        channel.verify(body, {"X-Hub-Signature-256": meta.signature("another-secret", body)}, "")
    with pytest.raises(Forbidden):
        channel.verify(body + b" ", signed(body), "")


def test_handshake(channel: WhatsAppChannel) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "verify-me"}
    assert channel.handshake(query) == "42"
    with pytest.raises(Forbidden):
        channel.handshake({**query, "hub.verify_token": "nope"})


# ----------------------------------------------------------------------------- rendering
def options(n: int, label: str = "Option") -> tuple[Option, ...]:
    return tuple(Option(f"opt_{i}", f"{label} {i}", f"desc {i}") for i in range(n))


def test_plain_text(channel: WhatsAppChannel) -> None:
    [body] = channel.render(CUSTOMER, OutboundMessage("Hello"))
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "Hello"},
    }


def test_up_to_three_options_are_reply_buttons(channel: WhatsAppChannel) -> None:
    long_label = "A very long label for a button"
    message = OutboundMessage("Pick a time", (Option("slot_0930", "9:30"), Option("x", long_label)))
    [body] = channel.render(CUSTOMER, message)
    interactive = body["interactive"]
    assert interactive["type"] == "button" and interactive["body"] == {"text": "Pick a time"}
    titles = [b["reply"]["title"] for b in interactive["action"]["buttons"]]
    assert titles[0] == "9:30" and len(titles[1]) <= 20 and titles[1].endswith("…")


def test_four_to_ten_options_are_a_list(channel: WhatsAppChannel) -> None:
    [body] = channel.render(CUSTOMER, OutboundMessage("Pick", options(10, "A label that is longer than 24")))
    action = body["interactive"]["action"]
    rows = action["sections"][0]["rows"]
    assert body["interactive"]["type"] == "list" and len(rows) == 10 and len(action["button"]) <= 20
    assert all(len(r["title"]) <= 24 and len(r["description"]) <= 72 for r in rows)


def test_more_than_ten_options_are_numbered_lines(channel: WhatsAppChannel) -> None:
    [body] = channel.render(CUSTOMER, OutboundMessage("Pick", options(11)))
    assert body["type"] == "text" and "1. Option 0" in body["text"]["body"] and "11. Option 10" in body["text"]["body"]


def test_link_goes_into_the_text_with_a_preview(channel: WhatsAppChannel) -> None:
    [body] = channel.render(CUSTOMER, OutboundMessage("Pay here", link=Link("https://pay.example/x", "Pay")))
    assert body["text"] == {"preview_url": True, "body": "Pay here\n\nPay: https://pay.example/x"}


def test_long_text_is_split_and_options_go_last(channel: WhatsAppChannel) -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 150 for i in range(8))  # ~6 000 chars
    bodies = channel.render(CUSTOMER, OutboundMessage(text, options(2)))
    assert [b["type"] for b in bodies][-1] == "interactive" and len(bodies) >= 3
    assert all(len(b["text"]["body"]) <= 4096 for b in bodies[:-1])
    assert len(bodies[-1]["interactive"]["body"]["text"]) <= 1024
    rebuilt = " ".join(b["text"]["body"] for b in bodies[:-1]) + " " + bodies[-1]["interactive"]["body"]["text"]
    assert rebuilt.split() == text.split()


def test_template_body(channel: WhatsAppChannel) -> None:
    body = channel.render_template(CUSTOMER, Template("booking_reminder", "en_US", ("Friday 10:00",)))
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "booking_reminder",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Friday 10:00"}]}],
    }


# ----------------------------------------------------------------------------- sending
async def test_send_returns_the_wamid(live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock) -> None:
    wamid = await live.send(CUSTOMER, OutboundMessage("Hi", options(3)), last_inbound_at=clock.now)
    assert wamid.startswith("wamid.")
    [call] = graph.calls("POST", f"/v21.0/{PNID}/messages")
    assert call.headers["Authorization"] == f"Bearer {TOKEN}" and call.json["type"] == "interactive"


async def test_split_send_returns_the_last_id(live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock) -> None:
    wamid = await live.send(CUSTOMER, OutboundMessage("word " * 2000), last_inbound_at=clock.now)
    assert len(graph.sent) == 3 and wamid.startswith("wamid.")


async def test_window_closed_without_template_is_permanent_and_calls_nothing(
    live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock
) -> None:
    for last in (None, clock.now - timedelta(hours=24, seconds=1)):
        with pytest.raises(DeliveryError) as err:
            await live.send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=last)
        assert err.value.reason == "window_closed" and err.value.permanent
    assert graph.requests == []


async def test_window_closed_sends_the_template(live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock) -> None:
    message = OutboundMessage("Reminder", template=Template("booking_reminder", "en", ("10:00",)))
    await live.send(CUSTOMER, message, last_inbound_at=clock.now - timedelta(days=3))
    await live.send(CUSTOMER, message, last_inbound_at=clock.now - timedelta(hours=23, minutes=59))
    assert [body["type"] for _, body in graph.sent] == ["template", "text"]


@pytest.mark.parametrize(
    ("code", "status", "reason", "permanent"),
    [
        (131047, 400, "window_closed", True),
        (131026, 400, "undeliverable", True),
        (130429, 400, "rate_limited", False),
        (131056, 400, "rate_limited", False),
        (4, 400, "rate_limited", False),
        (80007, 400, "rate_limited", False),
        (190, 401, "auth", True),
        (100, 400, "invalid", True),
        (368, 400, "sender_blocked", True),
        (2, 503, "unavailable", False),
        (999999, 400, "rejected", True),  # unknown code: the HTTP status decides
        (999999, 502, "unavailable", False),
    ],
)
async def test_graph_errors_are_classified(
    live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock, code: int, status: int, reason: str, permanent: bool
) -> None:
    graph.graph_error(code, status=status)
    with pytest.raises(DeliveryError) as err:
        await live.send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)
    assert (err.value.reason, err.value.permanent, err.value.status) == (reason, permanent, status)
    assert CUSTOMER not in str(err.value) and "Hi" not in str(err.value)


async def test_retry_after_is_honoured(live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock) -> None:
    graph.graph_error(130429, status=429, retry_after=30)
    with pytest.raises(DeliveryError) as err:
        await live.send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)
    assert err.value.retry_after == 30 and not err.value.permanent


async def test_5xx_then_success(live: WhatsAppChannel, graph: FakeGraph, clock: FrozenClock) -> None:
    graph.fail("/", 503, times=2)
    for _ in range(2):
        with pytest.raises(DeliveryError) as err:
            await live.send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)
        assert not err.value.permanent
    assert (await live.send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)).startswith("wamid.")


async def test_wrong_token_is_permanent_auth(http: httpx.AsyncClient, clock: FrozenClock, graph: FakeGraph) -> None:
    graph.whatsapp[PNID] = "another-token"
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, graph.base_url).send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)
    assert (err.value.reason, err.value.permanent) == ("auth", True)


async def test_timeout_and_connection_errors_are_transient(graph: FakeGraph, clock: FrozenClock) -> None:
    graph.whatsapp[PNID] = TOKEN
    graph.hang("/", 1.0)
    async with delivery.client(0.2) as quick:
        with pytest.raises(DeliveryError) as err:
            await make(quick, clock, graph.base_url).send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)
        assert (err.value.reason, err.value.permanent) == ("timeout", False)
        with pytest.raises(DeliveryError) as err:
            nowhere = make(quick, clock, "http://127.0.0.1:9")
            await nowhere.send(CUSTOMER, OutboundMessage("Hi"), last_inbound_at=clock.now)
        assert (err.value.reason, err.value.permanent) == ("connection", False)
