"""The dialogue manager: one customer message in, the agent's replies out, everything recorded.

A turn, in one direction:
1. under the conversation's lock, one write transaction finds or opens the conversation, stores
   the inbound message and decides whether the bot speaks at all (opt-out, a person has taken
   over, the sender's rate limit);
2. the engine answers through a :class:`~bot.dialogue.desk.Desk` (its own short transactions for
   slot look-ups and bookings; a booking is keyed by the turn, so a retried turn never books twice);
3. a second write transaction stores the engine's state and the replies.

Channel-independent duties live here rather than in either engine: STOP/START, hand-off silence,
rate limits, the 1–5 satisfaction question after a completed task, and the fallback reply when an
engine fails or runs out of time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dialogue import catalogue
from bot.dialogue.desk import Catalogues, Desk, Party, Payments
from bot.dialogue.engine import Engine, Turn
from bot.dialogue.reading import means_stop
from bot.dialogue.replies import main_menu
from bot.settings import Settings
from channels.base import Option, OutboundMessage
from core.booking import Status
from core.errors import InvalidInput, NotFound
from core.phones import PHONE_CHANNELS
from core.timezones import canonical_zone_name
from storage import insights, outbox
from storage import tables as t
from storage.catalog import AgentInfo, agent_by_slug, business_by_id
from storage.engine import Database

log = logging.getLogger(__name__)

# Whole-message keywords, as carriers and Twilio treat them (channel-independent compliance).
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "optout", "opt out", "quit", "end", "revoke"})
START_WORDS = frozenset({"start", "unstop", "resume"})
HISTORY_TURNS = 12


@dataclass
class _Running:
    """The conversation whose turn this task is running, and where that turn collects extra
    replies; ``open`` ends with the turn (a task it started may outlive it)."""

    conversation_id: str
    extra: list[OutboundMessage]
    open: bool = True


_RUNNING: ContextVar[_Running | None] = ContextVar("frontdesk_running_turn", default=None)
_RATING = re.compile(r"^\s*([1-5])\s*(?:/\s*5|stars?|⭐)?\s*[.!]?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Incoming:
    agent: str  # the agent's slug
    channel: str
    sender: str  # the channel's identity for the customer (E.164 on phone channels)
    text: str = ""
    choice: str | None = None
    provider_message_id: str | None = None
    sender_name: str | None = None
    timezone: str | None = None  # the customer's zone when the channel knows it
    locale: str | None = None
    key: str | None = None  # idempotency of the inbound message (``inbox:<id>``): a re-run turn reuses it
    # Run in the transaction that stores the replies (the inbox worker closes its row there).
    on_commit: Callable[[AsyncSession], Awaitable[None]] | None = None
    numbered: bool = False  # the channel shows options as numbered lines: a bare "2" picks the second
    keyword: str | None = None  # stop | start | help, when the provider already classified the message
    unsupported: bool = False  # media, stickers...: the customer gets a "text only" answer
    silent: bool = False  # too old to answer automatically (after an outage): stored and shown, no reply
    sent_at: datetime | None = None  # when the customer wrote it, as the provider says


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    direction: str
    author: str
    text: str
    payload: dict[str, Any]
    created_at: datetime
    relayed: bool = False  # queued in the outbox for a provider channel

    @property
    def message(self) -> OutboundMessage:
        return OutboundMessage.from_payload(self.text, self.payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "direction": self.direction,
            "author": self.author,
            "text": self.text,
            "options": self.payload.get("options", []),
            "link": self.payload.get("link"),
            "at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class TurnResult:
    conversation_id: str
    inbound_seq: int
    replies: tuple[StoredMessage, ...]


Listener = Callable[[str, StoredMessage], None]


class DialogueManager:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        clock: Callable[[], datetime],
        engine: Engine,
        fallback: Engine | None = None,
        payments: Payments | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.engine = engine
        self.fallback = fallback  # answers when the main engine is over budget or down (rules behind claude)
        self.payments = payments  # None: prices are paid on the day
        self._locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        self._agents: dict[str, AgentInfo] = {}  # by slug
        self._catalogues: Catalogues = {}  # services and staff per business, checked by version each turn
        self._listeners: dict[str, set[Listener]] = {}
        self.on_outbox: Callable[[], None] = lambda: None  # wakes this process's outbox relay

    # ----- live delivery (web chat) ----------------------------------------------------------
    def listen(self, conversation_id: str, listener: Listener) -> Callable[[], None]:
        self._listeners.setdefault(conversation_id, set()).add(listener)

        def stop() -> None:
            group = self._listeners.get(conversation_id)
            if group is not None:
                group.discard(listener)
                if not group:
                    self._listeners.pop(conversation_id, None)

        return stop

    def _publish(self, conversation_id: str, messages: tuple[StoredMessage, ...]) -> None:
        for listener in list(self._listeners.get(conversation_id, ())):
            for message in messages:
                listener(conversation_id, message)

    @asynccontextmanager
    async def _lock(self, key: tuple[str, str, str]) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield

    # ----- a turn ----------------------------------------------------------------------------
    async def handle(self, incoming: Incoming) -> TurnResult:
        limit = self.settings.dialogue.max_text_chars
        text = incoming.text.strip()
        cut, text = len(text) > limit, text[:limit]
        choice = incoming.choice
        async with self._lock((incoming.agent, incoming.channel, incoming.sender)):
            now = self.clock()
            async with self.db.writing() as session:
                conv = await self._conversation(session, incoming, now)
                if incoming.numbered and choice is None:
                    text, choice = await self._numbered_choice(session, conv.id, text)
                business = await business_by_id(session, conv.tenant_id)
                insights.know_zone(session, business.id, business.timezone)
                # A turn that died half-way is run again on the message its first run stored.
                earlier = await self._by_key(session, conv.id, incoming.key) if incoming.key else None
                if incoming.timezone and not conv.timezone:
                    conv.timezone = _zone_or_none(incoming.timezone)
                early = self._gatekeeper(conv, incoming, text, now, business.name, rerun=earlier is not None)
                # after the gatekeeper: its changes to the conversation go out in the same UPDATE
                inbound = earlier or await self._inbound(session, conv, incoming, text, choice, now)
                state = dict(conv.state or {})
                party = Party(
                    conv.tenant_id,
                    conv.agent_id,
                    conv.id,
                    conv.channel,
                    conv.sender,
                    conv.customer_id,
                    conv.locale,
                    conv.timezone,
                )
                reads = early is None and self.engine.reads_history
                history = await self._history(session, conv.id, inbound.seq) if reads else ()
                first = inbound.seq == 1
                conversation_id = conv.id
            if early is not None:
                replies = early
                desk = None
            else:
                desk = Desk(
                    self.db,
                    party,
                    business,
                    state,
                    self.clock,
                    payments=self.payments,
                    hold_minutes=self.settings.payments.hold_minutes,
                    catalogues=self._catalogues,
                )
                turn = Turn(text, choice, now, inbound.seq, first, history)
                # A push to this conversation from inside the turn (a refund notice while the desk
                # cancels) joins the turn's replies; through the lock it would wait for this turn.
                running = _Running(conversation_id, desk.outcomes.messages)
                scope = _RUNNING.set(running)
                try:
                    replies = await self._answer(turn, desk, state)
                finally:
                    running.open = False
                    _RUNNING.reset(scope)
                if cut:  # said, not silently dropped: what came after the limit was never read
                    note = catalogue.text("too_long", desk.party.locale, limit=f"{limit:,}")
                    replies.insert(0, OutboundMessage(note))
            async with self.db.writing() as session:
                conv = await _locked(session, conversation_id)
                insights.know_zone(session, business.id, business.timezone)
                stored = []
                for reply in replies:
                    stored.append(
                        await self._append(
                            session, conv, "out", "bot", reply.text, reply.to_payload(), self.clock(), response_from=now
                        )
                    )
                if incoming.on_commit is not None:
                    await incoming.on_commit(session)
                if desk is not None:
                    customer_id = desk.state.get("customer_id")
                    if customer_id and conv.customer_id != customer_id:
                        conv.customer_id = customer_id
                    if desk.outcomes.escalated:
                        conv.status, conv.escalated_at = "escalated", now
                    rating = desk.state.pop("rating", None)
                    if rating is not None:
                        conv.satisfaction = int(rating)
                    conv.state = dict(desk.state)
                    await insights.record_turn(session, conv, desk.outcomes, rating, now)
        result = TurnResult(conversation_id, inbound.seq, tuple(stored))
        self._publish(conversation_id, result.replies)
        if any(r.relayed for r in stored):
            self.on_outbox()
        return result

    def _gatekeeper(
        self,
        conv: t.Conversation,
        incoming: Incoming,
        text: str,
        now: datetime,
        business_name: str,
        *,
        rerun: bool = False,
    ) -> list[OutboundMessage] | None:
        """Replies decided before any engine runs (``[]`` = stay silent), or None to let the engine answer."""
        word = incoming.keyword or " ".join(text.lower().split()).strip(".!")
        # the keyword, or the same in words ("please stop messaging me"), on every channel alike
        if word == "stop" or word in STOP_WORDS or (incoming.keyword is None and means_stop(text, conv.locale)):
            already = conv.opted_out and not rerun
            conv.opted_out = True
            return [] if already else [OutboundMessage(catalogue.text("optout.confirmed", conv.locale))]
        if conv.opted_out:
            if word in START_WORDS:
                conv.opted_out = False
                if conv.status == "escalated":  # a person has the conversation: no menu the bot won't serve
                    return [OutboundMessage(catalogue.text("optout.resumed_person", conv.locale))]
                return [OutboundMessage(catalogue.text("optout.resumed", conv.locale), main_menu(conv.locale))]
            return []
        if incoming.silent or conv.status == "escalated":
            return []
        if incoming.keyword == "help":
            return [OutboundMessage(catalogue.text("optout.help", conv.locale, business=business_name))]
        if rerun:  # the token was taken when the message first arrived
            return None
        if not self._take_token(conv, now):
            if conv.throttle_noticed:
                return []
            conv.throttle_noticed = True
            return [OutboundMessage(catalogue.text("throttled", conv.locale))]
        conv.throttle_noticed = False
        if incoming.unsupported:
            return [OutboundMessage(catalogue.text("unsupported", conv.locale), main_menu(conv.locale))]
        return None

    def _take_token(self, conv: t.Conversation, now: datetime) -> bool:
        limits = self.settings.dialogue.rate_limit
        if conv.bucket_at is None:
            tokens = float(limits.burst)
        else:
            elapsed = max(0.0, (now - conv.bucket_at).total_seconds())
            tokens = min(float(limits.burst), conv.bucket_tokens + elapsed * limits.per_minute / 60.0)
        conv.bucket_at = now
        if tokens < 1.0:
            conv.bucket_tokens = tokens
            return False
        conv.bucket_tokens = tokens - 1.0
        return True

    async def _answer(self, turn: Turn, desk: Desk, state: dict[str, Any]) -> list[OutboundMessage]:
        locale = desk.party.locale
        if state.pop("awaiting_rating", False):
            score = _rating_of(turn)
            if score is not None:
                state["rating"] = score
                return [OutboundMessage(catalogue.text("rating.thanks", locale), main_menu(locale))]
        try:
            async with asyncio.timeout(self.settings.dialogue.turn_timeout_seconds):
                replies = await self.engine.respond(turn, desk)
        except Exception as exc:  # any failure of an engine ends in a helpful reply, never silence
            log.warning("engine %s failed on a turn: %s", self.engine.name, type(exc).__name__)
            replies = [OutboundMessage(catalogue.text("engine.failed", locale), main_menu(locale))]
            if self.fallback is not None:
                try:
                    replies = await self.fallback.respond(turn, desk)
                except Exception as inner:
                    log.exception("fallback engine failed too", exc_info=inner)
        replies.extend(desk.outcomes.messages)  # payment links: whatever the engine said, they go out
        awaiting_payment = any(b.status is Status.PENDING_PAYMENT for b in desk.outcomes.bookings)
        if desk.outcomes.completed and not state.get("rated") and not desk.outcomes.escalated and not awaiting_payment:
            state["awaiting_rating"] = True
            state["rated"] = True
            replies.append(
                OutboundMessage(
                    catalogue.text("rating.ask", locale),
                    tuple(Option(f"rate:{n}", str(n)) for n in range(1, 6)),
                )
            )
        return replies

    # ----- outside the turn: people and providers --------------------------------------------
    async def push(
        self,
        tenant_id: str,
        conversation_id: str,
        message: OutboundMessage,
        *,
        author: str = "system",
        key: str | None = None,
    ) -> StoredMessage | None:
        """Add a message to a conversation from outside a turn (a person, a payment, a reminder).

        It waits for a running turn (the conversation's lock), goes out through the conversation's
        own channel (the outbox, for provider channels), is never sent to a customer who opted out
        (None), and with a ``key`` is sent once however often it is pushed (the first one is returned).
        A person's message (``author="human"``) goes out as one, which some channels still allow
        after their reply window closed (Messenger's HUMAN_AGENT tag). Pushed from inside this
        conversation's own running turn (a refund while the desk cancels), it joins that turn's
        replies instead (None is returned): waiting for the lock would wait for itself.
        """
        if author == "human":
            message = replace(message, purpose="human")
        running = _RUNNING.get()
        if running is not None and running.open and running.conversation_id == conversation_id:
            running.extra.append(message)  # said by the running turn, with its own replies
            return None
        async with self.db.reading() as session:
            found = await session.get(t.Conversation, conversation_id)
            if found is None or found.tenant_id != tenant_id:
                raise NotFound("no such conversation")
            agent = await session.get(t.Agent, found.agent_id)
            lock_key = (agent.slug if agent else "", found.channel, found.sender)
        async with self._lock(lock_key), self.db.writing() as session:
            conv = await _locked(session, conversation_id)
            if key is not None:
                existing = await self._by_key(session, conv.id, key)
                if existing is not None:
                    return existing
            if conv.opted_out:
                return None
            stored = await self._append(
                session, conv, "out", author, message.text, message.to_payload(), self.clock(), key=key
            )
        self._publish(conversation_id, (stored,))
        if stored.relayed:
            self.on_outbox()
        return stored

    async def release(self, tenant_id: str, conversation_id: str) -> None:
        """A person hands the conversation back to the bot."""
        async with self.db.writing() as session:
            conv = await _locked(session, conversation_id)
            if conv.tenant_id != tenant_id:
                raise NotFound("no such conversation")
            conv.status, conv.escalated_at = "active", None
            conv.state = {
                k: v
                for k, v in (conv.state or {}).items()
                if k in ("customer", "customer_id", "mine", "rated", "offer_counter")
            }

    async def welcome(self, agent: str, locale: str | None = None) -> StoredMessage:
        """The greeting a new visitor sees before writing anything (seq 0: shown, not stored)."""
        async with self.db.reading() as session:
            info = await self._agent(session, agent)
            business = await business_by_id(session, info.tenant_id)
        lang = locale or business.locale
        greeting = OutboundMessage(catalogue.text("greet", lang, business=business.name), main_menu(lang))
        return StoredMessage(0, "out", "bot", greeting.text, greeting.to_payload(), self.clock())

    async def conversation_for(self, agent: str, channel: str, sender: str) -> str | None:
        async with self.db.reading() as session:
            info = await self._agent(session, agent)
            return await session.scalar(
                select(t.Conversation.id).where(
                    t.Conversation.agent_id == info.id,
                    t.Conversation.channel == channel,
                    t.Conversation.sender == sender,
                )
            )

    async def messages(self, conversation_id: str, after_seq: int = 0, limit: int = 200) -> list[StoredMessage]:
        async with self.db.reading() as session:
            rows = await session.scalars(
                select(t.Message)
                .where(t.Message.conversation_id == conversation_id, t.Message.seq > after_seq)
                .order_by(t.Message.seq)
                .limit(limit)
            )
            return [_stored(r) for r in rows]

    # ----- storage helpers -------------------------------------------------------------------
    async def _agent(self, session: AsyncSession, slug: str) -> AgentInfo:
        """The agent named ``slug``: its id and business never change (nothing deletes agents,
        and a slug cannot move to another business), so each process looks it up once."""
        agent = self._agents.get(slug)
        if agent is None:
            agent = self._agents[slug] = await agent_by_slug(session, slug)
        return agent

    async def _conversation(self, session: AsyncSession, incoming: Incoming, now: datetime) -> t.Conversation:
        agent = await self._agent(session, incoming.agent)
        query = select(t.Conversation).where(
            t.Conversation.agent_id == agent.id,
            t.Conversation.channel == incoming.channel,
            t.Conversation.sender == incoming.sender,
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        conv = await session.scalar(query)
        if conv is not None:
            return conv
        business = await business_by_id(session, agent.tenant_id)
        customer_id = None
        if incoming.channel in PHONE_CHANNELS:
            customer_id = await session.scalar(
                select(t.Customer.id).where(
                    t.Customer.tenant_id == agent.tenant_id, t.Customer.phone == incoming.sender
                )
            )
        conv = t.Conversation(
            tenant_id=agent.tenant_id,
            agent_id=agent.id,
            channel=incoming.channel,
            sender=incoming.sender,
            customer_id=customer_id,
            status="active",
            state={},
            locale=incoming.locale or business.locale,
            timezone=_zone_or_none(incoming.timezone),
            opted_out=False,
            next_seq=1,
            bucket_tokens=0.0,
            throttle_noticed=False,
            started_at=now,
            last_activity_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(conv)
        except IntegrityError:  # another process opened it first
            conv = await session.scalar(query)
            if conv is None:
                raise
        return conv

    async def _append(
        self,
        session: AsyncSession,
        conv: t.Conversation,
        direction: str,
        author: str,
        text: str,
        payload: dict[str, Any],
        at: datetime,
        *,
        provider_message_id: str | None = None,
        response_from: datetime | None = None,
        key: str | None = None,
        wrote_at: datetime | None = None,
    ) -> StoredMessage:
        seq = conv.next_seq
        conv.next_seq = seq + 1
        conv.last_activity_at = at
        if direction == "in":  # when the customer wrote: providers' reply windows run from then
            conv.last_inbound_at = min(wrote_at, at) if wrote_at else at
        response_ms = int((at - response_from).total_seconds() * 1000) if response_from else None
        relay = direction == "out" and outbox.relayed(conv.channel) and not conv.opted_out
        row = t.Message(
            tenant_id=conv.tenant_id,
            conversation_id=conv.id,
            seq=seq,
            direction=direction,
            author=author,
            text=text,
            payload=payload,
            provider_message_id=provider_message_id,
            status="received" if direction == "in" else ("queued" if relay else "sent"),
            response_ms=response_ms,
            key=key,
            created_at=at,
        )
        session.add(row)
        await session.flush()
        await insights.record_message(session, conv, row)  # same transaction: counted once, never lost
        if relay:
            outbox.enqueue(session, conv, row, f"{conv.id}:{seq}", at)
        return _stored(row, relayed=relay)

    async def _inbound(
        self,
        session: AsyncSession,
        conv: t.Conversation,
        incoming: Incoming,
        text: str,
        choice: str | None,
        now: datetime,
    ) -> StoredMessage:
        """Store the customer's message."""
        return await self._append(
            session,
            conv,
            "in",
            "customer",
            text,
            {"choice": choice} if choice else {},
            now,
            provider_message_id=incoming.provider_message_id,
            key=incoming.key,
            wrote_at=incoming.sent_at,
        )

    async def _by_key(self, session: AsyncSession, conversation_id: str, key: str) -> StoredMessage | None:
        row = await session.scalar(
            select(t.Message).where(t.Message.conversation_id == conversation_id, t.Message.key == key)
        )
        return _stored(row) if row is not None else None

    async def _numbered_choice(self, session: AsyncSession, conversation_id: str, text: str) -> tuple[str, str | None]:
        """On channels without buttons options are numbered lines; a bare number picks one."""
        digits = text.strip().rstrip(".)")
        if not digits.isdigit():
            return text, None
        payload = await session.scalar(
            select(t.Message.payload)
            .where(t.Message.conversation_id == conversation_id, t.Message.direction == "out")
            .order_by(t.Message.seq.desc())
            .limit(1)
        )
        options = (payload or {}).get("options") or []
        index = int(digits) - 1
        if 0 <= index < len(options):
            return options[index]["label"], options[index]["id"]
        return text, None

    async def _history(self, session: AsyncSession, conversation_id: str, before: int) -> tuple[tuple[str, str], ...]:
        rows = await session.execute(
            select(t.Message.author, t.Message.text)
            .where(t.Message.conversation_id == conversation_id, t.Message.seq < before)
            .order_by(t.Message.seq.desc())
            .limit(HISTORY_TURNS)
        )
        return tuple((a, x) for a, x in reversed(rows.all()))


async def _locked(session: AsyncSession, conversation_id: str) -> t.Conversation:
    query = select(t.Conversation).where(t.Conversation.id == conversation_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    conv = await session.scalar(query)
    if conv is None:
        raise NotFound("no such conversation")
    return conv


def _stored(row: t.Message, *, relayed: bool = False) -> StoredMessage:
    return StoredMessage(row.seq, row.direction, row.author, row.text, dict(row.payload or {}), row.created_at, relayed)


def _zone_or_none(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return canonical_zone_name(name)
    except InvalidInput:
        return None


def _rating_of(turn: Turn) -> int | None:
    if turn.choice and turn.choice.startswith("rate:"):
        value = turn.choice.removeprefix("rate:")
        return int(value) if value in {"1", "2", "3", "4", "5"} else None
    stars = turn.text.count("⭐")
    if 1 <= stars <= 5 and not turn.text.replace("⭐", "").strip():
        return stars
    match = _RATING.match(turn.text)
    return int(match.group(1)) if match else None
