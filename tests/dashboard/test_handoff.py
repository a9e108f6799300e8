"""The hand-off over the wire, without a browser: a web chat visitor asks for a person, the owner
answers from the dashboard, and the reply arrives on the visitor's open socket (the same path
the browser test drives in Chromium)."""

from __future__ import annotations

import pytest

from bot.settings import Settings
from tests.bot.webchat.test_webchat import open_tab, web_businesses
from tests.conftest import make_settings
from tests.dashboard.conftest import Dashboard

XSS = '<img src=x onerror="window.__xss=1">'


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, web_businesses(), dialogue={"rate_limit": {"burst": 50}})


async def test_owner_answers_and_the_visitor_receives_it(dash: Dashboard) -> None:
    tab = await open_tab(dash.client)
    await tab.resume()
    await tab.say(XSS)
    replies = await tab.say("I want to talk to a human")
    assert any("colleague" in f["text"] for f in replies)

    await dash.login("owner@acme.test")
    _, inbox = await dash.get("/dashboard/data/conversations", status="escalated")
    [waiting] = inbox["conversations"]
    assert waiting["channel"] == "web" and waiting["agent"] == "acme-bot"
    _, body = await dash.get(f"/dashboard/data/conversations/{waiting['id']}")
    assert body["messages"][0]["text"] == XSS  # stored and served as data; the page inserts it as text

    status, _ = await dash.post(
        f"/dashboard/data/conversations/{waiting['id']}/reply", {"text": "Hi, this is Sam from Acme."}
    )
    assert status == 201
    frame = await tab.recv()
    assert (frame["type"], frame["author"], frame["text"]) == ("message", "human", "Hi, this is Sam from Acme.")

    assert (await dash.post(f"/dashboard/data/conversations/{waiting['id']}/release"))[0] == 200
    replies = await tab.say("thanks, can I book?")
    assert [f["author"] for f in replies if f.get("direction") == "out"][:1] == ["bot"]  # the bot is back
    await tab.ws.close()


async def test_pages_load_their_own_assets(dash: Dashboard) -> None:
    await dash.login("owner@acme.test")
    _, html = await dash.get("/dashboard/agents/acme-bot")
    assert '<script src="/dashboard/static/vendor/chart.umd.min.js" defer></script>' in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for path, kind in [
        ("/dashboard/static/dashboard.js", "application/javascript"),
        ("/dashboard/static/dashboard.css", "text/css"),
        ("/dashboard/static/vendor/chart.umd.min.js", "application/javascript"),
    ]:
        resp = await dash.client.get(path)
        assert resp.status == 200 and resp.content_type == kind, path
    assert (await dash.client.get("/dashboard/static/../settings.py")).status == 404
    assert (await dash.client.get("/dashboard/static/chat.js")).status == 404
