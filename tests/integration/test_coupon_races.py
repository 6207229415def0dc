"""Money-like things are exactly once under concurrency, on SQLite and PostgreSQL: threads
hit the database at once through the real services (no mocks).

Without the compare-and-set UPDATEs (stock, coupon status) and the unique keys these fail:
two staff would both redeem one code, and the last coupons would be sold many times over."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from merchant_seed import seed_merchant, seed_owners, seed_partner
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from flows.merchants import coupons, redemption
from storage.db import session_scope
from storage.merchant_models import CommissionEntry, Coupon, Offer, Redemption


def _retrying(engine, work):
    """One unit of work, retried when SQLite reports a lock timeout (as a client would retry)."""
    for _ in range(20):
        try:
            with session_scope(engine) as session:
                return work(session)
        except OperationalError:
            continue
    raise AssertionError("database stayed locked")


def test_same_code_by_two_staff_at_once_is_redeemed_once(engine) -> None:
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session)
        owner = seed_owners(session, 1, partner)[0]
        codes = [coupons.claim(session, offer_id, owner, check_targeting=False).code]
    for attempt in range(10):  # many rounds: a race window is narrow
        with session_scope(engine) as session:
            if attempt:
                from storage.merchant_models import Coupon as C

                session.query(C).delete()
            code = coupons.claim(session, offer_id, owner, check_targeting=False).code if attempt else codes[0]
        barrier = threading.Barrier(2)

        def staff(i: int, code: str = code, attempt: int = attempt, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()

            def work(session):
                try:
                    redemption.redeem(session, merchant_id, code, request_id=f"r{attempt}-{i}")
                    return "ok"
                except redemption.RedeemError as exc:
                    return exc.reason

            return _retrying(engine, work)

        with ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(staff, range(2)))
        assert results == ["ok", "used"], results
        break
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(Redemption)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(CommissionEntry)).scalar_one() == 1


def test_1000_concurrent_claims_of_stock_100_never_oversell(engine) -> None:
    with session_scope(engine) as session:
        _, offer_id = seed_merchant(session, stock_total=100)
        owners = seed_owners(session, 1000)
    barrier = threading.Barrier(16)

    def claim(owner_id: int) -> str:
        if owner_id <= owners[15]:
            barrier.wait()

        def work(session):
            try:
                coupons.claim(session, offer_id, owner_id, check_targeting=False, request_id=f"c{owner_id}")
                return "ok"
            except coupons.ClaimError as exc:
                return exc.reason

        return _retrying(engine, work)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(claim, owners))
    assert results.count("ok") == 100
    assert set(results) == {"ok", "sold_out"}
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(Coupon)).scalar_one() == 100
        assert session.get(Offer, offer_id).stock_claimed == 100


def test_one_owner_claiming_at_once_stays_within_the_limit(engine) -> None:
    with session_scope(engine) as session:
        _, offer_id = seed_merchant(session, per_owner_limit=1)
        owner = seed_owners(session, 1)[0]
    barrier = threading.Barrier(8)

    def claim(i: int) -> str:
        barrier.wait()

        def work(session):
            try:
                coupons.claim(session, offer_id, owner, check_targeting=False, request_id=f"press-{i}")
                return "ok"
            except coupons.ClaimError as exc:
                return exc.reason

        return _retrying(engine, work)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count("ok") == 1 and set(results) == {"ok", "limit"}
    with session_scope(engine) as session:
        assert session.get(Offer, offer_id).stock_claimed == 1


def test_retried_request_id_is_a_no_op(engine) -> None:
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session, per_owner_limit=3)
        owner = seed_owners(session, 1, partner)[0]
    barrier = threading.Barrier(6)

    def claim(_: int) -> str:
        barrier.wait()
        return _retrying(
            engine, lambda s: coupons.claim(s, offer_id, owner, check_targeting=False, request_id="same").code
        )

    with ThreadPoolExecutor(6) as pool:
        codes = set(pool.map(claim, range(6)))
    assert len(codes) == 1
    code = codes.pop()
    barrier = threading.Barrier(6)

    def redeem(_: int) -> int:
        barrier.wait()
        return _retrying(
            engine, lambda s: redemption.redeem(s, merchant_id, code, request_id="counter-1").redemption_id
        )

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(redeem, range(6)))
    assert len(ids) == 1
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(Coupon)).scalar_one() == 1
        assert session.get(Offer, offer_id).stock_claimed == 1
        assert session.execute(select(func.count()).select_from(Redemption)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(CommissionEntry)).scalar_one() == 1
