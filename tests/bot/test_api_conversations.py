"""The hand-off inbox over the API: escalated conversations, a person's reply, release, tenancy."""

from __future__ import annotations

from bot.context import CONTEXT
from bot.dialogue.manager import Incoming
from tests.conftest import Api, new_token


async def test_a_person_answers_an_escalated_conversation_and_hands_it_back(api: Api) -> None:
    ctx = api.client.server.app[CONTEXT]
    turn = await ctx.dialogue.handle(Incoming("acme-bot", "web", "visitor-9", text="I want to speak to a human"))
    await ctx.dialogue.handle(Incoming("acme-bot", "web", "visitor-9", text="anyone there?"))

    status, listed = await api.get("/api/conversations", status="escalated")
    assert status == 200
    assert [(c["id"], c["status"], c["channel"]) for c in listed["conversations"]] == [
        (turn.conversation_id, "escalated", "web")
    ]

    status, sent = await api.post(f"/api/conversations/{turn.conversation_id}/messages", {"text": "Hi, Sam here."})
    assert status == 201 and sent["author"] == "human" and sent["text"] == "Hi, Sam here."
    status, transcript = await api.get(f"/api/conversations/{turn.conversation_id}/messages")
    texts = [(m["author"], m["text"]) for m in transcript["messages"]]
    assert texts[-2:] == [("customer", "anyone there?"), ("human", "Hi, Sam here.")]
    status, after = await api.get(f"/api/conversations/{turn.conversation_id}/messages", after=str(sent["seq"] - 1))
    assert [m["seq"] for m in after["messages"]] == [sent["seq"]]

    status, _ = await api.post(f"/api/conversations/{turn.conversation_id}/release")
    assert status == 200
    again = await ctx.dialogue.handle(Incoming("acme-bot", "web", "visitor-9", text="hello"))
    assert again.replies, "the bot speaks again once released"


async def test_conversations_are_scoped_to_the_tokens_business(api: Api) -> None:
    ctx = api.client.server.app[CONTEXT]
    turn = await ctx.dialogue.handle(Incoming("acme-bot", "web", "visitor-1", text="hi"))
    other = await new_token(ctx.db, "other", ctx.clock)  # type: ignore[arg-type]
    for method, path in (
        ("get", f"/api/conversations/{turn.conversation_id}/messages"),
        ("post", f"/api/conversations/{turn.conversation_id}/messages"),
        ("post", f"/api/conversations/{turn.conversation_id}/release"),
    ):
        resp = await api.client.request(method, path, json={"text": "x"}, headers=api.headers(other))
        assert resp.status == 404, path
    resp = await api.client.get("/api/conversations", headers=api.headers(other))
    assert (await resp.json())["conversations"] == []


async def test_bad_input_is_refused_clearly(api: Api) -> None:
    ctx = api.client.server.app[CONTEXT]
    turn = await ctx.dialogue.handle(Incoming("acme-bot", "web", "visitor-1", text="hi"))
    status, err = await api.post(f"/api/conversations/{turn.conversation_id}/messages", {"text": ""})
    assert status == 422 and err["success"] is False
    status, err = await api.get("/api/conversations", status="closed")
    assert status == 422
    status, err = await api.get(f"/api/conversations/{turn.conversation_id}/messages", after="x")
    assert status == 422
