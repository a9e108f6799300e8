"""Messenger and Instagram: recorded webhooks in, Send API bodies and Graph errors out."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from channels import meta
from channels.base import DeliveryError, Link, Option, OutboundMessage
from channels.instagram import InstagramChannel, InstagramConfig
from channels.messenger import MessengerChannel, MessengerConfig
from core.errors import Forbidden, MalformedRequest, Unauthorized
from tests.channels.conftest import payload
from tests.conftest import FrozenClock
from tests.fakes.graph_server import FakeGraph

PAGE = "104826392218765"
PSID = "7163926358127365"
IG = "17841405822304914"
IGSID = "1172963840257203"
SECRET = "meta-app-secret"
GRAPH = "https://graph.facebook.com/v21.0"


def messenger(http: httpx.AsyncClient, clock: FrozenClock, base_url: str = GRAPH) -> MessengerChannel:
    config = MessengerConfig(
        page_id=PAGE,
        page_access_token=SecretStr("page-token"),
        app_secret=SecretStr(SECRET),
        verify_token=SecretStr("verify-me"),
        api_base_url=base_url,
    )
    return MessengerChannel(config, agent="sunrise", http=http, clock=clock)


def instagram(http: httpx.AsyncClient, clock: FrozenClock, base_url: str = GRAPH) -> InstagramChannel:
    config = InstagramConfig(
        account_id=IG,
        access_token=SecretStr("ig-token"),
        app_secret=SecretStr(SECRET),
        verify_token=SecretStr("verify-me"),
        api_base_url=base_url,
    )
    return InstagramChannel(config, agent="sunrise", http=http, clock=clock)


@pytest.fixture
def fb(http: httpx.AsyncClient, clock: FrozenClock) -> MessengerChannel:
    return messenger(http, clock)


@pytest.fixture
def ig(http: httpx.AsyncClient, clock: FrozenClock) -> InstagramChannel:
    return instagram(http, clock)


# ----------------------------------------------------------------------------- Messenger inbound
def test_text(fb: MessengerChannel) -> None:
    body = payload("messenger", "text.json")
    fb.verify(body, {"x-hub-signature-256": meta.signature(SECRET, body)}, "")
    [event] = fb.parse(body, {})
    assert (event.channel, event.target, event.sender, event.kind) == ("messenger", PAGE, PSID, "text")
    assert event.text.endswith("äöå") and event.provider_message_id.startswith("m_")
    assert event.order == 1772438400000 and event.sent_at is not None
    assert fb.target == PAGE


def test_quick_reply_and_postback_are_choices(fb: MessengerChannel) -> None:
    [quick] = fb.parse(payload("messenger", "quick_reply.json"), {})
    assert (quick.kind, quick.choice, quick.text) == ("choice", "slot_0930", "9:30")
    [postback] = fb.parse(payload("messenger", "postback.json"), {})
    assert (postback.kind, postback.choice, postback.text) == ("choice", "BOOK", "Book an appointment")
    assert postback.provider_message_id.startswith("m_")


def test_echo_and_read_are_ignored(fb: MessengerChannel) -> None:
    [echo] = fb.parse(payload("messenger", "echo.json"), {})
    assert echo.kind == "ignored" and echo.provider_message_id.startswith("m_EcH0")
    [read] = fb.parse(payload("messenger", "read.json"), {})
    assert read.kind == "ignored" and read.provider_message_id


def test_delivery_is_one_status_per_mid(fb: MessengerChannel) -> None:
    events = fb.parse(payload("messenger", "delivery.json"), {})
    assert [(e.kind, e.status) for e in events] == [("status", "delivered")] * 2
    assert len({e.provider_message_id for e in events}) == 2


def test_batch_reads_every_entry_and_keeps_repeats_for_the_inbox(fb: MessengerChannel) -> None:
    """The repeated mid comes back twice: the inbox's unique key drops the second copy."""
    events = fb.parse(payload("messenger", "batch_with_repeat.json"), {})
    assert [e.provider_message_id for e in events] == ["m_BaTcH1", "m_BaTcH2", "m_BaTcH1"]
    assert events[1].sender == "5922740917364452"


