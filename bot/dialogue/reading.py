"""The rules engine's reading of one customer message: intent, when, which service and staff, and
the small facts a booking needs (phone, name, an option number, a rating).

Everything here is offline and fast (a few hundred microseconds a message): regular expressions,
the date/time grammar of :mod:`bot.dialogue.when`, rapidfuzz for names, phonenumbers for phones.
How each intent is said lives in :data:`RULES`, one ordered table per language, so adding a
phrase or a language is a data change, not a new branch.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from babel import Locale, UnknownLocaleError
from rapidfuzz import fuzz, process

from bot.dialogue import catalogue
from bot.dialogue.when import WEEKDAYS, When, WhenReader, normalise
from core.catalog import BusinessSpec
from core.timezones import local_to_utc

INTENTS = (
    "greet",
    "book",
    "find_provider",
    "services",
    "prices",
    "hours",
    "address",
    "faq",
    "my_bookings",
    "cancel",
    "reschedule",
    "pay",
    "human",
    "affirm",
    "deny",
    "stop",
    "start",
    "help",
    "thanks",
    "bye",
    "rate",
    "inform",
    "unknown",
)
# Readings that answer the bot's own question (a value, yes, no) or say nothing readable: they are
# not what the customer wants, so the insights store does not record them as the customer's intents.
ANSWERS = frozenset({"inform", "affirm", "deny", "unknown"})
EXPECTS = ("name", "phone", "rating", "number", "time")
SLOTS = frozenset(
    ("date", "time", "date_range", "part_of_day", "service", "staff", "phone", "name", "number", "rating", "ref")
)


@dataclass(frozen=True, slots=True)
class Named:
    """A service or staff member the reader should recognise in what customers write."""

    slug: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """What one message says. ``start`` is set only when both the date and the time are known."""

    intent: str
    date: dt.date | None
    time: dt.time | None
    start: dt.datetime | None
    service: str | None
    staff: str | None
    entities: dict[str, Any] = field(default_factory=dict)  # JSON-safe values only

    def to_json(self) -> dict[str, Any]:
        """The shape ``frontdesk parse`` prints (DESIGN.md §3)."""
        return {
            "intent": self.intent,
            "date": self.date.isoformat() if self.date else None,
            "time": self.time.strftime("%H:%M") if self.time else None,
            "start": self.start.isoformat(timespec="seconds") if self.start else None,
            "service": self.service,
            "staff": self.staff,
            "entities": dict(self.entities),
        }


# ---------------------------------------------------------------------------------------------
# Intents: one ordered table per language. The first rule that matches wins, so task intents come
# before the social ones ("yes, cancel it" is a cancel) and the order is the precedence.


@dataclass(frozen=True, slots=True)
class IntentRule:
    """One way of saying an intent, on the normalised text; ``needs``: only with one of these slots."""

    intent: str
    pattern: re.Pattern[str]
    needs: frozenset[str] = frozenset()


def _rules(*rows: tuple[str, str] | tuple[str, str, str]) -> tuple[IntentRule, ...]:
    return tuple(
        IntentRule(row[0], re.compile(row[1]), frozenset(row[2].split()) if len(row) == 3 else frozenset())
        for row in rows
    )


_WANT = (
    r"\b(?:i'?d\s+like|i\s+would\s+like|i\s+(?:want|wanna|need)|can\s+i\s+(?:get|have|do)|could\s+i\s+(?:get|have)"
    r"|may\s+i\s+(?:get|have)|give\s+me|get\s+me|put\s+me\s+down|i'?ll\s+take|let'?s\s+do|go\s+with|i'?ll\s+go)\b"
)
# Asking for a kind of provider ("I need a dentist", "find me a stylist") is a search; wishing to see one ("I
# need to see a doctor") is a booking.
_SEEK = (
    r"\b(?:i\s+(?:need|want|require)|i'?d\s+like|i\s+would\s+like|get\s+me|(?:can|could|will|would)\s+you\s+(?:get|help)"
    r"(?:\s+me)?(?:\s+with)?|give\s+me|need|want|help\s+me\s+with|in\s+need\s+of|i'?m\s+after|i\s+am\s+after|seeking"
    r"|look\s+up|list\s+of|know\s+of|(?:is|are)\s+there|options\s+for)"
    r"\s+(?:a|an|some|any|another|a\s+good|a\s+new|other)?\s*"
)
_PROVIDER = (
    r"(?:\w+\s+){0,2}?(?:dentists?|doctors?|physicians?|salons?|stylists?|hair\s?dressers?|barbers?|therapists?"
    r"|physios?|physiotherapists?|psychologists?|psychiatrists?|counsel+ors?|gynecologists?|dermatologists?"
    r"|ophthalmologists?|specialists?|practitioners?|gp|optometrists?|chiropractors?|masseurs?|beauticians?"
    r"|someone|somebody)\b(?!'?s?\s+(?:appointment|appt|booking|visit|reservation))"
)
_DONT_WANT = (
    r"\b(?:don'?t|do\s+not|would\s+not|wouldn'?t|not)\s+(?:want|wish|need|like|going)\s+to\s+(?:book|make|schedule)"
)

_ANYONE = re.compile(
    r"^(?:(?:i\s+)?(?:don'?t|do\s+not)\s+(?:mind|care)|no\s+preference|(?:it\s+)?(?:doesn'?t|does\s+not)\s+matter"
    r"|any(?:one|body|\s+one)?|any\s+(?:doctor|staff|of\s+them)|whoever|whoever'?s?\s+(?:is\s+)?(?:free|available)"
    r"|either(?:\s+(?:one|is\s+fine))?|first\s+available|no\s+one\s+in\s+particular|not\s+fussy)"
    r"(?:\s*,?\s*(?:is|will\s+be|would\s+be)?\s*(?:fine|ok|okay|good))?(?:\s+(?:thanks|thank\s+you|really))?\W*$",
    re.IGNORECASE,
)


# Asking for no more messages in a sentence: the STOP keyword said in words. Only with the customer
# (or the messages) as what is to stop, so "where do I stop my car" or "the bus stop" are not one.
_OPT_OUT = (
    r"\b(?:unsubscribe|opt\s?out|optout"
    r"|(?:stop|quit|cease)\s+(?:messaging|texting|contacting|spamming|bothering|pestering|writing\s+to|sending)"
    r"\s+(?:me|us)\b"
    r"|(?:stop|quit|cease)\s+sending\s+(?:me\s+|us\s+)?(?:any\s+more\s+|more\s+)?(?:messages|texts|sms|reminders"
    r"|notifications|these|them|this)"
    r"|(?:don'?t|do\s+not|never)\s+(?:ever\s+)?(?:message|text|contact|sms|whatsapp|send|write\s+to)\s+(?:me|us)\b"
    r"|no\s+more\s+(?:messages|texts|reminders|notifications)"
    r"|(?:remove|take)\s+me\s+(?:off|from)\s+(?:your|the|this)\s+(?:\w+\s+)?(?:list|contacts?))\b"
)

_YES_EMOJI = re.compile("\\s*(?:\U0001f44d|\u2705|\U0001f44c|\u2714|\u2611)[\U0001f3fb-\U0001f3ff\ufe0f]*[\\s!.]*")


def means_stop(text: str, locale: str = "en") -> bool:
    """Whether a message asks for no more messages: the STOP keyword, or the same in a sentence
    ("please stop messaging me", "don't text me again"), as the reading of its language says it."""
    s = normalise(text)
    rules = RULES.get(catalogue.language(locale), RULES["en"])
    return any(rule.intent == "stop" and rule.pattern.search(s) for rule in rules)


def means_anyone(text: str) -> bool:
    """ "I don't mind", "anyone is fine", "whoever's free": no preference for who serves them."""
    return bool(_ANYONE.match(text.strip()))


RULES: Mapping[str, tuple[IntentRule, ...]] = {
    "en": _rules(
        ("stop", r"^(?:stop|stopall|unsubscribe|opt\s?out|quit)$"),
        ("stop", _OPT_OUT),
        ("start", r"^(?:/?start|unstop|subscribe|resume|opt\s?in)$"),
        ("deny", _DONT_WANT),
        (
            "human",
            r"\b(?:human|real\s+person|a\s+person|someone\s+real|live\s+agent|an\s+agent|representative|operator"
            r"|receptionist|(?:talk|speak|chat)\s+(?:to|with)\s+(?:someone|somebody|a\s+(?:person|human|manager|"
            r"member\s+of\s+staff|staff\s+member))|call\s+me\s+(?:back|later|please|asap)|call\s+me$)\b",
        ),
        (
            "reschedule",
            r"\b(?:reschedul\w*|re-?book|move\s+(?:my|the|it|this|our|booking|appointment|appt|reservation)\b"
            r"|change\s+(?:my|the|our)\s+(?:appointment|booking"
            r"|reservation|time|date|slot)|postpone|push\s+(?:it|my\s+\w+|the\s+\w+)\s+back|bring\s+(?:it|my\s+\w+)"
            r"\s+forward)\b",
        ),
        ("reschedule", r"\b(?:move|shift|change|switch|push)\b", "ref"),  # "move 3F9A1C to Friday"
        # "I can't make it tomorrow, can we do Thursday instead?": not coming, with another day or time
        # in the same breath, is a move; read as a cancel, a yes would lose the booking.
        (
            "reschedule",
            r"\b(?:can'?t|cannot|won'?t\s+(?:be\s+able\s+to\s+)?)\s*make\s+it\b.*\b(?:instead|how\s+about|what\s+about"
            r"|(?:can|could)\s+(?:we|i)\s+(?:do|come|make\s+it|have\s+it)|(?:is|would)(?:\s+\w+){1,3}\s+(?:be\s+)?"
            r"(?:ok(?:ay)?|possible|free|available|work))\b",
            "date time part_of_day",
        ),
        (
            "cancel",
            r"\b(?:cancel\w*|call\s+off|can'?t\s+make\s+it|cannot\s+make\s+it|won'?t\s+(?:be\s+able\s+to\s+)?"
            r"(?:make\s+it|come)|not\s+(?:be\s+)?coming)\b",
        ),
        (
            "my_bookings",
            r"(?:^|(?<!make\s)(?<!book\s)(?<!reserve\s)(?<!schedule\s)(?<!confirm\s))\bmy\s+(?:appointments?|bookings?"
            r"|reservations?|visits?|sessions?)\b|\b(?:when\s+is\s+my|what\s+time\s+is\s+my|do\s+i\s+have\s+(?:an?\s+)?"
            r"(?:appointment|booking)|upcoming\s+(?:appointments?|bookings?))\b",
        ),
        ("prices", r"\b(?:how\s+much|price[sd]?|pricing|costs?|fees?|charges?|rates|tariff|expensive|cheap\w*)\b"),
        ("pay", r"\b(?:pay|paying|payment|checkout|invoice|upi|deposit|card\s+details|pay\s+online)\b"),
        ("rate", r"\b(?:rate|rating|review|feedback)\b", "rating"),
        ("rate", r"^", "rating"),
        (
            "hours",
            r"\b(?:opening\s+hours|business\s+hours|(?:your|the)\s+hours|open\s+hours|when\s+(?:are|do)\s+you\s+(?:open|close)"
            r"|what\s+time\s+do\s+you\s+(?:open|close)|are\s+you\s+open|open\s+on|open\s+(?:today|tomorrow|now)"
            r"|clos(?:e|es|ing)\s+time|timings?|opening\s+times?|what\s+times?\s+(?:are|do)\s+you\s+(?:open|close))\b",
        ),
        (
            "find_provider",
            r"\b(?:find(?!\s+out)\w*|search\w*|look(?:ing)?\s+(?:for|around)|looking\s+to\s+(?:go|find|get|see|visit)|locate|recommend\w*|suggest\w*"
            r"|(?:other|more|another)\s+(?:options?|choices?|one)|some\s?(?:one|body|thing)\s+else"
            r"|(?<!need\s)(?<!want\s)any\s?(?:one|body|thing|where)\s+else|any\s?(?:one|body)\s+(?:available|free)"
            r"|who\s+(?:is|are|else)|which\s+(?:doctors?|dentists?|stylists?|therapists?|salons?|one|times?|slots?|days?)"
            r"|what(?:'s|\s+is|\s+are)?\s+(?:available|free|open)|what\s+(?:times?|slots?|days?|dates?|openings?)"
            r"|availability|available\s+(?:times?|slots?|dates?)|openings?(?!\s+(?:hours|times?))|free\s+slots?"
            r"|(?:is|are)\s+there\s+(?:an)?(?:any(?:thing|one|body|where)?|other|more)"
            r"|do\s+you\s+(?:have|know)\s+(?:of\s+)?any(?:thing|one)?|any\s+(?:slots?|openings?|times?|availability)"
            r"|(?:slots?|openings?|times?|any\s?thing|some\s?thing|any\s+\w+)\s+(?:available|free|open)"
            r"|(?:available|free)\s+(?:at|on|for|in|this|next|tomorrow|today)"
            r"|when\s+(?:are|is)\s+\w+\s+(?:available|free)|when\s+can\s+i\s+come)\b",
        ),
        ("find_provider", _SEEK + _PROVIDER),
        (
            "book",
            r"\b(?:book\w*|appointments?|appt|reserv\w*|schedule|sign\s+me\s+up|make\s+an?\s+(?:appointment|booking)"
            r"|come\s+in|drop\s+in|(?:need|want|have|like|wish|got)\s+to\s+(?:go\s+(?:to|see)|see|visit|consult)"
            r"|(?:see|visit)\s+(?:the|dr|doctor)|get\s+(?:a|my)\s+(?:haircut|hair\s?cut|trim|cut|checkup|check\s?up"
            r"|cleaning)|proceed\s+with)\b",
        ),
        ("book", _WANT, "service staff date time date_range part_of_day"),
        (
            "address",
            r"\b(?:address|where\s+(?:are\s+you|is\s+(?:it|the\s+\w+|your\s+\w+|that)|are\s+they|r\s+u)|location"
            r"|directions?|how\s+(?:do\s+i|to)\s+get\s+there|where\b.*\blocated|(?:your|the|their)\s+(?:phone|contact)"
            r"\s+(?:number|details))\b",
        ),
        (
            "services",
            r"\b(?:what\s+(?:services|treatments)|services|treatments|what\s+do\s+you\s+(?:offer|do|provide)"
            r"|do\s+you\s+(?:do|offer|provide)|what\s+can\s+i\s+book|menu\s+of)\b",
        ),
        ("faq", r"\b(?:parking|park|insurance|insurer|wi-?fi|wheelchair|accessible|refunds?|policy|covid|pets?)\b"),
        ("faq", r"^", "faq"),
        ("help", r"^(?:help|menu|options|\?+|what\s+can\s+you\s+do|how\s+does\s+this\s+work|commands)$"),
        ("help", r"\b(?:i\s+need\s+help|help\s+me|can\s+you\s+help|confused)\b(?!\s+with)"),
        (
            "deny",
            r"^(?:no|nope|nah|naw|not\s+really|negative|don'?t|do\s+not|wrong|incorrect|not\s+(?:that|right|correct"
            r"|now|yet|at\s+this\s+time|today)|never\s?mind|no\s+thanks?|that'?s\s+(?:wrong|not\s+right|incorrect)"
            r"|that\s+is\s+(?:wrong|not\s+right|incorrect)|neither|none|nothing|i\s+(?:can'?t|cannot))\b",
        ),
        (
            "bye",
            r"\b(?:bye|goodbye|good\s+bye|see\s+you|see\s+ya|ciao|take\s+care|good\s+night"
            r"|(?:that|it)(?:'s|\s+is|'ll\s+be|\s+will\s+be|\s+would\s+be)\s+(?:all|it|everything)"
            r"(?!\s+(?:correct|right|good|fine|ok|okay|perfect|great|set))"
            r"|(?:that'?s|that\s+is)\s+all\s+i\s+need|(?:don'?t|do\s+not|won'?t)\s+need\s+anything\s+else"
            r"|nothing\s+else|have\s+a\s+(?:good|nice|great)\s+(?:day|one|evening|night|weekend))\b",
        ),
        (
            "affirm",
            r"^(?:yes|yeah|yea|yep|yup|ya|yah|yer|sure|ok|okay|okey|k|alright|all\s+right|correct|right|confirm\w*"
            r"|go\s+ahead|do\s+it|sounds\s+(?:good|great|perfect|fine)|perfect|great|fine|that\s+works"
            r"|good(?!\s+(?:morning|afternoon|evening|day|night|bye))"
            r"|works\s+for\s+me|absolutely|definitely|certainly|of\s+course|please\s+do|exactly|indeed"
            r"|that'?s?\s+(?:right|correct|fine|good|great|perfect)|that\s+is\s+(?:right|correct|fine|good|perfect)"
            r"|this\s+(?:one|works)|that\s+one|i\s+agree|agreed|deal|cool|awesome|excellent|wonderful|lovely|nice)\b",
        ),
        (
            "affirm",  # choosing what was offered: "I'll go with that one", "let's try them"
            r"\b(?:i'?ll|i\s+will|let'?s|i'?d\s+like\s+to|i\s+would\s+(?:like|love)\s+to|i\s+want\s+to|i\s+think\s+i'?ll)"
            r"\s+(?:go\s+with|choose|pick|take|go\s+there|try\s+(?:them|there|it|that|this))\b|\bthe\s+one\s+i\s+(?:will|'?ll)\s+choose",
        ),
        ("thanks", r"\b(?:thanks?|thank\s+(?:you|u)|thx|thnx|ty|cheers|appreciate\w*|grateful)\b"),
        (
            "greet",
            r"^(?:hi+|hello|hey+|hiya|howdy|namaste|hola|good\s+(?:morning|afternoon|evening|day)|greetings|yo)\b",
        ),
    ),
}

# ---------------------------------------------------------------------------------------------
# Words that must never name a service or a staff member on their own.


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_COMMON = _words(
    """
    a about above after again against all almost also am an and another any anyone anything anytime are around as
    ask at available away back be because been before being below best better between both but by can cancel
    change could day days did do does doing done down during each either else even evening every few fine first for
    free from full get give go going good got great had has have having he hello her here hi him his how i if in
    into is it its just know last later least let like little look looking lot made make many may me might more
    morning most much must my need new next nice no none nor not now of off ok okay on once one only or other our
    out over own please possible pretty probably put quick quite rather really right same see she should show so
    some someone something soon still such sure take than thank thanks that the their them then there these they
    thing think this those through time times to today tomorrow too try under until up us very visit want was way we
    week well were what when where which while who whom whose why will with within without would yes yet you your
    yours tonight afternoon night weekend month year hour hours minute minutes early late earlier latest
    appointment appointments booking book booked slot slots session sessions service services class group general
    standard basic regular package treatment treatments visit visits
    salon salons hair shop barber barbershop clinic dental dentist dentists doctor doctors therapist therapists
    stylist stylists center centre care family medical health office practice lab studio spa beauty
    place person people staff team room name number phone address city area street road avenue
    monday tuesday wednesday thursday friday saturday sunday january february march april june july august
    september october november december
    yeah yep sure alright fine perfect cool awesome great works work working sounds sound love lovely
    okay thing things stuff kind sort type types man men woman women kids kid child children unisex
    """
)
_TITLES = _words("dr drs doctor mr mrs ms miss mx prof professor md jr sr ii iii iv dds dmd phd msd mph")
_GENERIC = _words("session sessions visit visits class group general service services appointment treatment package")
_PAREN = re.compile(r"\([^)]*\)")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _tokens(text: str) -> list[str]:
    """Lower-case words without possessives or titles: "Dr. Mehta's" → ["mehta"]."""
    words = (w.removesuffix("'s") for w in _WORD.findall(normalise(_PAREN.sub(" ", text))))
    return [w for w in words if w and w not in _TITLES]


def _distinct(word: str) -> bool:
    return len(word) >= 3 and word not in _COMMON and not word.isdigit()


_PLACE_BEFORE = _words("in near around within nearby")
# Kinds of service: they say what a customer wants done, so they never name a staff member alone.
_SERVICE_WORDS = _words(
    """
    haircut haircuts cut cuts trim color colour colouring coloring nails nail manicure pedicure massage facial
    cosmetic cosmetics cleaning checkup exam therapy counseling counselling dentistry styling dermatology
    psychology psychiatry gynecology ophthalmology dentists physician physicians psychologist psychologists
    psychiatrist psychiatrists counselor counselors counsellor counsellors gynecologist gynecologists dermatologist
    dermatologists ophthalmologist ophthalmologists specialist specialists practitioner practitioners pediatric
    """
)


@dataclass(frozen=True, slots=True)
class _Key:
    slug: str
    text: str
    size: int
    whole: bool  # the full name, an alias, or the name without its generic words


class _Names:
    """Fuzzy lookup of a few dozen names: exact phrases first, then typos, then prefixes ("physio")."""

    def __init__(self, items: Sequence[Named], common: frozenset[str]) -> None:
        self.common = common
        keys: dict[str, list[_Key]] = {}
        for item in items:
            for phrase_index, phrase in enumerate((item.name, *item.aliases)):
                words = _tokens(phrase)
                if not words:
                    continue
                wholes = [words, [w for w in words if w not in _GENERIC]]
                for whole in wholes:
                    if whole and (len(whole) > 1 or self._distinct(whole[0]) or phrase_index > 0):
                        self._add(keys, _Key(item.slug, " ".join(whole), len(whole), True))
                for size in range(1, min(3, len(words)) + 1):
                    for i in range(len(words) - size + 1):
                        gram = words[i : i + size]
                        if any(self._distinct(w) for w in gram):
                            self._add(keys, _Key(item.slug, " ".join(gram), size, False))
        self.keys = keys
        self.by_size: dict[int, list[str]] = {}
        for text, found in keys.items():
            self.by_size.setdefault(found[0].size, []).append(text)
        self.sizes = sorted(self.by_size, reverse=True)  # longest names first
        self.words = {w for text in keys for w in text.split()}

    def _distinct(self, word: str) -> bool:
        return len(word) >= 3 and word not in self.common and not word.isdigit()

    @staticmethod
    def _add(keys: dict[str, list[_Key]], key: _Key) -> None:
        found = keys.setdefault(key.text, [])
        if all(k.slug != key.slug for k in found):
            found.append(key)

    def match(self, words: Sequence[str]) -> list[tuple[str, float, int]]:
        """(slug, score, size) of every name the message's words may mean; score 100 is exact."""
        distinct = [self._distinct(w) for w in words]
        known = [w in self.words for w in words]  # only windows of known words can be exact
        if not self.keys or not (any(distinct) or any(known)):
            return []
        hits: dict[str, tuple[float, int]] = {}
        places = self._places(words, distinct)
        for size in self.sizes:
            choices = self.by_size[size]
            for i in range(len(words) - size + 1):
                end = i + size
                exact, fuzzy = all(known[i:end]), any(distinct[i:end])
                if not (exact or fuzzy):
                    continue
                text = " ".join(words[i:end])
                place = not places.isdisjoint(range(i, end))
                if exact and text in self.keys:
                    self._hit(hits, [k for k in self.keys[text] if k.whole or not place], 100.0, size)
                    continue
                if place or not fuzzy:
                    continue
                cutoff = _cutoff(len(text))
                if cutoff <= 100:
                    best = process.extractOne(text, choices, scorer=fuzz.ratio, score_cutoff=cutoff)
                    if best is not None:
                        self._hit(hits, self.keys[best[0]], float(best[1]), size)
                        continue
                if size == 1 and len(text) >= 5:
                    for choice in choices:
                        if choice.startswith(text) and len(choice) > len(text):
                            self._hit(hits, self.keys[choice], 90.0 - (len(choice) - len(text)) / 10, size)
        return sorted(((slug, s, n) for slug, (s, n) in hits.items()), key=lambda h: (-h[1], -h[2], h[0]))

    @staticmethod
    def _places(words: Sequence[str], distinct: Sequence[bool]) -> set[int]:
        """Positions of a place name: "a salon in Santa Rosa" names a city, not "Access Dental - Santa Rosa"."""
        places: set[int] = set()
        for i, word in enumerate(words):
            if word in _PLACE_BEFORE:
                j = i + 1
                while j < len(words) and j <= i + 3 and distinct[j]:
                    places.add(j)
                    j += 1
        return places

    @staticmethod
    def _hit(hits: dict[str, tuple[float, int]], keys: list[_Key], score: float, size: int) -> None:
        for key in keys:
            if (score, size) > hits.get(key.slug, (0.0, 0)):
                hits[key.slug] = (score, size)


