"""Ranking in SQL gives what the rules say (``matches`` and ``score`` in Python), on SQLite and
PostgreSQL: random offers over every targeting dimension, owners with and without cars, levels,
tags, past claims, held coupons and due maintenance."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import Session, col

from flows.merchants import coupons, directory, offers
from storage.clock import utcnow
from storage.membership_models import MemberAccount
from storage.merchant_models import Merchant, Offer
from storage.models import Owner, Vehicle

CELLS = ["beginner/active", "beginner/declining", "growing/active", "mature/active"]


def _targeting(rng: random.Random) -> dict:
    t: dict = {}
    if rng.random() < 0.3:
        t["product_lines"] = rng.sample(["passenger", "commercial"], rng.randint(1, 2))
    if rng.random() < 0.3:
        t["cells"] = rng.sample(CELLS, rng.randint(1, 2))
    if rng.random() < 0.2:
        t["models"] = rng.sample(["Model Y", "Han", "Tang"], rng.randint(1, 2))
    if rng.random() < 0.3:
        t["cities"] = rng.sample(["上海", "北京"], rng.randint(1, 2))
    if rng.random() < 0.2:
        t["dealers"] = ["D001"] if rng.random() < 0.5 else ["D002"]
    if rng.random() < 0.2:
        t["levels"] = [rng.choice(["silver", "gold"])]
    if rng.random() < 0.2:
        t["tags"] = [rng.choice(["vip", "family"])]
    if rng.random() < 0.2:
        t["mileage_km"] = rng.choice(["0-10000", "5000-", "-20000"])
    if rng.random() < 0.2:
        t["car_age_months"] = rng.choice(["0-12", "6-"])
    return t


def test_sql_ranking_equals_the_python_rules(engine) -> None:
    rng = random.Random(5)
    now = utcnow()
    with Session(engine) as s:
        for i, city in enumerate(["上海", "北京", ""]):
            directory.add_merchant(s, code=f"M{i}", name=f"M{i}", kind="after_sales", city=city)
        for i in range(300):
            offers.create_offer(
                s,
                merchant_code=f"M{i % 3}",
                title=f"Offer {i}",
                value_kind="amount_off",
                amount_fen=1000,
                category=rng.choice(["tyres", "car_wash", "maintenance", "dining"]),
                valid_until=now + timedelta(days=rng.choice([3, 30])),
                stock_total=rng.choice([None, 0, 5]),
                per_owner_limit=rng.choice([1, 2]),
                targeting=_targeting(rng),
                status="live",
                now=now,
            )
        owners = []
        for i, (city, tags, km) in enumerate([("上海", "vip", 8000), ("北京", "", None), ("", "family,vip", 30000)]):
            owner = Owner(
                name=f"O{i}",
                product_line="passenger" if i != 1 else "commercial",
                dealer_code="D001",
                maturity="beginner" if i != 2 else "growing",
                activity="active",
                stage="verified",
                attributes={"city": city, "tags": tags},
            )
            s.add(owner)
            s.flush()
            if km is not None:
                s.add(
                    Vehicle(
                        owner_id=owner.id,
                        vin=f"VIN{i:014d}"[:17],
                        model="Model Y",
                        mileage_km=km,
                        purchase_date=(now - timedelta(days=200)).date(),
                    )
                )
            owners.append(owner.id)
        s.add(MemberAccount(owner_id=owners[0], level="gold"))
        s.flush()
        ids = list(s.execute(select(col(Offer.id)).where(col(Offer.stock_total).is_(None))).scalars())
        for offer_id in ids[:6]:  # past claims (some held), so limits and history count
            with contextlib.suppress(coupons.ClaimError):
                coupons.claim(s, offer_id, owners[0], now, check_targeting=False)
        s.execute(update(Offer).where(col(Offer.id) == ids[6]).values(status="paused"))
        s.commit()

    with Session(engine) as s:
        cities = {m.id: m.city for m in s.execute(select(Merchant)).scalars()}
        live = list(s.execute(select(Offer).where(col(Offer.status) == "live")).scalars())
        for owner_id in owners:
            for category in (None, "tyres"):
                profile = offers.owner_profile(s, owner_id, now)
                expected = sorted(
                    (
                        (v, o.id)
                        for o in live
                        if (category is None or o.category == category)
                        and (o.valid_until is None or o.valid_until > now)
                        and (v := offers.score(o, cities[o.merchant_id], profile, now)) is not None
                    ),
                    key=lambda t: (-t[0], -t[1]),
                )
                got = offers.rank_offers(s, profile, now, limit=400, category=category)
                assert [(round(o.score, 3), o.id) for o in got] == [(round(v, 3), i) for v, i in expected]
                assert len(expected) > 3  # the case is not empty
                assert set(offers.floor_offers(s, profile, now)) >= {i for _, i in expected}
        # maintenance due lifts the after-sales categories the same way in both
        profile = offers.owner_profile(s, owners[0], now)
        due = offers.OwnerProfile(**{**profile.__dict__, "maintenance_due": True})
        expected = sorted(
            ((v, o.id) for o in live if (v := offers.score(o, cities[o.merchant_id], due, now)) is not None),
            key=lambda t: (-t[0], -t[1]),
        )[:5]
        assert [(round(o.score, 3), o.id) for o in offers.rank_offers(s, due, now)] == [
            (round(v, 3), i) for v, i in expected
        ]
