"""The partner commission ledger: pending → settled after the freeze (or cancelled by an
undo), the monthly settlement per merchant (what they owe) and per partner (what they earned)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from flows.errors import InvalidInputError
from storage.db import rowcount
from storage.merchant_models import CommissionEntry, Merchant, Offer
from storage.models import Owner, Partner


def settle_due(session: Session, now: datetime) -> int:
    """Settle every pending line past its freeze; one UPDATE, safe to run anywhere twice (the
    ``membership.points`` job runs it every minute, and the settlement report and /earnings
    before they read)."""
    return rowcount(
        session.execute(
            update(CommissionEntry)
            .where(
                col(CommissionEntry.status) == "pending",
                col(CommissionEntry.settle_after) <= now,
            )
            .values(status="settled", settled_at=now)
            .execution_options(synchronize_session=False)
        )
    )


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(p) for p in month.split("-", 1))
        start = datetime(year, mon, 1, tzinfo=ZoneInfo(timezone))
    except ValueError:
        raise InvalidInputError(f"month {month!r}: use YYYY-MM") from None
    end = datetime(year + (mon == 12), 1 if mon == 12 else mon + 1, 1, tzinfo=ZoneInfo(timezone))
    return start, end


@dataclass(frozen=True)
class SettlementLine:
    redemption_id: int
    at: datetime
    merchant_code: str
    merchant_name: str
    partner_code: str
    partner_name: str
    offer_title: str
    owner_name: str
    order_value_fen: int | None
    amount_fen: int
    status: str


@dataclass(frozen=True)
class SettlementTotal:
    key: str
    name: str
    redemptions: int
    settled_fen: int
    pending_fen: int
    cancelled: int

    def cells(self) -> list[Any]:
        """The row settlement sheets show under ``TOTAL_HEADER`` (amounts in yuan)."""
        return [self.key, self.name, self.redemptions, self.settled_fen / 100, self.pending_fen / 100, self.cancelled]


TOTAL_HEADER = ("name", "redemptions", "settled (yuan)", "pending (yuan)", "cancelled")  # after "merchant"/"partner"


@dataclass(frozen=True)
class Settlement:
    month: str
    lines: tuple[SettlementLine, ...]
    merchants: tuple[SettlementTotal, ...]
    partners: tuple[SettlementTotal, ...]


def settlement(
    session: Session,
    month: str,
    timezone: str = "Asia/Shanghai",
    *,
    merchant_id: int | None = None,
    partner_id: int | None = None,
) -> Settlement:
    start, end = month_bounds(month, timezone)
    query = (
        select(
            CommissionEntry,
            col(Merchant.code),
            col(Merchant.name),
            col(Partner.advisor_code),
            col(Partner.name),
            col(Offer.title),
            col(Owner.name),
        )
        .join(Merchant, col(Merchant.id) == col(CommissionEntry.merchant_id))
        .join(Offer, col(Offer.id) == col(CommissionEntry.offer_id))
        .join(Owner, col(Owner.id) == col(CommissionEntry.owner_id))
        .outerjoin(Partner, col(Partner.id) == col(CommissionEntry.partner_id))
        .where(col(CommissionEntry.created_at) >= start, col(CommissionEntry.created_at) < end)
        .order_by(col(CommissionEntry.created_at), col(CommissionEntry.id))
    )
    if merchant_id is not None:
        query = query.where(col(CommissionEntry.merchant_id) == merchant_id)
    if partner_id is not None:
        query = query.where(col(CommissionEntry.partner_id) == partner_id)
    lines = [
        SettlementLine(
            e.redemption_id,
            e.created_at,
            mc,
            mn,
            pc or "",
            pn or "",
            title,
            owner,
            e.order_value_fen,
            e.amount_fen,
            e.status,
        )
        for e, mc, mn, pc, pn, title, owner in session.execute(query)
    ]
    return Settlement(month, tuple(lines), _totals(lines, "merchant"), _totals(lines, "partner"))


def _totals(lines: list[SettlementLine], by: str) -> tuple[SettlementTotal, ...]:
    acc: dict[str, list[Any]] = {}
    for line in lines:
        key, name = (
            (line.merchant_code, line.merchant_name)
            if by == "merchant"
            else (line.partner_code or "-", line.partner_name or "-")
        )
        row = acc.setdefault(key, [name, 0, 0, 0, 0])
        if line.status == "cancelled":
            row[4] += 1
            continue
        row[1] += 1
        row[2 if line.status == "settled" else 3] += line.amount_fen
    return tuple(SettlementTotal(k, v[0], v[1], v[2], v[3], v[4]) for k, v in sorted(acc.items()))


@dataclass(frozen=True)
class Earnings:
    settled_fen: int
    pending_fen: int
    month_fen: int
    recent: tuple[SettlementLine, ...]


def earnings(session: Session, partner_id: int, now: datetime, timezone: str = "Asia/Shanghai") -> Earnings:
    totals = dict(
        session.execute(
            select(col(CommissionEntry.status), func.coalesce(func.sum(col(CommissionEntry.amount_fen)), 0))
            .where(col(CommissionEntry.partner_id) == partner_id)
            .group_by(col(CommissionEntry.status))
        ).all()
    )
    month = now.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")
    report = settlement(session, month, timezone, partner_id=partner_id)
    month_fen = sum(line.amount_fen for line in report.lines if line.status != "cancelled")
    return Earnings(int(totals.get("settled", 0)), int(totals.get("pending", 0)), month_fen, tuple(report.lines[-10:]))
