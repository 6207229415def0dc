"""Matrix and movement reports: how many owners sit in each cell, and who moved where.

The **matrix** counts owners by their stored cell (as of the last recompute) for a scope: one
partner's owners, a dealer's, or everyone; optionally one product line. Owners never online
are counted apart (``not_online``): they are dormant by definition, and mixing them into the
dormant row would hide the owners who came and went. Cell shares are of the owners online;
the not-online share is of all owners in scope.

The **movement** report reads transitions in a period ``[start, end)``: counts per
from → to cell, and the article's stage goals as rates — of the owners in a group when the
period began, how many reached the goal during it:

- ``beginner_to_growing``  初级→成长: maturity beginner → growing or mature
- ``growing_to_mature``    成长→成熟: maturity growing → mature
- ``asleep_to_active``     沉睡/流失→活跃: activity dormant or churned → active
- ``declining_to_active``  衰退→活跃: activity declining → active

An owner's cell at ``start`` is the "from" of their first transition at or after ``start``, or
their current cell if they have none since; owners created after ``start`` are not in the base.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlmodel import Session, col

from flows.community.partners import find_partner
from flows.errors import InvalidInputError, NotFoundError
from flows.templating import labels
from storage.cells import safe_row
from storage.models import Dealer, Owner, Partner, ProductLine, SegmentRun, SegmentTransition
from storage.segments import ACTIVITY_ORDER, MATURITY_ORDER, Activity, Maturity, is_online

NOT_ONLINE = "not_online"

LINE_WORDS = {
    "passenger": ProductLine.passenger.value,
    "乘用车": ProductLine.passenger.value,
    "commercial": ProductLine.commercial.value,
    "商用车": ProductLine.commercial.value,
}
_DEALER_WORDS = {"dealer", "经销商"}
_PARTNER_WORDS = {"partner", "advisor", "顾问"}


@dataclass(frozen=True)
class MatrixScope:
    """Whose owners: a partner (by id or advisor code), a dealer, or all; one line or both."""

    partner_id: int | None = None
    advisor_code: str | None = None
    dealer_code: str | None = None
    product_line: str | None = None


@dataclass(frozen=True)
class ScopeLabel:
    """What the scope resolved to, for titles: kind is partner, dealer or all."""

    kind: str
    code: str = ""
    name: str = ""


@dataclass(frozen=True)
class MatrixCell:
    maturity: str
    activity: str
    count: int
    share: float | None  # of the owners online in scope

    @property
    def key(self) -> str:
        return f"{self.maturity}/{self.activity}"


@dataclass(frozen=True)
class MatrixReport:
    scope: ScopeLabel
    product_line: str | None
    counts: Mapping[tuple[str, str], int]
    not_online: int
    as_of: datetime | None  # the last recompute; None if segments were never computed

    def count(self, maturity: str, activity: str) -> int:
        return int(self.counts.get((maturity, activity), 0))

    @property
    def online(self) -> int:
        return sum(self.counts.values())

    @property
    def total(self) -> int:
        return self.online + self.not_online

    @property
    def not_online_share(self) -> float | None:
        return _ratio(self.not_online, self.total)

    def cell(self, maturity: str, activity: str) -> MatrixCell:
        n = self.count(maturity, activity)
        return MatrixCell(maturity, activity, n, _ratio(n, self.online))

    def rows(self) -> list[tuple[str, list[MatrixCell]]]:
        """Activity rows (active first), each with its maturity cells (beginner first)."""
        return [(a.value, [self.cell(m.value, a.value) for m in MATURITY_ORDER]) for a in ACTIVITY_ORDER]

    def as_dict(self) -> dict[str, int]:
        """Per-cell counts keyed ``"<maturity>/<activity>"`` plus ``"not_online"``."""
        data = {f"{m.value}/{a.value}": self.count(m.value, a.value) for m in MATURITY_ORDER for a in ACTIVITY_ORDER}
        data[NOT_ONLINE] = self.not_online
        return data


@dataclass(frozen=True)
class Move:
    from_cell: str
    to_cell: str
    count: int


@dataclass(frozen=True)
class GoalRate:
    key: str
    base: int  # owners in the "from" group when the period began
    reached: int  # of those, how many reached the goal during the period

    @property
    def rate(self) -> float | None:
        return _ratio(self.reached, self.base)


GOALS = ("beginner_to_growing", "growing_to_mature", "asleep_to_active", "declining_to_active")


@dataclass(frozen=True)
class MovementReport:
    scope: ScopeLabel
    product_line: str | None
    start: datetime
    end: datetime
    moves: tuple[Move, ...]
    goals: tuple[GoalRate, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "product_line": self.product_line,
            "moves": [{"from": m.from_cell, "to": m.to_cell, "count": m.count} for m in self.moves],
            "goals": {g.key: {"base": g.base, "reached": g.reached, "rate": _rounded(g.rate)} for g in self.goals},
        }


# --- scope ----------------------------------------------------------------------------------


def parse_line(word: str | None) -> str | None:
    """``passenger``/``乘用车`` or ``commercial``/``商用车`` (None for none given)."""
    if word is None or not word.strip():
        return None
    line = LINE_WORDS.get(word.strip().lower())
    if line is None:
        raise InvalidInputError(f"unknown product line {word!r}: use passenger or commercial")
    return line


def parse_matrix_args(text: str | None, *, operator: bool) -> MatrixScope:
    """``[passenger|commercial]`` for partners; operators may add ``dealer D`` or ``partner A``."""
    words = (text or "").split()
    dealer = advisor = line = None
    i = 0
    while i < len(words):
        word = words[i].lower()
        if operator and (word in _DEALER_WORDS or word in _PARTNER_WORDS) and i + 1 < len(words):
            if dealer or advisor:
                raise InvalidInputError("give either a dealer or a partner, not both")
            if word in _DEALER_WORDS:
                dealer = words[i + 1][:32]
            else:
                advisor = words[i + 1][:32]
            i += 2
            continue
        if line is not None:
            raise InvalidInputError(f"unexpected {words[i]!r}")
        line = parse_line(words[i])
        i += 1
    return MatrixScope(advisor_code=advisor, dealer_code=dealer, product_line=line)


def _resolve(session: Session, scope: MatrixScope) -> tuple[list[ColumnElement[bool]], ScopeLabel]:
    where: list[ColumnElement[bool]] = []
    label = ScopeLabel("all")
    if scope.partner_id is not None or scope.advisor_code:
        if scope.partner_id is not None:
            partner = session.get(Partner, scope.partner_id)
            if partner is None:
                raise NotFoundError(f"no partner with id {scope.partner_id}")
        else:
            partner = find_partner(session, scope.advisor_code or "")
        where.append(col(Owner.partner_id) == partner.id)
        label = ScopeLabel("partner", partner.advisor_code, partner.name)
    elif scope.dealer_code:
        code = scope.dealer_code.strip()
        dealer = session.execute(select(Dealer).where(col(Dealer.code) == code)).scalars().first()
        if dealer is None:
            raise NotFoundError(f"no dealer with code {code!r}")
        partners = select(col(Partner.id)).where(col(Partner.dealer_id) == dealer.id)
        where.append(or_(col(Owner.partner_id).in_(partners), col(Owner.dealer_code) == code))
        label = ScopeLabel("dealer", dealer.code, dealer.name)
    if scope.product_line:
        where.append(col(Owner.product_line) == scope.product_line)
    return where, label


# --- the matrix -----------------------------------------------------------------------------


def matrix_report(session: Session, scope: MatrixScope) -> MatrixReport:
    """Counts per stored cell for the scope, never-online owners apart (one GROUP BY)."""
    where, label = _resolve(session, scope)
    online = is_online().label("online")
    stmt = (
        select(col(Owner.maturity), col(Owner.activity), online, func.count())
        .where(*where)
        .group_by(col(Owner.maturity), col(Owner.activity), online)
    )
    counts: dict[tuple[str, str], int] = {}
    not_online = 0
    for maturity, activity, is_on, n in session.execute(stmt):
        if is_on:
            counts[(maturity, activity)] = counts.get((maturity, activity), 0) + int(n)
        else:
            not_online += int(n)
    as_of = session.execute(select(func.max(col(SegmentRun.at)))).scalar()
    return MatrixReport(label, scope.product_line, counts, not_online, as_of)


# --- movement -------------------------------------------------------------------------------


def movement_report(session: Session, scope: MatrixScope, start: datetime, end: datetime) -> MovementReport:
    """Transitions in ``[start, end)`` per from → to, and the stage goals as rates."""
    if start.utcoffset() is None or end.utcoffset() is None:
        raise ValueError("start and end must be aware datetimes")
    if end <= start:
        raise InvalidInputError("the period is empty: its end must come after its start")
    where, label = _resolve(session, scope)
    t = SegmentTransition
    moves_stmt = (
        select(col(t.from_maturity), col(t.from_activity), col(t.to_maturity), col(t.to_activity), func.count())
        .join(Owner, col(Owner.id) == col(t.owner_id))
        .where(col(t.at) >= start, col(t.at) < end, *where)
        .group_by(col(t.from_maturity), col(t.from_activity), col(t.to_maturity), col(t.to_activity))
    )
    moves = sorted(
        (Move(f"{fm}/{fa}", f"{tm}/{ta}", int(n)) for fm, fa, tm, ta, n in session.execute(moves_stmt)),
        key=lambda m: (-m.count, m.from_cell, m.to_cell),
    )
    return MovementReport(label, scope.product_line, start, end, tuple(moves), _goals(session, where, start, end))


def _goals(session: Session, where: list[ColumnElement[bool]], start: datetime, end: datetime) -> tuple[GoalRate, ...]:
    t = SegmentTransition
    ranked = (
        select(
            col(t.owner_id),
            col(t.from_maturity),
            col(t.from_activity),
            func.row_number().over(partition_by=col(t.owner_id), order_by=(col(t.at), col(t.id))).label("rn"),
        )
        .where(col(t.at) >= start)
        .subquery("ranked")
    )
    first = select(ranked).where(ranked.c.rn == 1).subquery("first_after")
    grown = (Maturity.growing.value, Maturity.mature.value)
    reached = (
        select(
            col(t.owner_id),
            func.max(case((col(t.to_maturity).in_(grown), 1), else_=0)).label("grew"),
            func.max(case((col(t.to_maturity) == Maturity.mature.value, 1), else_=0)).label("matured"),
            func.max(case((col(t.to_activity) == Activity.active.value, 1), else_=0)).label("woke"),
        )
        .where(col(t.at) >= start, col(t.at) < end)
        .group_by(col(t.owner_id))
        .subquery("reached")
    )
    start_m = func.coalesce(first.c.from_maturity, col(Owner.maturity))
    start_a = func.coalesce(first.c.from_activity, col(Owner.activity))
    grew = func.coalesce(reached.c.grew, 0) == 1
    matured = func.coalesce(reached.c.matured, 0) == 1
    woke = func.coalesce(reached.c.woke, 0) == 1
    asleep = start_a.in_((Activity.dormant.value, Activity.churned.value))
    groups = [
        ("beginner_to_growing", start_m == Maturity.beginner.value, grew),
        ("growing_to_mature", start_m == Maturity.growing.value, matured),
        ("asleep_to_active", asleep, woke),
        ("declining_to_active", start_a == Activity.declining.value, woke),
    ]
    columns = []
    for _, base, goal in groups:
        columns.append(func.coalesce(func.sum(case((base, 1), else_=0)), 0))
        columns.append(func.coalesce(func.sum(case((and_(base, goal), 1), else_=0)), 0))
    stmt = (
        select(*columns)
        .select_from(Owner)
        .outerjoin(first, first.c.owner_id == col(Owner.id))
        .outerjoin(reached, reached.c.owner_id == col(Owner.id))
        .where(col(Owner.created_at) < start, *where)
    )
    row = session.execute(stmt).one()
    return tuple(GoalRate(key, int(row[2 * i]), int(row[2 * i + 1])) for i, (key, _, _) in enumerate(groups))


# --- files ----------------------------------------------------------------------------------

_XLSX_WORDS = {
    "zh": {
        "sheet": "分层矩阵",
        "corner": "活跃度 \\ 成熟度",
        "total": "合计",
    },
    "en": {
        "sheet": "matrix",
        "corner": "activity \\ maturity",
        "total": "total",
    },
}


def matrix_csv(report: MatrixReport) -> str:
    """Long format, one line per cell then ``not_online``: cell, maturity, activity, count, share.
    Cells pass ``safe_row`` like every spreadsheet the product writes (no formulas)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["cell", "maturity", "activity", "count", "share"])
    for _, cells in report.rows():
        for c in cells:
            writer.writerow(safe_row([c.key, c.maturity, c.activity, c.count, _csv_share(c.share)]))
    writer.writerow(safe_row([NOT_ONLINE, "", "", report.not_online, _csv_share(report.not_online_share)]))
    return buffer.getvalue()


def matrix_xlsx(report: MatrixReport, *, locale: str | None) -> bytes:
    """The matrix as a small sheet: activity rows × maturity columns, then not-online and total."""
    from openpyxl import Workbook

    loc = locale if locale in _XLSX_WORDS else "zh"
    words = {**labels(loc).words(), **_XLSX_WORDS[loc]}  # the vocabulary from the one catalogue
    book = Workbook(write_only=True)
    sheet = book.create_sheet(words["sheet"])
    rows: list[list[Any]] = [[words["corner"], *(words[m.value] for m in MATURITY_ORDER), words["total"]]]
    for activity, cells in report.rows():
        rows.append([words[activity], *(c.count for c in cells), sum(c.count for c in cells)])
    rows.append([words["not_online"], report.not_online])
    rows.append([words["total"], report.total])
    for row in rows:
        sheet.append(safe_row(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _csv_share(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
