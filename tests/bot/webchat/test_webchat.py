"""Web chat over the real app: the page, the widget, and the WebSocket protocol end to end.

The rules engine answers; the clock is frozen at Monday 2026-03-02 08:00 UTC (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from bot import webchat
from bot.app import create_app
from bot.context import CONTEXT, AppContext
from bot.dialogue.manager import DialogueManager, StoredMessage
from bot.settings import Settings
from channels import web
from channels.base import Link, Option, OutboundMessage
from tests.conftest import FrozenClock, demo_business, make_settings, other_business, tenant_of

AGENT = "acme-bot"
TIMEOUT = 5.0


def web_businesses() -> list[dict[str, Any]]:
    acme = demo_business()
    acme["agents"] = [
        {"slug": AGENT, "name": "Ada", "channels": {"web": {"enabled": True}}},
        {"slug": "quiet-bot", "name": "Quinn"},  # exists, but web chat is off
    ]
    other = other_business()
    other["agents"] = [{"slug": "other-bot", "name": "Olly", "channels": {"web": {"enabled": True}}}]
    return [acme, other]


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, web_businesses(), dialogue={"rate_limit": {"burst": 50}})


@pytest_asyncio.fixture
async def client(aiohttp_client: Any, settings: Settings, clock: FrozenClock) -> TestClient:
    return await aiohttp_client(create_app(settings, clock=clock))


def ctx(client: TestClient) -> AppContext:
    return client.app[CONTEXT]


class Tab:
    """One browser tab's socket, read frame by frame."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}

    async def recv(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=TIMEOUT)
        assert message.type == WSMsgType.TEXT, message
        assert "<" not in message.data and ">" not in message.data  # markup characters travel escaped
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def resume(self, after: int = 0, tz: str = "UTC") -> None:
        await self.send({"type": "resume", "after": after, "tz": tz, "locale": "en-GB"})
        if after == 0 and not self.hello.get("conversation"):
            welcome = await self.recv()  # a new visitor is greeted before writing anything; nothing is stored
            assert (welcome["type"], welcome["seq"], welcome["author"]) == ("message", 0, "bot"), welcome
            assert welcome["options"][0]["id"] == "menu:book"

    async def turn(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        """Send a text/choice frame; the message frames between typing on and typing off."""
        await self.send(frame)
        assert await self.recv() == {"type": "typing", "on": True}
        frames = []
        while (frame := await self.recv()) != {"type": "typing", "on": False}:
            frames.append(frame)
        return frames

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self.turn({"type": "text", "text": text})

    async def tap(self, frames: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
        for frame in reversed(frames):
            for option in frame.get("options", []):
                if option["label"] == label:
                    return await self.turn({"type": "choice", "id": option["id"], "label": label})
        raise AssertionError(f"no option {label!r}")

    async def messages(self, count: int) -> list[dict[str, Any]]:
        return [await self.recv() for _ in range(count)]

    async def silent(self, seconds: float = 0.15) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await self.ws.receive(timeout=seconds)


async def open_tab(client: TestClient, token: str | None = None, agent: str = AGENT) -> Tab:
    params = {"token": token} if token is not None else {}
    tab = Tab(await client.ws_connect(f"/ws/chat/{agent}", params=params))
    tab.hello = await tab.recv()
    assert tab.hello["type"] == "hello"
    return tab


async def stored(client: TestClient, token: str, agent: str = AGENT) -> list[StoredMessage]:
    visitor = web.verify_visitor(ctx(client).visitor_secret, agent, token)
    assert visitor is not None
    manager = ctx(client).dialogue
    conversation = await manager.conversation_for(agent, "web", visitor)
    return [] if conversation is None else await manager.messages(conversation)


# ----- routes --------------------------------------------------------------------------------
async def test_unknown_or_disabled_agents_are_404(client: TestClient) -> None:
    for path in ("/chat/nobody", "/chat/quiet-bot", "/chat/nobody/widget.js", "/ws/chat/nobody", "/ws/chat/quiet-bot"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["code"] == "not_found"


async def test_page_sets_a_signed_httponly_cookie_and_a_strict_policy(client: TestClient) -> None:
    resp = await client.get(f"/chat/{AGENT}")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    body = await resp.text()
    assert 'aria-live="polite"' in body and "/chat/_/chat.js" in body
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    morsel = resp.cookies[webchat.cookie_name(AGENT)]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert web.verify_visitor(ctx(client).visitor_secret, AGENT, morsel.value) is not None
    again = await client.get(f"/chat/{AGENT}")  # the jar sends it back: kept, not replaced
    assert webchat.cookie_name(AGENT) not in again.cookies


async def test_assets_and_widget(client: TestClient) -> None:
    js = await client.get("/chat/_/chat.js")
    assert js.status == 200 and js.content_type == "application/javascript"
    source = await js.text()
    assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write|eval\(", source)
    assert "textContent" in source
    css = await client.get("/chat/_/chat.css")
    assert css.status == 200 and css.content_type == "text/css"
    widget = await client.get(f"/chat/{AGENT}/widget.js")
    assert widget.status == 200 and widget.content_type == "application/javascript"
    assert "iframe" in await widget.text()


# ----- the protocol --------------------------------------------------------------------------
async def test_hello_resume_and_a_turn(client: TestClient) -> None:
    tab = await open_tab(client)
    assert tab.hello["conversation"] is False and tab.hello["name"] == "Ada"
    token = tab.hello["token"]
    assert web.verify_visitor(ctx(client).visitor_secret, AGENT, token)
    await tab.resume()
    await tab.silent()
    frames = await tab.say("hello")
    assert [(f["seq"], f["direction"], f["author"]) for f in frames] == [(1, "in", "customer"), (2, "out", "bot")]
    assert frames[0]["text"] == "hello"
    assert "Acme Clinic" in frames[1]["text"]
    assert {"id": "menu:book", "label": "Book", "description": ""} in frames[1]["options"]
    assert frames[1]["at"] == "2026-03-02T08:00:00+00:00"
    frames = await tab.tap(frames, "Book")
    assert frames[0]["text"] == "Book" and frames[0]["direction"] == "in"
    assert "Which service" in frames[-1]["text"]
    messages = await stored(client, token)
    assert [m.seq for m in messages] == [1, 2, 3, 4]
    assert messages[2].payload == {"choice": "menu:book"}
    await tab.ws.close()


async def test_booking_over_the_socket_in_the_visitors_zone(client: TestClient) -> None:
    tab = await open_tab(client)
    await tab.resume(tz="Asia/Tokyo")
    frames = await tab.say("hi")
    for label in ("Book", "Check-up", "Ann", "Tomorrow"):
        frames = await tab.tap(frames, label)
    assert "Tokyo" in frames[-1]["text"]  # the times are shown in the zone the page sent
    first = frames[-1]["options"][0]
    frames = await tab.turn({"type": "choice", "id": first["id"], "label": first["label"]})
    frames = await tab.tap(frames, "Yes")
    frames = await tab.say("Ravi Kumar")
    frames = await tab.say("+44 7700 900123")
    assert any("holding the Check-up" in f["text"] and "JST" in f["text"] for f in frames)  # paid: held until paid
    assert any((f.get("link") or {}).get("label") == "Pay €50.00" for f in frames)
    await tab.ws.close()


async def test_reconnect_replays_only_after_the_watermark(client: TestClient) -> None:
    tab = await open_tab(client)
    await tab.resume()
    await tab.say("hello")
    await tab.say("opening hours")
    await tab.ws.close()

    again = await open_tab(client, tab.hello["token"])
    assert again.hello["conversation"] is True and again.hello["token"] == tab.hello["token"]
    await again.resume(after=2)
    assert [f["seq"] for f in await again.messages(2)] == [3, 4]
    await again.silent()
    await again.resume(after=0)  # a reloaded page starts from nothing and gets everything
    assert [f["seq"] for f in await again.messages(4)] == [1, 2, 3, 4]
    await again.silent()
    await again.ws.close()


async def test_reload_keeps_history_through_the_cookie(client: TestClient) -> None:
    await client.get(f"/chat/{AGENT}")  # the page sets the cookie; the socket is opened without a token
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[webchat.cookie_name(AGENT)].value
    tab = await open_tab(client)
    assert tab.hello["token"] == cookie
    await tab.resume()
    await tab.say("hello")
    await tab.ws.close()

    await client.get(f"/chat/{AGENT}")  # reload
    reloaded = await open_tab(client)
    assert reloaded.hello == {"type": "hello", "token": cookie, "conversation": True, "name": "Ada"}
    await reloaded.resume()
    history = await reloaded.messages(2)
    assert [f["direction"] for f in history] == ["in", "out"] and history[0]["text"] == "hello"
    await reloaded.ws.close()


async def test_the_token_alone_works_without_the_cookie(client: TestClient) -> None:
    tab = await open_tab(client)
    await tab.resume()
    await tab.say("hello")
    await tab.ws.close()
    client.session.cookie_jar.clear()
    again = await open_tab(client, tab.hello["token"])
    assert again.hello["conversation"] is True
    await again.ws.close()


async def test_a_tampered_token_is_a_new_visitor_never_someone_else(client: TestClient) -> None:
    victim = await open_tab(client)
    await victim.resume()
    await victim.say("my secret question")
    await victim.ws.close()
    token = victim.hello["token"]
    visitor, _, signature = token.partition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other_secret = web.sign_visitor(b"not the deployment secret", AGENT, visitor)
    other_agent = web.sign_visitor(ctx(client).visitor_secret, "other-bot", visitor)
    for forged in (f"{visitor}.{flipped}", visitor, f"{visitor}.", other_secret, other_agent, "x" * 5000):
        client.session.cookie_jar.clear()
        tab = await open_tab(client, forged)
        assert tab.hello["conversation"] is False
        assert tab.hello["token"] != token
        assert web.verify_visitor(ctx(client).visitor_secret, AGENT, tab.hello["token"]) != visitor
        await tab.resume()
        await tab.silent(0.1)
        await tab.ws.close()


async def test_script_text_is_carried_as_text(client: TestClient) -> None:
    tab = await open_tab(client)
    await tab.resume()
    nasty = "<script>alert('x')</script> & <b>x</b>"
    await tab.send({"type": "text", "text": nasty})
    assert await tab.recv() == {"type": "typing", "on": True}
    raw = await tab.ws.receive(timeout=TIMEOUT)
    assert "<script>" not in raw.data and "\\u003cscript\\u003e" in raw.data
    assert json.loads(raw.data)["text"] == nasty  # unchanged: the page inserts it with textContent
    assert (await stored(client, tab.hello["token"]))[0].text == nasty
    await tab.ws.close()


async def test_an_oversized_frame_is_refused_and_nothing_stored(client: TestClient) -> None:
    tab = await open_tab(client)
    await tab.resume()
    await tab.send({"type": "text", "text": "a" * 5000})
    assert await tab.recv() == {"type": "error", "code": "too_large"}
    await tab.send({"type": "text", "text": "é" * 2100})  # 4200 bytes, 2100 characters
    assert await tab.recv() == {"type": "error", "code": "too_large"}
    assert await stored(client, tab.hello["token"]) == []
    frames = await tab.say("hello")  # the socket is still usable
    assert frames[0]["seq"] == 1
    await tab.ws.close()


MALFORMED = [
    "not json",
    "[1, 2]",
    '{"type": "shout", "text": "hi"}',
    '{"text": "hi"}',
    '{"type": "text", "text": "   "}',
    '{"type": "text", "text": 5}',
    '{"type": "choice", "label": "Book"}',
    '{"type": "choice", "id": "' + "x" * 65 + '"}',
    '{"type": "resume", "after": "3"}',
    '{"type": "resume", "after": -1}',
    '{"type": "resume", "after": true}',
]


async def test_malformed_frames_get_an_error_and_nothing_is_stored(client: TestClient) -> None:
    tab = await open_tab(client)
    for raw in MALFORMED:
        await tab.ws.send_str(raw)
        assert await tab.recv() == {"type": "error", "code": "malformed"}, raw
    await tab.ws.send_bytes(b'{"type": "text", "text": "hi"}')
    assert await tab.recv() == {"type": "error", "code": "malformed"}
    assert await stored(client, tab.hello["token"]) == []
    await tab.ws.close()


async def test_a_push_from_a_person_reaches_the_open_socket(client: TestClient) -> None:
    tab = await open_tab(client)
    await tab.resume()
    frames = await tab.say("hello")
    conversation = await ctx(client).dialogue.conversation_for(
        AGENT, "web", web.verify_visitor(ctx(client).visitor_secret, AGENT, tab.hello["token"]) or ""
    )
    assert conversation is not None
    tenant = await tenant_of(ctx(client).db, "acme")
    await ctx(client).dialogue.push(
        tenant,
        conversation,
        OutboundMessage("Pay here", link=Link("https://pay.example/abc", "Pay €50.00")),
        author="payments",
    )
    await ctx(client).dialogue.push(
        tenant, conversation, OutboundMessage("Hi, Sam here", link=Link("javascript:alert(1)", "click")), author="staff"
    )
    pay, person = await tab.messages(2)
    assert pay["seq"] == frames[-1]["seq"] + 1 and pay["author"] == "payments"
    assert pay["link"] == {"url": "https://pay.example/abc", "label": "Pay €50.00"}
    assert person["text"] == "Hi, Sam here" and person["link"] is None  # never a javascript: link
    await tab.silent()
    await tab.ws.close()


async def test_a_second_tab_sees_the_first_tabs_turn(client: TestClient) -> None:
    first = await open_tab(client)
    await first.resume()
    await first.say("hello")
    second = await open_tab(client, first.hello["token"])
    await second.resume(after=2)
    await first.say("opening hours")
    frames = await second.messages(2)
    assert [(f["seq"], f["direction"]) for f in frames] == [(3, "in"), (4, "out")]
    assert frames[0]["text"] == "opening hours"
    await second.silent()
    await first.ws.close()
    await second.ws.close()


async def test_messages_written_by_another_process_arrive_by_polling(
    client: TestClient, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webchat, "POLL_SECONDS", 0.1)
    tab = await open_tab(client)
    await tab.resume()
    await tab.say("hello")
    visitor = web.verify_visitor(ctx(client).visitor_secret, AGENT, tab.hello["token"])
    assert visitor is not None
    elsewhere = DialogueManager(db=ctx(client).db, settings=settings, clock=clock, engine=ctx(client).dialogue.engine)
    conversation = await elsewhere.conversation_for(AGENT, "web", visitor)
    assert conversation is not None
    await elsewhere.push(await tenant_of(ctx(client).db, "acme"), conversation, OutboundMessage("from worker 2"))
    [frame] = await tab.messages(1)
    assert frame["text"] == "from worker 2" and frame["seq"] == 3
    await tab.ws.close()


async def test_a_visitor_without_a_conversation_picks_it_up_when_another_tab_starts_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webchat, "POLL_SECONDS", 0.1)
    watcher = await open_tab(client)
    await watcher.resume()
    talker = await open_tab(client, watcher.hello["token"])
    await talker.say("hello")
    assert [f["seq"] for f in await watcher.messages(2)] == [1, 2]
    await watcher.ws.close()
    await talker.ws.close()


# ----- the channel module, without a server ------------------------------------------------
SECRET = b"k" * 32


def test_tokens_round_trip_and_bind_secret_and_agent() -> None:
    visitor = web.new_visitor_id()
    token = web.sign_visitor(SECRET, AGENT, visitor)
    assert web.verify_visitor(SECRET, AGENT, token) == visitor
    assert web.verify_visitor(b"j" * 32, AGENT, token) is None
    assert web.verify_visitor(SECRET, "other-bot", token) is None
    assert web.verify_visitor(SECRET, AGENT, token.upper()) is None
    assert web.verify_visitor(SECRET, AGENT, None) is None
    assert web.new_visitor_id() != visitor
    with pytest.raises(ValueError):
        web.sign_visitor(SECRET, AGENT, "a.b")


@examples(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
def test_verify_never_raises_and_never_accepts_noise(token: object) -> None:
    assert web.verify_visitor(SECRET, AGENT, token) is None


@examples(max_examples=100, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=16, max_size=64))
def test_every_issued_id_verifies(visitor: str) -> None:
    assert web.verify_visitor(SECRET, AGENT, web.sign_visitor(SECRET, AGENT, visitor)) == visitor


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["resume", "text", "choice", "other"])},
    optional={"after": json_values, "text": json_values, "id": json_values, "label": json_values, "tz": json_values},
)


