"""Money shown to people: integer minor units in, a localised string out (Babel)."""

from __future__ import annotations

from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision


def babel_locale(locale: str) -> str:
    """``en-IN`` / ``en_IN`` / ``en`` → a locale Babel knows; unknown ones fall back to English."""
    try:
        return str(Locale.parse(locale.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        return "en"


def format_money(minor: int, currency: str, locale: str = "en") -> str:
    """``format_money(80000, "INR", "en-IN")`` → ``₹800.00``; exact (Decimal), never a float."""
    amount = Decimal(minor).scaleb(-get_currency_precision(currency))
    return format_currency(amount, currency, locale=babel_locale(locale))
