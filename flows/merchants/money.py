"""Money as integer fen: parsed from what operators and staff type, shown as yuan."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flows.errors import InvalidInputError

MAX_FEN = 10_000_000_00  # ten million yuan: nothing one coupon touches is bigger


def parse_yuan(text: str) -> int:
    """``"88"``, ``"88.5"``, ``"¥88.50"`` → fen; refuses negatives, junk and absurd sums."""
    cleaned = (text or "").strip().replace("¥", "").replace("￥", "").replace(",", "").replace("元", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInputError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0 or value * 100 > MAX_FEN:
        raise InvalidInputError(f"not an amount (or too large): {text!r}")
    fen = int((value * 100).quantize(Decimal(1)))
    if fen > MAX_FEN:
        raise InvalidInputError(f"amount too large: {text!r}")
    return fen


def yuan(fen: int | None) -> str:
    """``8850`` → ``"88.50"``."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