def test_attachments_are_unsupported(fb: MessengerChannel) -> None:
    data = json.loads(payload("messenger", "text.json"))
    message = data["entry"][0]["messaging"][0]["message"]
    del message["text"]
    message["attachments"] = [{"type": "image", "payload": {"url": "https://scontent.example/1.jpg"}}]
    [event] = fb.parse(json.dumps(data).encode(), {})
    assert event.kind == "unsupported" and event.provider_message_id == message["mid"]


@pytest.mark.parametrize(
    "body", [b"nope", b"{}", b'{"object":"instagram","entry":[]}', b'{"object":"page","entry":{}}', b"null"]
)
def test_malformed(fb: MessengerChannel, body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        fb.parse(body, {})


def test_signatures(fb: MessengerChannel, ig: InstagramChannel) -> None:
    body = payload("messenger", "text.json")
    for channel in (fb, ig):
        with pytest.raises(Unauthorized):
            channel.verify(body, {}, "")
        with pytest.raises(Forbidden):
            channel.verify(body, {"X-Hub-Signature-256": meta.signature("wrong", body)}, "")
        query = {"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": "verify-me"}
        assert channel.handshake(query) == "7"


# ----------------------------------------------------------------------------- Instagram inbound
def test_instagram_events(ig: InstagramChannel) -> None:
    [text] = ig.parse(payload("instagram", "text.json"), {})
    assert (text.channel, text.target, text.sender, text.kind) == ("instagram", IG, IGSID, "text")
    assert ig.target == IG
    [quick] = ig.parse(payload("instagram", "quick_reply.json"), {})
    assert (quick.kind, quick.choice, quick.text) == ("choice", "svc_physio", "Physiotherapy")
    [reaction] = ig.parse(payload("instagram", "reaction.json"), {})
    [story] = ig.parse(payload("instagram", "story_mention.json"), {})
    assert reaction.kind == story.kind == "ignored"
    with pytest.raises(MalformedRequest):
        ig.parse(payload("messenger", "text.json"), {})  # object: page is not an Instagram webhook


# ----------------------------------------------------------------------------- rendering
def test_messenger_quick_replies(fb: MessengerChannel) -> None:
    [body] = fb.render(PSID, OutboundMessage("Pick", (Option("slot_0930", "9:30"), Option("x", "x" * 30))))
    assert body["recipient"] == {"id": PSID} and body["messaging_type"] == "RESPONSE"
    quick = body["message"]["quick_replies"]
    assert quick[0] == {"content_type": "text", "title": "9:30", "payload": "slot_0930"}
    assert len(quick[1]["title"]) <= 20


def test_more_than_13_options_are_numbered_and_links_in_text(fb: MessengerChannel) -> None:
    options = tuple(Option(f"o{i}", f"Label {i}") for i in range(14))
    [body] = fb.render(PSID, OutboundMessage("Pick", options, Link("https://pay.example/a", "Pay")))
    text = body["message"]["text"]
    assert (
        "quick_replies" not in body["message"]
        and "14. Label 13" in text
        and text.endswith("Pay: https://pay.example/a")
    )


def test_long_text_split_with_quick_replies_last(fb: MessengerChannel, ig: InstagramChannel) -> None:
    text = " ".join(["ä"] * 1800)  # 3 599 characters, 5 399 UTF-8 bytes
    fb_bodies = fb.render(PSID, OutboundMessage(text, (Option("ok", "OK"),)))
    assert len(fb_bodies) == 2 and all(len(b["message"]["text"]) <= 2000 for b in fb_bodies)
    assert "quick_replies" in fb_bodies[-1]["message"] and "quick_replies" not in fb_bodies[0]["message"]
    ig_bodies = ig.render(IGSID, OutboundMessage(text))
    assert len(ig_bodies) == 6 and all(len(b["message"]["text"].encode()) <= 1000 for b in ig_bodies)
    assert "messaging_type" not in ig_bodies[0]


# ----------------------------------------------------------------------------- sending
async def test_send_to_messenger_and_instagram(http: httpx.AsyncClient, clock: FrozenClock, graph: FakeGraph) -> None:
    graph.messenger[PAGE] = "page-token"
    graph.instagram[IG] = "ig-token"
    mid = await messenger(http, clock, graph.base_url).send(PSID, OutboundMessage("Hi", (Option("a", "A"),)))
    assert mid.startswith("m_")
    mid = await instagram(http, clock, graph.base_url).send(IGSID, OutboundMessage("é" * 700))
    assert mid.startswith("m_") and len(graph.calls("POST", f"/v21.0/{IG}/messages")) == 2
    assert graph.calls("POST", f"/v21.0/{IG}/messages")[0].headers["Authorization"] == "Bearer ig-token"


# Outside the 24-hour window only a message tag that fits the message may go (channels.md §2.3).
WINDOW_CASES = [
    # purpose, hours since the customer last wrote, Messenger's fields, Instagram's fields (None: refused)
    ("reply", 2, {"messaging_type": "RESPONSE"}, {}),
    ("event_update", 2, {"messaging_type": "UPDATE"}, {}),
    ("human", 2, {"messaging_type": "RESPONSE"}, {}),
    ("reply", 30, None, None),
    ("event_update", 30, {"messaging_type": "MESSAGE_TAG", "tag": "CONFIRMED_EVENT_UPDATE"}, None),
    ("purchase_update", 30, {"messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE"}, None),
    (
        "human",
        72,
        {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"},
        {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"},
    ),
    ("human", 24 * 7 + 1, None, None),
]


@pytest.mark.parametrize(("purpose", "hours", "fb_fields", "ig_fields"), WINDOW_CASES)
async def test_the_reply_window_and_message_tags(
    http: httpx.AsyncClient,
    clock: FrozenClock,
    graph: FakeGraph,
    purpose: str,
    hours: int,
    fb_fields: dict[str, str] | None,
    ig_fields: dict[str, str] | None,
) -> None:
    graph.messenger[PAGE] = "page-token"
    graph.instagram[IG] = "ig-token"
    last_wrote = clock.now - timedelta(hours=hours)
    message = OutboundMessage("Your check-up is tomorrow at 10:00.", purpose=purpose)
    for channel, node, expected in (
        (messenger(http, clock, graph.base_url), PAGE, fb_fields),
        (instagram(http, clock, graph.base_url), IG, ig_fields),
    ):
        before = len(graph.requests)
        if expected is None:
            with pytest.raises(DeliveryError) as err:
                await channel.send(PSID, message, last_inbound_at=last_wrote)
            assert (err.value.reason, err.value.permanent) == ("window_closed", True)
            assert len(graph.requests) == before  # refused here, without asking Meta
            continue
        await channel.send(PSID, message, last_inbound_at=last_wrote)  # the fake checks the tag too
        [sent] = graph.calls("POST", f"/v21.0/{node}/messages")[-1:]
        fields = {k: v for k, v in sent.json.items() if k in ("messaging_type", "tag")}
        assert fields == expected


def test_a_message_keeps_its_purpose_through_the_outbox_payload() -> None:
    message = OutboundMessage("Hi", purpose="human")
    assert OutboundMessage.from_payload(message.text, message.to_payload()) == message
    assert OutboundMessage.from_payload("Hi", {}).purpose == "reply"
    with pytest.raises(ValueError):
        OutboundMessage("Hi", purpose="promotion")


@pytest.mark.parametrize(
    ("code", "subcode", "reason", "permanent"),
    [
        (10, 2018278, "window_closed", True),
        (551, None, "recipient_unavailable", True),
        (100, 2018108, "recipient_unavailable", True),
        (190, None, "auth", True),
        (368, None, "sender_blocked", True),
        (4, None, "rate_limited", False),
        (613, None, "rate_limited", False),
        (1200, None, "unavailable", False),
        (2, None, "unavailable", False),
    ],
)
async def test_send_api_errors(
    http: httpx.AsyncClient,
    clock: FrozenClock,
    graph: FakeGraph,
    code: int,
    subcode: int | None,
    reason: str,
    permanent: bool,
) -> None:
    graph.messenger[PAGE] = "page-token"
    graph.graph_error(code, subcode=subcode, status=400 if permanent else 500)
    with pytest.raises(DeliveryError) as err:
        await messenger(http, clock, graph.base_url).send(PSID, OutboundMessage("Hi"))
    assert (err.value.reason, err.value.permanent) == (reason, permanent)
