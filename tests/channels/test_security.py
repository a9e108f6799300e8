"""The reliability plan's adapter-level rows, channel by channel: R12 wrong signature, R13 missing
signature, R14 raw-bytes signing with escaped unicode, R18 ignored kinds."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from channels import meta, sms
from channels.registry import build
from core.errors import Forbidden, Unauthorized
from tests.channels.conftest import payload
from tests.channels.test_registry import FULL
from tests.conftest import T0

URL = "https://bot.example.com/webhooks/sms"


def channel(name: str) -> Any:
    return build(name, FULL[name], agent="sunrise", http=httpx.AsyncClient(), clock=lambda: T0)


def good_headers(name: str, body: bytes) -> dict[str, str]:
    if name in ("whatsapp", "messenger", "instagram"):
        return {"X-Hub-Signature-256": meta.signature(FULL[name]["app_secret"], body)}
    if name == "sms":
        return {"X-Twilio-Signature": sms.signature(FULL["sms"]["auth_token"], URL, sms.form_pairs(body))}
    return {"X-Telegram-Bot-Api-Secret-Token": FULL["telegram"]["secret_token"]}


BODIES = {
    "whatsapp": payload("whatsapp", "text.json"),
    "messenger": payload("messenger", "text.json"),
    "instagram": payload("instagram", "text.json"),
    "sms": payload("sms", "emoji.txt"),
    "telegram": payload("telegram", "message.json"),
}
WRONG = {
    "whatsapp": {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    "messenger": {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    "instagram": {"X-Hub-Signature-256": "sha256=not-hex"},
    "sms": {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    "telegram": {"X-Telegram-Bot-Api-Secret-Token": "guess"},
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_r12_r13_signatures(name: str) -> None:
    adapter, body = channel(name), BODIES[name]
    adapter.verify(body, good_headers(name, body), URL)
    adapter.verify(body, {k.lower(): v for k, v in good_headers(name, body).items()}, URL)
    with pytest.raises(Forbidden):
        adapter.verify(body, WRONG[name], URL)
    with pytest.raises(Unauthorized):
        adapter.verify(body, {}, URL)


@pytest.mark.parametrize("name", ["whatsapp", "messenger", "instagram"])
def test_r14_escaped_unicode_signed_raw_then_reserialised(name: str) -> None:
    """Meta sends ``\\u00e4``-escaped JSON; decoding and re-encoding changes the bytes and must fail."""
    adapter, body = channel(name), BODIES[name]
    assert b"\\u00e4\\u00f6\\u00e5" in body  # the fixture carries the escapes as Meta sends them
    headers = good_headers(name, body)
    adapter.verify(body, headers, "")
    assert "äöå" in adapter.parse(body, {})[0].text
    data = json.loads(body)
    for other in (json.dumps(data).encode(), json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()):
        assert json.loads(other) == data
        with pytest.raises(Forbidden):
            adapter.verify(other, headers, "")


def test_r14_sms_emoji_form() -> None:
    adapter, body = channel("sms"), BODIES["sms"]
    headers = good_headers("sms", body)
    adapter.verify(body, headers, URL)
    with pytest.raises(Forbidden):
        adapter.verify(body.replace(b"%F0%9F%98%8A", b"%F0%9F%98%80"), headers, URL)  # another emoji


R18 = [
    ("whatsapp", "reaction.json"),
    ("whatsapp", "template_status_update.json"),
    ("messenger", "echo.json"),
    ("messenger", "read.json"),
    ("instagram", "reaction.json"),
    ("instagram", "story_mention.json"),
    ("telegram", "edited_message.json"),
    ("telegram", "my_chat_member.json"),
]


@pytest.mark.parametrize(("name", "fixture"), R18)
def test_r18_ignored_kinds(name: str, fixture: str) -> None:
    events = channel(name).parse(payload(name, fixture), {})
    assert events and all(e.kind == "ignored" and e.provider_message_id for e in events)
