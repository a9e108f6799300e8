"""The insights store: recording (inside the caller's transaction), daily roll-ups, and queries.

Recording functions take the caller's :class:`AsyncSession` and run in the very transaction that
makes the change they record (a message stored, an appointment's status moved, a purchase paid),
so a roll-up increment commits or rolls back with its change: nothing counted twice, nothing lost.
Roll-ups are upserts (``INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n``) keyed by tenant,
agent, channel and the local day in the business's time zone; queries read only roll-ups (and, for
one customer, that customer's own rows). :func:`recompute` derives the same roll-ups from raw
rows; :func:`rebuild` replaces them with it (repairs, backfills and the benchmark use it).

Amounts are integer minor units of the business currency, as everywhere in frontdesk.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core import insights as f
from core.errors import InvalidInput, NotFound
from core.payments import PurchaseStatus, insight_status
from core.phones import PHONE_CHANNELS
from core.timezones import day_bounds
from storage import tables as t
from storage.engine import dialect_insert, insert_for

D = t.InsightDaily
H = t.InsightHourly
KEY_COLUMNS = ("tenant_id", "agent_id", "channel", "day")
COUNTERS: tuple[str, ...] = tuple(c.name for c in D.__table__.columns if c.name not in ("id", *KEY_COLUMNS))
HOURLY_COUNTERS = ("conversations", "messages_in")
STEP_COLUMNS = {
    "service_selected": "step_service_selected",
    "slot_selected": "step_slot_selected",
    "details_given": "step_details_given",
    "booked": "step_booked",
    "paid": "step_paid",
}
APPOINTMENT_BUCKETS = ("pending_payment", "scheduled", "completed", "missed", "cancelled", "rescheduled")
PURCHASE_BUCKETS = tuple(s.value for s in PurchaseStatus)
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 731


# ============================================================================ recording helpers

_ZONES = "insights_zones"


def know_zone(session: AsyncSession, tenant_id: str, timezone: str) -> None:
    """The caller has just read the business in this transaction: no second look-up for its zone."""
    session.info.setdefault(_ZONES, {})[tenant_id] = ZoneInfo(timezone)


async def zone_of(session: AsyncSession, tenant_id: str) -> ZoneInfo:
    """The business's zone, remembered for the session (one look-up per transaction)."""
    cache: dict[str, ZoneInfo] = session.info.setdefault(_ZONES, {})
    if tenant_id not in cache:
        name = await session.scalar(select(t.Business.timezone).where(t.Business.id == tenant_id))
        if name is None:
            raise NotFound("no such business")
        cache[tenant_id] = ZoneInfo(name)
    return cache[tenant_id]


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def _epoch(at: datetime) -> int:
    """Whole seconds: differences of these telescope, so incremental durations equal a recount."""
    return int(at.timestamp())


_PENDING = "insights_pending_rollups"
_FACTS = "insights_conversation_facts"


async def bump(session: AsyncSession, model: Any, keys: dict[str, Any], deltas: dict[str, int]) -> None:
    """Add ``deltas`` to the roll-up row at ``keys``, creating it when it is the first.

    The increments are summed per row and written when the transaction commits, in one global
    order of (table, key): concurrent turns then lock shared roll-up rows in the same order (no
    deadlocks on PostgreSQL), and a turn writes each row once however many messages it stored."""
    deltas = {k: int(v) for k, v in deltas.items() if v}
    if not deltas:
        return
    pending: dict[tuple[Any, ...], tuple[Any, dict[str, Any], dict[str, int]]] = session.info.setdefault(_PENDING, {})
    key = (model.__tablename__, *(str(keys[k]) for k in sorted(keys)))
    _, _, sums = pending.setdefault(key, (model, dict(keys), {}))
    for name, value in deltas.items():
        sums[name] = sums.get(name, 0) + value


