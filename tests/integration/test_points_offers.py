"""Membership meets the offers, on real databases: crossing a level threshold queues one
level-up notice through the outbox (from the points job and from a redemption); an offer paid
with points is refused while the balance is short, charges once when paid, and a retried
claim with the same request id charges nothing more; the points job settles commission lines
past their freeze (the one job that does)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from merchant_seed import seed_merchant, seed_owners, seed_partner
from sqlalchemy import func, select, update
from sqlmodel import Session, col

from bot.scheduler import JobContext
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.membership import awards, points
from flows.merchants import coupons, redemption
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import session_scope
from storage.events import EventKind, record
from storage.membership_models import MemberAccount, PointsLine
from storage.merchant_models import CommissionEntry, Coupon, Offer
from storage.models import OutboxMessage, Owner

POLICY = points.PointsPolicy(levels=(("silver", 0), ("gold", 60), ("black", 1000)))
OWNER_TG = 6301


def _reachable_owner(session: Session, partner_id: int | None = None) -> int:
    owner = seed_owners(session, 1, partner_id)[0]
    session.execute(update(Owner).where(col(Owner.id) == owner).values(telegram_user_id=OWNER_TG, locale="en"))
    return owner


def _level_notices(session: Session, owner: int) -> list[str]:
    """The levels announced to the owner, one per level-up notice in the outbox."""
    rows = session.execute(
        select(col(OutboxMessage.dedupe_key), col(OutboxMessage.chat_id))
        .where(col(OutboxMessage.dedupe_key).like(f"member:level:{owner}:%"))
        .order_by(col(OutboxMessage.id))
    ).all()
    assert all(chat == OWNER_TG for _, chat in rows)
    return [key.rsplit(":", 1)[1] for key, _ in rows]


def test_the_points_job_queues_one_level_up_notice_per_level(engine) -> None:
    now, renderer = utcnow(), Renderer(default_locale="en")
    with session_scope(engine) as session:
        owner = _reachable_owner(session)
        record(session, owner, EventKind.verified, now)  # 50: silver, below gold's 60
    with session_scope(engine) as session:
        awards.award_from_events(session, POLICY, now, renderer)
        assert session.get(MemberAccount, owner).level == "silver"
        assert "gold" not in _level_notices(session, owner)  # (silver, the first level, may be announced)
    with session_scope(engine) as session:
        record(session, owner, EventKind.booking, now)  # +20 = 70: crosses gold
        record(session, owner, EventKind.booking, now)  # +20 = 90: still gold
    with session_scope(engine) as session:
        awards.award_from_events(session, POLICY, now, renderer)
        awards.award_from_events(session, POLICY, now, renderer)  # a second pass adds nothing
        assert session.get(MemberAccount, owner).level == "gold"
        assert _level_notices(session, owner).count("gold") == 1
        text = session.execute(
            select(col(OutboxMessage.text)).where(col(OutboxMessage.dedupe_key) == f"member:level:{owner}:gold")
        ).scalar_one()
        assert text  # the rendered membership/level_up
        assert points.check_level(session, owner, POLICY, now) is None  # no second announcement


def test_a_redemption_that_crosses_a_level_queues_its_notice_once(engine) -> None:
    now, renderer = utcnow(), Renderer(default_locale="en")
    policy = redemption.MerchantPolicy(points=POLICY)
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session, per_owner_limit=2)
        owner = _reachable_owner(session, partner)
        points.award(session, owner, 55, "booking", "test:55", now)
        points.check_level(session, owner, POLICY, now)
        first = coupons.claim(session, offer_id, owner, now, check_targeting=False).code
        second = coupons.claim(session, offer_id, owner, now, check_targeting=False).code
    with session_scope(engine) as session:
        done = redemption.redeem(
            session, merchant_id, first, now, request_id="r1", policy=policy, renderer=renderer
        )  # +10 = 65: gold
        assert _level_notices(session, owner).count("gold") == 1
    with session_scope(engine) as session:
        redemption.undo(session, merchant_id, done.redemption_id, now, policy=policy, renderer=renderer)
        redemption.redeem(session, merchant_id, second, now, request_id="r2", policy=policy, renderer=renderer)
        assert _level_notices(session, owner).count("gold") == 1 and session.get(MemberAccount, owner).level == "gold"


def _spent(session: Session, owner: int) -> list[int]:
    return list(
        session.execute(
            select(col(PointsLine.delta)).where(col(PointsLine.owner_id) == owner, col(PointsLine.reason) == "offer")
        ).scalars()
    )


def test_an_offer_paid_with_points_is_refused_short_and_charged_once(engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        _, offer_id = seed_merchant(session, points_price=30, stock_total=5)
        owner = seed_owners(session, 1)[0]
        points.award(session, owner, 20, "booking", "test:20", now)
    with session_scope(engine) as session, pytest.raises(coupons.ClaimError) as short:
        coupons.claim(session, offer_id, owner, now, check_targeting=False, request_id="press-1")
    assert short.value.reason == "points"
    with session_scope(engine) as session:  # refused: nothing taken, no coupon, no stock used
        assert points.balance_of(session, owner) == 20 and _spent(session, owner) == []
        assert session.execute(select(func.count()).select_from(Coupon)).scalar_one() == 0
        assert session.get(Offer, offer_id).stock_claimed == 0
        points.award(session, owner, 20, "booking", "test:40", now)
    with session_scope(engine) as session:
        paid = coupons.claim(session, offer_id, owner, now, check_targeting=False, request_id="press-2")
        assert paid.created
    for _ in range(2):  # the same press again (a retried update): the first coupon, no charge
        with session_scope(engine) as session:
            again = coupons.claim(
                session, offer_id, owner, now + timedelta(seconds=1), check_targeting=False, request_id="press-2"
            )
            assert (again.code, again.created) == (paid.code, False)
    with session_scope(engine) as session:
        assert points.balance_of(session, owner) == 10 and _spent(session, owner) == [-30]
        assert session.execute(select(col(Coupon.points_paid))).scalars().all() == [30]
        assert session.get(Offer, offer_id).stock_claimed == 1


def test_the_points_job_settles_commission_past_the_freeze(engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session, per_owner_limit=2)
        owner = seed_owners(session, 1, partner)[0]
        old = coupons.claim(session, offer_id, owner, now - timedelta(days=9), check_targeting=False).code
        new = coupons.claim(session, offer_id, owner, now, check_targeting=False).code
        redemption.redeem(session, merchant_id, old, now - timedelta(days=8), request_id="old")
        redemption.redeem(session, merchant_id, new, now, request_id="new")
    job = awards.points_job(None, POLICY)
    job(JobContext(engine=engine, now=now, policy=DeliveryPolicy()))
    with session_scope(engine) as session:
        states = session.execute(
            select(col(CommissionEntry.status)).order_by(col(CommissionEntry.created_at))
        ).scalars()
        assert list(states) == ["settled", "pending"]
