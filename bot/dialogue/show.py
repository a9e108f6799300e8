"""How instants, days and durations are shown to a customer: their zone first, the business's too
when the two differ, in the customer's locale (Babel)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time, get_timezone_name

from bot.money import babel_locale


def zone_label(tz: ZoneInfo, at: datetime, locale: str) -> str:
    """A short name people recognise: ``IST``, ``GMT+1``, else the city ("London time")."""
    short = at.astimezone(tz).tzname() or ""
    if short and not short.lstrip("+-").isdigit():
        return short
    return get_timezone_name(tz, locale=babel_locale(locale), width="short", uncommon=True)


def day_text(day: date, locale: str, *, year: bool = False, weekday: bool = True) -> str:
    """``Tue 3 Mar``; ``Wed 3 Mar 2027`` with the year; ``3 Mar`` without the weekday."""
    pattern = ("EEE " if weekday else "") + "d MMM" + (" y" if year else "")
    return format_date(day, pattern, locale=babel_locale(locale))


def time_text(at: datetime, tz: ZoneInfo, locale: str) -> str:
    return format_time(
        at.astimezone(tz), "h:mm a" if babel_locale(locale).startswith("en") else "HH:mm", locale=babel_locale(locale)
    )


def when_text(at: datetime, business_tz: str, customer_tz: str | None, locale: str) -> str:
    """``Tue 3 Mar, 10:30 AM`` in the customer's zone, plus the business's time when it differs:
    ``Mon 2 Mar, 11:00 PM EST (Tue 3 Mar, 9:30 AM IST at the clinic)``."""
    biz = ZoneInfo(business_tz)
    cust = ZoneInfo(customer_tz) if customer_tz else biz
    loc = babel_locale(locale)
    pattern = "EEE d MMM, h:mm a" if loc.startswith("en") else "EEE d MMM, HH:mm"
    mine = format_datetime(at.astimezone(cust), pattern, locale=loc)
    if at.astimezone(cust).utcoffset() == at.astimezone(biz).utcoffset():
        return mine
    theirs = format_datetime(at.astimezone(biz), pattern, locale=loc)
    return f"{mine} {zone_label(cust, at, locale)} ({theirs} {zone_label(biz, at, locale)})"


def minutes_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" if not rest else f"{hours} h {rest} min"
