"""Telegram Mini App ``initData``, validated exactly as Telegram documents
(core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app):

    secret_key       = HMAC_SHA256(key="WebAppData", msg=bot_token)
    data_check_string = the received fields except ``hash``, as ``key=value``, sorted by key,
                        joined by "\\n"
    valid            = hex(HMAC_SHA256(key=secret_key, msg=data_check_string)) == hash

compared in constant time, and ``auth_date`` no older than ``max_age_s`` (a day by default), so a
leaked initData stops working. Anything else (missing hash, tampered field, stale, malformed
user) is one ``InitDataError``; the caller answers 401 and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

DEFAULT_MAX_AGE_S = 86400
_FUTURE_SKEW_S = 300  # a clock a little ahead is tolerated, a date far in the future is not


class InitDataError(ValueError):
    """initData that does not prove who sent it (the reason is for logs, never for the page)."""


@dataclass(frozen=True)
class WebAppUser:
    user_id: int
    first_name: str
    language_code: str | None
    auth_date: datetime


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")


def validate(init_data: str, bot_token: str, now: datetime, max_age_s: int = DEFAULT_MAX_AGE_S) -> WebAppUser:
    """The Telegram user who opened the Mini App, or ``InitDataError``."""
    if not init_data or not bot_token:
        raise InitDataError("empty")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise InitDataError("not a query string") from exc
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InitDataError("repeated field")
    received = fields.get("hash")
    if not received:
        raise InitDataError("no hash")
    expected = hmac.new(secret_key(bot_token), data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received.lower()):
        raise InitDataError("bad hash")
    try:
        auth_date = datetime.fromtimestamp(int(fields.get("auth_date", "")), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise InitDataError("no auth_date") from exc
    age = (now - auth_date).total_seconds()
    if age > max_age_s or age < -_FUTURE_SKEW_S:
        raise InitDataError("stale")
    try:
        user = json.loads(fields.get("user", ""))
        user_id = int(user["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InitDataError("no user") from exc
    return WebAppUser(
        user_id=user_id,
        first_name=str(user.get("first_name", ""))[:64],
        language_code=user.get("language_code") if isinstance(user.get("language_code"), str) else None,
        auth_date=auth_date,
    )


def sign(fields: dict[str, str], bot_token: str) -> str:
    """initData as Telegram would send it for ``fields`` (tests, the demo's Mini App link)."""
    digest = hmac.new(secret_key(bot_token), data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest})


def make_init_data(user_id: int, bot_token: str, now: datetime, first_name: str = "", language_code: str = "en") -> str:
    user = json.dumps({"id": user_id, "first_name": first_name, "language_code": language_code}, separators=(",", ":"))
    return sign({"auth_date": str(int(now.timestamp())), "query_id": "AAE", "user": user}, bot_token)
