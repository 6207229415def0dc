"""The owner funnel (step 1 of the method): how many imported records have started to move.

Stages are cumulative: an owner who is online was also invited, even if the invite was never
recorded (e.g. they found the bot on their own). An owner "reached" a stage when its ``stage``
is that stage or a later one, or when that stage's timestamp or a later one is set; so the
counts can only shrink from imported to verified.

Two rates are given per stage: over imported (how far the whole base has come) and over the
previous stage (where the funnel leaks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_
from sqlmodel import Session, col, select

from flows.community.partners import find_partner
from storage.models import FUNNEL_ORDER, Dealer, FunnelStage, Owner, Partner

UNASSIGNED = "(unassigned)"
TOTAL = "(total)"

_STAMPS = {
    FunnelStage.invited: col(Owner.invited_at),
    FunnelStage.online: col(Owner.online_at),
    FunnelStage.verified: col(Owner.verified_at),
}


@dataclass(frozen=True)
class FunnelRow:
    """Counts for one partner, the unassigned owners, or the total (``advisor_code`` None)."""

    advisor_code: str | None
    name: str
    dealer_code: str | None
    imported: int
    invited: int
    online: int
    verified: int

    def count(self, stage: FunnelStage) -> int:
        return int(getattr(self, stage.value))

    def rate_of_imported(self, stage: FunnelStage) -> float | None:
        """Share of all imported owners that reached ``stage``; None when nothing is imported."""
        return _ratio(self.count(stage), self.imported)

    def rate_of_previous(self, stage: FunnelStage) -> float | None:
        """Share of the previous stage that went on to ``stage`` (None for imported or 0/0)."""
        index = FUNNEL_ORDER.index(stage)
        if index == 0:
            return None
        return _ratio(self.count(stage), self.count(FUNNEL_ORDER[index - 1]))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON and CSV; rate keys say what they are over."""
        data: dict[str, Any] = {
            "advisor_code": self.advisor_code,
            "name": self.name,
            "dealer_code": self.dealer_code,
        }
        for stage in FUNNEL_ORDER:
            data[stage.value] = self.count(stage)
        for stage in FUNNEL_ORDER[1:]:
            data[f"{stage.value}_of_imported"] = _rounded(self.rate_of_imported(stage))
        for previous, stage in itertools.pairwise(FUNNEL_ORDER[1:]):
            data[f"{stage.value}_of_{previous.value}"] = _rounded(self.rate_of_previous(stage))
        return data


@dataclass(frozen=True)
class FunnelReport:
    rows: tuple[FunnelRow, ...]
    total: FunnelRow


def funnel_report(session: Session, advisor_code: str | None = None) -> FunnelReport:
    """Per-partner funnel plus the total, from one GROUP BY over owners.

    Every partner gets a row, also with no owners (a partner who has none yet is news);
    owners without a partner get the ``(unassigned)`` row when there are any. With
    ``advisor_code`` only that partner's owners count (``PartnerNotFoundError`` if unknown).
    """
    counts = select(
        col(Owner.partner_id),
        func.count(),
        *(func.sum(case((_reached(stage), 1), else_=0)) for stage in FUNNEL_ORDER[1:]),
    ).group_by(col(Owner.partner_id))
    partners_stmt = (
        select(Partner, col(Dealer.code))
        .join(Dealer, col(Dealer.id) == col(Partner.dealer_id))
        .order_by(col(Dealer.code), col(Partner.advisor_code))
    )
    if advisor_code is not None:
        partner = find_partner(session, advisor_code)
        counts = counts.where(col(Owner.partner_id) == partner.id)
        partners_stmt = partners_stmt.where(col(Partner.id) == partner.id)

    by_partner = {pid: tuple(int(n or 0) for n in rest) for pid, *rest in session.exec(counts)}
    rows = [
        _row(p.advisor_code, p.name, dealer_code, by_partner.get(p.id))
        for p, dealer_code in session.exec(partners_stmt)
    ]
    if advisor_code is None and None in by_partner:
        rows.append(_row(None, UNASSIGNED, None, by_partner[None]))
    total = FunnelRow(
        advisor_code=None,
        name=TOTAL,
        dealer_code=None,
        **{s.value: sum(r.count(s) for r in rows) for s in FUNNEL_ORDER},
    )
    return FunnelReport(rows=tuple(rows), total=total)


def _reached(stage: FunnelStage) -> ColumnElement[bool]:
    later = FUNNEL_ORDER[FUNNEL_ORDER.index(stage) :]
    stamps = [_STAMPS[s] for s in later]
    return or_(
        col(Owner.stage).in_([s.value for s in later]),
        *(col(stamp).is_not(None) for stamp in stamps),
    )


def _row(advisor_code: str | None, name: str, dealer_code: str | None, counts: tuple[int, ...] | None) -> FunnelRow:
    imported, invited, online, verified = counts or (0, 0, 0, 0)
    return FunnelRow(advisor_code, name, dealer_code, imported, invited, online, verified)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
