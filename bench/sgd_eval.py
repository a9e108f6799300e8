"""Benchmark of the rules engine's reading (``bot.dialogue.reading.Reader``) on SGD Services dialogues.

Run from the repository root::

    .venv/bin/python bench/sgd_eval.py                    # the test split (evaluation only)
    .venv/bin/python bench/sgd_eval.py --split train      # the train split (develop and tune on this)
    .venv/bin/python bench/sgd_eval.py PATH --failures 20 # another file; print 20 failures per measure

Data: ``/work/shared/data/sgd_services_{test,train}.jsonl`` (Schema-Guided Dialogue, CC BY-SA 4.0,
Rastogi et al. 2020), one dialogue per line; user turns carry ``intents``, ``slot_values`` and
``actions`` (``canonical_values`` when the canonical form differs, e.g. "2019-03-05", "15:30").

Setup, as a deployment would have it:

* one :class:`Reader` per dialogue, in America/Los_Angeles (the dialogues are Californian), locale
  en-US (month-first numeric dates), no services;
* its staff list is every provider name (``stylist_name``, ``dentist_name``, ``doctor_name``,
  ``therapist_name``) the dialogue's *system* turns mention (offers, confirmations, service calls):
  a real business knows its own staff, and these are the providers that dialogue's business had;
* ``now`` is 2019-03-01 10:00 local time: SGD treats 2019-03-01 as today, and 10:00 is early in a
  business day, so "later today" and times on the same day stay ahead.

Measures (each over the user turns that carry it):

* date — every INFORM of ``appointment_date``: the reader's date equals the canonical value;
* time — every INFORM of ``appointment_time``: the reader's time equals the canonical HH:MM;
* provider — every INFORM of a provider name: the reader's staff slug is that provider's (or None
  when the system side never mentions that provider, so the business does not have them; counted
  in the table's note); the "provider false alarms" row counts turns without such an INFORM where
  the reader named a staff member anyway (lower is better; some are real mentions SGD does not
  annotate, e.g. "what is the rating of Great Clips?");
* stated intent — turns with an INFORM_INTENT act: the intent the reader maps to (below) equals it;
* active intent — every user turn: SGD's active intent (FindProvider, BookAppointment or NONE),
  tracked across turns by the small state tracker below from the reader's intents.

Mapping of our intents to SGD's: ``find_provider`` and ``services`` → FindProvider, except that a
``find_provider`` reading that carries a date or time → BookAppointment (SGD's FindProvider has no
date or time slots: asking what times are free is part of booking); ``book`` and ``reschedule`` →
BookAppointment. The tracker keeps the previous active intent, except: a mapped intent replaces it
(a ``services`` question only starts a search, it does not end a booking under way);
``affirm`` to a system OFFER_INTENT takes the offered intent; ``deny``/``thanks``/``bye`` answering
a system REQ_MORE ("anything else?") or OFFER_INTENT ends it (NONE); a date or a time given without
an intent is slot filling for a booking (BookAppointment).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bot.dialogue.reading import Named, Reader, Reading  # noqa: E402

DATA = Path("/work/shared/data")
SPLITS = {"test": DATA / "sgd_services_test.jsonl", "train": DATA / "sgd_services_train.jsonl"}
ZONE = "America/Los_Angeles"
LOCALE = "en-US"
NOW = datetime(2019, 3, 1, 10, 0, tzinfo=ZoneInfo(ZONE))
NAME_SLOTS = ("stylist_name", "dentist_name", "doctor_name", "therapist_name")
FIND, BOOK, NONE = "FindProvider", "BookAppointment", "NONE"
GOALS = {"date": 0.97, "time": 0.97}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"


def providers(dialogue: dict[str, Any]) -> list[Named]:
    """The provider names the system side of the dialogue mentions: that business's staff list."""
    names: dict[str, str] = {}
    for turn in dialogue["turns"]:
        if turn["speaker"] != "SYSTEM":
            continue
        for action in turn.get("actions", []):
            if action.get("slot") in NAME_SLOTS:
                for value in action.get("values", []):
                    names.setdefault(slug(value), value)
        for key, value in (turn.get("service_call") or {}).get("parameters", {}).items():
            if key in NAME_SLOTS:
                names.setdefault(slug(value), value)
    return [Named(s, n) for s, n in names.items()]


def stated(reading: Reading) -> str | None:
    """Our intent → SGD's, when it names one (see the module docstring)."""
    if reading.intent in ("find_provider", "services"):
        return BOOK if reading.intent == "find_provider" and (reading.date or reading.time) else FIND
    if reading.intent in ("book", "reschedule"):
        return BOOK
    return None


def track(previous: str, reading: Reading, system_acts: set[str], offered: str | None) -> str:
    """SGD's active intent after this user turn, from the reader's reading and the system's last acts."""
    mapped = stated(reading)
    if mapped and not (reading.intent == "services" and previous != NONE):
        return mapped
    if reading.intent == "affirm" and offered:
        return offered
    if reading.intent in ("deny", "thanks", "bye") and system_acts & {"REQ_MORE", "OFFER_INTENT"}:
        return NONE
    if reading.date or reading.time:
        return BOOK
    return previous