@event.listens_for(Session, "before_commit")
def _write_rollups(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    backend = session.get_bind().dialect.name
    for key in sorted(pending):
        model, keys, sums = pending[key]
        stmt = _upsert(backend, model.__table__, tuple(keys), tuple(sorted(sums)))
        session.execute(stmt, {**keys, **sums})


@functools.cache
def _upsert(backend: str, table: Any, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET n = n + excluded.n`` for one shape of roll-up,
    built once: the values come as parameters (building it per row was a tenth of a turn's CPU)."""
    stmt = insert_for(backend)(table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={k: table.c[k] + stmt.excluded[k] for k in sums})


@event.listens_for(Session, "after_soft_rollback")
def _drop_rollups(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_FACTS, None)


@event.listens_for(Session, "after_commit")
def _drop_facts(session: Session) -> None:
    session.info.pop(_FACTS, None)


def _daily_keys(tenant_id: str, agent_id: str | None, channel: str | None, day: date) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "agent_id": agent_id or "", "channel": channel or "", "day": day}


@functools.cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_of(text: str) -> float | None:
    """VADER compound of one customer message; None when no lexicon word matched (an unknown
    language, a lone emoji VADER does not know): such a message is not counted as neutral."""
    if not text.strip():
        return None
    compound = float(_analyzer().polarity_scores(text)["compound"])
    return None if compound == 0.0 else compound


def _event(session: AsyncSession, tenant_id: str, agent_id: str | None, kind: str, at: datetime, **data: Any) -> None:
    session.add(t.InsightEvent(tenant_id=tenant_id, agent_id=agent_id or "", kind=kind, at=at, data=data))


async def _funnel_step(session: AsyncSession, fact: t.InsightConversation, step: str, at: datetime) -> bool:
    """Record a step once per conversation (the unique constraint decides); True when it is new."""
    stmt = (
        dialect_insert(session)(t.FunnelEvent.__table__)
        .values(
            id=t.new_id(),
            tenant_id=fact.tenant_id,
            conversation_id=fact.conversation_id,
            agent_id=fact.agent_id,
            channel=fact.channel,
            day=fact.day,
            step=step,
            at=at,
        )
        .on_conflict_do_nothing(index_elements=["conversation_id", "step"])
        .returning(t.FunnelEvent.__table__.c.id)
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none() is not None
    if inserted and step in STEP_COLUMNS:
        await bump(
            session, D, _daily_keys(fact.tenant_id, fact.agent_id, fact.channel, fact.day), {STEP_COLUMNS[step]: 1}
        )
    return inserted


def _tag(fact: t.InsightConversation, tags: Iterable[str]) -> None:
    """Add the tags a conversation earned; the JSON column is assigned anew only when one was added."""
    merged = f.with_tags(fact.tags or [], tags)
    if merged != list(fact.tags or []):
        fact.tags = merged


async def _customer_tag(session: AsyncSession, fact: t.InsightConversation, customer_id: str | None) -> list[str]:
    """``new_customer`` or ``returning_customer`` once the customer is known: returning when their
    record existed before the conversation started. On a phone channel the sender is the number,
    so a conversation that opens without a customer record is a new customer's."""
    if f.NEW_CUSTOMER in fact.tags or f.RETURNING_CUSTOMER in fact.tags:
        return []
    if customer_id:
        created = await session.scalar(select(t.Customer.created_at).where(t.Customer.id == customer_id))
        return [] if created is None else [f.customer_tag(returning=created < fact.started_at)]
    return [f.NEW_CUSTOMER] if fact.channel in PHONE_CHANNELS else []


# ============================================================================ recording


async def _fact_of(session: AsyncSession, conversation_id: str) -> t.InsightConversation | None:
    """The conversation's fact row, held for the rest of the transaction: the identity map keeps a
    clean row only weakly, so once flushed, the turn's next look-up would read it again."""
    held: dict[str, t.InsightConversation] = session.info.setdefault(_FACTS, {})
    fact = held.get(conversation_id)
    if fact is None:
        fact = await session.get(t.InsightConversation, conversation_id)
        if fact is not None:
            held[conversation_id] = fact
    return fact


async def _open_conversation(session: AsyncSession, conv: t.Conversation, tz: ZoneInfo) -> t.InsightConversation:
    started = conv.started_at
    fact = t.InsightConversation(
        conversation_id=conv.id,
        tenant_id=conv.tenant_id,
        agent_id=conv.agent_id,
        channel=conv.channel,
        day=local_day(started, tz),
        started_at=started,
        last_at=started,
        messages_in=0,
        messages_out=0,
        responses=0,
        response_ms_sum=0,
        sentiment_hits=0,
        sentiment_milli_sum=0,
        completed=False,
        escalated=False,
        intents=[],
        tags=[f.channel_tag(conv.channel)],
        follow_ups=[],
    )
    _tag(fact, await _customer_tag(session, fact, conv.customer_id))
    session.add(fact)
    await session.flush()
    session.info.setdefault(_FACTS, {})[conv.id] = fact
    keys = _daily_keys(conv.tenant_id, conv.agent_id, conv.channel, fact.day)
    await bump(session, D, keys, {"conversations": 1})
    local = started.astimezone(tz)
    await bump(session, H, {**keys, "channel": "", "day": local.date(), "hour": local.hour}, {"conversations": 1})
    await _funnel_step(session, fact, "conversation_started", started)
    _event(
        session,
        conv.tenant_id,
        conv.agent_id,
        "conversation_started",
        started,
        conversationId=conv.id,
        platform=conv.channel,
    )
    return fact


async def record_message(session: AsyncSession, conv: t.Conversation, message: t.Message) -> None:
    """One message in or out (and, for the first, the conversation starting). Same transaction."""
    tz = await zone_of(session, conv.tenant_id)
    fact = await _fact_of(session, conv.id)
    if fact is None:
        fact = await _open_conversation(session, conv, tz)
    at = message.created_at
    if conv.opted_out:  # the STOP turn's confirmation (or anything stored after it) is the first to see it
        _tag(fact, [f.OPTED_OUT])
    deltas: dict[str, int] = {}
    step = _epoch(at) - _epoch(fact.last_at)
    if step > 0:
        deltas["duration_s_sum"] = step
        fact.last_at = at
    if message.direction == "in":
        fact.messages_in += 1
        deltas["messages_in"] = 1
        compound = sentiment_of(message.text)
        if compound is not None:
            milli = round(compound * 1000)
            fact.sentiment_hits += 1
            fact.sentiment_milli_sum += milli
            deltas["sentiment_hits"] = 1
            deltas["sentiment_milli_sum"] = milli
        local = at.astimezone(tz)
        hourly = {**_daily_keys(fact.tenant_id, fact.agent_id, "", local.date()), "hour": local.hour}
        await bump(session, H, hourly, {"messages_in": 1})
    else:
        fact.messages_out += 1
        deltas["messages_out"] = 1
        if message.response_ms is not None:
            fact.responses += 1
            fact.response_ms_sum += message.response_ms
            deltas["responses"] = 1
            deltas["response_ms_sum"] = message.response_ms
    await bump(session, D, _daily_keys(fact.tenant_id, fact.agent_id, fact.channel, fact.day), deltas)


class TurnOutcomes(Protocol):
    """What a turn did, as the dialogue desk reports it (``bot.dialogue.desk.Outcomes``)."""

    completed: list[str]
    escalated: str | None
    steps: list[str]
    intents: list[f.IntentNote]
    services: list[str]


async def record_turn(
    session: AsyncSession, conv: t.Conversation, outcomes: TurnOutcomes, rating: int | None, now: datetime
) -> None:
    """Funnel steps, intents, tags, completion, escalation and the 1–5 rating of one turn, stored in
    the transaction that stores the conversation state they came from."""
    fact = await _fact_of(session, conv.id)
    if fact is None:
        return
    keys = _daily_keys(fact.tenant_id, fact.agent_id, fact.channel, fact.day)
    for step in dict.fromkeys(outcomes.steps):
        await _funnel_step(session, fact, step, now)
    if outcomes.intents:
        fact.intents = f.with_intents(fact.intents or [], outcomes.intents, now)
    earned = f.turn_tags(services=outcomes.services, completed=outcomes.completed, escalated=bool(outcomes.escalated))
    _tag(fact, [*earned, *await _customer_tag(session, fact, conv.customer_id)])
    deltas: dict[str, int] = {}
    if outcomes.completed and not fact.completed:
        fact.completed = True
        deltas["completed"] = 1
    if outcomes.escalated and not fact.escalated:
        fact.escalated, fact.escalation_reason, fact.escalated_at = True, outcomes.escalated, now
        fact.follow_ups = [*fact.follow_ups, "answer_handed_off_conversation"]
        deltas["escalated"] = 1
        _event(
            session,
            fact.tenant_id,
            fact.agent_id,
            "escalated",
            now,
            conversationId=fact.conversation_id,
            reason=outcomes.escalated,
        )
    if rating is not None:
        old = fact.satisfaction
        if old is None:
            deltas.update(ratings=1, rating_sum=rating, positive_ratings=int(rating >= 4))
        else:
            deltas.update(rating_sum=rating - old, positive_ratings=int(rating >= 4) - int(old >= 4))
        fact.satisfaction = rating
        if rating <= 2:
            fact.follow_ups = [*fact.follow_ups, "review_low_rating"]
        _event(session, fact.tenant_id, fact.agent_id, "rated", now, conversationId=fact.conversation_id, rating=rating)
    await bump(session, D, keys, deltas)


async def record_appointment(
    session: AsyncSession,
    row: t.Appointment,
    before: str | None,
    after: str,
    now: datetime,
    *,
    conversation_id: str | None = None,
    agent_id: str | None = None,
) -> None:
    """An appointment created (``before`` None) or moved to ``after``, in the transaction that
    writes its history row. States count under the local day of the scheduled start; a booking
    made (``appt_booked``) under the day it was made, like the conversion it is. A new one is
    attributed to the agent and channel of the conversation that booked it, else to the booking it
    replaces, else to ``agent_id`` (an API booking that names its agent; channel "")."""
    tz = await zone_of(session, row.tenant_id)
    fact = await session.get(t.InsightAppointment, row.id)
    deltas: dict[str, int] = {}
    conv_fact = None
    if fact is None:
        agent_id, channel = agent_id or "", ""
        if conversation_id:
            conv_fact = await _fact_of(session, conversation_id)
            if conv_fact is not None:
                agent_id, channel = conv_fact.agent_id, conv_fact.channel
        elif row.rescheduled_from_id:
            moved_from = await session.get(t.InsightAppointment, row.rescheduled_from_id)
            if moved_from is not None:
                agent_id, channel, conversation_id = moved_from.agent_id, moved_from.channel, moved_from.conversation_id
        fact = t.InsightAppointment(
            appointment_id=row.id,
            tenant_id=row.tenant_id,
            agent_id=agent_id,
            channel=channel,
            conversation_id=conversation_id,
            customer_id=row.customer_id,
            day=local_day(row.starts_at, tz),
            status=after,
            follow_ups=[],
            updated_at=now,
        )
        session.add(fact)
        deltas[f"appt_{after}"] = 1
        if before is None and not row.rescheduled_from_id:  # a booking made: counted the day it was made
            keys = _daily_keys(row.tenant_id, fact.agent_id, fact.channel, local_day(row.created_at, tz))
            await bump(session, D, keys, {"appt_booked": 1})
    else:
        if fact.status == after:
            return
        deltas[f"appt_{fact.status}"] = -1
        deltas[f"appt_{after}"] = 1
        fact.status, fact.updated_at = after, now
    if after == "missed":
        earlier = await session.scalar(
            select(func.count())
            .select_from(t.InsightAppointment)
            .where(
                t.InsightAppointment.tenant_id == row.tenant_id,
                t.InsightAppointment.customer_id == row.customer_id,
                t.InsightAppointment.status == "missed",
                t.InsightAppointment.appointment_id != row.id,
            )
        )
        fact.follow_ups = f.missed_follow_ups(int(earlier or 0))
    await bump(session, D, _daily_keys(row.tenant_id, fact.agent_id, fact.channel, fact.day), deltas)
    if conv_fact is not None and before is None and not row.rescheduled_from_id:
        await _funnel_step(session, conv_fact, "booked", now)
        if conv_fact.conversion_type is None:
            conv_fact.conversion_type, conv_fact.conversion_value = "appointment", row.price
    _event(
        session,
        row.tenant_id,
        fact.agent_id,
        f"appointment_{after}",
        now,
        appointmentId=row.id,
        customerId=row.customer_id,
        status=after,
        previous=before,
    )


async def record_purchase(
    session: AsyncSession, row: t.Purchase, before: str | None, after: str, now: datetime
) -> None:
    """A purchase created (``before`` None) or moved; revenue is the amount of completed purchases."""
    if before == after:
        return
    tz = await zone_of(session, row.tenant_id)
    deltas: Counter[str] = Counter()
    if before is None:
        deltas["purchases"] += 1
    else:
        deltas[f"pur_{before}"] -= 1
    deltas[f"pur_{after}"] += 1
    if after == PurchaseStatus.COMPLETED.value:
        deltas["revenue"] += row.amount
    if before == PurchaseStatus.COMPLETED.value:
        deltas["revenue"] -= row.amount
    keys = _daily_keys(row.tenant_id, row.agent_id, row.channel, local_day(row.created_at, tz))
    await bump(session, D, keys, dict(deltas))
    tag = f.purchase_tag(PurchaseStatus(after))
    if tag is not None and row.conversation_id:
        conv_fact = await _fact_of(session, row.conversation_id)
        if conv_fact is not None:
            _tag(conv_fact, [tag])
            if after == PurchaseStatus.COMPLETED.value:
                await _funnel_step(session, conv_fact, "paid", now)
                conv_fact.conversion_type, conv_fact.conversion_value = "purchase", row.amount
    _event(
        session,
        row.tenant_id,
        row.agent_id,
        f"purchase_{insight_status(PurchaseStatus(after))}",
        now,
        purchaseId=row.id,
        amount=row.amount,
        currency=row.currency,
        status=after,
        previous=before,
    )


# ============================================================================ reading roll-ups


def window(start: date | None, end: date | None, now: datetime, tz: ZoneInfo) -> tuple[date, date]:
    """The inclusive local-date range; defaults to the last 30 days up to today (business zone)."""
    today = now.astimezone(tz).date()
    last = end or today
    first = start or last - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    if last < first:
        raise InvalidInput("date_to is before date_from")
    if (last - first).days > MAX_WINDOW_DAYS:
        raise InvalidInput(f"a date range is at most {MAX_WINDOW_DAYS} days")
    return first, last


def previous_window(first: date, last: date) -> tuple[date, date]:
    length = (last - first).days + 1
    return first - timedelta(days=length), first - timedelta(days=1)


async def sums(
    session: AsyncSession,
    tenant_id: str,
    first: date,
    last: date,
    *,
    agent_id: str | None = None,
    channel: str | None = None,
    by: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Σ of every roll-up counter over local days ``first``..``last``, grouped ``by`` key columns."""
    group = [D.__table__.c[name] for name in by]
    stmt: Select[Any] = select(
        *group, *[func.coalesce(func.sum(D.__table__.c[n]), 0).label(n) for n in COUNTERS]
    ).where(D.tenant_id == tenant_id, D.day >= first, D.day <= last)
    if agent_id is not None:
        stmt = stmt.where(D.agent_id == agent_id)
    if channel is not None:
        stmt = stmt.where(D.channel == channel)
    if group:
        stmt = stmt.group_by(*group)
    out = []
    for row in (await session.execute(stmt)).mappings():
        item = {k: (int(v) if k in COUNTERS else v) for k, v in row.items()}
        out.append(item)
    return out


async def total(session: AsyncSession, tenant_id: str, first: date, last: date, **filters: Any) -> dict[str, int]:
    rows = await sums(session, tenant_id, first, last, **filters)
    return rows[0] if rows else dict.fromkeys(COUNTERS, 0)


def agent_totals(s: dict[str, int]) -> f.AgentTotals:
    return f.AgentTotals(
        conversations=s["conversations"],
        completed=s["completed"],
        escalated=s["escalated"],
        ratings=s["ratings"],
        rating_sum=s["rating_sum"],
        sentiment_hits=s["sentiment_hits"],
        sentiment_milli_sum=s["sentiment_milli_sum"],
        responses=s["responses"],
        response_ms_sum=s["response_ms_sum"],
        duration_s_sum=s["duration_s_sum"],
        conversions=s["step_booked"],
        purchases_paid=s["pur_completed"],
        purchases_unpaid=s["pur_failed"] + s["pur_expired"],
    )


def appointment_block(s: dict[str, int]) -> dict[str, Any]:
    return f.appointment_metrics(
        completed=s["appt_completed"],
        missed=s["appt_missed"],
        cancelled=s["appt_cancelled"],
        scheduled=s["appt_scheduled"],
        pending=s["appt_pending_payment"],
    )


def purchase_block(s: dict[str, int]) -> dict[str, Any]:
    return f.purchase_metrics(
        total=s["purchases"],
        completed=s["pur_completed"],
        failed=s["pur_failed"] + s["pur_expired"],
        revenue=s["revenue"],
    )


def performance_from(s: dict[str, int], agent: t.Agent | None) -> dict[str, Any]:
    """The AgentPerformance shape from one set of sums."""
    totals = agent_totals(s)
    g = f.grade(totals)
    appointments = appointment_block(s)
    purchases = purchase_block(s)
    return {
        "agentId": agent.id if agent else None,
        "agentSlug": agent.slug if agent else None,
        "agentName": agent.name if agent else None,
        "performanceGrade": g.letter,
        "performanceScore": g.score,
        "gradeComponents": g.components,
        "subScores": g.subscores,
        "conversationMetrics": {
            "totalConversations": totals.conversations,
            "averageConversationDuration": f.shown(f.mean(totals.duration_s_sum, totals.conversations)),
            "averageResponseTime": f.shown(totals.avg_response_ms),
            "conversationCompletionRate": f.shown(totals.completion_rate),
            "customerSatisfactionAvg": f.shown(totals.avg_rating),
            "escalationRate": f.shown(totals.escalation_rate),
            "ratings": totals.ratings,
            "positiveRatingRate": f.shown(f.percent(s["positive_ratings"], totals.ratings)),
            "sentimentAvg": None if totals.avg_compound is None else round(totals.avg_compound, 3),
            "messagesIn": s["messages_in"],
            "messagesOut": s["messages_out"],
        },
        "businessMetrics": {
            "totalRevenue": purchases["totalRevenue"],
            "conversionsGenerated": totals.conversions,
            "conversionRate": f.shown(totals.conversion_rate),
            "averageOrderValue": purchases["averageOrderValue"],
            "appointmentsBooked": s["appt_booked"],
            "appointmentCompletionRate": appointments["completionRate"],
            "noShowRate": appointments["noShowRate"],
        },
        "appointmentMetrics": appointments,
        "purchaseMetrics": purchases,
        "strengths": g.strengths,
        "improvementAreas": g.improvements,
    }


async def agent_row(session: AsyncSession, tenant_id: str, agent: str) -> t.Agent:
    """An agent of this business by id or slug; another business's agent is not found."""
    row = await session.scalar(
        select(t.Agent).where(t.Agent.tenant_id == tenant_id, (t.Agent.id == agent) | (t.Agent.slug == agent))
    )
    if row is None:
        raise NotFound("no such agent")
    return row


def _period(first: date, last: date, tz: ZoneInfo) -> dict[str, Any]:
    return {"from": first.isoformat(), "to": last.isoformat(), "timezone": tz.key}


async def agent_performance(
    session: AsyncSession, tenant_id: str, agent_id: str, *, start: date | None, end: date | None, now: datetime
) -> dict[str, Any]:
    """``GET /api/analytics/agent/{id}/performance``: grade, metrics, strengths, improvement areas."""
    tz = await zone_of(session, tenant_id)
    agent = await agent_row(session, tenant_id, agent_id)
    first, last = window(start, end, now, tz)
    out = performance_from(await total(session, tenant_id, first, last, agent_id=agent.id), agent)
    out["period"] = _period(first, last, tz)
    return out


def _trends(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, float]:
    pairs = {
        "totalConversations": ("conversationMetrics", "totalConversations"),
        "averageResponseTime": ("conversationMetrics", "averageResponseTime"),
        "customerSatisfactionAvg": ("conversationMetrics", "customerSatisfactionAvg"),
        "conversionRate": ("businessMetrics", "conversionRate"),
        "totalRevenue": ("businessMetrics", "totalRevenue"),
        "appointmentsBooked": ("businessMetrics", "appointmentsBooked"),
    }
    return {name: f.trend(current[a][b], previous[a][b]) for name, (a, b) in pairs.items()}


def alerts_for(per_agent: dict[str, dict[str, int]], slugs: dict[str, str]) -> list[dict[str, Any]]:
    """Threshold alerts over the window's sums (ops' alert delivery has its own rules and timers)."""
    out: list[dict[str, Any]] = []
    for agent_id, s in per_agent.items():
        if not agent_id:
            continue
        totals = agent_totals(s)
        name = slugs.get(agent_id, agent_id)
        avg = totals.avg_rating
        if avg is not None and totals.ratings >= 5 and avg < 3.0:
            out.append(
                {
                    "type": "satisfaction",
                    "severity": "warning",
                    "agentId": agent_id,
                    "message": f"{name}: average satisfaction {avg:.1f} of 5 over {totals.ratings} ratings",
                }
            )
        ms = totals.avg_response_ms
        if ms is not None and totals.responses >= 10 and ms > f.RESPONSE_TARGET_MS:
            out.append(
                {
                    "type": "performance",
                    "severity": "warning",
                    "agentId": agent_id,
                    "message": f"{name}: average response time {ms / 1000:.1f} s",
                }
            )
        unpaid = totals.purchases_unpaid
        rate = totals.payment_rate
        if unpaid >= 3 and rate is not None and rate < 80.0:
            out.append(
                {
                    "type": "revenue",
                    "severity": "critical",
                    "agentId": agent_id,
                    "message": f"{name}: {unpaid} checkouts failed or expired ({100 - rate:.1f}%)",
                }
            )
        esc = totals.escalation_rate
        if esc is not None and totals.conversations >= 10 and esc >= f.ESCALATION_CAP:
            out.append(
                {
                    "type": "performance",
                    "severity": "warning",
                    "agentId": agent_id,
                    "message": f"{name}: {esc:.1f}% of conversations handed to a person",
                }
            )
    return out


async def _agents(session: AsyncSession, tenant_id: str) -> dict[str, t.Agent]:
    rows = await session.scalars(select(t.Agent).where(t.Agent.tenant_id == tenant_id).order_by(t.Agent.slug))
    return {a.id: a for a in rows}


async def system_performance(
    session: AsyncSession, tenant_id: str, *, start: date | None, end: date | None, now: datetime
) -> dict[str, Any]:
    """``GET /api/analytics/system/performance``: totals, per-platform distribution, alerts."""
    tz = await zone_of(session, tenant_id)
    first, last = window(start, end, now, tz)
    by_channel = await sums(session, tenant_id, first, last, by=["channel"])
    by_agent = {r["agent_id"]: r for r in await sums(session, tenant_id, first, last, by=["agent_id"])}
    s = await total(session, tenant_id, first, last)
    agents = await _agents(session, tenant_id)
    customers = await session.scalar(
        select(func.count()).select_from(t.Customer).where(t.Customer.tenant_id == tenant_id)
    )
    platforms = {}
    for row in by_channel:
        if not row["channel"] or (not row["conversations"] and not row["revenue"]):
            continue
        platforms[row["channel"]] = {
            "activeUsers": row["conversations"],
            "conversations": row["conversations"],
            "revenue": row["revenue"],
            "conversionRate": f.shown(f.percent(row["step_booked"], row["conversations"])),
            "messages": row["messages_in"] + row["messages_out"],
        }
    totals = agent_totals(s)
    return {
        "period": _period(first, last, tz),
        "overallMetrics": {
            "totalActiveAgents": sum(1 for a, r in by_agent.items() if a and r["conversations"] > 0),
            "totalCustomers": int(customers or 0),
            "totalConversations": totals.conversations,
            "totalRevenue": s["revenue"],
            "systemUptime": f.shown(f.percent(min(s["responses"], s["messages_in"]), s["messages_in"]))
            if s["messages_in"]
            else 100.0,
            "averageResponseTime": f.shown(totals.avg_response_ms),
        },
        "platformDistribution": platforms,
        "appointmentMetrics": appointment_block(s),
        "purchaseMetrics": purchase_block(s),
        "realTimeAlerts": alerts_for(by_agent, {a.id: a.slug for a in agents.values()}),
    }


async def comparison(
    session: AsyncSession, tenant_id: str, *, start: date | None, end: date | None, now: datetime
) -> dict[str, Any]:
    """``GET /api/analytics/comparison``: every agent of the business side by side."""
    tz = await zone_of(session, tenant_id)
    first, last = window(start, end, now, tz)
    by_agent = {r["agent_id"]: r for r in await sums(session, tenant_id, first, last, by=["agent_id"])}
    agents = await _agents(session, tenant_id)
    rows = []
    for agent_id, agent in agents.items():
        perf = performance_from(by_agent.get(agent_id, dict.fromkeys(COUNTERS, 0)), agent)
        rows.append(
            {
                "agentId": agent.id,
                "agentSlug": agent.slug,
                "agentName": agent.name,
                "performanceGrade": perf["performanceGrade"],
                "performanceScore": perf["performanceScore"],
                "businessMetrics": {
                    "totalRevenue": perf["businessMetrics"]["totalRevenue"],
                    "conversionRate": perf["businessMetrics"]["conversionRate"],
                },
                "conversationMetrics": {
                    "customerSatisfactionAvg": perf["conversationMetrics"]["customerSatisfactionAvg"],
                    "totalConversations": perf["conversationMetrics"]["totalConversations"],
                },
            }
        )
    rated = [
        r["conversationMetrics"]["customerSatisfactionAvg"]
        for r in rows
        if r["conversationMetrics"]["customerSatisfactionAvg"]
    ]
    active = [r["businessMetrics"]["conversionRate"] for r in rows if r["conversationMetrics"]["totalConversations"]]
    return {
        "period": _period(first, last, tz),
        "summary": {
            "totalAgents": len(rows),
            "avgSatisfaction": round(sum(rated) / len(rated), 2) if rated else 0.0,
            "totalRevenue": sum(r["businessMetrics"]["totalRevenue"] for r in rows),
            "avgConversionRate": round(sum(active) / len(active), 1) if active else 0.0,
        },
        "comparisons": rows,
    }


def _funnel_counts(s: dict[str, int]) -> dict[str, int]:
    counts = {"conversation_started": s["conversations"]}
    counts.update({step: s[column] for step, column in STEP_COLUMNS.items()})
    return counts


async def funnel(
    session: AsyncSession,
    tenant_id: str,
    *,
    start: date | None,
    end: date | None,
    channel: str | None = None,
    agent_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``GET /api/analytics/funnel``: a cohort funnel (conversations started in the window), with
    each step's count and drop-off, overall and per channel."""
    tz = await zone_of(session, tenant_id)
    first, last = window(start, end, now or datetime.now(UTC), tz)
    rows = await sums(session, tenant_id, first, last, agent_id=agent_id, channel=channel, by=["channel"])
    overall: Counter[str] = Counter()
    per_channel = {}
    for row in rows:
        if not row["channel"]:
            continue
        counts = _funnel_counts(row)
        overall.update(counts)
        per_channel[row["channel"]] = f.funnel(counts)
    return {
        "period": _period(first, last, tz),
        "channel": channel,
        "steps": f.funnel(overall),
        "perChannel": per_channel,
    }


async def heatmap(
    session: AsyncSession, tenant_id: str, first: date, last: date, *, agent_id: str | None = None
) -> dict[str, Any]:
    """Volume by local weekday (Mon = 0) × hour: conversations started and customer messages."""
    stmt = (
        select(H.day, H.hour, func.sum(H.conversations), func.sum(H.messages_in))
        .where(H.tenant_id == tenant_id, H.day >= first, H.day <= last)
        .group_by(H.day, H.hour)
    )
    if agent_id is not None:
        stmt = stmt.where(H.agent_id == agent_id)
    conversations = [[0] * 24 for _ in range(7)]
    messages = [[0] * 24 for _ in range(7)]
    for day, hour, conv_count, msg_count in (await session.execute(stmt)).all():
        weekday = day.weekday()
        conversations[weekday][hour] += int(conv_count or 0)
        messages[weekday][hour] += int(msg_count or 0)
    return {
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "conversations": conversations,
        "messages": messages,
    }


async def dashboard(
    session: AsyncSession, tenant_id: str, agent_id: str, *, start: date | None, end: date | None, now: datetime
) -> dict[str, Any]:
    """``GET /api/analytics/dashboard/{agentId}``: everything for one agent, from roll-ups only."""
    tz = await zone_of(session, tenant_id)
    agent = await agent_row(session, tenant_id, agent_id)
    first, last = window(start, end, now, tz)
    current = performance_from(await total(session, tenant_id, first, last, agent_id=agent.id), agent)
    before_first, before_last = previous_window(first, last)
    previous = performance_from(await total(session, tenant_id, before_first, before_last, agent_id=agent.id), agent)
    daily_rows = await sums(session, tenant_id, first, last, agent_id=agent.id, by=["day"])
    by_day = {r["day"]: r for r in daily_rows}
    series = []
    day = first
    while day <= last:
        r = by_day.get(day)
        series.append(
            {
                "date": day.isoformat(),
                "conversations": r["conversations"] if r else 0,
                "bookings": r["appt_booked"] if r else 0,
                "revenue": r["revenue"] if r else 0,
                "messages": (r["messages_in"] + r["messages_out"]) if r else 0,
            }
        )
        day += timedelta(days=1)
    channel_rows = await sums(session, tenant_id, first, last, agent_id=agent.id, by=["channel"])
    s_by_agent = {agent.id: await total(session, tenant_id, first, last, agent_id=agent.id)}
    return {
        **current,
        "period": _period(first, last, tz),
        "previousPeriod": _period(before_first, before_last, tz),
        "trends": _trends(current, previous),
        "funnel": await funnel(session, tenant_id, start=first, end=last, agent_id=agent.id, now=now),
        "heatmap": await heatmap(session, tenant_id, first, last, agent_id=agent.id),
        "dailyTrend": series,
        "platforms": {
            r["channel"]: {
                "conversations": r["conversations"],
                "revenue": r["revenue"],
                "conversionRate": f.shown(f.percent(r["step_booked"], r["conversations"])),
            }
            for r in channel_rows
            if r["channel"]
        },
        "realTimeAlerts": alerts_for(s_by_agent, {agent.id: agent.slug}),
    }


async def grade_table(
    session: AsyncSession, *, start: date | None, end: date | None, now: datetime, agent_slug: str | None = None
) -> list[dict[str, Any]]:
    """One row per agent of every business (or the one ``agent_slug``), for ``frontdesk grades``."""
    query = (
        select(t.Agent, t.Business)
        .join(t.Business, t.Business.id == t.Agent.tenant_id)
        .order_by(t.Business.slug, t.Agent.slug)
    )
    if agent_slug:
        query = query.where(t.Agent.slug == agent_slug)
    pairs = (await session.execute(query)).all()
    if agent_slug and not pairs:
        raise NotFound(f"no agent {agent_slug!r}")
    out = []
    for agent, business in pairs:
        perf = await agent_performance(session, business.id, agent.id, start=start, end=end, now=now)
        out.append({"business": business.slug, **perf})
    return out


# ============================================================================ one customer


async def customer_insight(session: AsyncSession, tenant_id: str, customer_id: str, *, now: datetime) -> dict[str, Any]:
    """``GET /api/analytics/customer/{id}/insight``: from this customer's own rows (indexed by
    customer), plus the business's average order value from the roll-ups for the segment rule."""
    customer = await session.scalar(
        select(t.Customer).where(t.Customer.tenant_id == tenant_id, t.Customer.id == customer_id)
    )
    if customer is None:
        raise NotFound("no such customer")
    tz = await zone_of(session, tenant_id)
    convs = (
        await session.execute(
            select(t.Conversation.id, t.Conversation.channel, t.Conversation.started_at, t.InsightConversation)
            .outerjoin(t.InsightConversation, t.InsightConversation.conversation_id == t.Conversation.id)
            .where(t.Conversation.tenant_id == tenant_id, t.Conversation.customer_id == customer_id)
            .order_by(t.Conversation.started_at)
        )
    ).all()
    appts = list(
        await session.scalars(
            select(t.Appointment)
            .where(t.Appointment.tenant_id == tenant_id, t.Appointment.customer_id == customer_id)
            .order_by(t.Appointment.starts_at)
        )
    )
    purchases = list(
        await session.scalars(
            select(t.Purchase).where(t.Purchase.tenant_id == tenant_id, t.Purchase.customer_id == customer_id)
        )
    )
    services = {s.id: s.name for s in await session.scalars(select(t.Service).where(t.Service.tenant_id == tenant_id))}
    conv_ids = [c[0] for c in convs]
    steps = (
        set(await session.scalars(select(t.FunnelEvent.step).where(t.FunnelEvent.conversation_id.in_(conv_ids))))
        if conv_ids
        else set()
    )

    completed = [a for a in appts if a.status == "completed"]
    paid = {p.appointment_id: p for p in purchases if p.status == PurchaseStatus.COMPLETED.value}
    ltv = f.lifetime_value([p.amount for p in paid.values()], [a.price for a in completed if a.id not in paid])
    contacts = [c[2] for c in convs] + [a.created_at for a in appts]
    first_contact = min(contacts, default=customer.created_at)
    last_visit = max((a.starts_at for a in completed), default=None)
    last_contact = max(contacts, default=customer.created_at)
    days_since_first = (now - first_contact).total_seconds() / 86400
    days_since_last = (now - (last_visit or last_contact)).total_seconds() / 86400
    gap = f.expected_gap([a.starts_at.timestamp() / 86400 for a in completed])
    churn = f.churn_risk(days_since_last, gap)
    year = await total(session, tenant_id, (now - timedelta(days=365)).astimezone(tz).date(), now.astimezone(tz).date())
    tenant_aov = year["revenue"] / year["pur_completed"] if year["pur_completed"] else 0.0
    ratings = [c[3].satisfaction for c in convs if c[3] is not None and c[3].satisfaction is not None]
    avg_rating = sum(ratings) / len(ratings) if ratings else None
    used = Counter(services.get(a.service_id, a.service_id) for a in appts if a.status != "rescheduled")
    channels = Counter(c[1] for c in convs)
    touchpoints: list[dict[str, Any]] = [
        {"type": "conversation", "platform": c[1], "at": c[2].isoformat()} for c in convs
    ]
    touchpoints += [
        {
            "type": "appointment",
            "status": a.status,
            "service": services.get(a.service_id),
            "at": a.starts_at.isoformat(),
        }
        for a in appts
    ]
    touchpoints += [
        {
            "type": "purchase",
            "status": insight_status(PurchaseStatus(p.status)),
            "amount": p.amount,
            "at": p.created_at.isoformat(),
        }
        for p in purchases
    ]
    touchpoints.sort(key=lambda x: x["at"])
    stage = f.journey_stage(
        steps=steps | ({"booked"} if appts else set()),
        completed_visits=len(completed),
        best_rating=max(ratings) if ratings else None,
    )
    months = max(days_since_first / 30.0, 1.0)
    return {
        "customerId": customer.id,
        "profile": {
            "name": customer.name,
            "phone": customer.phone,
            "preferredPlatform": channels.most_common(1)[0][0] if channels else None,
            "timezone": customer.timezone or tz.key,
        },
        "engagementMetrics": {
            "totalInteractions": sum((c[3].messages_in if c[3] is not None else 0) for c in convs),
            "totalConversations": len(convs),
            "sessionFrequency": round(len(convs) / months, 2),
        },
        "businessMetrics": {
            "lifetimeValue": ltv,
            "totalPurchases": len(paid),
            "averageOrderValue": round(sum(p.amount for p in paid.values()) / len(paid)) if paid else 0,
            "appointmentsBooked": sum(1 for a in appts if a.status != "rescheduled"),
            "appointmentsCompleted": len(completed),
            "appointmentsMissed": sum(1 for a in appts if a.status == "missed"),
        },
        "behavioralInsights": {
            "customerSegment": f.segment(
                days_since_first=days_since_first,
                visits=len(completed),
                lifetime_value=ltv,
                tenant_aov=tenant_aov,
                churn=churn,
            ),
            "churnRisk": churn,
            "upsellPotential": f.upsell_potential(
                visits=len(completed),
                services_used=len(used),
                services_offered=len(services),
                avg_rating=avg_rating,
                churn=churn,
            ),
            "preferredServiceTypes": [name for name, _ in used.most_common(3)],
        },
        "journeyAnalysis": {
            "stage": stage,
            "daysSinceFirstContact": int(days_since_first),
            "previousInteractions": max(len(convs) - 1, 0),
            "touchpointSequence": touchpoints[-30:],
        },
    }


def conversation_insight(fact: t.InsightConversation, customer_id: str | None, session_id: str) -> dict[str, Any]:
    """One conversation in the ConversationInsight shape."""
    compound = fact.sentiment_milli_sum / 1000 / fact.sentiment_hits if fact.sentiment_hits else None
    duration = _epoch(fact.last_at) - _epoch(fact.started_at)
    steps = {"conversation_started"}
    if fact.conversion_type:
        steps.add("booked")
    return {
        "conversationId": fact.conversation_id,
        "agentId": fact.agent_id,
        "customerId": customer_id,
        "platform": fact.channel,
        "sessionId": session_id,
        "startTime": fact.started_at.isoformat(),
        "endTime": fact.last_at.isoformat(),
        "duration": duration,
        "messageCount": fact.messages_in + fact.messages_out,
        "customerMessages": fact.messages_in,
        "agentResponses": fact.messages_out,
        "responseTimeAvg": round(fact.response_ms_sum / fact.responses) if fact.responses else 0,
        "customerSatisfactionScore": fact.satisfaction,
        "conversionEvent": {"type": fact.conversion_type, "value": fact.conversion_value}
        if fact.conversion_type
        else None,
        "sentiment": {
            "overall": f.sentiment_label(compound),
            "confidence": round(abs(compound), 3) if compound is not None else 0.0,
            "emotions": [],
        },
        "intents": list(fact.intents or []),
        "escalation": {
            "required": True,
            "reason": fact.escalation_reason,
            "timestamp": fact.escalated_at.isoformat() if fact.escalated_at else None,
        }
        if fact.escalated
        else None,
        "followUpRequired": bool(fact.follow_ups),
        "followUpActions": list(fact.follow_ups or []),
        "tags": list(fact.tags or []),
        "completed": fact.completed,
    }


# ============================================================================ realtime


async def events_after(
    session: AsyncSession, tenant_id: str, after_id: int, *, agent_id: str | None = None, limit: int = 200
) -> list[t.InsightEvent]:
    """Events newer than ``after_id`` (the SSE stream's cursor), oldest first."""
    stmt = select(t.InsightEvent).where(t.InsightEvent.tenant_id == tenant_id, t.InsightEvent.id > after_id)
    if agent_id is not None:
        stmt = stmt.where(t.InsightEvent.agent_id.in_([agent_id, ""]))
    return list(await session.scalars(stmt.order_by(t.InsightEvent.id).limit(limit)))


async def last_event_id(session: AsyncSession, tenant_id: str) -> int:
    return int(
        await session.scalar(select(func.max(t.InsightEvent.id)).where(t.InsightEvent.tenant_id == tenant_id)) or 0
    )


# ============================================================================ export

EXPORT_KINDS = ("conversations", "appointments", "purchases", "customers")
EXPORT_HEADERS: dict[str, list[str]] = {
    "conversations": [
        "conversation_id",
        "agent",
        "platform",
        "customer_id",
        "start_time",
        "end_time",
        "duration_s",
        "message_count",
        "customer_messages",
        "agent_responses",
        "response_time_avg_ms",
        "satisfaction",
        "sentiment",
        "completed",
        "escalated",
        "conversion_type",
        "conversion_value",
        "intents",
        "tags",
    ],
    "appointments": [
        "appointment_id",
        "customer_id",
        "agent",
        "platform",
        "service",
        "status",
        "scheduled_at",
        "ends_at",
        "price",
        "currency",
        "created_at",
        "follow_up_actions",
    ],
    "purchases": [
        "purchase_id",
        "appointment_id",
        "customer_id",
        "agent",
        "platform",
        "payment_status",
        "amount",
        "currency",
        "provider",
        "payment_method",
        "created_at",
        "completed_at",
    ],
    "customers": ["customer_id", "name", "phone", "email", "timezone", "created_at"],
}


def _export_query(kind: str, tenant_id: str, first: date, last: date, tz: ZoneInfo) -> Any:
    lo, hi = day_bounds(first, last, tz)
    if kind == "conversations":
        c = t.InsightConversation
        return (
            select(c, t.Conversation.customer_id, t.Agent.slug)
            .join(t.Conversation, t.Conversation.id == c.conversation_id)
            .outerjoin(t.Agent, t.Agent.id == c.agent_id)
            .where(c.tenant_id == tenant_id, c.day >= first, c.day <= last)
            .order_by(c.started_at, c.conversation_id)
        )
    if kind == "appointments":
        a = t.Appointment
        return (
            select(a, t.Service.slug, t.InsightAppointment, t.Agent.slug)
            .join(t.Service, t.Service.id == a.service_id)
            .outerjoin(t.InsightAppointment, t.InsightAppointment.appointment_id == a.id)
            .outerjoin(t.Agent, t.Agent.id == t.InsightAppointment.agent_id)
            .where(a.tenant_id == tenant_id, a.starts_at >= lo, a.starts_at < hi)
            .order_by(a.starts_at, a.id)
        )
    if kind == "purchases":
        p = t.Purchase
        return (
            select(p, t.Agent.slug)
            .outerjoin(t.Agent, t.Agent.id == p.agent_id)
            .where(p.tenant_id == tenant_id, p.created_at >= lo, p.created_at < hi)
            .order_by(p.created_at, p.id)
        )
    if kind == "customers":
        cu = t.Customer
        return (
            select(cu)
            .where(cu.tenant_id == tenant_id, cu.created_at >= lo, cu.created_at < hi)
            .order_by(cu.created_at, cu.id)
        )
    raise InvalidInput(f"kind: one of {', '.join(EXPORT_KINDS)}")


def _iso(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).isoformat(timespec="seconds") if value is not None else ""


def _csv_row(kind: str, row: Any, tz: ZoneInfo) -> list[Any]:
    if kind == "conversations":
        fact, customer_id, slug = row
        data = conversation_insight(fact, customer_id, fact.conversation_id)
        return [
            fact.conversation_id,
            slug or "",
            fact.channel,
            customer_id or "",
            _iso(fact.started_at, tz),
            _iso(fact.last_at, tz),
            data["duration"],
            data["messageCount"],
            fact.messages_in,
            fact.messages_out,
            data["responseTimeAvg"],
            fact.satisfaction if fact.satisfaction is not None else "",
            data["sentiment"]["overall"],
            int(fact.completed),
            int(fact.escalated),
            fact.conversion_type or "",
            fact.conversion_value if fact.conversion_value is not None else "",
            ";".join(dict.fromkeys(i["intent"] for i in data["intents"])),
            ";".join(data["tags"]),
        ]
    if kind == "appointments":
        a, service, fact, slug = row
        return [
            a.id,
            a.customer_id,
            slug or "",
            fact.channel if fact else "",
            service,
            a.status,
            _iso(a.starts_at, tz),
            _iso(a.ends_at, tz),
            a.price,
            a.currency,
            _iso(a.created_at, tz),
            ";".join(fact.follow_ups) if fact else "",
        ]
    if kind == "purchases":
        p, slug = row
        return [
            p.id,
            p.appointment_id,
            p.customer_id,
            slug or "",
            p.channel or "",
            insight_status(PurchaseStatus(p.status)),
            p.amount,
            p.currency,
            p.provider,
            p.payment_method or "",
            _iso(p.created_at, tz),
            _iso(p.completed_at, tz),
        ]
    (cu,) = row
    return [cu.id, cu.name, cu.phone or "", cu.email or "", cu.timezone or "", _iso(cu.created_at, tz)]


async def export_count(session: AsyncSession, tenant_id: str, kind: str, first: date, last: date) -> int:
    tz = await zone_of(session, tenant_id)
    query = _export_query(kind, tenant_id, first, last, tz).order_by(None)
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def export_rows(
    session: AsyncSession, tenant_id: str, kind: str, first: date, last: date, *, batch: int = 500
) -> AsyncIterator[list[Any]]:
    """The header, then one list per row, streamed in batches (times in the business zone)."""
    tz = await zone_of(session, tenant_id)
    query = _export_query(kind, tenant_id, first, last, tz)
    yield list(EXPORT_HEADERS[kind])
    result = await session.stream(query.execution_options(yield_per=batch))
    async for row in result:
        yield _csv_row(kind, row, tz)


# ============================================================================ recompute / rebuild


async def recompute(
    session: AsyncSession, tenant_id: str
) -> tuple[dict[tuple[Any, ...], dict[str, int]], dict[tuple[Any, ...], dict[str, int]]]:
    """The daily and hourly roll-ups derived from scratch from raw rows (messages, conversations,
    appointments, purchases, funnel events) and the per-row facts. Keys: (agent, channel, day[, hour])."""
    tz = await zone_of(session, tenant_id)
    daily: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    hourly: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    facts = {
        fact.conversation_id: fact
        for fact in await session.scalars(
            select(t.InsightConversation).where(t.InsightConversation.tenant_id == tenant_id)
        )
    }
    for fact in facts.values():
        key = (fact.agent_id, fact.channel, fact.day)
        d = daily[key]
        d["conversations"] += 1
        d["completed"] += int(fact.completed)
        d["escalated"] += int(fact.escalated)
        d["sentiment_hits"] += fact.sentiment_hits
        d["sentiment_milli_sum"] += fact.sentiment_milli_sum
        if fact.satisfaction is not None:
            d["ratings"] += 1
            d["rating_sum"] += fact.satisfaction
            d["positive_ratings"] += int(fact.satisfaction >= 4)
        local = fact.started_at.astimezone(tz)
        hourly[(fact.agent_id, "", local.date(), local.hour)]["conversations"] += 1
    messages = await session.stream(
        select(t.Message.conversation_id, t.Message.direction, t.Message.response_ms, t.Message.created_at)
        .where(t.Message.tenant_id == tenant_id)
        .execution_options(yield_per=5000)
    )
    last_at: dict[str, int] = {}
    async for conversation_id, direction, response_ms, created_at in messages:
        owner = facts.get(conversation_id)
        if owner is None:
            continue
        d = daily[(owner.agent_id, owner.channel, owner.day)]
        stamp = _epoch(created_at)
        last_at[conversation_id] = max(last_at.get(conversation_id, stamp), stamp)
        if direction == "in":
            d["messages_in"] += 1
            local = created_at.astimezone(tz)
            hourly[(owner.agent_id, "", local.date(), local.hour)]["messages_in"] += 1
        else:
            d["messages_out"] += 1
            if response_ms is not None:
                d["responses"] += 1
                d["response_ms_sum"] += response_ms
    for conversation_id, stamp in last_at.items():
        fact = facts[conversation_id]
        daily[(fact.agent_id, fact.channel, fact.day)]["duration_s_sum"] += max(0, stamp - _epoch(fact.started_at))
    for agent_id, channel, day, step in (
        await session.execute(
            select(t.FunnelEvent.agent_id, t.FunnelEvent.channel, t.FunnelEvent.day, t.FunnelEvent.step).where(
                t.FunnelEvent.tenant_id == tenant_id
            )
        )
    ).all():
        if step in STEP_COLUMNS:
            daily[(agent_id, channel, day)][STEP_COLUMNS[step]] += 1
    appointments = await session.execute(
        select(t.InsightAppointment, t.Appointment.status, t.Appointment.rescheduled_from_id, t.Appointment.created_at)
        .join(t.Appointment, t.Appointment.id == t.InsightAppointment.appointment_id)
        .where(t.InsightAppointment.tenant_id == tenant_id)
    )
    for booked, status, moved_from, created_at in appointments.all():
        daily[(booked.agent_id, booked.channel, booked.day)][f"appt_{status}"] += 1
        if not moved_from:
            daily[(booked.agent_id, booked.channel, local_day(created_at, tz))]["appt_booked"] += 1
    for p in await session.scalars(select(t.Purchase).where(t.Purchase.tenant_id == tenant_id)):
        d = daily[(p.agent_id or "", p.channel or "", local_day(p.created_at, tz))]
        d["purchases"] += 1
        d[f"pur_{p.status}"] += 1
        if p.status == PurchaseStatus.COMPLETED.value:
            d["revenue"] += p.amount
    clean_daily = {k: {c: v[c] for c in COUNTERS if v[c]} for k, v in daily.items()}
    clean_hourly = {k: {c: v[c] for c in HOURLY_COUNTERS if v[c]} for k, v in hourly.items()}
    return clean_daily, clean_hourly


async def stored(
    session: AsyncSession, tenant_id: str
) -> tuple[dict[tuple[Any, ...], dict[str, int]], dict[tuple[Any, ...], dict[str, int]]]:
    """The roll-ups as stored, in :func:`recompute`'s shape (zero counters and empty rows left out)."""
    daily = {}
    for row in await session.scalars(select(D).where(D.tenant_id == tenant_id)):
        values = {c: int(getattr(row, c)) for c in COUNTERS if getattr(row, c)}
        if values:
            daily[(row.agent_id, row.channel, row.day)] = values
    hourly = {}
    for cell in await session.scalars(select(H).where(H.tenant_id == tenant_id)):
        values = {c: int(getattr(cell, c)) for c in HOURLY_COUNTERS if getattr(cell, c)}
        if values:
            hourly[(cell.agent_id, cell.channel, cell.day, cell.hour)] = values
    return daily, hourly


async def rebuild(session: AsyncSession, tenant_id: str, *, chunk: int = 5000) -> int:
    """Replace the tenant's roll-ups with :func:`recompute` (backfill, repair, the benchmark).
    Run it in one write transaction; returns the number of daily rows written."""
    daily, hourly = await recompute(session, tenant_id)
    await session.execute(delete(D).where(D.tenant_id == tenant_id))
    await session.execute(delete(H).where(H.tenant_id == tenant_id))
    daily_rows = [
        {"tenant_id": tenant_id, "agent_id": a, "channel": c, "day": d, **dict.fromkeys(COUNTERS, 0), **v}
        for (a, c, d), v in daily.items()
    ]
    hourly_rows = [
        {
            "tenant_id": tenant_id,
            "agent_id": a,
            "channel": c,
            "day": d,
            "hour": h,
            **dict.fromkeys(HOURLY_COUNTERS, 0),
            **v,
        }
        for (a, c, d, h), v in hourly.items()
    ]
    for rows, model in ((daily_rows, D), (hourly_rows, H)):
        for i in range(0, len(rows), chunk):
            await session.execute(insert(model), rows[i : i + chunk])
    return len(daily_rows)
