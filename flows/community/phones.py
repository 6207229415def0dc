"""Phone numbers as the owner database stores them: E.164, mainland mobiles as +86…."""

from __future__ import annotations

from storage.importing.fields import FieldError, parse_phone


def to_e164(raw: str | None) -> str | None:
    """Normalise what Telegram or a person gives us as the importer does (``+86…``).

    Telegram sends a shared contact's number without the plus (``8613812345678``,
    ``447911123456``), so a failed read is retried as an international number.
    """
    if not raw or not raw.strip():
        return None
    for candidate in (raw, "+" + raw.strip().lstrip("+")):
        try:
            return parse_phone(candidate)
        except FieldError:
            continue
    return None


def mask(phone: str | None) -> str:
    """Middle digits hidden, for partners' views: +86138****5678."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return phone[:2] + "*" * (len(phone) - 2)
    return phone[: len(phone) - 8] + "****" + phone[-4:]
