"""Meta's webhook signature and verify handshake (shared by WhatsApp, Messenger and Instagram),
checked against the vectors of reference/channels.md §8.2."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from channels import meta
from core.errors import Forbidden, Unauthorized

WA_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":'
    b'"106540352242922"},"contacts":[{"profile":{"name":"Jane"},"wa_id":"16505551234"}],"messages":[{"from":'
    b'"16505551234","id":"wamid.TEST1","timestamp":"1739321024","type":"text","text":{"body":"Hi"}}]},'
    b'"field":"messages"}]}]}'
)
UNICODE_ESCAPED = b'{"text":"\\u00e4\\u00f6\\u00e5"}'
UNICODE_RAW = '{"text":"äöå"}'.encode()
VECTORS = [
    ("secret", b'{"hello":"world"}', "sha256=2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778"),
    ("test_app_secret", WA_BODY, "sha256=fdae3189bfdde915c9a626e7df9495d6617f2807c099a93fd2581da2008f9ab2"),
    ("test_app_secret", UNICODE_ESCAPED, "sha256=02331cadf5416e9e5dc4ecf73b5c9b7aa6577a90b90fbb6bad6e9a35d8a8f6a9"),
    # the reference leaves the unicode vectors' key implicit: it is the WhatsApp vector's secret
    ("test_app_secret", UNICODE_RAW, "sha256=1156bb8871b0fb6c41be587675ee25663758799081f9aa28d1ecccad94158e9d"),
]


@pytest.mark.parametrize(("secret", "body", "expected"), VECTORS)
def test_signature_vectors(secret: str, body: bytes, expected: str) -> None:
    assert len(WA_BODY) == 411
    assert meta.signature(secret, body) == expected
    meta.verify_signature(SecretStr(secret), body, {"X-Hub-Signature-256": expected})


def test_header_is_found_in_any_case_and_hex_in_upper_case() -> None:
    body, secret = VECTORS[0][1], SecretStr("secret")
    value = VECTORS[0][2]
    meta.verify_signature(secret, body, CIMultiDict({"x-hub-signature-256": value}))
    meta.verify_signature(secret, body, {"x-hub-signature-256": value})
    meta.verify_signature(secret, body, {"X-HUB-SIGNATURE-256": "sha256=" + value[7:].upper()})


def test_reserialised_json_is_rejected() -> None:
    """R14: the vector's JSON re-serialised by json.dumps has another signature; the original fails."""
    reserialised = json.dumps(json.loads(WA_BODY)).encode()
    assert meta.signature("test_app_secret", reserialised) == (
        "sha256=0e0c625aa231e08d1e6b7f3f7a2ca885c39eeae1e76981bc91690578d24eb907"
    )
    with pytest.raises(Forbidden):
        meta.verify_signature(SecretStr("test_app_secret"), reserialised, {"X-Hub-Signature-256": VECTORS[1][2]})


@pytest.mark.parametrize("headers", [{}, {"X-Hub-Signature-256": ""}, {"X-Hub-Signature": "sha1=abc"}])
def test_missing_signature_is_unauthorized(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        meta.verify_signature(SecretStr("secret"), b"{}", headers)


@pytest.mark.parametrize(
    "value",
    [
        "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778",  # no prefix
        "sha1=2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778",
        "sha256=2677ad3e",  # truncated
        "sha256=zz77ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778",
        "sha256=3677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778",  # one digit off
        "sha256=2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778ä",
    ],
)
def test_malformed_or_wrong_signature_is_forbidden(value: str) -> None:
    with pytest.raises(Forbidden):
        meta.verify_signature(SecretStr("secret"), b'{"hello":"world"}', {"X-Hub-Signature-256": value})


def test_empty_secret_never_verifies() -> None:
    body = b'{"hello":"world"}'
    with pytest.raises(Forbidden):
        meta.verify_signature(SecretStr(""), body, {"X-Hub-Signature-256": meta.signature("", body)})


def test_handshake_echoes_the_challenge() -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "meatyhamhock"}
    assert meta.handshake(query, SecretStr("meatyhamhock")) == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "meatyhamhock"},
        {"hub.mode": "subscribe", "hub.verify_token": "meatyhamhock"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refuses(query: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        meta.handshake(query, SecretStr("meatyhamhock"))