def _cutoff(length: int) -> float:
    """How alike a typo must be: short words exactly, "mehtaa"/"meta" for "mehta", looser when long."""
    if length <= 3:
        return 101.0
    if length == 4:
        return 85.0
    if length <= 6:
        return 80.0
    if length <= 9:
        return 84.0
    return 85.0


def _pick(hits: list[tuple[str, float, int]]) -> tuple[str | None, list[str]]:
    """The best name, or None and the candidates when two names fit equally well."""
    if not hits:
        return None, []
    top = [h for h in hits if (h[1], h[2]) == (hits[0][1], hits[0][2])]
    if len(top) > 1:
        return None, [h[0] for h in top]
    return hits[0][0], []


# ---------------------------------------------------------------------------------------------
# Small facts: names, option numbers, ratings.

_NAME = r"([A-Z][\w'\-]*\.?(?:\s+[A-Z][\w'\-]*\.?){0,2})"
_NAME_INTRO = (
    re.compile(r"\bmy\s+name\s+is\s+([\w'\-]+(?:\s+[\w'\-]+){0,2})", re.I),
    re.compile(r"\b(?:my\s+)?name'?s\s+([\w'\-]+(?:\s+[\w'\-]+){0,2})", re.I),
    re.compile(r"\b(?:[Ii]'?m|[Ii]\s+am|[Tt]his\s+is|[Ii]t'?s|[Cc]all\s+me)\s+" + _NAME),
)
_NAME_STOP = _words(
    """
    a an the and or but is am are was at on in for to from with by please here speaking calling and i my me you
    looking trying wondering interested free available busy good fine ok okay great sorry just not also still
    new back ready done going coming available happy sure afraid calling
    """
)
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
_BARE_NUMBER = re.compile(r"^(?:#|no\.?\s*|number\s+|option\s+|choice\s+)?(\d{1,2})[.)]?$")
_OPTION = re.compile(
    r"\b(?:option|number|choice|#)\s*(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)\b"
    r"|\b(?:the\s+)?(\d{1,2}(?:st|nd|rd|th)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)"
    r"\s+(?:one|option|choice|slot|time|person)\b"
)
_EXPECTED_NUMBER = re.compile(
    r"^(?:the\s+)?(\d{1,2}(?:st|nd|rd|th)?|one|two|three|four|five|six|seven|eight|nine|ten|first|second|third"
    r"|fourth|fifth|sixth|seventh|eighth|ninth|tenth)(?:\s+(?:one|option|please))?$"
)
_RATING = re.compile(
    r"\b([1-5])\s*(?:/\s*5|stars?|out\s+of\s+(?:5|five))(?!\w)"
    r"|\b(one|two|three|four|five)\s+stars?\b|\brate\s+(?:you|it|the\s+\w+|this)\s+(?:a\s+)?([1-5])\b"
)
_BARE_RATING = re.compile(r"(?:i'?d\s+(?:say|give)\s+)?([1-5]|one|two|three|four|five)(?:\s+stars?)?")
_STARS = re.compile(r"[⭐★]")
_DIGITS = re.compile(r"\d")


