"""Time zone names and the wall-clock → instant rule.

Rule for local times that do not map to exactly one instant (documented in README):

* nonexistent (inside a spring-forward gap): moved forward by the length of the gap, so a 02:30
  opening on the New York spring-forward day opens at 03:30 EDT. A customer *asking* for such a time
  gets a clear refusal instead (``strict=True``);
* ambiguous (repeated by a fall-back): the first occurrence (``fold=0``), unless the caller gave an
  explicit UTC offset, which always wins.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from core.errors import InvalidInput

# Old names that tzdata keeps as links. Accepted, and reported under their current name.
ALIASES: dict[str, str] = {
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Rangoon": "Asia/Yangon",
    "Europe/Kiev": "Europe/Kyiv",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
    "US/Eastern": "America/New_York",
    "US/Central": "America/Chicago",
    "US/Mountain": "America/Denver",
    "US/Pacific": "America/Los_Angeles",
    "Etc/UTC": "UTC",
    "Etc/GMT": "UTC",
    "GMT": "UTC",
    "Z": "UTC",
}


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(available_timezones())


def canonical_zone_name(name: str) -> str:
    """Return the IANA name to use for ``name`` or raise :class:`InvalidInput`.

    Abbreviations ("EST", "IST") and offsets ("GMT+5:30") are refused on purpose: they are
    ambiguous or carry no DST rules. ``Etc/GMT±N`` is refused because its sign is inverted.
    """
    raw = (name or "").strip()
    if raw in ALIASES:
        return ALIASES[raw]
    if raw == "UTC":
        return raw
    if "/" not in raw or raw.startswith("Etc/") or raw not in _known():
        raise InvalidInput(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/London'", code="invalid_timezone"
        )
    return raw


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for a (possibly aliased) IANA name; :class:`InvalidInput` when unknown."""
    canonical = canonical_zone_name(name)
    try:
        return _zone(canonical)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - list and loader disagree
        raise InvalidInput(f"unknown time zone {name!r}", code="invalid_timezone") from exc


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def exists(local: datetime) -> bool:
    """True when the aware wall-clock ``local`` is a real reading of its zone's clocks."""
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def is_ambiguous(local: datetime) -> bool:
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


@lru_cache(maxsize=65536)
def local_to_utc(day: date, minutes: int, tz: ZoneInfo, *, strict: bool = False) -> datetime:
    """The UTC instant of ``minutes`` after midnight on ``day`` in ``tz`` (minutes may exceed 1440).

    Applies the module rule for gaps and repeats. ``strict`` refuses nonexistent times.
    """
    day = day + timedelta(days=minutes // 1440)
    minutes %= 1440
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    if strict and not exists(local):
        raise InvalidInput(
            f"{local:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks skip it)",
            code="nonexistent_local_time",
        )
    # PEP 495: fold=0 of a gap time uses the offset from before the transition, which is exactly
    # the forward shift; fold=0 of a repeated time is its first occurrence.
    return local.replace(fold=0).astimezone(UTC)


def parse_instant(text: str, *, field: str = "start") -> datetime:
    """Parse an ISO 8601 instant that carries an offset; naive strings are refused."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: not an ISO 8601 date-time: {text!r}") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field}: needs a UTC offset, e.g. 2026-03-02T10:00:00+05:30")
    return value.astimezone(UTC)


def parse_day(text: str, *, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD): {text!r}") from exc


def day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC [start, end) covering local dates ``first``..``last`` inclusive in ``tz``."""
    return local_to_utc(first, 0, tz), local_to_utc(last + timedelta(days=1), 0, tz)


def open_day_bounds(first: date | None, last: date | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """Like :func:`day_bounds` with either end left open (None): UTC [start, end) of local dates
    ``first``..``last`` in ``tz``."""
    start = local_to_utc(first, 0, tz) if first is not None else None
    end = local_to_utc(last + timedelta(days=1), 0, tz) if last is not None else None
    return start, end


def iso_in(instant: datetime, tz: ZoneInfo) -> str:
    """ISO 8601 with the offset of ``tz`` at that instant (seconds precision)."""
    return instant.astimezone(tz).isoformat(timespec="seconds")
