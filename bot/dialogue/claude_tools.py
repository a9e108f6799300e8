"""The Claude engine's tools: their schemas (what the model sees) and their dispatch onto the desk.

The guardrails are in this code, not in the prompt:

- no tool takes a customer or tenant id; every one acts through the :class:`~bot.dialogue.desk.Desk`,
  which serves only the conversation's verified sender;
- arguments are checked against the schema here (unknown keys, an ``amount`` or a ``price``
  included, are refused with an actionable error), so a model that ignores the schema gets nowhere;
- prices and free times come from the catalogue and the slot engine; a booking names an offer the
  desk made in this conversation;
- booking, cancelling and rescheduling are two-step: the first call stores a pending proposal and
  returns it; the action runs only when the same call comes again in the customer's *next* turn and
  that message is a confirmation (checked in code by :func:`affirmed`).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dialogue import catalogue
from bot.dialogue.desk import BookingView, Desk, Offer, ServiceView
from bot.dialogue.engine import Turn
from bot.dialogue.show import minutes_text, when_text
from bot.money import format_money
from core.booking import Status
from core.errors import FrontdeskError, InvalidInput, NotFound, SlotTaken

log = logging.getLogger(__name__)

STATE_KEY = "claude"  # the engine's part of ``desk.state``
CONFIRMABLE = {"book_slot": "book", "cancel_booking": "cancel", "reschedule_booking": "reschedule"}
MAX_ARG_CHARS = 200
AMOUNT_WORDS = ("amount", "price", "total", "cost", "fee", "currency", "discount", "deposit")


# ----- schemas -------------------------------------------------------------------------------------
def _string(description: str, max_length: int = MAX_ARG_CHARS) -> dict[str, Any]:
    return {"type": "string", "description": description, "maxLength": max_length}


_DATE = "A day as YYYY-MM-DD in the business's local calendar (today's date is in the system prompt)."
_REF = "The booking's short reference exactly as list_my_bookings shows it (6 letters/digits, e.g. 3F9A1C)."
_OFFER = 'The offer_id of a free time returned by find_slots or find_reschedule_slots in this conversation (e.g. "o4").'


def _tool(name: str, description: str, properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": list(required),
            "additionalProperties": False,
        },
    }


TOOLS: tuple[dict[str, Any], ...] = (
    _tool(
        "list_services",
        "List the services this business offers with their duration, price (already formatted in the business's "
        "currency) and who provides them. Use it when the customer asks what is offered or how much something "
        "costs, or when you are unsure which service they mean. The services and prices are also in the system "
        "prompt; this tool returns the current catalogue.",
        {},
    ),
    _tool(
        "business_info",
        "The business's opening hours, address, public phone number and answers to frequent questions. Use it for "
        "questions about where, when and how, before saying you do not know.",
        {},
    ),
    _tool(
        "find_slots",
        "Find free times for a service. Returns up to six offers, each with an offer_id, the start time shown in "
        "the customer's time zone (with the business's time in brackets when the zones differ) and who it is with. "
        "These offers are the ONLY times you may propose or book; never invent or adjust a time. Each call replaces "
        "the previous offers. Without a date it looks at the next two weeks; with a date and nothing free that day "
        "it returns the nearest later free times instead and says so. Narrow with after/before (HH:MM, 24-hour, "
        "business local time; e.g. afternoon = after 12:00, evening = after 17:00) or a staff member. Dates and "
        "times you pass are in the business's local time zone: if the customer is in another zone, convert first.",
        {
            "service": _string("The service's slug or name as in list_services, e.g. 'consultation'."),
            "date": _string(_DATE + " The first day to search; default: today.", 10),
            "date_to": _string("Last day to search (inclusive), YYYY-MM-DD; default: the same day as date.", 10),
            "after": _string("Earliest start, HH:MM in the business's local time.", 5),
            "before": _string("Latest start (exclusive), HH:MM in the business's local time.", 5),
            "staff": _string("A staff member's name or slug, only when the customer asked for someone."),
        },
        ("service",),
    ),
    _tool(
        "save_contact",
        "Save the customer's name and/or phone number for the booking. A booking needs both. Ask the customer for "
        "whatever is missing and save exactly what they tell you; never guess or reuse details from anywhere else. "
        "On WhatsApp and SMS the phone number is the one they write from and cannot be changed. Returns what is "
        "known and what is still missing.",
        {
            "name": _string("The customer's name as they gave it.", 120),
            "phone": _string("The customer's phone number as they gave it (with country code if abroad).", 40),
        },
    ),
    _tool(
        "book_slot",
        "Book one of the offers from find_slots for this customer. Two steps, enforced by the system: the first "
        "call returns a proposal (service, time, staff, price from the catalogue) and does NOT book; tell the "
        "customer the details and ask them to confirm with yes or no, then stop. Only when their next message "
        "confirms, call book_slot again with the same offer_id to make the booking. Calling it twice in one turn, "
        "or after anything but a clear yes, is refused. Needs the customer's name and phone (save_contact) first. "
        "There is no price or amount argument: the price always comes from the catalogue.",
        {"offer_id": _string(_OFFER, 16)},
        ("offer_id",),
    ),
    _tool(
        "list_my_bookings",
        "List this customer's own upcoming bookings with their references, times, staff and prices. It can only "
        "ever show the bookings of the person you are chatting with; nobody else's bookings are reachable. On web "
        "chat, Telegram and Messenger only bookings made in this chat are shown.",
        {},
    ),
    _tool(
        "cancel_booking",
        "Cancel one of this customer's own bookings by its reference. Two steps, enforced by the system: the first "
        "call returns a proposal (what will be cancelled and the cancellation policy) and cancels nothing; ask the "
        "customer to confirm, then stop. Only when their next message confirms, call it again with the same "
        "reference. A reference that is not one of this customer's bookings is reported as not found.",
        {"ref": _string(_REF, 16)},
        ("ref",),
    ),
    _tool(
        "find_reschedule_slots",
        "Find free times to move one of this customer's bookings to (same service). Returns offers with offer_ids "
        "for reschedule_booking, like find_slots. Optional day (business's local date) and earliest time.",
        {
            "ref": _string(_REF, 16),
            "date": _string(_DATE + " Default: the next two weeks.", 10),
            "after": _string("Earliest start, HH:MM in the business's local time.", 5),
        },
        ("ref",),
    ),
    _tool(
        "reschedule_booking",
        "Move one of this customer's bookings to an offer from find_reschedule_slots. Two steps, enforced by the "
        "system: the first call returns a proposal (old and new time) and changes nothing; ask the customer to "
        "confirm, then stop. Only when their next message confirms, call it again with the same ref and offer_id.",
        {"ref": _string(_REF, 16), "offer_id": _string(_OFFER, 16)},
        ("ref", "offer_id"),
    ),
    _tool(
        "payment_info",
        "How and how much this customer pays for one of their bookings (by reference), or how payment works in "
        "general without a reference. Amounts come from the catalogue; you can never set, change or discount an "
        "amount, and you cannot mark anything as paid.",
        {"ref": _string(_REF + " Optional.", 16)},
    ),
    _tool(
        "handoff_to_human",
        "Ask a person from the business to take over this conversation. Use it when the customer asks for a human, "
        "is upset, needs something the tools cannot do (refunds, exceptions to policy, medical or legal questions, "
        "bookings not visible to you), or when you are stuck. After it, tell the customer that a colleague will "
        "reply here; you will then stay quiet.",
        {"reason": _string("One short sentence for the colleague: what the customer needs.", 300)},
        ("reason",),
    ),
)
TOOL_NAMES = frozenset(t["name"] for t in TOOLS)


def tool_definitions() -> list[dict[str, Any]]:
    """The tools as sent: the last one carries the cache breakpoint for the whole tool list."""
    tools = [json.loads(json.dumps(t)) for t in TOOLS]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return tools


# ----- confirmation --------------------------------------------------------------------------------
_YES_PHRASES = frozenset(
    {
        # English
        "yes", "y", "yeah", "yea", "yep", "yup", "ok", "okay", "k", "sure", "confirm", "confirmed", "correct",
        "right", "exactly", "absolutely", "definitely", "of course", "please do", "do it", "go ahead", "go for it",
        "book it", "sounds good", "perfect", "great", "fine", "that works", "works for me", "alright", "all right",
        "yes please", "affirmative", "👍", "✅",
        # Spanish / Portuguese / Italian
        "sí", "si", "claro", "vale", "de acuerdo", "dale", "por favor", "sim", "certo", "pode", "va bene",
        "esatto", "confirmo", "perfecto", "perfeito", "perfetto",
        # French / German / Dutch
        "oui", "d'accord", "dac", "ok d'accord", "bien sûr", "parfait", "ja", "jawohl", "genau", "gerne", "klar",
        "passt", "einverstanden", "prima",
        # Hindi (romanised and Devanagari) and a few more
        "haan", "haa", "han", "ha", "haan ji", "ji haan", "ji", "theek hai", "thik hai", "bilkul", "हाँ", "हां",
        "जी", "ठीक है", "da", "tak", "evet", "はい", "是", "好", "对", "네", "예", "نعم", "כן", "так", "да",
    }
)  # fmt: skip
_NEGATIONS = frozenset(
    {
        "no", "not", "don't", "dont", "nope", "nah", "never", "wait", "cancel", "stop", "but", "instead",
        "change", "different", "another", "other", "later", "n't", "non", "pas", "nein", "nicht", "kein", "pero",
        "mais", "aber", "nahi", "nahin", "mat", "não", "nao", "otro", "otra", "autre", "andere", "नहीं",
    }
)  # fmt: skip
_SPLIT = re.compile(r"[\s,.!?¡¿;:…()\"]+")


def affirmed(turn: Turn) -> bool:
    """Whether the customer's message is a plain yes (typed in one of several languages, or the tapped
    "yes" quick reply). Anything with a negation or a change of mind is not."""
    if turn.choice is not None:
        return turn.choice == "yes"
    text = unicodedata.normalize("NFC", turn.text).casefold().replace("’", "'").strip()
    if not text or len(text) > 80:
        return False
    words = [w for w in _SPLIT.split(text) if w]
    if not words or len(words) > 8:
        return False
    joined = " ".join(words)
    if joined in _YES_PHRASES:
        return True
    if any(w in _NEGATIONS or w.endswith("n't") or any(c.isdigit() for c in w) for w in words):
        return False  # "no", "yes but 4pm", "ok, Friday instead": a change of mind is not a yes
    # "yes please book it", "ok thanks", "sí, por favor": starts with a yes-word, and nothing contradicts it
    return any(" ".join(words[:size]) in _YES_PHRASES for size in (3, 2, 1))


# ----- results -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str
    is_error: bool = False

    def block(self, tool_use_id: str) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": self.content}
        if self.is_error:
            block["is_error"] = True
        return block


def _ok(payload: Mapping[str, Any]) -> ToolResult:
    return ToolResult(json.dumps(payload, ensure_ascii=False))


def _error(message: str, **extra: Any) -> ToolResult:
    return ToolResult(json.dumps({"error": message, **extra}, ensure_ascii=False), is_error=True)


class _Refused(Exception):
    """A tool call that cannot go ahead; the message is for the model (safe, actionable)."""


# ----- the toolbox ---------------------------------------------------------------------------------
class Toolbox:
    """Runs the model's tool calls for one turn, for the desk's sender only."""

    def __init__(self, desk: Desk, turn: Turn) -> None:
        self.desk = desk
        self.turn = turn
        self.confirmed = affirmed(turn)
        self.offered: list[Offer] = []  # offers made during this turn (quick replies)
        self.executed: list[str] = []  # confirmable actions carried out this turn
        self._handlers: dict[str, Callable[[dict[str, str]], Awaitable[ToolResult]]] = {
            "list_services": self._list_services,
            "business_info": self._business_info,
            "find_slots": self._find_slots,
            "save_contact": self._save_contact,
            "book_slot": self._book_slot,
            "list_my_bookings": self._list_my_bookings,
            "cancel_booking": self._cancel_booking,
            "find_reschedule_slots": self._find_reschedule_slots,
            "reschedule_booking": self._reschedule_booking,
            "payment_info": self._payment_info,
            "handoff_to_human": self._handoff,
        }

    # ----- state ----------------------------------------------------------------------------
    @property
    def memory(self) -> dict[str, Any]:
        return self.desk.state.setdefault(STATE_KEY, {})

    @property
    def pending(self) -> dict[str, Any] | None:
        pending = self.memory.get("pending")
        return pending if isinstance(pending, dict) else None

    def proposed_now(self) -> bool:
        """A proposal made in this turn waits for the customer's answer."""
        pending = self.pending
        return pending is not None and pending.get("seq") == self.turn.seq

    def finish(self, *, failed: bool = False) -> None:
        """End of turn: an unconfirmed proposal from an earlier turn expires; after a failed turn a
        proposal the customer never saw is dropped too."""
        pending = self.pending
        if pending is None:
            return
        if pending.get("seq") != self.turn.seq or failed:
            self.memory.pop("pending", None)

    # ----- dispatch -------------------------------------------------------------------------
    async def run(self, name: str, raw: object) -> ToolResult:
        handler = self._handlers.get(name)
        if handler is None:
            return _error(f"there is no tool named {name[:64]!r}; use one of: {', '.join(sorted(TOOL_NAMES))}")
        try:
            args = _checked(name, raw)
            return await handler(args)
        except _Refused as exc:
            return _error(str(exc))
        except SlotTaken as exc:
            return _error(f"{exc.message}; look up free times again and offer those")
        except NotFound as exc:
            if name in {"cancel_booking", "reschedule_booking", "find_reschedule_slots", "payment_info"}:
                log.info("authz_denied: %s found nothing among the sender's bookings", name)
            return _error(exc.message)
        except FrontdeskError as exc:
            return _error(exc.message)

    # ----- reading --------------------------------------------------------------------------
    async def _list_services(self, _args: dict[str, str]) -> ToolResult:
        return _ok({"services": [await self._service_view(s) for s in await self.desk.services()]})

    async def _business_info(self, _args: dict[str, str]) -> ToolResult:
        info = {
            **self.desk.info(),
            "opening_hours": await self.desk.opening_hours(),
            "timezone": self.desk.business.timezone,
        }
        return _ok({k: v for k, v in info.items() if v not in ("", None, [], {})})

    async def _find_slots(self, args: dict[str, str]) -> ToolResult:
        svc = await self._service(args["service"])
        staff = await self._staff(svc, args.get("staff"))
        day = _day(args.get("date"), "date")
        until = _day(args.get("date_to"), "date_to")
        after, before = _clock(args.get("after"), "after"), _clock(args.get("before"), "before")
        if until is not None and day is None:
            day = self.desk.clock().astimezone(self.desk.zone).date()
        offers = await self.desk.find_slots(svc.slug, day=day, until=until, after=after, before=before, staff=staff)
        note = None
        if not offers and day is not None:
            wider = await self.desk.find_slots(
                svc.slug, day=day, until=day + timedelta(days=14), after=after, before=before, staff=staff
            )
            if not wider and (after or before):
                wider = await self.desk.find_slots(svc.slug, day=day, until=day + timedelta(days=14), staff=staff)
            offers = wider
            note = "nothing free in the asked range; these are the nearest later free times"
        if not offers:
            note = "nothing free in the next two weeks; suggest a person (handoff_to_human) or another service"
        self.offered = offers
        payload: dict[str, Any] = {
            "service": svc.name,
            "duration": minutes_text(svc.duration_minutes),
            "price": self._price(svc.price, svc.currency),
            "times_in": self._zone_name(),
            "offers": [self._offer_view(o) for o in offers],
        }
        if note:
            payload["note"] = note
        return _ok(payload)

    async def _list_my_bookings(self, _args: dict[str, str]) -> ToolResult:
        mine = await self.desk.my_bookings()
        payload: dict[str, Any] = {"bookings": [self._booking_view(b) for b in mine], "times_in": self._zone_name()}
        if not self.desk.party.phone_verified:
            payload["note"] = "only bookings made in this chat are visible here; for others a colleague can help"
        return _ok(payload)

    async def _find_reschedule_slots(self, args: dict[str, str]) -> ToolResult:
        day = _day(args.get("date"), "date")
        after = _clock(args.get("after"), "after")
        target = await self.desk.find_mine(args["ref"])
        offers = await self.desk.reschedule_slots(target.ref, day=day, after=after)
        self.offered = offers
        payload: dict[str, Any] = {
            "booking": self._booking_view(target),
            "times_in": self._zone_name(),
            "offers": [self._offer_view(o) for o in offers],
        }
        if not offers:
            payload["note"] = "nothing free in that range; try another day"
        return _ok(payload)

    async def _payment_info(self, args: dict[str, str]) -> ToolResult:
        locale = self.desk.party.locale
        if args.get("ref"):
            booking = await self.desk.find_mine(args["ref"])
            if booking.status is Status.PENDING_PAYMENT:
                await self.desk.payment_link(booking.ref)
                return _ok(
                    {
                        "booking": self._booking_view(booking),
                        "done": (
                            "the payment link is sent automatically right after your reply; "
                            "do not write a link or amount"
                        ),
                    }
                )
            if self.desk.payments is not None:
                return _ok({"booking": self._booking_view(booking), "note": "nothing is due for this booking"})
            return _ok(
                {
                    "booking": self._booking_view(booking),
                    "how": catalogue.text("pay.how", locale, amount=self._price(booking.price, booking.currency)),
                    "note": "no payment link can be sent in chat yet; nothing is due before the visit",
                }
            )
        return _ok(
            {
                "how": "payment is taken at the business on the day of the appointment, at the catalogue price",
                "note": "no payment link can be sent in chat yet",
            }
        )

    # ----- contact --------------------------------------------------------------------------
    async def _save_contact(self, args: dict[str, str]) -> ToolResult:
        if not args:
            raise _Refused("give a name and/or a phone number")
        self.desk.remember(name=args.get("name"), phone=args.get("phone"))
        return _ok({"known": self.desk.details(), "still_missing": self.desk.missing_details()})

    async def _handoff(self, args: dict[str, str]) -> ToolResult:
        self.desk.handoff(args["reason"])
        return _ok({"done": "a colleague has been asked to take over; tell the customer they will reply here soon"})

    # ----- two-step actions -----------------------------------------------------------------
    async def _book_slot(self, args: dict[str, str]) -> ToolResult:
        offer_id = args["offer_id"].strip().lower()
        offer = self.desk.offer(offer_id)
        if self._ready("book_slot", {"offer_id": offer_id}):
            missing = self.desk.missing_details()
            if missing:
                raise _Refused(f"still need the customer's {' and '.join(missing)}: ask, then save_contact")
            pending = self._take_pending()
            try:
                booked = await self.desk.book(offer_id, key=f"claude:{pending['seq']}:{offer_id}")
            except SlotTaken:
                alternatives = await self.desk.alternatives(offer.service, offer.start, offer.staff)
                self.offered = alternatives
                return _error(
                    "that time was just taken by someone else; nothing was booked. Offer these instead",
                    offers=[self._offer_view(o) for o in alternatives],
                )
            self.executed.append("book")
            if booked.status is Status.PENDING_PAYMENT:
                return _ok(
                    {
                        "held": self._booking_view(booked),
                        "tell_the_customer": (
                            f"the slot is held for {self.desk.hold_minutes} minutes until paid; a payment link with "
                            "the amount is sent automatically right after your reply; "
                            "do not write a link or an amount yourself"
                        ),
                    }
                )
            return _ok({"booked": self._booking_view(booked), "tell_the_customer": "the booking is confirmed"})
        missing = self.desk.missing_details()
        if missing:
            raise _Refused(
                f"before proposing a booking, ask for the customer's {' and '.join(missing)} and save it with "
                "save_contact"
            )
        svc = await self.desk.service(offer.service)
        person = (await self.desk.staff()).get(offer.staff or "")
        proposal = {
            "service": svc.name,
            "when": self._when(offer.start),
            "start": self._iso(offer.start),
            "with": person.name if person else "whoever is free",
            "duration": minutes_text(svc.duration_minutes),
            "price": self._price(svc.price, svc.currency),
            "name": self.desk.details().get("name"),
        }
        return self._propose("book_slot", {"offer_id": offer_id}, proposal)

    async def _cancel_booking(self, args: dict[str, str]) -> ToolResult:
        target = await self.desk.find_mine(args["ref"])
        ref = target.ref
        if self._ready("cancel_booking", {"ref": ref}):
            self._take_pending()
            cancelled = await self.desk.cancel(ref)
            self.executed.append("cancel")
            return _ok({"cancelled": self._booking_view(cancelled)})
        svc = await self.desk.service(target.service)
        self._check_notice(target, svc.cancel_notice_hours, "cancelled")
        terms = await self.desk.cancellation_terms(target)
        policy = terms or catalogue.text("cancel.policy_free", self.desk.party.locale)
        proposal = {"cancel": self._booking_view(target), "policy": policy, "tell_the_customer_before_confirming": True}
        return self._propose("cancel_booking", {"ref": ref}, proposal)

    async def _reschedule_booking(self, args: dict[str, str]) -> ToolResult:
        target = await self.desk.find_mine(args["ref"])
        offer_id = args["offer_id"].strip().lower()
        offer = self.desk.offer(offer_id)
        if offer.service != target.service:
            raise InvalidInput("that time was offered for a different service; use find_reschedule_slots")
        key = {"ref": target.ref, "offer_id": offer_id}
        if self._ready("reschedule_booking", key):
            self._take_pending()
            try:
                moved = await self.desk.reschedule(target.ref, offer_id)
            except SlotTaken:
                raise _Refused("that time was just taken; nothing was changed. Look up free times again") from None
            self.executed.append("reschedule")
            return _ok({"rescheduled": self._booking_view(moved)})
        svc = await self.desk.service(target.service)
        self._check_notice(target, svc.reschedule_notice_hours, "rescheduled")
        proposal = {"move": self._booking_view(target), "to": self._when(offer.start), "start": self._iso(offer.start)}
        return self._propose("reschedule_booking", key, proposal)

    def _ready(self, tool: str, key: dict[str, str]) -> bool:
        """True when this call confirms the pending proposal; raises when it repeats one unconfirmed."""
        pending = self.pending
        if pending is None or pending.get("action") != CONFIRMABLE[tool] or pending.get("args") != key:
            return False
        if pending.get("seq") == self.turn.seq:
            raise _Refused(
                "confirmation required: this was proposed in this turn and the customer has not answered yet. "
                "Do not call it again now; ask them to confirm and wait for their reply"
            )
        if not self.confirmed:
            pending["seq"] = self.turn.seq  # asked again: their next message may confirm
            raise _Refused(
                "confirmation missing: the customer's latest message is not a clear yes to this proposal, so "
                "nothing was done. Ask them to confirm with yes or no"
            )
        return True

    def _take_pending(self) -> dict[str, Any]:
        pending = self.memory.pop("pending")
        assert isinstance(pending, dict)
        return pending

    def _propose(self, tool: str, key: dict[str, str], proposal: dict[str, Any]) -> ToolResult:
        self.memory["pending"] = {"action": CONFIRMABLE[tool], "args": key, "seq": self.turn.seq}
        return _ok(
            {
                "confirmation_required": True,
                "nothing_done_yet": True,
                "proposal": proposal,
                "next_step": (
                    f"Tell the customer these details and ask them to confirm with yes or no, then stop. Only if "
                    f"their next message says yes, call {tool} again with the same arguments."
                ),
            }
        )

    def _check_notice(self, booking: BookingView, hours: float, verb: str) -> None:
        if hours and booking.start - self.desk.clock() < timedelta(hours=hours):
            raise _Refused(
                f"this booking starts in less than {hours:g} hours, so it can no longer be {verb} in chat; "
                "offer to hand over to a colleague"
            )

    # ----- lookups and views ----------------------------------------------------------------
    async def _service(self, wanted: str) -> ServiceView:
        services = await self.desk.services()
        key = _norm(wanted)
        for svc in services:
            if key in (_norm(svc.slug), _norm(svc.name)):
                return svc
        partial = [s for s in services if key and (key in _norm(s.name) or key in _norm(s.slug))]
        if len(partial) == 1:
            return partial[0]
        names = ", ".join(f"{s.name} ({s.slug})" for s in services)
        raise _Refused(f"no service matches {wanted[:60]!r}; the services are: {names}")

    async def _staff(self, svc: ServiceView, wanted: str | None) -> str | None:
        if not wanted:
            return None
        key = wanted.casefold().strip()
        people = await self.desk.staff_for(svc.slug)
        for person in people:
            if key in (person.slug, person.name.casefold()) or key in person.name.casefold().split():
                return person.slug
        names = ", ".join(p.name for p in people) or "nobody named"
        raise _Refused(f"{wanted[:60]!r} does not provide {svc.name}; it is provided by: {names}")

    async def _service_view(self, svc: ServiceView) -> dict[str, Any]:
        people = await self.desk.staff_for(svc.slug)
        view: dict[str, Any] = {
            "service": svc.slug,
            "name": svc.name,
            "duration": minutes_text(svc.duration_minutes),
            "price": self._price(svc.price, svc.currency),
            "with": [p.name for p in people],
        }
        if svc.description:
            view["description"] = svc.description[:300]
        return view

    def _offer_view(self, offer: Offer) -> dict[str, Any]:
        view = {"offer_id": offer.id, "when": self._when(offer.start), "start": self._iso(offer.start)}
        if offer.staff:
            view["staff"] = offer.staff
        return view

    def _booking_view(self, booking: BookingView) -> dict[str, Any]:
        return {
            "ref": booking.ref,
            "service": booking.service_name,
            "when": self._when(booking.start),
            "start": self._iso(booking.start),
            "with": ", ".join(booking.staff_names),
            "status": booking.status.value,
            "price": self._price(booking.price, booking.currency),
        }

    def _price(self, minor: int, currency: str) -> str:
        locale = self.desk.party.locale
        return catalogue.text("price.free", locale) if minor == 0 else format_money(minor, currency, locale)

    def _when(self, at: datetime) -> str:
        return when_text(at, self.desk.business.timezone, self.desk.customer_zone, self.desk.party.locale)

    def _iso(self, at: datetime) -> str:
        return at.astimezone(ZoneInfo(self._zone_name())).isoformat(timespec="minutes")

    def _zone_name(self) -> str:
        return self.desk.customer_zone or self.desk.business.timezone


