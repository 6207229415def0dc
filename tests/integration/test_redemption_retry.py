"""A redemption retried with the same request id is a no-op, also after an undo made the
coupon usable again (the retry used to hit the unique request id and fail)."""

from __future__ import annotations

from datetime import timedelta

from merchant_seed import seed_merchant, seed_owners, seed_partner
from sqlalchemy import func, select
from sqlmodel import col

from flows.membership import points
from flows.merchants import coupons, redemption
from storage.clock import utcnow
from storage.db import session_scope
from storage.merchant_models import CommissionEntry, Coupon, Redemption


def test_a_retry_after_an_undo_returns_the_first_outcome(engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session)
        owner = seed_owners(session, 1, partner)[0]
        code = coupons.claim(session, offer_id, owner, now, check_targeting=False).code
    with session_scope(engine) as session:
        first = redemption.redeem(session, merchant_id, code, now, request_id="tg:1:10")
    with session_scope(engine) as session:
        redemption.undo(session, merchant_id, first.redemption_id, now + timedelta(minutes=5))
    with session_scope(engine) as session:
        again = redemption.redeem(session, merchant_id, code, now + timedelta(minutes=6), request_id="tg:1:10")
    assert again.retried and again.redemption_id == first.redemption_id and again.at == first.at
    with session_scope(engine) as session:  # nothing happened: the coupon stays usable
        assert session.execute(select(func.count()).select_from(Redemption)).scalar_one() == 1
        assert session.execute(select(col(Coupon.status))).scalar_one() == "claimed"
        assert session.execute(select(col(CommissionEntry.status))).scalars().all() == ["cancelled"]
        assert points.balance_of(session, owner) == 0
    with session_scope(engine) as session:  # a new request redeems it again
        later = redemption.redeem(session, merchant_id, code, now + timedelta(minutes=7), request_id="tg:1:11")
    assert not later.retried and later.redemption_id != first.redemption_id
