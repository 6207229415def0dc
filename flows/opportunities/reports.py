"""Opportunity reports: tasks posted / matched / completed, time to match, match rate by
region (province of the pickup) and vehicle class, and per partner and dealer the same:
tasks posted that reached their owners, matched and completed ones attributed to them (their
deals), match rate and time to match."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, union
from sqlalchemy import select as sa_select  # sqlmodel's select() has overloads for up to 4 columns
from sqlmodel import Session, col, select

from flows.opportunities.places import coordinates
from storage.models import Dealer, Owner, Partner
from storage.opportunity_models import Task, TaskOffer, TaskState

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
class Book:
    """One partner's (or dealer's) tasks: ``posted`` the tasks that reached them (offered to
    one of their owners, by a wave or their own push, or taken by one), ``matched`` and
    ``completed`` those attributed to them (their deals), and how long those took to match."""

    code: str  # advisor code, or dealer code
    name: str
    posted: int
    matched: int
    completed: int
    minutes_to_match_p50: float | None = None
    minutes_to_match_p95: float | None = None

    @property
    def rate(self) -> float:
        return round(self.matched / self.posted, 3) if self.posted else 0.0

    def as_dict(self, code_key: str) -> dict[str, Any]:
        return {
            code_key: self.code,
            "name": self.name,
            "posted": self.posted,
            "matched": self.matched,
            "completed": self.completed,
            "match_rate": self.rate,
            "minutes_to_match_p50": self.minutes_to_match_p50,
            "minutes_to_match_p95": self.minutes_to_match_p95,
        }


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
    by_partner: list[Book] = field(default_factory=list)
    by_dealer: list[Book] = field(default_factory=list)

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
            "by_partner": [b.as_dict("advisor_code") for b in self.by_partner],
            "by_dealer": [b.as_dict("dealer_code") for b in self.by_dealer],
        }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1)


@dataclass(frozen=True)
class _Row:
    state: str
    partner_id: int | None  # attribution (the deal's partner)
    wait: float | None  # minutes from posted to assigned, for matched tasks


def _reached(session: Session, since: datetime | None) -> set[tuple[int, int]]:
    """``(task id, partner id)`` for every task offered to one of the partner's owners, or
    pushed by the partner (distinct pairs, in SQL)."""
    by_owner = (
        sa_select(col(TaskOffer.task_id), col(Owner.partner_id))
        .join(Owner, col(Owner.id) == col(TaskOffer.owner_id))
        .where(col(Owner.partner_id).is_not(None))
    )
    by_push = sa_select(col(TaskOffer.task_id), col(TaskOffer.via_partner_id)).where(
        col(TaskOffer.via_partner_id).is_not(None)
    )
    if since is not None:
        recent = sa_select(col(Task.id)).where(col(Task.created_at) >= since)
        by_owner = by_owner.where(col(TaskOffer.task_id).in_(recent))
        by_push = by_push.where(col(TaskOffer.task_id).in_(recent))
    return {(int(t), int(p)) for t, p in session.execute(union(by_owner, by_push))}


def _book(code: str, name: str, task_ids: set[int], rows: dict[int, _Row], own: set[int]) -> Book:
    """``task_ids`` reached them; the matched ones are those attributed to a partner in ``own``."""
    matched = [rows[t] for t in task_ids if rows[t].state in MATCHED and rows[t].partner_id in own]
    waits = [r.wait for r in matched if r.wait is not None]
    return Book(
        code=code,
        name=name,
        posted=len(task_ids),
        matched=len(matched),
        completed=sum(1 for r in matched if r.state == TaskState.done.value),
        minutes_to_match_p50=_quantile(waits, 0.5),
        minutes_to_match_p95=_quantile(waits, 0.95),
    )


def _books(session: Session, rows: dict[int, _Row], reached: dict[int, set[int]]) -> tuple[list[Book], list[Book]]:
    """Per partner and per dealer (the union of its partners' tasks; matched and completed
    are the tasks attributed to one of its partners)."""
    if not reached:
        return [], []
    partners = session.execute(
        sa_select(col(Partner.id), col(Partner.advisor_code), col(Partner.name), col(Partner.dealer_id)).where(
            col(Partner.id).in_(sorted(reached))
        )
    ).all()
    dealer_of = {pid: did for pid, _, _, did in partners}
    dealers = session.execute(
        sa_select(col(Dealer.id), col(Dealer.code), col(Dealer.name)).where(
            col(Dealer.id).in_(sorted(set(dealer_of.values())))
        )
    ).all()
    by_partner = [_book(code, name, reached[pid], rows, {pid}) for pid, code, name, _ in partners]
    by_dealer = []
    for did, code, name in dealers:
        own = {pid for pid, d in dealer_of.items() if d == did}
        task_ids = set().union(*(reached[pid] for pid in own))
        by_dealer.append(_book(code, name, task_ids, rows, own))

    def order(b: Book) -> tuple[int, int, int, str]:
        return (-b.completed, -b.matched, -b.posted, b.code)

    return sorted(by_partner, key=order), sorted(by_dealer, key=order)


def opportunity_report(session: Session, since: datetime | None = None) -> OpportunityReport:
    """Every figure from two reads: the tasks (with the partner of the owner who took each)
    and the distinct (task, partner) pairs their offers reached."""
    query = sa_select(
        col(Task.id),
        col(Task.state),
        col(Task.pickup_adcode),
        col(Task.vehicle_class),
        col(Task.created_at),
        col(Task.assigned_at),
        col(Task.partner_id),
        col(Owner.partner_id),
    ).outerjoin(Owner, col(Owner.id) == col(Task.assigned_owner_id))
    if since is not None:
        query = query.where(col(Task.created_at) >= since)
    counts: dict[str, int] = defaultdict(int)
    region: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    klass: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    waits: list[float] = []
    rows: dict[int, _Row] = {}
    reached: dict[int, set[int]] = defaultdict(set)
    names = coordinates()
    for task_id, state, adcode, cls, created, assigned, partner_id, owner_partner in session.execute(query):
        counts[state] += 1
        is_matched = state in MATCHED
        province = names.get(adcode[:2] + "0000", (adcode[:2],))[0]
        for table, key in ((region, province), (klass, cls)):
            table[key][0] += 1
            table[key][1] += int(is_matched)
        wait = (assigned - created).total_seconds() / 60 if is_matched and assigned is not None else None
        if wait is not None:
            waits.append(wait)
        rows[task_id] = _Row(state, partner_id, wait)
        for pid in {partner_id, owner_partner} - {None}:
            reached[pid].add(task_id)
    for task_id, pid in _reached(session, since):
        if task_id in rows:
            reached[pid].add(task_id)
    posted = sum(counts.values())
    matched = sum(counts[s] for s in MATCHED)
    by_partner, by_dealer = _books(session, rows, reached)
    return OpportunityReport(
        posted=posted,
        matched=matched,
        completed=counts[TaskState.done.value],
        cancelled=counts[TaskState.cancelled.value],
        expired=counts[TaskState.expired.value],
        minutes_to_match_p50=_quantile(waits, 0.5),
        minutes_to_match_p95=_quantile(waits, 0.95),
        by_region=sorted((Rate(k, *v) for k, v in region.items()), key=lambda r: -r.posted),
        by_class=sorted((Rate(k, *v) for k, v in klass.items()), key=lambda r: -r.posted),
        by_partner=by_partner,
        by_dealer=by_dealer,
    )


def partner_deals(session: Session, partner_id: int) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(Task)
            .where(col(Task.partner_id) == partner_id, col(Task.state) == TaskState.done.value)
        ).one()
    )


_BOOK_HEADERS = (
    "tasks posted (reached their owners)",
    "matched",
    "completed (deals)",
    "match rate",
    "minutes to match p50",
    "minutes to match p95",
)


def _book_rows(books: list[Book]) -> list[list[object]]:
    return [
        [b.code, b.name, b.posted, b.matched, b.completed, b.rate, b.minutes_to_match_p50, b.minutes_to_match_p95]
        for b in books
    ]


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
        ["partner", "name", *_BOOK_HEADERS],
        *_book_rows(r.by_partner),
        [],
        ["dealer", "name", *_BOOK_HEADERS],
        *_book_rows(r.by_dealer),
    ]
    return [("tasks", rows)]
