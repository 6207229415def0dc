"""Revenue reports: the offer funnel (shown → claimed → redeemed) per offer and merchant, the
merchants' performance, and the points liability (what members could still spend).

``shown`` counts owners an offer was shown to (``offer_shown``: once per offer and owner),
``claimed`` coupons, ``redeemed`` coupons whose redemption stands (undone ones do not count).
The same functions feed ``autocircle report offers`` and the operations workbook's sheets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlmodel import Session, col

from flows.merchants import commission
from storage.clock import utcnow
from storage.membership_models import MemberAccount, PointsLine
from storage.merchant_models import (
    CommissionEntry,
    Coupon,
    Merchant,
    Offer,
    OfferShown,
    Redemption,
)


@dataclass(frozen=True)
class FunnelRow:
    offer_id: int
    key: str
    merchant_code: str
    merchant_name: str
    title: str
    category: str
    status: str
    shown: int
    claimed: int
    redeemed: int

    @property
    def claim_rate(self) -> float | None:
        return self.claimed / self.shown if self.shown else None

    @property
    def redeem_rate(self) -> float | None:
        return self.redeemed / self.claimed if self.claimed else None


@dataclass(frozen=True)
class MerchantRow:
    code: str
    name: str
    kind: str
    live_offers: int
    shown: int
    claimed: int
    redeemed: int
    undone: int
    order_value_fen: int
    commission_fen: int  # pending and settled, not cancelled


@dataclass(frozen=True)
class LevelRow:
    level: str
    members: int
    balance: int


@dataclass(frozen=True)
class Liability:
    members: int
    balance: int  # points members hold now: what the programme owes
    earned: int
    spent: int
    expired: int
    levels: tuple[LevelRow, ...]


def _counts(session: Session, query: Any) -> dict[int, int]:
    return {k: int(v) for k, v in session.execute(query).all()}


def offer_funnel(session: Session, merchant_id: int | None = None) -> list[FunnelRow]:
    shown = _counts(session, select(col(OfferShown.offer_id), func.count()).group_by(col(OfferShown.offer_id)))
    claimed = _counts(session, select(col(Coupon.offer_id), func.count()).group_by(col(Coupon.offer_id)))
    redeemed = _counts(
        session,
        select(col(Coupon.offer_id), func.count(func.distinct(col(Coupon.id))))
        .join(Redemption, and_(col(Redemption.coupon_id) == col(Coupon.id), col(Redemption.undone_at).is_(None)))
        .group_by(col(Coupon.offer_id)),
    )
    query = select(Offer, col(Merchant.code), col(Merchant.name)).join(
        Merchant, col(Merchant.id) == col(Offer.merchant_id)
    )
    if merchant_id is not None:
        query = query.where(col(Offer.merchant_id) == merchant_id)
    return [
        FunnelRow(
            o.id or 0,
            o.key or "",
            code,
            name,
            o.title,
            o.category,
            o.status,
            shown.get(o.id or 0, 0),
            claimed.get(o.id or 0, 0),
            redeemed.get(o.id or 0, 0),
        )
        for o, code, name in session.execute(query.order_by(col(Merchant.code), col(Offer.id)))
    ]


def merchant_performance(session: Session) -> list[MerchantRow]:
    funnel = offer_funnel(session)
    by: dict[str, list[int]] = {}
    for row in funnel:
        acc = by.setdefault(row.merchant_code, [0, 0, 0, 0])
        acc[0] += row.status == "live"
        acc[1] += row.shown
        acc[2] += row.claimed
        acc[3] += row.redeemed
    undone = _counts(
        session,
        select(col(Redemption.merchant_id), func.count())
        .where(col(Redemption.undone_at).is_not(None))
        .group_by(col(Redemption.merchant_id)),
    )
    value = _counts(
        session,
        select(col(Redemption.merchant_id), func.coalesce(func.sum(col(Redemption.order_value_fen)), 0))
        .where(col(Redemption.undone_at).is_(None))
        .group_by(col(Redemption.merchant_id)),
    )
    earned = _counts(
        session,
        select(col(CommissionEntry.merchant_id), func.coalesce(func.sum(col(CommissionEntry.amount_fen)), 0))
        .where(col(CommissionEntry.status) != "cancelled")
        .group_by(col(CommissionEntry.merchant_id)),
    )
    out = []
    for m in session.execute(select(Merchant).order_by(col(Merchant.code))).scalars():
        live, shown, claimed, redeemed = by.get(m.code, [0, 0, 0, 0])
        out.append(
            MerchantRow(
                m.code,
                m.name,
                m.kind,
                live,
                shown,
                claimed,
                redeemed,
                undone.get(m.id or 0, 0),
                value.get(m.id or 0, 0),
                earned.get(m.id or 0, 0),
            )
        )
    return out


def points_liability(session: Session) -> Liability:
    members, balance = session.execute(
        select(func.count(), func.coalesce(func.sum(col(MemberAccount.balance)), 0)).select_from(MemberAccount)
    ).one()
    lines = session.execute(select(col(PointsLine.delta), col(PointsLine.reason))).all()
    earned = sum(d for d, _ in lines if d > 0)
    expired = -sum(d for d, r in lines if d < 0 and r == "expired")
    spent = -sum(d for d, r in lines if d < 0 and r != "expired")
    levels = tuple(
        LevelRow(level or "-", int(n), int(b))
        for level, n, b in session.execute(
            select(col(MemberAccount.level), func.count(), func.coalesce(func.sum(col(MemberAccount.balance)), 0))
            .group_by(col(MemberAccount.level))
            .order_by(col(MemberAccount.level))
        ).all()
    )
    return Liability(int(members), int(balance), earned, spent, expired, levels)


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def sheets(
    session: Session, now: datetime | None = None, timezone: str = "Asia/Shanghai"
) -> list[tuple[str, Iterable[list[Any]]]]:
    """The operations workbook's revenue sheets: this month's settlement, the offer funnel,
    the merchants and the points liability (rows of plain values; the workbook makes them safe)."""
    now = now or utcnow()
    month = now.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")
    report = commission.settlement(session, month, timezone)
    settlement_rows: list[list[Any]] = [[f"settlement {month}"], ["merchant", *commission.TOTAL_HEADER]]
    settlement_rows += [t.cells() for t in report.merchants]
    settlement_rows += [[], ["partner", *commission.TOTAL_HEADER]]
    settlement_rows += [t.cells() for t in report.partners]
    offers_rows: list[list[Any]] = [
        [
            "offer",
            "key",
            "merchant",
            "title",
            "category",
            "status",
            "shown",
            "claimed",
            "redeemed",
            "claimed/shown",
            "redeemed/claimed",
        ]
    ]
    offers_rows += [
        [
            r.offer_id,
            r.key,
            r.merchant_code,
            r.title,
            r.category,
            r.status,
            r.shown,
            r.claimed,
            r.redeemed,
            _rate(r.claim_rate),
            _rate(r.redeem_rate),
        ]
        for r in offer_funnel(session)
    ]
    merchant_rows: list[list[Any]] = [
        [
            "merchant",
            "name",
            "kind",
            "live offers",
            "shown",
            "claimed",
            "redeemed",
            "undone",
            "order value (yuan)",
            "commission (yuan)",
        ]
    ]
    merchant_rows += [
        [
            m.code,
            m.name,
            m.kind,
            m.live_offers,
            m.shown,
            m.claimed,
            m.redeemed,
            m.undone,
            m.order_value_fen / 100,
            m.commission_fen / 100,
        ]
        for m in merchant_performance(session)
    ]
    liability = points_liability(session)
    points_rows: list[list[Any]] = [
        ["members", "points held", "earned", "spent", "expired"],
        [liability.members, liability.balance, liability.earned, liability.spent, liability.expired],
        [],
        ["level", "members", "points held"],
    ]
    points_rows += [[lv.level, lv.members, lv.balance] for lv in liability.levels]
    return [
        ("settlement", settlement_rows),
        ("offers", offers_rows),
        ("merchants", merchant_rows),
        ("points", points_rows),
    ]