@examples(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), frame_like.map(json.dumps), json_values.map(json.dumps)))
def test_read_frame_either_parses_or_raises_frame_error(raw: str) -> None:
    try:
        frame = web.read_frame(raw)
    except web.FrameError as exc:
        assert exc.code in ("too_large", "malformed")
        return
    assert isinstance(frame, web.Resume | web.Text | web.Choice)


def test_read_frame_values() -> None:
    assert web.read_frame('{"type":"resume","after":7,"tz":"Europe/Berlin","locale":"de_DE"}') == web.Resume(
        7, "Europe/Berlin", "de-DE"
    )
    assert web.read_frame('{"type":"resume","after":0,"tz":"x y","locale":"<b>"}') == web.Resume(0, None, None)
    assert web.read_frame('{"type":"text","text":"  hi  "}') == web.Text("hi")
    assert web.read_frame('{"type":"text","text":"abcdef"}', max_text=3) == web.Text("abc")
    assert web.read_frame('{"type":"choice","id":"menu:book"}') == web.Choice("menu:book", "menu:book")
    with pytest.raises(web.FrameError):
        web.read_frame('{"type":"text","text":"a\\u0000b"}')
    with pytest.raises(web.FrameError):
        web.read_frame('{"type":"text","text":"\\ud800"}')


