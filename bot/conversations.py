"""Conversations for the people behind the bot: the hand-off inbox, replies and release.

A person's reply goes into the conversation like any other message (and, on provider channels,
out through the channel); releasing hands the conversation back to the bot.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from bot.context import AppContext, context
from bot.http import json_response, query, read_model, tenant
from channels.base import OutboundMessage
from core.errors import Conflict, InvalidInput, NotFound
from core.phones import masked
from storage import conversations, outbox
from storage import tables as t

routes = web.RouteTableDef()


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


def conversation_json(conv: t.Conversation, agent: str, customer: str | None) -> dict[str, Any]:
    return {
        "id": conv.id,
        "agent": agent,
        "channel": conv.channel,
        "status": conv.status,
        "customer": customer,
        "satisfaction": conv.satisfaction,
        "optedOut": conv.opted_out,
        "startedAt": conv.started_at.isoformat(),
        "lastActivityAt": conv.last_activity_at.isoformat(),
        "escalatedAt": conv.escalated_at.isoformat() if conv.escalated_at else None,
    }


async def _own(request: web.Request) -> t.Conversation:
    async with context(request).db.reading() as session:
        return (await conversations.get(session, tenant(request), request.match_info["id"])).conversation


@routes.get("/api/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    status = query(request, "status", required=False)
    if status not in (None, "active", "escalated"):
        raise InvalidInput("status: active or escalated")
    async with context(request).db.reading() as session:
        found = await conversations.search(session, tenant(request), status=status)
    return json_response({"conversations": [conversation_json(f.conversation, f.agent, f.customer) for f in found]})


@routes.get("/api/conversations/{id}/messages")
async def conversation_messages(request: web.Request) -> web.Response:
    conv = await _own(request)
    raw = query(request, "after", required=False) or "0"
    if not raw.isdigit():
        raise InvalidInput("after: a message number")
    messages = await context(request).dialogue.messages(conv.id, int(raw))
    return json_response({"messages": [m.to_json() for m in messages]})


@routes.post("/api/conversations/{id}/messages")
async def reply(request: web.Request) -> web.Response:
    conv = await _own(request)
    body = await read_model(request, ReplyIn)
    stored = await context(request).dialogue.push(conv.tenant_id, conv.id, OutboundMessage(body.text), author="human")
    if stored is None:
        raise Conflict("the customer has opted out of messages", code="opted_out")
    return json_response(stored.to_json(), status=201)


@routes.post("/api/conversations/{id}/release")
async def release(request: web.Request) -> web.Response:
    conv = await _own(request)
    await context(request).dialogue.release(conv.tenant_id, conv.id)
    return json_response({"id": conv.id, "status": "active"})


async def undelivered_list(ctx: AppContext, tenant_id: str) -> list[dict[str, Any]]:
    """Messages that could not be delivered (dead), newest first: what a person may replay. The
    recipient is masked (never a whole phone number); the customer's name is theirs to show."""
    rows = await outbox.dead(ctx.db, tenant_id)
    async with ctx.db.reading() as session:
        names = await conversations.customer_names(session, tenant_id, (r.conversation_id for r in rows))
    return [
        {
            "id": r.id,
            "conversationId": r.conversation_id,
            "channel": r.channel,
            "recipient": masked(r.recipient),
            "customer": names.get(r.conversation_id),
            "text": r.text,
            "attempts": r.attempts,
            "error": r.last_error,
            "createdAt": r.created_at.isoformat(),
        }
        for r in rows
    ]


async def replay_undelivered(ctx: AppContext, tenant_id: str, raw_id: str) -> dict[str, Any]:
    """Queue one dead message of this business again and wake the relay; 404 for anything else."""
    if not raw_id.isdigit() or not await outbox.replay(ctx.db, tenant_id, int(raw_id), ctx.clock()):
        raise NotFound("no such undelivered message")
    ctx.dialogue.on_outbox()
    return {"id": int(raw_id), "state": "pending"}


@routes.get("/api/outbox")
async def undelivered(request: web.Request) -> web.Response:
    return json_response({"messages": await undelivered_list(context(request), tenant(request))})


@routes.post("/api/outbox/{id}/replay")
async def replay(request: web.Request) -> web.Response:
    return json_response(await replay_undelivered(context(request), tenant(request), request.match_info["id"]))
