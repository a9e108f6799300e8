"""Phone numbers: E.164 or a clear refusal, and masked for people to recognise. Pure (phonenumbers
ships its metadata)."""

from __future__ import annotations

import phonenumbers

from core.errors import InvalidInput

# Channels on which the sender *is* a phone number (WhatsApp, SMS): the carrier vouches for it.
PHONE_CHANNELS = frozenset({"whatsapp", "sms"})


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """``"+1 (555) 010-0200"`` → ``"+15550100200"``; InvalidInput when it is not a number."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidInput(
            "phone: not a phone number; include the country code, e.g. +14155550123", code="invalid_phone"
        ) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput("phone: not a possible phone number", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(phone: str) -> str | None:
    """The country a number belongs to (``"+918041234567"`` → ``"IN"``): the default region for
    numbers customers type without a country code."""
    if not phone:
        return None
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


def masked(recipient: str) -> str:
    """A recipient (a phone number or a chat id) as the dashboard may show it: the last three
    characters only, so people can tell two apart without reading one back (``"+14155550123"`` →
    ``"•••123"``). Short ids show nothing at all."""
    return "•••" + (recipient[-3:] if len(recipient) > 6 else "")