def _stored(payload: dict[str, Any], text: str = "hi") -> StoredMessage:
    return StoredMessage(5, "out", "bot", text, payload, datetime(2026, 3, 2, 8, tzinfo=UTC))


def test_message_frame_bounds_options_and_keeps_only_web_links() -> None:
    many = OutboundMessage("pick", tuple(Option(f"o{i}", "L" * 100) for i in range(20)))
    frame = web.message_frame(_stored(many.to_payload(), "pick"))
    assert frame["type"] == "message" and frame["seq"] == 5 and frame["at"] == "2026-03-02T08:00:00+00:00"
    assert len(frame["options"]) == web.CAPABILITIES.max_buttons
    assert len(frame["options"][0]["label"]) == web.CAPABILITIES.button_label_max
    render: Callable[[str], Any] = lambda url: web.message_frame(  # noqa: E731
        _stored(OutboundMessage("x", link=Link(url, "go")).to_payload())
    )["link"]
    assert render("https://pay.example/x?a=1") == {"url": "https://pay.example/x?a=1", "label": "go"}
    for bad in (
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "//evil.example",
        "http:///x",
        "ht tp://x",
    ):
        assert render(bad) is None, bad
    assert web.message_frame(_stored({"options": [{"nope": 1}]}))["options"] == []
    assert web.encode({"text": "<b>&</b>"}) == '{"text":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"}'
    assert json.loads(web.encode({"text": "<b>&</b>"})) == {"text": "<b>&</b>"}
