"""Money-like things are exactly once under concurrency, on SQLite and PostgreSQL: threads
hit the database at once through the real services (no mocks).

Without the compare-and-set UPDATEs (stock, coupon status) and the unique keys these fail:
two staff would both redeem one code, and the last coupons would be sold many times over.
The ``unguarded`` cases show it: a test-only stand-in swaps each compare-and-set for
check-then-act (read the status or the stock, then update by id unconditionally), and with
every racer held at a barrier between its read and its write, the same race that the real
code wins exactly once double-redeems and oversells on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from merchant_seed import seed_merchant, seed_owners, seed_partner
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

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
    rounds = 10  # many rounds: a race window is narrow
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session, per_owner_limit=rounds)
        owner = seed_owners(session, 1, partner)[0]
    for attempt in range(rounds):
        with session_scope(engine) as session:
            code = coupons.claim(session, offer_id, owner, check_targeting=False).code
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
        assert results == ["ok", "used"], (attempt, results)
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(Redemption)).scalar_one() == rounds
        assert session.execute(select(func.count()).select_from(CommissionEntry)).scalar_one() == rounds
        assert (
            session.execute(
                select(func.count()).select_from(Coupon).where(col(Coupon.status) == "redeemed")
            ).scalar_one()
            == rounds
        )


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


# --- the same races without the guards ------------------------------------------------------


class _Gate:
    """A barrier at the write: each racer waits there on its first attempt (a retry after a
    SQLite lock timeout goes straight on), so every racer has read before any of them writes."""

    def __init__(self, parties: int) -> None:
        self._barrier = threading.Barrier(parties, timeout=60)
        self._local = threading.local()

    def arm(self) -> None:
        self._local.armed = True

    def __call__(self) -> None:
        if getattr(self._local, "armed", False):
            self._local.armed = False
            self._barrier.wait()


def _read(session: Session, query: Any) -> Any:
    """A check's read, on a connection of its own, as a check made before the write sees the
    row. (Inside the write's own SQLite transaction a stale read would turn the write into a
    lock error, SQLite serialising writers; the point here is the guard, not SQLite.)"""
    with session.get_bind().connect() as conn:
        return conn.execute(query).one_or_none()


def _unguarded_take_coupon(gate: _Gate) -> Callable[[Session, int, str, datetime], bool]:
    """``redemption._take_coupon`` as check-then-act: read the status, then update by id."""

    def take(session: Session, merchant_id: int, code: str, now: datetime) -> bool:
        row = _read(session, select(col(Coupon.id), col(Coupon.status)).where(col(Coupon.code) == code))
        gate()
        if row is None or row.status != "claimed":
            return False
        session.execute(
            update(Coupon)
            .where(col(Coupon.id) == row.id)
            .values(status="redeemed", redeemed_at=now)
            .execution_options(synchronize_session=False)
        )
        return True

    return take


def _unguarded_take_stock(gate: _Gate) -> Callable[[Session, int], bool]:
    """``coupons._take_stock`` as check-then-act: read the stock, then update by id."""

    def take(session: Session, offer_id: int) -> bool:
        row = _read(session, select(col(Offer.stock_total), col(Offer.stock_claimed)).where(col(Offer.id) == offer_id))
        gate()
        if row is None or (row.stock_total is not None and row.stock_claimed >= row.stock_total):
            return False
        session.execute(
            update(Offer)
            .where(col(Offer.id) == offer_id)
            .values(stock_claimed=col(Offer.stock_claimed) + 1)
            .execution_options(synchronize_session=False)
        )
        return True

    return take


def _gated(gate: _Gate, real: Callable[..., bool]) -> Callable[..., bool]:
    """The real compare-and-set, with every racer held at the same barrier first."""

    def take(*args: Any) -> bool:
        gate()
        return real(*args)

    return take


GUARDS = pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])


@GUARDS
def test_two_staff_redeeming_one_code_between_read_and_write(engine, monkeypatch, guarded: bool) -> None:
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session)
        owner = seed_owners(session, 1, partner)[0]
        code = coupons.claim(session, offer_id, owner, check_targeting=False).code
    gate = _Gate(2)
    take = _gated(gate, redemption._take_coupon) if guarded else _unguarded_take_coupon(gate)
    monkeypatch.setattr(redemption, "_take_coupon", take)

    def staff(i: int) -> str:
        gate.arm()

        def work(session: Session) -> str:
            try:
                redemption.redeem(session, merchant_id, code, request_id=f"staff-{i}")
                return "ok"
            except redemption.RedeemError as exc:
                return exc.reason

        return _retrying(engine, work)

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(staff, range(2)))
    with session_scope(engine) as session:
        redeemed = session.execute(select(func.count()).select_from(Redemption)).scalar_one()
        lines = session.execute(select(func.count()).select_from(CommissionEntry)).scalar_one()
    if guarded:
        assert (results, redeemed, lines) == (["ok", "used"], 1, 1)
    else:  # both read "claimed", both wrote: one coupon, two redemptions, two commissions
        assert (results, redeemed, lines) == (["ok", "ok"], 2, 2)


@GUARDS
def test_owners_claiming_the_last_coupons_between_read_and_write(engine, monkeypatch, guarded: bool) -> None:
    stock, racers = 6, 10  # racers hold a connection each at the barrier: within SQLite's pool of 15
    with session_scope(engine) as session:
        _, offer_id = seed_merchant(session, stock_total=stock)
        owners = seed_owners(session, racers)
    gate = _Gate(racers)
    take = _gated(gate, coupons._take_stock) if guarded else _unguarded_take_stock(gate)
    monkeypatch.setattr(coupons, "_take_stock", take)

    def claim(owner_id: int) -> str:
        gate.arm()

        def work(session: Session) -> str:
            try:
                coupons.claim(session, offer_id, owner_id, check_targeting=False, request_id=f"c{owner_id}")
                return "ok"
            except coupons.ClaimError as exc:
                return exc.reason

        return _retrying(engine, work)

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(claim, owners))
    with session_scope(engine) as session:
        issued = session.execute(select(func.count()).select_from(Coupon)).scalar_one()
        claimed = session.get(Offer, offer_id).stock_claimed
    if guarded:
        assert (results.count("ok"), results.count("sold_out"), issued, claimed) == (
            stock,
            racers - stock,
            stock,
            stock,
        )
    else:  # every racer read stock left, every one wrote: 10 coupons of a stock of 6
        assert (results.count("ok"), issued, claimed) == (racers, racers, racers)
