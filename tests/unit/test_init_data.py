"""Mini App initData is checked exactly as Telegram documents: a valid one names its user;
a tampered field, a wrong token, a stale auth_date or a missing hash is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest

from flows.console.init_data import InitDataError, make_init_data, validate

TOKEN = "123456:TEST-token"
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def _telegram_reference(fields: dict[str, str], token: str) -> str:
    """Telegram's recipe written out independently of the module under test."""
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()


def test_valid_init_data_names_its_user() -> None:
    fields = {
        "auth_date": str(int(NOW.timestamp())),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": 279058397, "first_name": "Vladislav", "language_code": "en"}),
    }
    raw = urlencode({**fields, "hash": _telegram_reference(fields, TOKEN)})
    user = validate(raw, TOKEN, NOW + timedelta(minutes=5))
    assert user.user_id == 279058397 and user.first_name == "Vladislav" and user.language_code == "en"


def test_made_init_data_round_trips() -> None:
    assert validate(make_init_data(42, TOKEN, NOW), TOKEN, NOW).user_id == 42


def test_tampered_field_is_refused() -> None:
    fields = dict(parse_qsl(make_init_data(42, TOKEN, NOW)))
    fields["user"] = fields["user"].replace("42", "43")
    with pytest.raises(InitDataError):
        validate(urlencode(fields), TOKEN, NOW)


def test_another_bots_token_is_refused() -> None:
    with pytest.raises(InitDataError):
        validate(make_init_data(42, "999:OTHER", NOW), TOKEN, NOW)


def test_stale_init_data_is_refused() -> None:
    raw = make_init_data(42, TOKEN, NOW - timedelta(days=1, seconds=1))
    with pytest.raises(InitDataError, match="stale"):
        validate(raw, TOKEN, NOW)
    assert validate(make_init_data(42, TOKEN, NOW - timedelta(hours=23)), TOKEN, NOW).user_id == 42


def test_missing_hash_and_garbage_are_refused() -> None:
    fields = dict(parse_qsl(make_init_data(42, TOKEN, NOW)))
    del fields["hash"]
    for raw in (urlencode(fields), "", "not a query", "hash=", "hash=abc&hash=abc"):
        with pytest.raises(InitDataError):
            validate(raw, TOKEN, NOW)
