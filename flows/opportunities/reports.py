"""Opportunity reports: tasks posted / matched / completed, time to match, match rate by
region (province of the pickup) and vehicle class, and completed deals per partner and dealer."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select  # sqlmodel's select() has overloads for up to 4 columns
from sqlmodel import Session, col, select

from flows.opportunities.places import coordinates
from storage.models import Dealer, Partner
from storage.opportunity_models import Task, TaskState

MATCHED = (TaskState.assigned.value, TaskState.in_progress.value, TaskState.done.value)


@dataclass(frozen=True)
class Rate:
    key: str
    posted: int
    matched: int

    @property
    def rate(self) -> float:
        return round(self.matched / self.posted, 3) if self.posted else 0.0


@dataclass(frozen=True)
class OpportunityReport:
    posted: int
    matched: int
    completed: int
    cancelled: int
    expired: int
    minutes_to_match_p50: float | None
    minutes_to_match_p95: float | None
    by_region: list[Rate] = field(default_factory=list)
    by_class: list[Rate] = field(default_factory=list)
    by_partner: list[tuple[str, str, int]] = field(default_factory=list)  # advisor, name, completed
    by_dealer: list[tuple[str, str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "posted": self.posted,
            "matched": self.matched,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "expired": self.expired,
            "match_rate": round(self.matched / self.posted, 3) if self.posted else 0.0,
            "minutes_to_match_p50": self.minutes_to_match_p50,
            "minutes_to_match_p95": self.minutes_to_match_p95,
            "by_region": [
                {"region": r.key, "posted": r.posted, "matched": r.matched, "rate": r.rate} for r in self.by_region
            ],
            "by_class": [
                {"class": r.key, "posted": r.posted, "matched": r.matched, "rate": r.rate} for r in self.by_class
            ],
            "by_partner": [{"advisor_code": a, "name": n, "completed": c} for a, n, c in self.by_partner],
            "by_dealer": [{"dealer_code": a, "name": n, "completed": c} for a, n, c in self.by_dealer],
        }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1)


def opportunity_report(session: Session, since: datetime | None = None) -> OpportunityReport:
    query = sa_select(
        col(Task.state), col(Task.pickup_adcode), col(Task.vehicle_class), col(Task.created_at), col(Task.assigned_at)
    )
    if since is not None:
        query = query.where(col(Task.created_at) >= since)
    counts: dict[str, int] = defaultdict(int)
    region: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    klass: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    waits: list[float] = []
    names = coordinates()
    for state, adcode, cls, created, assigned in session.execute(query):
        counts[state] += 1
        is_matched = state in MATCHED
        province = names.get(adcode[:2] + "0000", (adcode[:2],))[0]
        for table, key in ((region, province), (klass, cls)):
            table[key][0] += 1
            table[key][1] += int(is_matched)
        if is_matched and assigned is not None:
            waits.append((assigned - created).total_seconds() / 60)
    posted = sum(counts.values())
    matched = sum(counts[s] for s in MATCHED)
    done = TaskState.done.value
    partners = session.exec(
        select(col(Partner.advisor_code), col(Partner.name), func.count(col(Task.id)))
        .join(Task, col(Task.partner_id) == col(Partner.id))
        .where(col(Task.state) == done)
        .group_by(col(Partner.advisor_code), col(Partner.name))
        .order_by(func.count(col(Task.id)).desc())
    ).all()
    dealers = session.exec(
        select(col(Dealer.code), col(Dealer.name), func.count(col(Task.id)))
        .join(Partner, col(Partner.dealer_id) == col(Dealer.id))
        .join(Task, col(Task.partner_id) == col(Partner.id))
        .where(col(Task.state) == done)
        .group_by(col(Dealer.code), col(Dealer.name))
    ).all()
    return OpportunityReport(
        posted=posted,
        matched=matched,
        completed=counts[done],
        cancelled=counts[TaskState.cancelled.value],
        expired=counts[TaskState.expired.value],
        minutes_to_match_p50=_quantile(waits, 0.5),
        minutes_to_match_p95=_quantile(waits, 0.95),
        by_region=sorted((Rate(k, *v) for k, v in region.items()), key=lambda r: -r.posted),
        by_class=sorted((Rate(k, *v) for k, v in klass.items()), key=lambda r: -r.posted),
        by_partner=[(a, n, int(c)) for a, n, c in partners],
        by_dealer=[(a, n, int(c)) for a, n, c in dealers],
    )


def partner_deals(session: Session, partner_id: int) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(Task)
            .where(col(Task.partner_id) == partner_id, col(Task.state) == TaskState.done.value)
        ).one()
    )


def sheets(session: Session) -> list[tuple[str, list[list[object]]]]:
    """The operations workbook's tasks sheet (``report operations``): the same numbers as
    ``report opportunities``, as rows of plain values (the workbook makes them safe)."""
    r = opportunity_report(session)
    d = r.as_dict()
    rows: list[list[object]] = [
        [
            "tasks posted",
            "matched",
            "completed",
            "cancelled",
            "expired",
            "match rate",
            "minutes to match p50",
            "minutes to match p95",
        ],
        [
            r.posted,
            r.matched,
            r.completed,
            r.cancelled,
            r.expired,
            d["match_rate"],
            r.minutes_to_match_p50,
            r.minutes_to_match_p95,
        ],
        [],
        ["region (pickup province)", "posted", "matched", "match rate"],
        *([x.key, x.posted, x.matched, x.rate] for x in r.by_region),
        [],
        ["vehicle class", "posted", "matched", "match rate"],
        *([x.key, x.posted, x.matched, x.rate] for x in r.by_class),
        [],
        ["partner", "name", "completed tasks (deals)"],
        *([a, n, c] for a, n, c in r.by_partner),
        [],
        ["dealer", "name", "completed tasks"],
        *([a, n, c] for a, n, c in r.by_dealer),
    ]
    return [("tasks", rows)]
