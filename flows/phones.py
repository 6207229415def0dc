"""Phone numbers as the owner database stores them: E.164, mainland mobiles as +86…."""

from __future__ import annotations

import re

import phonenumbers

_DIGITS = re.compile(r"\D+")
_MAINLAND_MOBILE = re.compile(r"^(?:0{0,2}86)?(1[3-9]\d{9})$")


def to_e164(raw: str | None) -> str | None:
    """Normalise what Telegram or a person gives us (``8613812345678``, ``+86 138…``)."""
    if not raw:
        return None
    digits = _DIGITS.sub("", raw)
    mainland = _MAINLAND_MOBILE.match(digits)
    if mainland:
        return "+86" + mainland.group(1)
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask(phone: str | None) -> str:
    """Middle digits hidden, for partners' views: +86138****5678."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return phone[:2] + "*" * (len(phone) - 2)
    return phone[: len(phone) - 8] + "****" + phone[-4:]
