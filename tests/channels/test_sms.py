"""Twilio SMS: signatures (reference §8.1 vectors, twilio's RequestValidator as the oracle), form
webhooks, GSM-7/UCS-2 segments and splitting, and sends against the fake Twilio API."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from channels import sms
from channels.base import DeliveryError, Link, Option, OutboundMessage
from channels.sms import SmsChannel, SmsConfig, segments
from core.errors import Forbidden, MalformedRequest, Unauthorized
from tests.channels.conftest import payload
from tests.conftest import FrozenClock
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

PUBLIC = "https://bot.example.com/webhooks/sms"
INTERNAL = "http://127.0.0.1:8080/webhooks/sms"
CUSTOMER = "+14155550123"
OURS = "+15550100200"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def make(
    http: httpx.AsyncClient, clock: FrozenClock, base_url: str = "https://api.twilio.com", **kw: int
) -> SmsChannel:
    config = SmsConfig(
        account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN), from_number=OURS, api_base_url=base_url, **kw
    )
    return SmsChannel(config, agent="sunrise", http=http, clock=clock)


@pytest.fixture
def channel(http: httpx.AsyncClient, clock: FrozenClock) -> SmsChannel:
    return make(http, clock)


# ----------------------------------------------------------------------------- signatures
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
)
def test_reference_vectors(url: str, expected: str) -> None:
    assert sms.signature("12345", url, VECTOR_PARAMS.items()) == expected


def test_multi_value_vector() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert sms.signature("12345", VECTOR_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_https_url_validates_with_and_without_the_default_port(http: httpx.AsyncClient, clock: FrozenClock) -> None:
    channel = SmsChannel(
        SmsConfig(account_sid="AC1", auth_token=SecretStr("12345"), from_number=OURS), agent="a", http=http, clock=clock
    )
    from urllib.parse import urlencode

    body = urlencode(VECTOR_PARAMS).encode()
    channel.verify(body, {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, VECTOR_URL)
    channel.verify(body, {"X-Twilio-Signature": "kvajT1Ptam85bY51eRf/AJRuM3w="}, VECTOR_URL)
    channel.verify(
        body, {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, VECTOR_URL.replace(".com", ".com:1234")
    )


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12),
        st.text(st.characters(blacklist_categories=["Cs"]), max_size=30),
        max_size=6,
    ),
    st.sampled_from([PUBLIC, VECTOR_URL, "https://bot.example.com/webhooks/sms?agent=ä&x=1"]),
)
def test_agrees_with_the_official_validator(params: dict[str, str], url: str) -> None:
    oracle = RequestValidator(AUTH_TOKEN)
    ours = sms.signature(AUTH_TOKEN, url, params.items())
    assert ours == oracle.compute_signature(url, params)
    assert oracle.validate(url, params, ours)


def test_proxy_public_url_passes_internal_fails(channel: SmsChannel, twilio: FakeTwilio) -> None:
    """R15: Twilio signed the public https URL; the app behind the proxy sees an internal http one."""
    params = list(parse_qsl(payload("sms", "plain.txt").decode()))
    body, headers = twilio.inbound(PUBLIC, params)
    channel.verify(body, headers, PUBLIC)
    with pytest.raises(Forbidden):
        channel.verify(body, headers, INTERNAL)
    with pytest.raises(Forbidden):
        channel.verify(body, headers, PUBLIC.replace("https", "http"))


def test_query_string_is_part_of_the_signature(channel: SmsChannel, twilio: FakeTwilio) -> None:
    url = f"{PUBLIC}?agent=sunrise&v=2"
    body, headers = twilio.inbound(url, [("MessageSid", "SM1"), ("From", CUSTOMER), ("To", OURS), ("Body", "hi")])
    channel.verify(body, headers, url)
    for wrong in (PUBLIC, f"{PUBLIC}?v=2&agent=sunrise", f"{PUBLIC}?agent=sunrise&v=3"):
        with pytest.raises(Forbidden):
            channel.verify(body, headers, wrong)


def test_tampered_params_fail_but_new_twilio_params_are_signed(channel: SmsChannel, twilio: FakeTwilio) -> None:
    params = [("MessageSid", "SM1"), ("From", CUSTOMER), ("To", OURS), ("Body", "book 10am")]
    body, headers = twilio.inbound(PUBLIC, params)
    with pytest.raises(Forbidden):
        channel.verify(body.replace(b"10am", b"11am"), headers, PUBLIC)
    with pytest.raises(Forbidden):
        channel.verify(body + b"&Extra=1", headers, PUBLIC)
    body, headers = twilio.inbound(PUBLIC, [*params, ("SomeNewParam", "x")])  # Twilio adds params freely
    channel.verify(body, headers, PUBLIC)


def test_our_signature_passes_the_oracle(channel: SmsChannel) -> None:
    params = dict(parse_qsl(payload("sms", "emoji.txt").decode()))
    ours = sms.signature(AUTH_TOKEN, PUBLIC, params.items())
    assert RequestValidator(AUTH_TOKEN).validate(PUBLIC, params, ours)


def test_missing_and_wrong_signature(channel: SmsChannel) -> None:
    body = payload("sms", "plain.txt")
    with pytest.raises(Unauthorized):
        channel.verify(body, {}, PUBLIC)
    with pytest.raises(Forbidden):
        channel.verify(body, {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, PUBLIC)
    with pytest.raises(Forbidden):
        channel.verify(b"\xff\xfe", {"X-Twilio-Signature": "x"}, PUBLIC)


# ----------------------------------------------------------------------------- inbound
def test_plain(channel: SmsChannel) -> None:
    [event] = channel.parse(payload("sms", "plain.txt"), {})
    assert (event.channel, event.target, event.sender, event.kind) == ("sms", OURS, CUSTOMER, "text")
    assert event.provider_message_id == "SM3b8f1e2c4d5a6b7c8d9e0f1a2b3c4d5e" and event.order == 0
    assert event.text == "Hi, can I book a consultation on Friday at 10am?" and not event.extra
    assert channel.target == OURS


def test_emoji(channel: SmsChannel) -> None:
    [event] = channel.parse(payload("sms", "emoji.txt"), {})
    assert event.text == "Thanks! See you tomorrow 😊 äöå € [ok]"


@pytest.mark.parametrize(("name", "opt_out"), [("stop.txt", "stop"), ("help.txt", "help")])
def test_opt_out_keywords(channel: SmsChannel, name: str, opt_out: str) -> None:
    [event] = channel.parse(payload("sms", name), {})
    assert event.extra["opt_out"] == opt_out and event.kind == "text"


def test_status_callback(channel: SmsChannel) -> None:
    body = b"MessageSid=SMabc&MessageStatus=undelivered&ErrorCode=30003&From=%2B15550100200&To=%2B14155550123"
    [event] = channel.parse(body, {})
    assert (event.kind, event.status, event.provider_message_id, event.extra["error"]) == (
        "status",
        "failed",
        "SMabc",
        "30003",
    )


def test_picture_without_words_is_unsupported(channel: SmsChannel) -> None:
    [event] = channel.parse(b"MessageSid=MM1&From=%2B14155550123&To=%2B15550100200&Body=&NumMedia=1", {})
    assert event.kind == "unsupported"


@pytest.mark.parametrize("body", [b"", b"\xff", b"hello", b"Body=hi&From=%2B1", b'{"MessageSid": "SM1"}'])
def test_malformed(channel: SmsChannel, body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        channel.parse(body, {})


# ----------------------------------------------------------------------------- segments
@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM-7 basic table
        ("ü" * 70 + "ł", 2),  # one non-GSM letter flips the whole text to UCS-2
        ("ł" * 70, 1),
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("😀" * 35, 1),  # 70 UTF-16 units
        ("😀" * 36, 2),
        ("a" + "😀" * 33 + "b", 1),  # 68 units
        ("a" * 66 + "😀" + "a" * 66, 3),  # 134 units, but a surrogate pair never straddles two segments
    ],
)
def test_segments(text: str, count: int) -> None:
    assert segments(text) == count


def test_segment_boundary_with_extension_characters() -> None:
    assert segments("a" * 152 + "€") == 1  # 154 septets fit a single 160-septet SMS
    assert segments("a" * 158 + "€" + "a") == 2  # 161 septets
    assert segments("a" * 152 + "€" + "a" * 10) == 2  # the escape pair moves to segment two whole
    assert segments("a" * 152 + "€" + "a" * 152) == 3  # 306 septets, yet the pair cannot straddle


# ----------------------------------------------------------------------------- rendering and sending
def test_options_are_numbered_lines_and_links_are_urls(channel: SmsChannel) -> None:
    message = OutboundMessage(
        "Pick a time", (Option("a", "9:30"), Option("b", "10:00")), Link("https://p.example/x", "Pay")
    )
    [form] = channel.render(CUSTOMER, message)
    assert form == {"To": CUSTOMER, "From": OURS, "Body": "Pick a time\n\n1. 9:30\n2. 10:00\nPay: https://p.example/x"}


@pytest.mark.parametrize(("unit", "per_sms"), [("a", 153 * 2), ("ł", 67 * 2)])
def test_splitting_respects_max_segments(http: httpx.AsyncClient, clock: FrozenClock, unit: str, per_sms: int) -> None:
    channel = make(http, clock, max_segments=2)
    text = " ".join([unit * 9] * 100)  # 999 characters
    forms = channel.render(CUSTOMER, OutboundMessage(text))
    assert all(segments(f["Body"]) <= 2 for f in forms)
    assert all(len(f["Body"]) <= per_sms for f in forms) and len(forms) >= 999 // per_sms
    assert " ".join(f["Body"] for f in forms).split() == text.split()


def test_default_split_stays_under_twilio_1600(channel: SmsChannel) -> None:
    forms = channel.render(CUSTOMER, OutboundMessage("word " * 1000))
    assert all(len(f["Body"]) <= 1600 and segments(f["Body"]) <= 10 for f in forms) and len(forms) == 4


async def test_send(http: httpx.AsyncClient, clock: FrozenClock, twilio: FakeTwilio) -> None:
    channel = make(http, clock, twilio.base_url)
    sid = await channel.send(CUSTOMER, OutboundMessage("Your booking is confirmed ✅"))
    assert sid.startswith("SM") and twilio.messages == [
        {"To": CUSTOMER, "From": OURS, "Body": "Your booking is confirmed ✅"}
    ]


@pytest.mark.parametrize(
    ("code", "status", "reason", "permanent"),
    [
        (21610, 400, "opted_out", True),
        (21211, 400, "invalid_number", True),
        (21614, 400, "invalid_number", True),
        (20429, 429, "rate_limited", False),
        (20500, 500, "unavailable", False),
        (99999, 400, "rejected", True),
    ],
)
async def test_twilio_errors(
    http: httpx.AsyncClient,
    clock: FrozenClock,
    twilio: FakeTwilio,
    code: int,
    status: int,
    reason: str,
    permanent: bool,
) -> None:
    twilio.twilio_error(code, status=status)
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, twilio.base_url).send(CUSTOMER, OutboundMessage("Hi"))
    assert (err.value.reason, err.value.permanent) == (reason, permanent)


async def test_opted_out_number_and_bad_credentials(
    http: httpx.AsyncClient, clock: FrozenClock, twilio: FakeTwilio
) -> None:
    twilio.opted_out.add(CUSTOMER)
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, twilio.base_url).send(CUSTOMER, OutboundMessage("Hi"))
    assert (err.value.reason, err.value.permanent) == ("opted_out", True)
    twilio.auth_token = "rotated"
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, twilio.base_url).send("+14155550199", OutboundMessage("Hi"))
    assert (err.value.reason, err.value.permanent) == ("auth", True)


async def test_retry_after_header(http: httpx.AsyncClient, clock: FrozenClock, twilio: FakeTwilio) -> None:
    twilio.answer_next(
        "/2010-04-01", 429, {"code": 20429, "message": "Too Many Requests", "status": 429}, headers={"Retry-After": "5"}
    )
    with pytest.raises(DeliveryError) as err:
        await make(http, clock, twilio.base_url).send(CUSTOMER, OutboundMessage("Hi"))
    assert err.value.retry_after == 5 and not err.value.permanent
