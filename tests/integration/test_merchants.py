"""Merchants on real databases: undo within the window, commission states, points never
negative and awarded once from events (circle activity capped), staff codes, the import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from merchant_seed import seed_merchant, seed_owners, seed_partner
from sqlalchemy import func, select
from sqlmodel import col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.membership import awards, points
from flows.merchants import commission, coupons, directory, redemption
from storage.clock import utcnow
from storage.db import session_scope
from storage.events import EventKind, record
from storage.membership_models import MemberAccount, PointsLine
from storage.merchant_models import CommissionEntry, Coupon, Merchant


def test_undo_within_the_window_cancels_commission_and_points(engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session)
        other_id, _ = seed_merchant(session, code="M002")
        owner = seed_owners(session, 1, partner)[0]
        code = coupons.claim(session, offer_id, owner, now, check_targeting=False).code
        with pytest.raises(redemption.RedeemError) as wrong:
            redemption.redeem(session, other_id, code, now, request_id="x")
        assert wrong.value.reason == "not_this_merchant"
        done = redemption.redeem(session, merchant_id, code, now, request_id="r1")
        assert points.balance_of(session, owner) == 10
        with pytest.raises(redemption.RedeemError) as late:
            redemption.undo(session, merchant_id, done.redemption_id, now + timedelta(hours=25))
        assert late.value.reason == "window"
        redemption.undo(session, merchant_id, done.redemption_id, now + timedelta(hours=1))
        entry = session.execute(select(CommissionEntry)).scalars().one()
        assert entry.status == "cancelled"
        assert points.balance_of(session, owner) == 0
        assert session.execute(select(col(Coupon.status))).scalar_one() == "claimed"
        again = redemption.redeem(session, merchant_id, code, now + timedelta(hours=2), request_id="r2")
        assert commission.settle_due(session, now + timedelta(days=8)) == 1
        report = commission.settlement(session, (now).astimezone().strftime("%Y-%m"))
        assert {line.status for line in report.lines} == {"cancelled", "settled"}
        assert report.partners[0].settled_fen == 500 and again.commission_fen == 500
    with session_scope(engine) as session:
        code2 = coupons.claim(
            session, seed_merchant(session, code="M003", valid_days=1)[1], owner, now, check_targeting=False
        ).code
        with pytest.raises(redemption.RedeemError) as expired:
            redemption.redeem(
                session,
                session.execute(select(col(Merchant.id)).where(col(Merchant.code) == "M003")).scalar_one(),
                code2,
                now + timedelta(days=2),
                request_id="r3",
            )
        assert expired.value.reason == "expired"


def test_points_never_go_negative_and_spending_is_refused(engine) -> None:
    with session_scope(engine) as session:
        owner = seed_owners(session, 1)[0]
        assert points.award(session, owner, 30, "booking", "k1")
        assert not points.award(session, owner, 30, "booking", "k1")  # same key: nothing
        with pytest.raises(points.NotEnoughPointsError):
            points.spend(session, owner, 31, "offer", "s1")
        assert points.spend(session, owner, 30, "offer", "s2")
        assert points.take_back(session, owner, 50, "redemption_undone", "t1") == 0
        assert session.get(MemberAccount, owner).balance == 0


def test_points_from_events_once_with_a_daily_circle_cap(engine) -> None:
    now = utcnow()
    policy = points.PointsPolicy(circle_daily_cap=3)
    with session_scope(engine) as session:
        owner = seed_owners(session, 1)[0]
        record(session, owner, EventKind.verified, now)
        for _ in range(6):
            record(session, owner, EventKind.circle_message, now)
        assert awards.award_from_events(session, policy, now) == 4
        assert awards.award_from_events(session, policy, now) == 0
        assert points.balance_of(session, owner) == 50 + 3 * 2
        assert session.execute(select(func.count()).select_from(PointsLine)).scalar_one() == 4
        assert session.get(MemberAccount, owner).level == "silver"  # joined at the first level


def test_staff_code_is_one_time_and_attempts_are_limited(engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        seed_merchant(session)
        issued = directory.issue_staff_code(session, "M001", now)
        for _ in range(directory.MAX_FAILURES):
            with pytest.raises(directory.StaffCodeError):
                directory.register_staff(session, "AAAA-BBBB-CC", 42, now)
        with pytest.raises(directory.StaffCodeError) as locked:
            directory.register_staff(session, issued.code, 42, now)
        assert locked.value.reason == "locked"
        _staff, merchant = directory.register_staff(session, issued.code.lower(), 43, now)
        assert merchant.code == "M001" and directory.staff_of_user(session, 43) is not None
        with pytest.raises(directory.StaffCodeError) as used:
            directory.register_staff(session, issued.code, 44, now)
        assert used.value.reason == "used"


def test_import_merchants_reports_bad_rows_and_keeps_good_ones(cli_env: str, tmp_path: Path) -> None:
    path = tmp_path / "merchants.csv"
    path.write_text(
        "商户编号,商户名称,类型,品类,城市,服务经销商\nM1,洁车坊,车生活,car_wash,上海,D001\n"
        "M2,,车后,tyres,上海,D001\nM3,轮胎店,spaceship,tyres,上海,D001\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["import", "merchants", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"imported": 1' in result.output and '"rejected": 2' in result.output
    rejects = (tmp_path / "merchants.rejects.csv").read_text(encoding="utf-8")
    assert "required value is missing" in rejects and "spaceship" in rejects
    listing = CliRunner().invoke(cli, ["merchants", "list", "--json"])
    assert "洁车坊" in listing.output
