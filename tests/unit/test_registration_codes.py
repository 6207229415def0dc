"""Registration codes are random, readable, hashed, and forgiving about how they are typed."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.community.partners import (
    CODE_ALPHABET,
    CODE_LENGTH,
    generate_registration_code,
    hash_registration_code,
    normalize_registration_code,
    parse_role,
)
from flows.errors import InvalidInputError
from storage.models import PartnerRole

CODE_RE = re.compile(rf"^[{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{2}}$")


def test_code_is_grouped_from_the_unambiguous_alphabet() -> None:
    for _ in range(200):
        code = generate_registration_code()
        assert CODE_RE.match(code), code
    assert not set("01OIL") & set(CODE_ALPHABET)


def test_code_space_is_large_enough_to_not_be_guessed() -> None:
    bits = CODE_LENGTH * math.log2(len(set(CODE_ALPHABET)))
    assert bits >= 48


def test_codes_do_not_repeat_and_use_the_whole_alphabet() -> None:
    codes = [generate_registration_code() for _ in range(3000)]
    assert len(set(codes)) == len(codes)
    symbols = Counter(ch for code in codes for ch in code if ch != "-")
    assert set(symbols) == set(CODE_ALPHABET)
    # 30000 draws over 31 symbols: each appears ~968 times; a skewed generator would not.
    assert min(symbols.values()) > 700
    assert max(symbols.values()) < 1250


def test_hash_is_sha256_hex_and_hides_the_code() -> None:
    code = generate_registration_code()
    digest = hash_registration_code(code)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert normalize_registration_code(code) not in digest.upper()
    assert hash_registration_code(generate_registration_code()) != digest


@pytest.mark.parametrize(
    "typed",
    ["k7qx-m3pr-tw", "K7QXM3PRTW", " K7QX M3PR TW ", "K7QX–M3PR—TW", "Ｋ７ＱＸ－Ｍ３ＰＲ－ＴＷ"],
)
def test_typing_variants_hash_alike(typed: str) -> None:
    assert normalize_registration_code(typed) == "K7QXM3PRTW"
    assert hash_registration_code(typed) == hash_registration_code("K7QX-M3PR-TW")


@given(
    st.lists(st.sampled_from(["", " ", "-", "  ", "\t"]), min_size=CODE_LENGTH + 1, max_size=CODE_LENGTH + 1),
    st.lists(st.booleans(), min_size=CODE_LENGTH, max_size=CODE_LENGTH),
)
def test_any_spacing_and_case_hash_alike(separators: list[str], lower: list[bool]) -> None:
    code = "K7QXM3PRTW"
    typed = separators[0] + "".join(
        (ch.lower() if low else ch) + sep for ch, low, sep in zip(code, lower, separators[1:], strict=True)
    )
    assert hash_registration_code(typed) == hash_registration_code("K7QX-M3PR-TW")


def test_a_different_code_hashes_differently() -> None:
    assert hash_registration_code("K7QX-M3PR-TW") != hash_registration_code("K7QX-M3PR-TX")


@pytest.mark.parametrize(
    ("word", "role"),
    [
        ("sales", PartnerRole.sales),
        ("Sales", PartnerRole.sales),
        ("销售", PartnerRole.sales),
        ("service", PartnerRole.service),
        (" SERVICE ", PartnerRole.service),
        ("服务", PartnerRole.service),
    ],
)
def test_roles_in_both_languages(word: str, role: PartnerRole) -> None:
    assert parse_role(word) is role


@pytest.mark.parametrize("word", ["", "manager", "经理"])
def test_unknown_role_is_refused_with_the_choices(word: str) -> None:
    with pytest.raises(InvalidInputError, match=r"sales|service|role is empty"):
        parse_role(word)
