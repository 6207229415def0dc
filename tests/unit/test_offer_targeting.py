"""Offer targeting and relevance: who may claim, and which offer comes first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows.errors import InvalidInputError
from flows.merchants.money import parse_yuan, yuan
from flows.merchants.offers import OwnerProfile, clean_targeting, matches, score
from flows.merchants.redemption import commission_for
from storage.clock import utcnow
from storage.merchant_models import Offer


def profile(**kw) -> OwnerProfile:
    base = dict(
        owner_id=1,
        product_line="passenger",
        cell="beginner/declining",
        models=frozenset({"model y"}),
        car_age_months=4,
        mileage_km=8000,
        city="Shanghai",
        dealer_code="D001",
        level="silver",
        tags=frozenset(),
        maintenance_due=False,
        month=5,
    )
    base.update(kw)
    return OwnerProfile(**base)


def offer(**kw) -> Offer:
    base = dict(
        id=1,
        merchant_id=1,
        title="t",
        value_kind="free_item",
        item="x",
        valid_days=30,
        targeting={},
        category="car_wash",
        per_owner_limit=1,
        stock_claimed=0,
    )
    base.update(kw)
    return Offer(**base)


def test_targeting_dimensions_must_all_match() -> None:
    t = clean_targeting({"cells": "beginner/declining", "car_age_months": "0-6", "mileage_km": "0-10000"})
    assert matches(t, profile())[0]
    assert not matches(t, profile(cell="mature/active"))[0]
    assert not matches(t, profile(car_age_months=12))[0]
    assert not matches(t, profile(mileage_km=None))[0]
    assert matches({}, profile()) == (True, 0.0)


def test_bad_targeting_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        clean_targeting({"cells": "beginner"})
    with pytest.raises(InvalidInputError):
        clean_targeting({"mileage_km": "9-1"})
    with pytest.raises(InvalidInputError):
        clean_targeting({"colour": "red"})


def test_an_offer_for_the_owners_cell_and_due_service_ranks_first() -> None:
    now = utcnow()
    generic = score(offer(id=1), "", profile(), now)
    for_cell = score(offer(id=2, targeting={"cells": ["beginner/declining"]}), "", profile(), now)
    tyres_due = score(offer(id=3, category="tyres"), "", profile(maintenance_due=True), now)
    assert for_cell > generic and tyres_due > generic


def test_sold_out_held_and_limit_reached_offers_are_not_claimable() -> None:
    now = utcnow()
    assert score(offer(stock_total=5, stock_claimed=5), "", profile(), now) is None
    assert score(offer(id=7), "", profile(claims={7: 1}), now) is None
    held = score(
        offer(id=8, per_owner_limit=3, valid_until=now + timedelta(days=30)),
        "",
        profile(held=frozenset({8}), claims={8: 1}),
        now,
    )
    assert held is not None and held < 0


def test_commission_fixed_or_percent_of_the_order_value() -> None:
    assert commission_for(offer(commission_kind="fixed", commission_fen=500), None) == 500
    assert commission_for(offer(commission_kind="percent", commission_percent=5.0), 38800) == 1940
    assert commission_for(offer(commission_kind="none"), 38800) == 0


def test_money_parses_and_prints_as_yuan() -> None:
    assert parse_yuan("¥88.5") == 8850 and yuan(8850) == "88.50"
    for bad in ("-1", "abc", "1e99"):
        with pytest.raises(InvalidInputError):
            parse_yuan(bad)