# ----- argument checking ---------------------------------------------------------------------------
_SCHEMAS = {t["name"]: t["input_schema"] for t in TOOLS}


def _checked(name: str, raw: object) -> dict[str, str]:
    """The arguments as the schema allows them, or a refusal that says what is wrong."""
    schema = _SCHEMAS[name]
    if not isinstance(raw, dict):
        raise _Refused("the arguments must be a JSON object")
    allowed: dict[str, Any] = schema["properties"]
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        money = [k for k in unknown if any(w in k.casefold() for w in AMOUNT_WORDS)]
        takes = ", ".join(allowed) or "no arguments"
        if money:
            raise _Refused(
                f"{name} takes no {', '.join(money)}: prices and amounts always come from the catalogue and "
                f"cannot be set or changed in chat. It takes: {takes}"
            )
        raise _Refused(f"unexpected argument(s) {', '.join(unknown)[:120]}; {name} takes: {takes}")
    args: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise _Refused(f"{key} must be a string")
        value = value.strip()
        limit = int(allowed[key].get("maxLength", MAX_ARG_CHARS))
        if len(value) > limit:
            raise _Refused(f"{key} is too long (at most {limit} characters)")
        if value:
            args[key] = value
    missing = [k for k in schema["required"] if k not in args]
    if missing:
        raise _Refused(f"missing required argument(s): {', '.join(missing)}")
    return args


def _norm(text: str) -> str:
    return " ".join(text.casefold().replace("-", " ").replace("_", " ").split())


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Refused(f"{field} must be a date as YYYY-MM-DD") from None


def _clock(value: str | None, field: str) -> time | None:
    if value is None:
        return None
    try:
        return time.fromisoformat(value if len(value) > 2 else f"{value}:00")
    except ValueError:
        raise _Refused(f"{field} must be a time as HH:MM (24-hour)") from None