class Reader:
    """Reads customer messages for one business: its services, staff, zone and locale.

    Build it once (it warms dateparser up and indexes the names); ``read`` is then cheap.
    """

    def __init__(
        self,
        services: Sequence[Named],
        staff: Sequence[Named],
        *,
        timezone: str,
        locale: str = "en",
        default_region: str | None = None,
        faq: Sequence[str] = (),
    ) -> None:
        self.zone = ZoneInfo(timezone)
        self.locale = locale
        self.when = WhenReader(timezone, locale)
        self.rules = RULES.get(self.when.language, RULES["en"])
        self.services = _Names(services, _COMMON)
        self.staff = _Names(staff, _COMMON | _SERVICE_WORDS)
        self.region = default_region or _territory(locale)
        self.faq = [frozenset(w for w in _tokens(q) if _distinct(w) and len(w) >= 4) for q in faq]

    def read(self, text: str, now: dt.datetime, *, expect: str | None = None) -> Reading:
        """The reading of ``text`` at the aware instant ``now``; ``expect`` is what the bot just asked for."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be an aware datetime")
        if expect is not None and expect not in EXPECTS:
            raise ValueError(f"expect must be one of {', '.join(EXPECTS)}")
        raw = text.strip()
        entities: dict[str, Any] = {}
        raw = self._phones(raw, entities, expect)
        raw = _booking_ref(raw, entities)
        if _YES_EMOJI.fullmatch(raw):  # normalising drops emoji: a lone 👍 is a yes
            return self._reading("affirm", None, None, None, entities)
        s = normalise(raw)

        expected = self._expected(raw, s, expect, entities)
        if expected is not None:
            return expected

        when = self.when.read(s, now, normalised=True)
        self._when_entities(when, entities)
        rest = _blank(s, when.spans)
        self._small_facts(raw, s, rest, entities)

        words = [w.removesuffix("'s") for w in _WORD.findall(rest)]
        words = [w for w in words if w not in _TITLES]
        if "name" in entities:
            name_words = set(_tokens(entities["name"]))
            words = [w for w in words if w not in name_words]
        service, candidates = _pick(self.services.match(words))
        if candidates:
            entities["service_candidates"] = candidates
        staff, candidates = _pick(self.staff.match(words))
        if candidates:
            entities["staff_candidates"] = candidates
        faq = self._faq(words)
        if faq is not None:
            entities["faq"] = faq

        present = {k for k in SLOTS if k in entities}
        present |= {k for k, v in (("date", when.date), ("time", when.time)) if v is not None}
        present |= {k for k, v in (("service", service), ("staff", staff)) if v is not None}
        if faq is not None:
            present.add("faq")
        intent = self._intent(s, present)
        return self._reading(intent, when, service, staff, entities)

    # -- pieces -----------------------------------------------------------------------------

    def _reading(
        self, intent: str, when: When | None, service: str | None, staff: str | None, entities: dict[str, Any]
    ) -> Reading:
        day = when.date if when else None
        clock = when.time if when else None
        start = None
        if day is not None and clock is not None:
            start = local_to_utc(day, clock.hour * 60 + clock.minute, self.zone).astimezone(self.zone)
        return Reading(intent, day, clock, start, service, staff, entities)

    def _intent(self, s: str, present: set[str]) -> str:
        for rule in self.rules:
            if rule.needs and not rule.needs & present:
                continue
            if rule.pattern.search(s):
                return rule.intent
        return "inform" if present - {"faq"} else "unknown"

    def _phones(self, raw: str, entities: dict[str, Any], expect: str | None) -> str:
        """Finds a phone number and blanks it, so its digits are not read as a date or a time."""
        if len(_DIGITS.findall(raw)) < 7:
            return raw
        leniency = phonenumbers.Leniency.POSSIBLE if expect == "phone" else phonenumbers.Leniency.VALID
        for match in phonenumbers.PhoneNumberMatcher(raw, self.region, leniency=leniency):
            entities.setdefault("phone", phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164))
            raw = raw[: match.start] + " " * (match.end - match.start) + raw[match.end :]
        return raw

    def _expected(self, raw: str, s: str, expect: str | None, entities: dict[str, Any]) -> Reading | None:
        """Short answers read in the light of the question: a bare "2", "Ravi Kumar", "5"."""
        if expect == "rating":
            rating = _rating(s, raw)
            if rating is not None:
                entities["rating"] = rating
                return self._reading("rate", None, None, None, entities)
        if expect == "number":
            found = _EXPECTED_NUMBER.match(s)
            if found:
                word = found.group(1)
                digits = re.match(r"\d+", word)
                entities["number"] = int(digits.group(0)) if digits else _NUMBER_WORDS[word]
                return self._reading("inform", None, None, None, entities)
        if expect == "name" and self._intent(s, set()) == "unknown":
            name = _bare_name(raw)
            if name:
                entities["name"] = name
                return self._reading("inform", None, None, None, entities)
        if expect == "phone" and "phone" in entities and not _WORD.search(_blank_digits(raw)):
            return self._reading("inform", None, None, None, entities)
        if expect == "time" and _BARE_HOUR.fullmatch(s):
            # A bare "4" answering "what time?": read as "at 4", so business hours decide am or pm.
            when = self.when.read(f"at {s}", _EPOCH, normalised=True)
            if when.time is not None:
                return self._reading("inform", When(time=when.time), None, None, entities)
        return None

    def _when_entities(self, when: When, entities: dict[str, Any]) -> None:
        """Entities stay JSON-safe (ISO strings) so they can go straight into conversation state."""
        if when.part_of_day:
            entities["part_of_day"] = when.part_of_day
        if when.date_range:
            entities["date_range"] = [d.isoformat() for d in when.date_range]
        if when.alternatives:
            entities["ambiguous_date"] = [d.isoformat() for d in when.alternatives]
        if when.zone:
            entities["tz"] = when.zone
        if when.bound:
            entities["time_bound"] = when.bound
        if when.until:
            entities["time_until"] = when.until.strftime("%H:%M")  # "between 2 and 4pm": the time is its start
        if when.past:
            entities["past_date"] = when.past.isoformat()
        if when.rolled:
            entities["next_year"] = True  # "March 3" in November: next year's, and the bot says so
        if when.weekday_said is not None:  # "Friday 20 March", the 20th a Saturday: the date, and what was said
            entities["weekday_mismatch"] = {
                "said": WEEKDAYS[when.weekday_said],
                "nearest": when.weekday_nearest.isoformat() if when.weekday_nearest else None,
            }
        if when.nonexistent:
            entities["nonexistent_time"] = when.nonexistent.strftime("%H:%M")

    def _small_facts(self, raw: str, s: str, rest: str, entities: dict[str, Any]) -> None:
        name = _introduced_name(raw)
        if name:
            entities["name"] = name
        bare = _BARE_NUMBER.match(s)
        if bare:
            entities["number"] = int(bare.group(1))
        else:
            option = _OPTION.search(rest)
            if option:
                word = option.group(1) or option.group(2)
                digits = re.match(r"\d+", word)
                entities["number"] = int(digits.group(0)) if digits else _NUMBER_WORDS[word]
        rating = _rating(s, raw, explicit=True)
        if rating is not None:
            entities["rating"] = rating

    def _faq(self, words: Sequence[str]) -> int | None:
        if not self.faq:
            return None
        said = set(words)
        scores = [len(keywords & said) for keywords in self.faq]
        best = max(scores)
        return scores.index(best) if best else None


def reader_for(business: BusinessSpec, *, timezone: str | None = None) -> Reader:
    """The reader of one configured business: its services, its people (not rooms), zone, locale, FAQ
    and the phone region of its own number (how local numbers are written there)."""
    region = None
    if business.phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(business.phone, None))
        except phonenumbers.NumberParseException:
            region = None
    return Reader(
        [Named(s.slug, s.name) for s in business.services],
        [Named(s.slug, s.name) for s in business.staff if s.kind == "person"],
        timezone=timezone or business.timezone,
        locale=business.locale,
        default_region=region,
        faq=[item.get("q", "") for item in business.faq],
    )


# A booking's short reference as the bot shows it (the first 6 hex digits of its id, see
# ``bot.dialogue.desk.ref_of``), typed back: "cancel 3F9A1C". With a letter and a digit it is one
# anywhere; six digits only right after a word that says so ("booking 552771"), never a postcode.
_REF = re.compile(
    r"(?<![\w\-])(?:(?P<id>[0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?P<ref>(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{6}))(?![\w\-])"
    r"|(?:\b(?:ref(?:erence)?|booking|appointment|appt|number|no|cancel|move|reschedule)\b\W{0,3}|#\s*)"
    r"(?P<digits>\d{6})(?![\w\-])",
    re.IGNORECASE,
)


def _booking_ref(raw: str, entities: dict[str, Any]) -> str:
    """Finds a booking reference and blanks it, so its digits are not read as anything else."""
    found = _REF.search(raw)
    if found is None:
        return raw
    group = next(name for name in ("id", "ref", "digits") if found.group(name))
    entities["ref"] = found.group(group)[:6].upper()
    start, end = found.start(group), found.end() if group == "id" else found.end(group)
    return raw[:start] + " " * (end - start) + raw[end:]


_EPOCH = dt.datetime(2000, 1, 3, 0, 0, tzinfo=dt.UTC)
_BARE_HOUR = re.compile(r"\d{1,2}(?::[0-5]\d)?")


def _territory(locale: str) -> str | None:
    try:
        return Locale.parse(locale.replace("-", "_")).territory
    except (ValueError, UnknownLocaleError):
        return None


def _blank(s: str, spans: Sequence[tuple[int, int]]) -> str:
    for start, end in spans:
        s = s[:start] + " " * (end - start) + s[end:]
    return s


def _blank_digits(raw: str) -> str:
    return re.sub(r"[\d+\-().\s]", "", raw)


def _rating(s: str, raw: str, *, explicit: bool = False) -> int | None:
    """1–5 from "4 stars", "4/5", "⭐⭐⭐⭐" or "five stars"; a bare "5" or "five" only when not ``explicit``."""
    stars = len(_STARS.findall(raw))
    if 1 <= stars <= 5 and not _DIGITS.search(raw):
        return stars
    found = _RATING.search(s)
    if found:
        value = next(g for g in found.groups() if g)
        return int(value) if value.isdigit() else _NUMBER_WORDS[value]
    if explicit:
        return None
    bare = _BARE_RATING.fullmatch(s)
    if bare:
        value = bare.group(1)
        return int(value) if value.isdigit() else _NUMBER_WORDS[value]
    return None


def _introduced_name(raw: str) -> str | None:
    for pattern in _NAME_INTRO:
        found = pattern.search(raw)
        if found:
            name = _clean_name(found.group(1))
            if name:
                return name
    return None


def _clean_name(text: str) -> str | None:
    words: list[str] = []
    for word in text.split():
        bare = word.strip(".,!?;:'\"").lower()
        if not bare or bare in _NAME_STOP or bare in _COMMON or bare.isdigit():
            break
        words.append(word.strip(',!?;:"').rstrip("."))
    if not words:
        return None
    return " ".join(w if any(c.isupper() for c in w) else w.capitalize() for w in words)


def _bare_name(raw: str) -> str | None:
    """A message that is only a name: 1–3 words of letters (any case once a name was asked for)."""
    text = re.sub(r"^(?:(?:my\s+)?name\s*(?:is|:)|it'?s|i'?m|i\s+am|this\s+is)\s+", "", raw.strip(), flags=re.I)
    text = text.strip(" .!")
    words = text.split()
    if not 1 <= len(words) <= 3 or not all(re.fullmatch(r"[^\W\d_][\w'\-.]*", w) for w in words):
        return None
    if any(w.lower().strip(".") in _NAME_STOP or w.lower() in _COMMON for w in words):
        return None
    return " ".join(w if any(c.isupper() for c in w) else w.capitalize() for w in words)
