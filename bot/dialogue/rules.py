"""The offline rules engine: a small slot-filling state machine over the rule-based reader.

Flows: book (service → staff when there is a choice → day/time → real free slots → confirm →
name and phone when unknown → booked), cancel and reschedule (pick one of the sender's bookings →
confirm with the policy stated → done). Any message may carry corrections ("actually 4pm", "no,
Friday") which update what the customer wants and re-plan from there; questions about services,
hours, the address or the FAQ are answered in passing and the pending question asked again.
Every question carries quick-reply options; a typed number or a typed option label selects.
All wording comes from the message catalogue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dialogue import catalogue
from bot.dialogue.desk import WEEK, BookingView, Desk, Offer, ServiceView
from bot.dialogue.engine import Turn
from bot.dialogue.reading import ANSWERS, Named, Reader, Reading, means_anyone
from bot.dialogue.replies import main_menu, yes_no
from bot.dialogue.show import day_text, minutes_text, time_text, when_text
from bot.dialogue.when import WEEKDAYS
from bot.money import format_money
from channels.base import Option, OutboundMessage
from core.booking import Status
from core.errors import Conflict, FrontdeskError, InvalidInput, NotFound, PolicyViolation, SlotTaken, TermsChanged

PARTS = {"morning": (time(0), time(12)), "afternoon": (time(12), time(17)), "evening": (time(17), time(23, 59))}
EXPECT = {"name": "name", "phone": "phone"}
INFO_INTENTS = frozenset({"services", "prices", "hours", "address", "faq"})


@dataclass
class Reply:
    """Replies of one turn under construction."""

    locale: str
    messages: list[OutboundMessage]

    def say(self, key: str, options: Sequence[Option] = (), /, **params: Any) -> None:
        self.messages.append(OutboundMessage(catalogue.text(key, self.locale, **params), tuple(options)))

    def raw(self, text: str, options: Sequence[Option] = ()) -> None:
        self.messages.append(OutboundMessage(text, tuple(options)))


class RulesEngine:
    name = "rules"
    reads_history = False  # its state is the conversation's state, not the transcript

    def __init__(self) -> None:
        self._readers: dict[tuple[Any, ...], Reader] = {}

    async def reader(self, desk: Desk) -> Reader:
        """A reader in the customer's own zone when it is known: "10am" from a visitor abroad is
        their 10am, as the times they are shown are theirs."""
        services = await desk.services()
        staff = (await desk.staff()).values()
        zone = desk.customer_zone or desk.business.timezone
        key = (
            desk.business.id,
            zone,
            desk.business.locale,
            tuple((s.slug, s.name) for s in services),
            tuple((s.slug, s.name) for s in staff),
            tuple(str(item.get("q", "")) for item in desk.about().get("faq") or []),
        )
        reader = self._readers.get(key)
        if reader is None:
            reader = Reader(
                [Named(s.slug, s.name, (s.slug.replace("-", " "),)) for s in services],
                [Named(s.slug, s.name) for s in staff],
                timezone=zone,
                locale=desk.business.locale,
                default_region=desk.region,
                faq=[str(item.get("q", "")) for item in desk.about().get("faq") or []],
            )
            self._readers[key] = reader
        return reader

    async def aclose(self) -> None:
        """Nothing to release: the rules engine holds no connections."""

    async def respond(self, turn: Turn, desk: Desk) -> list[OutboundMessage]:
        reply = Reply(desk.party.locale, [])
        await Conversation(self, turn, desk, reply).run()
        return reply.messages


class Conversation:
    """One turn of the rules engine; ``desk.state`` carries everything between turns."""

    def __init__(self, engine: RulesEngine, turn: Turn, desk: Desk, reply: Reply) -> None:
        self.engine = engine
        self.turn = turn
        self.desk = desk
        self.reply = reply
        self.state = desk.state
        self.locale = desk.party.locale

    # ----- entry -----------------------------------------------------------------------------
    async def run(self) -> None:
        step = self.state.get("step")
        choice = self._choice()
        reader = await self.engine.reader(self.desk)
        reading = reader.read(self.turn.text, self.turn.now, expect=EXPECT.get(step or "")) if self.turn.text else None
        if reading is not None:  # the customer's intent, as read, for the insights store
            self.desk.heard(None if reading.intent in ANSWERS else reading.intent, service=reading.service)
        try:
            if choice is not None and await self._on_choice(choice):
                return
            if reading is None:
                await self._reprompt()
                return
            await self._on_reading(reading)
        except FrontdeskError as exc:
            await self._on_error(exc)

    def _choice(self) -> str | None:
        """A tapped option, a typed option number, or a typed option label ("don't mind" for
        "No preference")."""
        if self.turn.choice:
            return self.turn.choice
        offered = self.state.get("options") or []
        text = self.turn.text.strip().rstrip(".").lower()
        if self.state.get("step") == "staff" and means_anyone(text):
            return "staff:any"
        if text.isdigit() and 1 <= int(text) <= len(offered) and self.state.get("step") not in ("name", "phone"):
            return str(offered[int(text) - 1][0])
        for option_id, label in offered:
            if text and text == str(label).lower():
                return str(option_id)
        return None

    async def _on_choice(self, choice: str) -> bool:
        kind, _, value = choice.partition(":")
        step = self.state.get("step")
        if kind == "menu":
            return await self._on_menu(value)
        if kind == "svc":
            if self.state.get("flow") != "book":
                self._start("book")
            want = self._want()  # "tomorrow afternoon", said before the service was asked, holds
            if want.get("service") != value:  # a person already named stays, if they do it
                want["service"] = value
                self.state.pop("chosen", None)
                self.state.pop("offers", None)
            await self._advance()
            return True
        if kind == "staff":
            self._want()["staff"] = value
            await self._advance()
            return True
        if kind == "day":  # a day tapped: the customer's limits of the time of day hold (``_correct``)
            want = self._want()
            want["date"] = value
            for key in ("day_check", "since", "pick_day"):
                want.pop(key, None)
            self.state.pop("chosen", None)
            await self._advance()
            return True
        if kind == "slot":
            self.state["chosen"] = value
            await self._advance()
            return True
        if kind == "more":  # "Later times": the next page starts after the last time shown
            self._want()["since"] = value
            await self._advance()
            return True
        if kind == "bk":
            self.state["target"] = value
            await self._advance()
            return True
        if kind in ("yes", "no") and step in ("confirm", "confirm_cancel", "confirm_reschedule"):
            await self._on_yes_no(kind == "yes")
            return True
        return False

    async def _on_menu(self, key: str) -> bool:
        if key == "book":
            self._start("book")
            await self._advance()
        elif key in ("services", "prices"):
            await self._services()
        elif key == "hours":
            await self._info("hours")
        elif key == "my_bookings":
            await self._my_bookings()
        elif key == "human":
            self._handoff()
        elif key == "other_day":  # the day picker; the customer's limits of the time of day hold
            want = self._want()
            for k in ("date", "time", "range", "day_check", "since"):
                want.pop(k, None)
            want["pick_day"] = True
            self.state.pop("chosen", None)
            self.state.pop("asked_when", None)
            await self._advance()
        elif key == "cancel":
            self._start("cancel")
            await self._advance()
        elif key == "reschedule":
            self._start("reschedule")
            await self._advance()
        else:
            return False
        return True

    async def _on_reading(self, reading: Reading) -> None:
        intent = reading.intent
        step = self.state.get("step")
        flow = self.state.get("flow")
        named = step == "name" and (reading.entities.get("name") or intent in ("inform", "unknown"))
        if named and not (_carries_values(reading) and not reading.entities.get("name")):  # not "make it 11am"
            name = str(reading.entities.get("name") or self.turn.text)
            if any(c.isalpha() for c in name):
                self.desk.remember(name=name)
            elif not self.desk.party.phone_verified:  # the number came first: keep it if it is one
                with contextlib.suppress(InvalidInput):
                    self.desk.remember(phone=str(reading.entities.get("phone") or self.turn.text))
            await self._advance()  # without a name, the name is asked again
            return
        if step == "phone" and (reading.entities.get("phone") or intent in ("inform", "unknown")):
            self.desk.remember(phone=str(reading.entities.get("phone") or self.turn.text))
            await self._advance()
            return
        if intent == "human":
            self._handoff()
            return
        if intent in ("cancel", "reschedule") and not (flow == "book" and _carries_values(reading)):
            if flow != intent:
                self._start(intent)
            await self._target(reading)  # "cancel 3F9A1C"
            if intent == "reschedule" and _carries_values(reading):  # "move it to Wednesday afternoon"
                self._correct(reading)
            await self._advance()
            return
        if flow in ("cancel", "reschedule") and reading.entities.get("ref"):  # the reference, for "which one?"
            await self._target(reading)
            await self._advance()
            return
        if intent == "my_bookings":
            await self._my_bookings()
            return
        if intent == "pay":
            await self._pay_info()
            return
        if intent in INFO_INTENTS:
            if intent in ("services", "prices"):
                await self._services(reading.service)
            else:
                await self._info(intent, reading.entities.get("faq"))
            if flow:
                await self._reprompt(quiet=True)
            return
        if step in ("confirm", "confirm_cancel", "confirm_reschedule") and intent in ("affirm", "deny"):
            if intent == "deny" and _carries_values(reading):
                self._correct(reading)
                await self._advance()
            else:
                await self._on_yes_no(intent == "affirm")
            return
        if _carries_values(reading) or intent in ("book", "find_provider"):
            if flow not in ("book", "reschedule"):
                self._start("book")
            self._correct(reading)
            await self._advance()
            return
        if intent == "deny" and flow:
            self._finish()
            self.reply.say("flow.dropped", main_menu(self.locale))
            return
        if intent == "greet":
            self.reply.say("greet", main_menu(self.locale), business=self.desk.business.name)
            if flow:
                await self._reprompt(quiet=True)
            return
        if intent in ("thanks", "bye"):
            self.reply.say(f"{intent}.reply", main_menu(self.locale))
            return
        if intent in ("affirm", "deny", "rate", "inform") and not flow:
            self.reply.say("what.next", main_menu(self.locale))
            return
        if intent == "help":
            self.reply.say("help", main_menu(self.locale))
            return
        await self._reprompt(confused=True)

    # ----- the plan --------------------------------------------------------------------------
    def _start(self, flow: str) -> None:
        keep = {
            k: v
            for k, v in self.state.items()
            if k in ("customer", "customer_id", "mine", "rated", "offer_counter", "awaiting_rating")
        }
        self.state.clear()
        self.state.update(keep)
        self.state["flow"] = flow
        self.state["want"] = {}

    def _finish(self) -> None:
        self._start("")
        self.state.pop("flow", None)
        self.state.pop("want", None)

    def _want(self) -> dict[str, Any]:
        if not self.state.get("flow"):
            self._start("book")
        want: dict[str, Any] = self.state.setdefault("want", {})
        return want

    def _correct(self, reading: Reading) -> None:
        """Fold what the message says into what the customer wants; a new value replaces the old.

        A limit of the time of day ("after 4pm", "before 10am", "between 2 and 4pm", "in the
        afternoon") says when the customer can come, not which day: it holds when they name another
        day ("how about Wednesday?"), and gives way only to a time ("Wednesday at 10") or a new limit."""
        want = self._want()
        changed = False
        if reading.service and reading.service != want.get("service"):
            want["service"], changed = reading.service, True
            want.pop("staff", None)
        if reading.staff:
            want["staff"], changed = reading.staff, True
        day, clock = self._in_business_zone(reading)
        if day:
            want["date"], changed = day.isoformat(), True
            want.pop("range", None)
            want.pop("day_check", None)
            if reading.entities.get("next_year"):  # "March 3" in November: never silently next year's
                self.reply.say(
                    "date.next_year",
                    day=day_text(day, self.locale, weekday=False),
                    date=day_text(day, self.locale, year=True),
                )
            self._check_weekday(reading, day)
        elif reading.entities.get("date_range"):
            want["range"], changed = list(reading.entities["date_range"]), True
            want.pop("date", None)
        elif reading.entities.get("past_date"):
            gone = date.fromisoformat(reading.entities["past_date"])
            self.reply.say("date.past", day=day_text(gone, self.locale, year=True))
        bound = reading.entities.get("time_bound")
        if clock and bound in ("before", "after", "between"):  # "before 5pm": a limit, not a wish for 5pm
            for key in ("time", "after", "before", "until"):  # the new limits replace the old ones
                want.pop(key, None)
            want["part"], changed = None, True
            if bound == "between":  # "between 2 and 4pm": both ends
                want["after"] = clock.strftime("%H:%M")
                want["until"] = self._until(reading).strftime("%H:%M")
            else:
                want[bound] = clock.strftime("%H:%M")
        elif clock:
            want["time"], changed = clock.strftime("%H:%M"), True
            want["part"] = None
            for key in ("after", "before", "until"):
                want.pop(key, None)
            if not reading.date and self.state.get("chosen"):
                chosen = self._chosen_offer()
                if chosen is not None and "date" not in want:
                    want["date"] = chosen.start.astimezone(self.desk.zone).date().isoformat()
        part = reading.entities.get("part_of_day")
        if part in PARTS:
            want["part"], changed = part, True
            if not reading.time:
                want.pop("time", None)
        if changed:
            self.state.pop("chosen", None)
            self.state.pop("offers", None)
            want.pop("since", None)  # a new wish pages from its own first time
            want.pop("pick_day", None)

    def _check_weekday(self, reading: Reading, day: date) -> None:
        """A weekday written with a date it is not ("Friday 20 March", the 20th a Saturday).

        Asked, not assumed: either half may be the slip (people who plan by weekday get the number
        wrong, people who copy a date get the weekday wrong), and in a booking chat a wrong day
        booked costs the customer a wasted trip while the question costs one tap. So both days are
        offered (``_ask_which_day``), the date first. When the weekday's nearest day has already
        gone, the date is the only one left: it is taken, and the customer is told."""
        mismatch = reading.entities.get("weekday_mismatch")
        if not mismatch or reading.date is None:
            return
        if mismatch.get("nearest"):
            other = day + (date.fromisoformat(mismatch["nearest"]) - reading.date)  # on the same clock as ``day``
            self._want()["day_check"] = [day.isoformat(), other.isoformat()]
            return
        self.reply.say(
            "date.weekday_taken",
            date=day_text(day, self.locale, weekday=False),
            weekday=self._weekday_name(day.weekday()),
            said=self._weekday_name(WEEKDAYS.index(mismatch["said"])),
            day=day_text(day, self.locale),
        )

    def _ask_which_day(self) -> bool:
        """ "20 Mar is a Saturday, not a Friday. Which day did you mean?", both days as options;
        False when there is nothing to ask."""
        check = self._want().get("day_check")
        if not check:
            return False
        days = [date.fromisoformat(d) for d in check]
        options = [Option(f"day:{d.isoformat()}", day_text(d, self.locale)) for d in days]
        self._ask(
            "when",
            "ask.which_day",
            options,
            date=day_text(days[0], self.locale, weekday=False),
            weekday=self._weekday_name(days[0].weekday()),
            said=self._weekday_name(days[1].weekday()),
        )
        return True

    def _weekday_name(self, weekday: int) -> str:
        return catalogue.text(f"day.{WEEK[weekday]}", self.locale)

    def _in_business_zone(self, reading: Reading) -> tuple[date | None, time | None]:
        """The day and time the customer said, on the business's clock (slots are searched there).
        A time is an instant in the customer's zone; a day alone stays the calendar day they named."""
        day, clock = reading.date, reading.time
        if clock is None or not self.desk.customer_zone:
            return day, clock
        here = self._here(day, clock)
        return (here.date() if day or self._want().get("date") else None), here.time()

    def _until(self, reading: Reading) -> time:
        """The end of the window the customer said ("between 2 and 4pm"), on the business's clock."""
        until = time.fromisoformat(reading.entities["time_until"])
        return self._here(reading.date, until).time() if self.desk.customer_zone else until

    def _here(self, day: date | None, clock: time) -> datetime:
        """``clock`` on ``day`` (else the wished day, else today) in the customer's zone, as the business's."""
        there = ZoneInfo(self.desk.customer_zone or self.desk.business.timezone)
        want = self._want()
        on = day or (date.fromisoformat(want["date"]) if want.get("date") else self.turn.now.astimezone(there).date())
        return datetime.combine(on, clock, there).astimezone(self.desk.zone)

    async def _advance(self) -> None:
        flow = self.state.get("flow")
        if flow == "book":
            await self._advance_booking()
        elif flow == "cancel":
            await self._advance_cancel()
        elif flow == "reschedule":
            await self._advance_reschedule()
        else:
            self.reply.say("what.next", main_menu(self.locale))

    async def _advance_booking(self) -> None:
        want = self._want()
        services = await self.desk.services()
        if not want.get("service"):
            if len(services) == 1:
                want["service"] = services[0].slug
            else:
                return self._ask("service", "ask.service", [self._service_option(s) for s in services])
        svc = await self.desk.service(want["service"])
        people = await self.desk.staff_for(svc.slug)
        if "staff" not in want:
            if len(people) > 1:
                options = [Option("staff:any", catalogue.text("option.anyone", self.locale))]
                options += [Option(f"staff:{p.slug}", p.name) for p in people]
                return self._ask("staff", "ask.staff", options, service=svc.name)
            want["staff"] = "any"
        staff = None if want.get("staff") in (None, "any") else want["staff"]
        if staff is not None and staff not in svc.staff:  # say so, then anyone who does it
            named = (await self.desk.staff()).get(staff)
            if named is not None:
                self.reply.say("staff.not_for_service", person=named.name, service=svc.name)
            want["staff"] = "any"
            staff = None
        chosen = self._chosen_offer()
        if chosen is None:
            return await self._offer_slots(svc, staff)
        if self.state.get("confirmed") != chosen.id:  # a yes holds for the time it answered only
            params = await self._booking_params(svc, chosen)
            return self._ask("confirm", "ask.confirm", yes_no(self.locale), **params)
        missing = self.desk.missing_details()
        if missing:
            field = missing[0]
            return self._ask(field, f"ask.{field}", ())
        await self._book(svc, chosen)

    async def _offer_slots(self, svc: ServiceView, staff: str | None) -> None:
        want = self._want()
        day = date.fromisoformat(want["date"]) if want.get("date") else None
        wished_time = time.fromisoformat(want["time"]) if want.get("time") else None
        after, before, ends_by = self._limits(want)
        asked = day or (date.fromisoformat(want["range"][0]) if want.get("range") else None)
        if asked is not None and await self._beyond_horizon(svc, staff, asked, wished_time):
            return
        if self._ask_which_day():
            return
        if day is None and want.get("range"):
            first, last = (date.fromisoformat(x) for x in want["range"])
            offers = await self.desk.find_slots(
                svc.slug, day=first, until=last, after=after, before=before, ends_by=ends_by, staff=staff, limit=60
            )
            return await self._present(svc, _spread(offers, SHOWN), day=None)
        if (
            day is None
            and wished_time is None
            and (want.get("pick_day") or not (want.get("part") or want.get("until")))
        ):
            return await self._ask_day(svc, staff)  # a window of the day alone ("2-4pm") offers the soonest in it
        near = None
        if day is not None and wished_time is not None:
            near = datetime.combine(day, wished_time, self.desk.zone)
        offers = await self.desk.find_slots(
            svc.slug,
            day=day,
            after=after,
            before=before,
            ends_by=ends_by,
            staff=staff,
            near=near,
            limit=6 if near else 60,
            since=self._since(),
        )
        if near is not None:
            exact = [o for o in offers if o.start == near]
            if exact:
                self.state["chosen"] = exact[0].id
                return await self._advance_booking()
            if offers:  # not free, or over another booking of the customer's own (never offered, never refused)
                mine = await self.desk.overlaps_mine(near, near + timedelta(minutes=svc.duration_minutes))
                self.reply.say(
                    "slot.wish_yours" if mine else "slot.wish_taken",
                    when=when_text(near, self.desk.business.timezone, self.desk.customer_zone, self.locale),
                )
                return await self._present(svc, offers, day=day, quiet=True)
        offers, later = _shortlist(offers, whole_day=day is not None and wished_time is None)
        if not offers:
            return await self._nothing_free(svc, staff, day, near)
        await self._present(svc, offers, day=day, later=later)

    async def _beyond_horizon(
        self,
        svc: ServiceView,
        staff: str | None,
        day: date,
        wished: time | None,
        *,
        moving: BookingView | None = None,
    ) -> bool:
        """A day past the service's booking window (``max_advance_days``): say how far ahead it can
        be booked and until which day, with the free times nearest the wish before then (the
        wished time on the last day, else its end). False when ``day`` is inside the window."""
        horizon = await self.desk.horizon(svc.slug)
        if day <= horizon.last:
            return False
        want = self._want()
        for key in ("date", "range", "day_check"):
            want.pop(key, None)
        unit = ("horizon.working_day" if horizon.working else "horizon.day") + ("" if horizon.days == 1 else "s")
        params = {
            "service": svc.name,
            "ahead": catalogue.text(unit, self.locale, days=horizon.days),
            "last": day_text(horizon.last, self.locale),
        }
        near = datetime.combine(horizon.last, wished or time(23, 59), self.desk.zone)
        first = max(self.turn.now.astimezone(self.desk.zone).date(), horizon.last - timedelta(days=13))
        none: tuple[time | None, time | None, time | None] = (None, None, None)
        offers: list[Offer] = []
        # within the customer's limits and with whom they asked for, else any time, else anyone
        for (after, before, ends_by), who in ((self._limits(want), staff), (none, staff), (none, None)):
            window: dict[str, Any] = {
                "day": first,
                "until": horizon.last,
                "after": after,
                "before": before,
                "ends_by": ends_by,
                "near": near,
                "limit": 3,
            }
            if moving is not None:
                offers = await self.desk.reschedule_slots(moving.ref, **window)
            else:
                offers = await self.desk.find_slots(svc.slug, staff=who, **window)
            if offers:
                break
        if not offers:
            self._finish()
            self.reply.say("slot.beyond_window_none", main_menu(self.locale), **params)
            return True
        self.reply.say("slot.beyond_window", **params)
        await self._present(svc, offers, day=None, quiet=True)
        return True

    async def _nothing_free(self, svc: ServiceView, staff: str | None, day: date | None, near: datetime | None) -> None:
        wished = self._wished_at(day, near)
        alternatives = await self.desk.alternatives(svc.slug, wished, staff)
        if not alternatives and staff:
            alternatives = await self.desk.alternatives(svc.slug, wished, None)
        if not alternatives:
            self._want().pop("date", None)
            self.reply.say("slot.none_soon", main_menu(self.locale), service=svc.name)
            return
        await self._present_nearest(svc, day, alternatives)

    def _wished_at(self, day: date | None, near: datetime | None) -> datetime:
        """The instant to look around when nothing is free: the wish, else the start of the
        customer's limits ("between 2 and 4pm", "after 4pm", "in the afternoon"), else 9:00, on the
        day (today)."""
        after, _, _ = self._limits(self._want())
        at = after if after is not None and after > time(0) else time(9)
        return near or datetime.combine(day or self.turn.now.astimezone(self.desk.zone).date(), at, self.desk.zone)

    async def _present_nearest(self, svc: ServiceView, day: date | None, nearest: list[Offer]) -> None:
        """ "Nothing is free {day}. The nearest free times:" and those times, each with its day;
        "… {day} after 4:00 PM" (or "between 2:00 PM and 4:00 PM", "in the afternoon") when the
        customer gave limits: the day may well have free times outside them."""
        label = day_text(day, self.locale) if day else catalogue.text("then", self.locale)
        limits = self._limits_text(day)
        if limits:
            label = f"{day_text(day, self.locale)} {limits}" if day else limits
        self.reply.say("slot.none_that_day", day=label)
        await self._present(svc, nearest, day=None, quiet=True)

    async def _present(
        self, svc: ServiceView, offers: list[Offer], *, day: date | None, quiet: bool = False, later: bool = False
    ) -> None:
        """Offer these times. ``later``: there are more after them within the customer's limits (not
        when they are all there is, or already spread over the whole day): "Later times" pages on
        from the last one shown, across days."""
        if not offers:
            return await self._nothing_free(svc, None, day, None)
        zone = self.desk.customer_zone or self.desk.business.timezone
        shown = ZoneInfo(zone)  # the days as the customer reads them, like the times
        one_day = len({o.start.astimezone(shown).date() for o in offers}) == 1
        # the short prompt names no day: unless the customer named it, each time says its own
        with_day = not one_day or (quiet and day is None)
        options = [Option(f"slot:{o.id}", self._slot_label(o, zone, with_day=with_day)) for o in offers]
        if later:
            options.append(Option(f"more:{offers[-1].start.isoformat()}", catalogue.text("option.later", self.locale)))
        options.append(Option("menu:other_day", catalogue.text("option.other_day", self.locale)))
        key = "ask.slot_day" if one_day else "ask.slot"
        first_day = day_text(offers[0].start.astimezone(shown).date(), self.locale)
        if quiet:
            key = "ask.slot_short"
        self._ask("slot", key, options, service=svc.name, day=first_day, zone=self._zone_note())

    def _limits_text(self, day: date | None) -> str | None:
        """The customer's limits of the time of day (``_limits``) in words, in their zone: "between
        2:00 PM and 4:00 PM", "after 4:00 PM", "before 10:00 AM", "in the afternoon"; None without."""
        want = self._want()
        after, before, ends_by = self._limits(want)
        part = want.get("part") or ""
        if part in PARTS and (after, before) == PARTS[part] and ends_by is None:
            return catalogue.text(f"limit.{part}", self.locale)
        on = day or self.turn.now.astimezone(self.desk.zone).date()
        shown = ZoneInfo(self.desk.customer_zone or self.desk.business.timezone)

        def clock(at: time) -> str:
            return time_text(datetime.combine(on, at, self.desk.zone), shown, self.locale)

        end = ends_by or before
        if after is not None and end is not None:
            return catalogue.text("window", self.locale, start=clock(after), end=clock(end))
        if after is not None:
            return catalogue.text("limit.after", self.locale, time=clock(after))
        if before is not None:
            return catalogue.text("limit.before", self.locale, time=clock(before))
        return None

    def _since(self) -> datetime | None:
        """Where "Later times" has got to: the start of the last time shown."""
        since = self._want().get("since")
        return datetime.fromisoformat(since) if since else None

    @staticmethod
    def _limits(want: dict[str, Any]) -> tuple[time | None, time | None, time | None]:
        """The window of the day to offer, as (starts from, starts before, ends by): a part of day,
        narrowed by "after 3pm" / "before 5pm". A
        window the customer gave ("between 2 and 4pm") holds the times that start in it and end by
        its end: a 30-minute visit "between 2 and 4" starts at 3:30 at the latest."""
        after, before = PARTS.get(want.get("part") or "", (None, None))
        if want.get("after"):
            after = time.fromisoformat(want["after"])
        if want.get("before"):
            before = time.fromisoformat(want["before"])
        ends_by = time.fromisoformat(want["until"]) if want.get("until") else None
        return after, before, ends_by

    async def _free_days(self, service: str, staff: str | None = None, moving: str | None = None) -> list[date]:
        """Days for the day picker: with a free time within the customer's limits, else any free time."""
        after, before, ends_by = self._limits(self._want())
        days = await self.desk.free_days(
            service, 5, staff=staff, moving=moving, after=after, before=before, ends_by=ends_by
        )
        if not days and (after or before or ends_by):
            days = await self.desk.free_days(service, 5, staff=staff, moving=moving)
        return days

    async def _ask_day(self, svc: ServiceView, staff: str | None) -> None:
        days = await self._free_days(svc.slug, staff)
        if not days:
            self._finish()
            self.reply.say("slot.none_soon", main_menu(self.locale), service=svc.name)
            return
        self._ask(
            "when", "ask.when", self._day_options(days), service=svc.name, duration=minutes_text(svc.duration_minutes)
        )

    def _day_options(self, days: list[date]) -> list[Option]:
        """Only days with a free time: a closed day is never offered."""
        today = self.turn.now.astimezone(self.desk.zone).date()
        names = {today: "option.today", today + timedelta(days=1): "option.tomorrow"}
        return [
            Option(
                f"day:{d.isoformat()}",
                catalogue.text(names[d], self.locale) if d in names else day_text(d, self.locale),
            )
            for d in days
        ]

    async def _on_yes_no(self, yes: bool) -> None:
        step = self.state.get("step")
        if step == "confirm":
            if yes:
                self.state["confirmed"] = self.state.get("chosen")
                await self._advance_booking()
            else:  # not that time: the day's other times (the same wish would offer it again)
                self.state.pop("chosen", None)
                self.state.pop("confirmed", None)
                self._want().pop("time", None)
                self.reply.say("confirm.declined")
                await self._advance_booking()
        elif step == "confirm_cancel":
            if yes:
                await self._do_cancel()
            else:
                self._finish()
                self.reply.say("cancel.kept", main_menu(self.locale))
        elif step == "confirm_reschedule":
            if yes:
                await self._do_reschedule()
            else:
                self.state.pop("chosen", None)
                self._want().pop("time", None)
                self.reply.say("confirm.declined")
                await self._advance_reschedule()

    async def _book(self, svc: ServiceView, offer: Offer) -> None:
        try:
            booked = await self.desk.book(offer.id, key=f"t{self.turn.seq}")
        except SlotTaken:
            self.state.pop("chosen", None)
            self.state.pop("confirmed", None)
            self.reply.say("slot.just_taken")
            alternatives = await self.desk.alternatives(svc.slug, offer.start, offer.staff)
            await self._present(svc, alternatives, day=None, quiet=True)
            return
        self._finish()
        params = self._view_params(booked)
        if booked.status is Status.PENDING_PAYMENT:
            self.reply.say("booked.held", **params)  # the payment link follows, from the payment desk
            return
        self.reply.messages.append(self.desk.confirmation(catalogue.text("booked", self.locale, **params), booked))
        if booked.price and self.desk.payments is None:
            self.reply.say("pay.how", amount=params["price"])

    # ----- cancel and reschedule -------------------------------------------------------------
    async def _target(self, reading: Reading) -> None:
        """A booking reference the customer typed: one of their own upcoming bookings is the one to
        act on; any other is "not among yours", the same whether it exists or whose it is."""
        ref = reading.entities.get("ref")
        if not ref:
            return
        self.state.pop("target", None)
        try:
            self.state["target"] = (await self.desk.find_mine(str(ref))).ref
        except NotFound:
            self.reply.say("bookings.ref_unknown", ref=ref)
            self.state["ask_which"] = True  # not their only booking either: they pick it themselves

    async def _pick_booking(self, purpose: str) -> BookingView | None:
        ref = self.state.get("target")
        if ref:
            try:
                return await self.desk.find_mine(ref)
            except NotFound:
                self.state.pop("target", None)
        mine = await self.desk.my_bookings()
        if not mine:
            self._finish()
            self.reply.say("bookings.none", main_menu(self.locale))
            return None
        if len(mine) == 1 and not self.state.get("ask_which"):
            self.state["target"] = mine[0].ref
            return mine[0]
        options = [Option(f"bk:{b.ref}", self._booking_label(b)) for b in mine[:10]]
        self._ask("which_booking", f"ask.which_{purpose}", options)
        return None

    async def _advance_cancel(self) -> None:
        target = await self._pick_booking("cancel")
        if target is None:
            return
        svc = await self.desk.service(target.service)
        hours = svc.cancel_notice_hours
        if hours and target.start - self.turn.now < timedelta(hours=hours):
            self._finish()
            self.reply.say(
                "cancel.too_late",
                [Option("menu:human", catalogue.text("menu.human", self.locale))],
                hours=_hours(hours),
                **self._view_params(target),
            )
            return
        policy = await self.desk.cancellation_terms(target) or catalogue.text("cancel.policy_free", self.locale)
        self._ask(
            "confirm_cancel", "ask.confirm_cancel", yes_no(self.locale), policy=policy, **self._view_params(target)
        )

    async def _do_cancel(self) -> None:
        ref = self.state.get("target", "")
        try:
            cancelled = await self.desk.cancel(ref)
        except TermsChanged as changed:  # the refund shrank since it was quoted: their yes was to the old one
            target = await self.desk.find_mine(ref)
            self._ask(
                "confirm_cancel",
                "ask.confirm_cancel",
                yes_no(self.locale),
                policy=changed.message,
                **self._view_params(target),
            )
            return
        except BaseException:
            self._finish()
            raise
        self._finish()
        self.reply.say(
            "cancelled",
            [Option("menu:book", catalogue.text("option.book_again", self.locale))],
            **self._view_params(cancelled),
        )

    async def _advance_reschedule(self) -> None:
        target = await self._pick_booking("reschedule")
        if target is None:
            return
        svc = await self.desk.service(target.service)
        if target.status is Status.PENDING_PAYMENT:  # held for a payment: paid first, or cancelled
            self._finish()
            self.reply.say("reschedule.unpaid", main_menu(self.locale), **self._view_params(target))
            return
        hours = svc.reschedule_notice_hours
        if hours and target.start - self.turn.now < timedelta(hours=hours):
            self._finish()
            self.reply.say(
                "reschedule.too_late",
                [Option("menu:human", catalogue.text("menu.human", self.locale))],
                hours=_hours(hours),
                **self._view_params(target),
            )
            return
        chosen = self._chosen_offer()
        if chosen is not None:
            return self._ask(
                "confirm_reschedule",
                "ask.confirm_reschedule",
                yes_no(self.locale),
                old=self._when(target.start),
                new=self._when(chosen.start),
                service=svc.name,
            )
        want = self._want()
        day = date.fromisoformat(want["date"]) if want.get("date") else None
        wished = time.fromisoformat(want["time"]) if want.get("time") else None
        if day is None and not self.state.get("asked_when"):
            self.state["asked_when"] = True
            days = await self._free_days(target.service, moving=target.ref)
            return self._ask("when", "ask.reschedule_when", self._day_options(days), **self._view_params(target))
        if day is not None and await self._beyond_horizon(svc, None, day, wished, moving=target):
            return
        if self._ask_which_day():
            return
        near = datetime.combine(day, wished, self.desk.zone) if day and wished else None
        after, before, ends_by = self._limits(want)
        offers = await self.desk.reschedule_slots(
            target.ref,
            day=day,
            after=after,
            before=before,
            ends_by=ends_by,
            near=near,
            limit=SHOWN if near else 60,
            since=self._since(),
        )
        if near is not None:
            exact = [o for o in offers if o.start == near]
            if exact:
                self.state["chosen"] = exact[0].id
                return await self._advance_reschedule()
        offers, later = _shortlist(offers, whole_day=day is not None and wished is None)
        if not offers:  # the nearest free times around the wish instead
            nearest = await self.desk.reschedule_slots(target.ref, near=self._wished_at(day, near))
            if not nearest:
                self._finish()
                self.reply.say("slot.none_soon", main_menu(self.locale), service=svc.name)
                return
            return await self._present_nearest(svc, day, sorted(nearest[:3], key=lambda o: o.start))
        await self._present(svc, offers, day=day, later=later)

    async def _do_reschedule(self) -> None:
        chosen = self._chosen_offer()
        ref = self.state.get("target", "")
        if chosen is None:
            return await self._advance_reschedule()
        try:
            moved = await self.desk.reschedule(ref, chosen.id)
        except SlotTaken:
            self.state.pop("chosen", None)
            self.reply.say("slot.just_taken")
            return await self._advance_reschedule()
        self._finish()
        said = catalogue.text("rescheduled", self.locale, **self._view_params(moved))
        self.reply.messages.append(self.desk.confirmation(said, moved))  # with the new booking's own link

    # ----- answers -----------------------------------------------------------------------------
    async def _services(self, only: str | None = None) -> None:
        lines = []
        for svc in await self.desk.services():
            if only and svc.slug != only:
                continue
            lines.append(
                catalogue.text(
                    "services.line",
                    self.locale,
                    name=svc.name,
                    duration=minutes_text(svc.duration_minutes),
                    price=self._price(svc.price),
                )
            )
        options = [self._service_option(s) for s in await self.desk.services()]
        self._remember_options(options)
        self.reply.say("services", options, lines="\n".join(lines))

    async def _info(self, what: str, faq_index: int | None = None) -> None:
        info = self.desk.info()
        if what == "hours":
            hours = await self.desk.opening_hours()
            lines = []
            for d, ranges in hours.items():
                shown = ", ".join(ranges) if ranges else catalogue.text("hours.closed", self.locale)
                lines.append(
                    catalogue.text("hours.line", self.locale, day=catalogue.text(f"day.{d}", self.locale), ranges=shown)
                )
            self.reply.say("hours", main_menu(self.locale), lines="\n".join(lines), zone=self.desk.business.timezone)
        elif what == "address":
            self.reply.say(
                "address", main_menu(self.locale), address=info.get("address") or "—", phone=info.get("phone") or "—"
            )
        else:
            faq = info.get("faq") or []
            if isinstance(faq_index, int) and 0 <= faq_index < len(faq):
                self.reply.raw(str(faq[faq_index]["a"]), main_menu(self.locale))
            else:
                listing = "\n".join(f"• {item['q']}" for item in faq)
                self.reply.say("faq.list", main_menu(self.locale), lines=listing or "—")

    async def _my_bookings(self) -> None:
        mine = await self.desk.my_bookings()
        if not mine:
            self.reply.say("bookings.none", main_menu(self.locale))
            return
        lines = "\n".join(catalogue.text("bookings.line", self.locale, **self._view_params(b)) for b in mine)
        options = [
            Option("menu:reschedule", catalogue.text("menu.reschedule", self.locale)),
            Option("menu:cancel", catalogue.text("menu.cancel", self.locale)),
            Option("menu:book", catalogue.text("menu.book", self.locale)),
        ]
        self._remember_options(options)
        self.reply.say("bookings.list", options, lines=lines)

    async def _pay_info(self) -> None:
        mine = [b for b in await self.desk.my_bookings() if b.price]
        due = [b for b in mine if b.status is Status.PENDING_PAYMENT]
        if due:
            for b in due:
                await self.desk.payment_link(b.ref)
            return
        if not mine or self.desk.payments is not None:
            self.reply.say("pay.nothing_due", main_menu(self.locale))
            return
        for b in mine:
            self.reply.say("pay.how", amount=self._price(b.price))

    def _handoff(self) -> None:
        self.desk.handoff(self.turn.text or "customer asked for a person")
        self._finish()
        self.reply.say("handoff")

    # ----- prompts ---------------------------------------------------------------------------
    def _ask(self, step: str, key: str, options: Sequence[Option], **params: Any) -> None:
        self.state["step"] = step
        self._remember_options(options)
        self.state["prompt"] = {
            "key": key,
            "params": {k: str(v) for k, v in params.items()},
            "options": [[o.id, o.label] for o in options],
        }
        self.reply.say(key, options, **params)

    def _remember_options(self, options: Sequence[Option]) -> None:
        self.state["options"] = [[o.id, o.label] for o in options]

    async def _reprompt(self, *, quiet: bool = False, confused: bool = False) -> None:
        prompt = self.state.get("prompt")
        if confused:
            self.reply.say(
                "confused" if prompt and self.state.get("flow") else "confused.menu",
                () if prompt and self.state.get("flow") else main_menu(self.locale),
            )
        if prompt and self.state.get("flow"):
            options = tuple(Option(i, label) for i, label in prompt["options"])
            self._remember_options(options)
            self.reply.say(prompt["key"], options, **prompt["params"])
        elif not confused and not quiet:
            self.reply.say("what.next", main_menu(self.locale))

    async def _on_error(self, exc: FrontdeskError) -> None:
        if isinstance(exc, PolicyViolation):
            self._finish()
            self.reply.raw(
                catalogue.text("refused", self.locale, reason=str(exc)),
                [Option("menu:human", catalogue.text("menu.human", self.locale))],
            )
        elif isinstance(exc, InvalidInput) and self.state.get("step") in ("name", "phone"):
            self.reply.say(f"invalid.{self.state['step']}")
        elif isinstance(exc, NotFound | InvalidInput):
            self.reply.raw(catalogue.text("refused", self.locale, reason=str(exc)))
            await self._reprompt(quiet=True)
        elif isinstance(exc, Conflict):  # "you already have a seat at that time": this attempt is over
            self._finish()
            self.reply.raw(catalogue.text("refused", self.locale, reason=str(exc)), main_menu(self.locale))
        else:
            raise exc

    # ----- formatting ------------------------------------------------------------------------
    def _chosen_offer(self) -> Offer | None:
        chosen = self.state.get("chosen")
        if not chosen:
            return None
        try:
            return self.desk.offer(chosen)
        except NotFound:
            self.state.pop("chosen", None)
            return None

    def _price(self, minor: int) -> str:
        if not minor:
            return catalogue.text("price.free", self.locale)
        return format_money(minor, self.desk.business.currency, self.locale)

    def _when(self, at: datetime) -> str:
        return when_text(at, self.desk.business.timezone, self.desk.customer_zone, self.locale)

    def _zone_note(self) -> str:
        zone = self.desk.customer_zone
        if zone and zone != self.desk.business.timezone:
            return catalogue.text("zone.note", self.locale, zone=zone)
        return ""

    def _service_option(self, svc: ServiceView) -> Option:
        return Option(f"svc:{svc.slug}", svc.name, f"{minutes_text(svc.duration_minutes)} · {self._price(svc.price)}")

    def _slot_label(self, offer: Offer, zone: str, *, with_day: bool) -> str:
        tz = ZoneInfo(zone)
        clock = time_text(offer.start, tz, self.locale)
        if not with_day:
            return clock
        return f"{day_text(offer.start.astimezone(tz).date(), self.locale)} {clock}"

    def _booking_label(self, b: BookingView) -> str:
        tz = ZoneInfo(self.desk.customer_zone or self.desk.business.timezone)
        return f"{day_text(b.start.astimezone(tz).date(), self.locale)} {time_text(b.start, tz, self.locale)}"

    async def _booking_params(self, svc: ServiceView, offer: Offer) -> dict[str, str]:
        people = await self.desk.staff()
        named = catalogue.text("with", self.locale, names=people[offer.staff].name) if offer.staff in people else ""
        return {
            "service": svc.name,
            "when": self._when(offer.start),
            "price": self._price(svc.price),
            "duration": minutes_text(svc.duration_minutes),
            "with": named,
        }

    def _view_params(self, b: BookingView) -> dict[str, str]:
        return {
            "ref": b.ref,
            "service": b.service_name,
            "when": self._when(b.start),
            "staff": ", ".join(b.staff_names),
            "price": self._price(b.price),
        }


def _carries_values(reading: Reading) -> bool:
    return bool(
        reading.date
        or reading.entities.get("past_date")  # said, if gone: the customer hears so
        or reading.time
        or reading.service
        or reading.staff
        or reading.entities.get("date_range")
        or reading.entities.get("part_of_day") in PARTS
    )


SHOWN = 6  # free times offered at once


def _shortlist(offers: list[Offer], *, whole_day: bool) -> tuple[list[Offer], bool]:
    """At most ``SHOWN`` of the offers, and whether there are later ones to page to: a whole day
    is spread from its first time to its last (nothing later); otherwise the soonest, never two
    weeks of afternoons."""
    if len(offers) <= SHOWN:
        return offers, False
    if whole_day:
        return _spread(offers, SHOWN), False
    return offers[:SHOWN], True


def _spread(offers: list[Offer], count: int) -> list[Offer]:
    """``count`` offers spread evenly over the list (a whole day's slots, not just its first hour)."""
    if len(offers) <= count:
        return offers
    step = (len(offers) - 1) / (count - 1)
    return [offers[round(i * step)] for i in range(count)]


def _hours(hours: float) -> str:
    return str(int(hours)) if float(hours).is_integer() else f"{hours:g}"