@dataclass
class Measure:
    total: int = 0
    correct: int = 0
    unknown: int = 0  # provider turns naming someone outside the staff list (the right answer is None)
    failures: list[str] = field(default_factory=list)

    def add(self, ok: bool, detail: str) -> None:
        self.total += 1
        self.correct += ok
        if not ok:
            self.failures.append(detail)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def dialogues(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def evaluate(path: Path) -> tuple[dict[str, Measure], int, float]:
    """Runs the reader over every user turn of ``path``; returns the measures, turns read and seconds spent reading."""
    measures: dict[str, Measure] = defaultdict(Measure)
    read_seconds, turns_read = 0.0, 0
    for dialogue in dialogues(path):
        staff = providers(dialogue)
        known = {n.slug for n in staff}
        reader = Reader([], staff, timezone=ZONE, locale=LOCALE)
        active, system_acts, offered = NONE, set[str](), None
        for turn in dialogue["turns"]:
            if turn["speaker"] == "SYSTEM":
                system_acts = {a["act"] for a in turn.get("actions", [])}
                offered = next(
                    (a["values"][0] for a in turn.get("actions", []) if a["act"] == "OFFER_INTENT" and a.get("values")),
                    None,
                )
                continue
            text = turn["utterance"]
            started = time.perf_counter()
            reading = reader.read(text, NOW)
            read_seconds += time.perf_counter() - started
            turns_read += 1
            where = f"{dialogue['dialogue_id']}: {text!r}"
            named = False
            for action in turn.get("actions", []):
                slot, act = action.get("slot"), action["act"]
                values = action.get("canonical_values") or action.get("values") or []
                if act == "INFORM" and slot == "appointment_date" and values:
                    got = reading.date.isoformat() if reading.date else None
                    measures["date"].add(got == values[0], f"{where} want {values[0]} got {got}")
                elif act == "INFORM" and slot == "appointment_time" and values:
                    got = reading.time.strftime("%H:%M") if reading.time else None
                    measures["time"].add(got == values[0], f"{where} want {values[0]} got {got}")
                elif act == "INFORM" and slot in NAME_SLOTS and values:
                    named = True
                    want: str | None = slug(values[0])
                    if want not in known:  # a provider this business does not have: nothing to recognise
                        want = None
                        measures["provider"].unknown += 1
                    measures["provider"].add(reading.staff == want, f"{where} want {want} got {reading.staff}")
                elif act == "INFORM_INTENT" and values:
                    got = stated(reading)
                    measures["stated intent"].add(got == values[0], f"{where} want {values[0]} got {reading.intent}")
            if not named:
                measures["provider false alarms"].add(
                    reading.staff is None, f"{where} named {reading.staff} ({reading.intent})"
                )
            want = turn["intents"][0] if turn.get("intents") else NONE
            active = track(active, reading, system_acts, offered)
            measures["active intent"].add(active == want, f"{where} want {want} got {active} ({reading.intent})")
    return measures, turns_read, read_seconds


def report(console: Console, name: str, measures: dict[str, Measure], turns: int, seconds: float) -> None:
    table = Table(title=f"SGD Services ({name}): the rules engine's reading, {turns} user turns")
    table.add_column("measure")
    table.add_column("turns", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("goal", justify="right")
    for key in ("date", "time", "provider", "stated intent", "active intent", "provider false alarms"):
        m = measures.get(key, Measure())
        goal = GOALS.get(key)
        shown = f"{m.accuracy:.1%}"
        if key == "provider false alarms":
            shown = f"{1 - m.accuracy:.1%} of turns"
            correct = f"{m.total - m.correct} named"
        else:
            correct = str(m.correct)
        if not m.total:
            shown = "n/a (none in this split)"
        elif goal is not None:
            shown = f"[{'green' if m.accuracy >= goal else 'red'}]{shown}[/]"
        table.add_row(key, str(m.total), correct, shown, f"≥ {goal:.0%}" if goal else "")
    console.print(table)
    unknown = measures["provider"].unknown if "provider" in measures else 0
    if unknown:
        console.print(f"provider: {unknown} turns name a provider the dialogue's system side never mentions")
    console.print(f"read speed: {turns / seconds:,.0f} turns/s ({seconds / turns * 1e6:.0f} µs a turn)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, help="a dialogues .jsonl file (default: the --split file)")
    parser.add_argument("--split", choices=sorted(SPLITS), default="test", help="which SGD split (default: test)")
    parser.add_argument("--failures", type=int, default=0, metavar="N", help="print N failures per measure")
    args = parser.parse_args(argv)
    path = args.path or SPLITS[args.split]
    console = Console()
    measures, turns, seconds = evaluate(path)
    report(console, args.split if args.path is None else path.name, measures, turns, seconds)
    for key, m in measures.items():
        if args.failures and m.failures:
            console.print(f"\n[bold]{key}[/]: {len(m.failures)} failures", highlight=False)
            for line in m.failures[: args.failures]:
                console.print(f"  {line}", highlight=False, markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
