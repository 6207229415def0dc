"""Gift codes: random, unambiguous when read aloud, and forgiving of how a partner types them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.growth import gifts
from flows.growth.gift_types import DEFAULT_GIFT_TYPES, GiftKind

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def test_codes_use_only_unambiguous_characters() -> None:
    for ch in "0O1IL":
        assert ch not in gifts.CODE_ALPHABET
    for _ in range(500):
        code = gifts.new_code()
        assert len(code) == gifts.CODE_LENGTH
        assert gifts.is_well_formed(code)


def test_codes_are_not_repeated_or_sequential() -> None:
    codes = [gifts.new_code() for _ in range(5000)]
    assert len(set(codes)) == len(codes)
    assert sorted(codes) != codes
    assert len(gifts.CODE_ALPHABET) ** gifts.CODE_LENGTH > 10**11  # not guessable by trying


def test_typed_codes_are_normalized() -> None:
    assert gifts.normalize_code(" abcd-efgh ") == "ABCDEFGH"
    assert gifts.normalize_code("abcd efgh") == "ABCDEFGH"
    assert gifts.normalize_code("") == ""
    assert not gifts.is_well_formed("ABCDEFG0")  # 0 is never issued
    assert not gifts.is_well_formed("ABC")


def test_grant_status() -> None:
    g = gifts.Grant(1, 1, "newcomer", "ABCDEFGH", NOW, NOW + timedelta(days=1), None, "v")
    assert g.status(NOW) == "active"
    assert g.status(NOW + timedelta(days=1)) == "expired"
    assert gifts.Grant(1, 1, "newcomer", "ABCDEFGH", NOW, NOW, NOW, "v").status(NOW) == "redeemed"


def test_catalogue_has_every_kind_in_both_locales() -> None:
    for kind in GiftKind:
        t = DEFAULT_GIFT_TYPES[kind.value]
        assert t.validity_days > 0 and t.value("zh") and t.value("en") and t.value("en") != t.value("zh")
